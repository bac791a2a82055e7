#!/usr/bin/env node
/**
 * Records the event logs of test/fixtures/logs/*.jsonl: REAL runs of the fixture templates in
 * test/fixtures/logs/templates/, through the built library (dist/) on a SQLite store, each
 * written one event per line, in log order, exactly as stored. test/engine/replay.test.ts
 * replays them strictly against the current engine.
 *
 *   npm run record-logs          (= npm run build && node scripts/record-logs.mjs)
 *   node scripts/record-logs.mjs retries cancel     record only these fixtures
 *
 * steps, tools and tool-approval record durable steps (ctx.step), an agent's tool loop (turns
 * and tool calls, a stage retry that reuses a recorded turn) and per-call approvals; the agent
 * fixtures run against Baton's fake OpenAI server (dist/testing), started here.
 *
 * Beside each log, <name>.batches.json lists the sizes of the appends that wrote it (one store
 * transaction each: the events that arrived together, then the events `decide` added to them),
 * so the replay test knows every point where `decide` ran — including those where it added
 * nothing. BATON_DIST=DIR uses a library built elsewhere.
 *
 * Run manually: fixtures change only when someone re-records them (after an intended change
 * of engine semantics, with ENGINE_VERSION bumped). Logs of earlier builds are kept, as they
 * were, under test/fixtures/logs/archive/<commit>/ (copy them there before re-recording).
 */
import { spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DIST = process.env.BATON_DIST ? resolve(process.env.BATON_DIST) : join(ROOT, "dist");
if (!existsSync(join(DIST, "index.js"))) {
  console.error(`${join(DIST, "index.js")} is missing: run \`npm run build\` first (npm run record-logs does)`);
  process.exit(1);
}
const { Runtime, SqliteStore, loadPlanFile, planFromSource } = await import(pathToFileURL(join(DIST, "index.js")).href);

const OUT = join(ROOT, "test/fixtures/logs");
const TEMPLATES = join(OUT, "templates");
const template = (name) => join(TEMPLATES, `${name}.yaml`);
const SEED = 20240607;

/**
 * A store that reports the size of every append (create, append, appendNow) once it committed.
 * `onBatch(runId, n)` must be synchronous so a SIGKILL cannot lose a batch that was written.
 */
function recording(inner, onBatch) {
  return new Proxy(inner, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      if (prop === "create") {
        return async (run, events) => {
          const seq = await v.call(target, run, events);
          onBatch(run.id, events.length);
          return seq;
        };
      }
      if (prop === "append") {
        return async (runId, events, expected) => {
          const seq = await v.call(target, runId, events, expected);
          onBatch(runId, events.length);
          return seq;
        };
      }
      if (prop === "appendNow") {
        return (runId, events, expected) => {
          const seq = v.call(target, runId, events, expected);
          onBatch(runId, events.length);
          return seq;
        };
      }
      return v.bind(target);
    },
  });
}

/** A fresh SQLite database with a recording store and runtime over it. */
function session(db, batches) {
  const store = recording(SqliteStore.open(db), (id, n) => (batches.get(id) ?? batches.set(id, []).get(id)).push(n));
  const events = [];
  const listeners = new Set();
  const rt = new Runtime({
    store, loadPlan: planFromSource, signalPollMs: 20,
    onEvents: (id, es) => {
      events.push(...es);
      for (const l of listeners) l(id, es);
    },
  });
  /** Resolves once an event matching `pred` was appended (by this runtime). */
  const when = (pred) => new Promise((res) => {
    const l = (id, es) => {
      const hit = es.find(pred);
      if (hit) {
        listeners.delete(l);
        res({ id, event: hit });
      }
    };
    listeners.add(l);
  });
  return { store, rt, when, close: async () => { await rt.close(); await store.close(); } };
}

const tmp = mkdtempSync(join(tmpdir(), "baton-record-"));
const dbOf = (name) => join(tmp, `${name}.db`);

function check(cond, name, what) {
  if (!cond) throw new Error(`fixture ${name}: the recording did not take the intended path: ${what}`);
}

const has = (events, pred) => events.some(pred);

/** Each fixture: record one run and return its id (the log is read back from the store). */
const FIXTURES = {
  async retries(name, s) {
    const r = await (await s.rt.start(loadPlanFile(template("retries")), {}, { seed: SEED })).done;
    check(r.status === "succeeded", name, `status ${r.status}`);
    return r.id;
  },

  async routes(name, s) {
    const r = await (await s.rt.start(loadPlanFile(template("routes")), { fast: true }, { seed: SEED })).done;
    check(r.status === "succeeded", name, `status ${r.status} ${JSON.stringify(r.error)}`);
    return r.id;
  },

  async fallback(name, s) {
    const r = await (await s.rt.start(loadPlanFile(template("fallback")), {}, { seed: SEED })).done;
    check(r.status === "succeeded", name, `status ${r.status} ${JSON.stringify(r.error)}`);
    return r.id;
  },

  async approval(name, s) {
    const r = await (await s.rt.start(loadPlanFile(template("approval")), {}, { seed: SEED })).done;
    check(r.status === "waiting", name, `status ${r.status}`);
    const a = await s.rt.answer(r.id, "review", { approved: true, data: { approved: true, note: "ship it" }, by: "fixture", comment: "looks good" });
    const end = await a.handle.done;
    check(end.status === "succeeded", name, `after the answer: ${end.status}`);
    return r.id;
  },

  async escalation(name, s) {
    const r = await (await s.rt.start(loadPlanFile(template("escalation")), {}, { seed: SEED })).done;
    check(r.status === "waiting", name, `status ${r.status}`);
    // Both wait: answer the failed stage first (a human stands in with data), then the route.
    const a = await s.rt.answer(r.id, "risky", { approved: true, data: { manual: "value from a human" }, by: "fixture" });
    const mid = await a.handle.done;
    check(mid.status === "waiting" && mid.error?.stage === "score", name, `after the first answer: ${mid.status} ${JSON.stringify(mid.error)}`);
    const b = await s.rt.answer(r.id, "score", { approved: true, by: "fixture", comment: "low but fine" });
    const end = await b.handle.done;
    check(end.status === "succeeded", name, `after the second answer: ${end.status}`);
    return r.id;
  },

  async for_each(name, s) {
    const r = await (await s.rt.start(loadPlanFile(template("for_each")), {}, { seed: SEED })).done;
    check(r.status === "succeeded", name, `status ${r.status}`);
    return r.id;
  },

  async failure(name, s) {
    const r = await (await s.rt.start(loadPlanFile(template("failure")), {}, { seed: SEED })).done;
    check(r.status === "failed", name, `status ${r.status}`);
    return r.id;
  },

  async rerun(name, s) {
    // `baton rerun RUN --from triage` of a routes run: the stages before triage are reused.
    const orig = await (await s.rt.start(loadPlanFile(template("routes")), { fast: true }, { seed: SEED })).done;
    check(orig.status === "succeeded", name, `the original run: ${orig.status}`);
    const h = await s.rt.rerun(orig.id, "triage", { seed: SEED });
    const r = await h.done;
    check(r.status === "succeeded", name, `status ${r.status} ${JSON.stringify(r.error)}`);
    return h.id;
  },

  async cancel(name, s) {
    const plan = loadPlanFile(template("cancel"));
    const running = s.when((e) => e.type === "stage_started" && e.stage === "slow");
    const h = await s.rt.start(plan, {}, { seed: SEED });
    await running;
    await new Promise((res) => setTimeout(res, 30)); // the handler is well inside its attempt
    await s.rt.cancel(h.id, "cancelled by the fixture recorder");
    const r = await h.done;
    check(r.status === "cancelled", name, `status ${r.status}`);
    const again = await (await s.rt.resume(h.id)).done;
    check(again.status === "succeeded", name, `after resume: ${again.status}`);
    return h.id;
  },

  async crash(name, s, { db, batches }) {
    // A child process starts the run; it is SIGKILLed while `slow`'s items, `single` and `shaky` run.
    const batchFile = join(tmp, `${name}.child-batches`);
    writeFileSync(batchFile, "");
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--child", template("crash"), db, batchFile], { stdio: ["ignore", "pipe", "inherit"], env: process.env });
    const exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
    let id;
    await new Promise((res, rej) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        const m = /^running (\S+)$/m.exec(out);
        if (m) {
          id = m[1];
          res();
        }
      });
      void exited.then((how) => rej(new Error(`fixture ${name}: the child exited early: ${JSON.stringify(how)}`)));
    });
    await new Promise((res) => setTimeout(res, 50)); // well inside the attempts
    child.kill("SIGKILL");
    const how = await exited;
    check(how.signal === "SIGKILL", name, `the child exited with ${JSON.stringify(how)}`);
    const childBatches = readFileSync(batchFile, "utf8").split("\n").filter(Boolean).map(Number);
    batches.set(id, [...childBatches, ...(batches.get(id) ?? [])]);
    const r = await (await s.rt.resume(id)).done;
    check(r.status === "succeeded", name, `after resume: ${r.status} ${JSON.stringify(r.error)}`);
    return id;
  },

  async steps(name, s) {
    const r = await (await s.rt.start(loadPlanFile(template("steps")), {}, { seed: SEED })).done;
    check(r.status === "succeeded", name, `status ${r.status} ${JSON.stringify(r.error)}`);
    return r.id;
  },

  async tools(name, s) {
    // Turn 1 (the prompt is the last message): four calls; turn 2: 500 once, then one call; turn 3: the answer.
    const turn = (req) => req.messages.filter((m) => m.role === "assistant").length + 1;
    const usage = (prompt_tokens, completion_tokens) => ({ prompt_tokens, completion_tokens });
    return withFakeModel([
      {
        match: (req) => req.messages.at(-1)?.role === "user",
        reply: { usage: usage(120, 40), toolCalls: [
          { id: "d1", name: "double", arguments: { x: 21 } },
          { id: "l1", name: "lookup", arguments: { term: "tide" } },
          { id: "u1", name: "weather", arguments: { city: "Oslo" } },
          { id: "m1", name: "double", arguments: '{"x": ' },
        ] },
      },
      { match: (req) => req.messages.at(-1)?.role === "tool" && turn(req) === 2, times: 1, reply: { status: 500, content: "the model server hiccuped" } },
      { match: (req) => req.messages.at(-1)?.role === "tool" && turn(req) === 2, reply: { usage: usage(260, 20), toolCalls: [{ id: "d2", name: "double", arguments: { x: 2 } }] } },
      { match: (req) => req.messages.at(-1)?.role === "tool" && turn(req) === 3, reply: { usage: usage(300, 30), content: "Tides: 42 and 4; the lookup says they rise and fall." } },
    ], async (fake) => {
      const r = await (await s.rt.start(loadPlanFile(template("tools")), {}, { seed: SEED })).done;
      check(r.status === "succeeded", name, `status ${r.status} ${JSON.stringify(r.error)}`);
      check(fake.requests.length === 4, name, `the model was asked ${fake.requests.length} times, not 4 (turn 1 once, turn 2 twice, turn 3 once)`);
      return r.id;
    });
  },

  async "tool-approval"(name, s) {
    const turn1 = { usage: { prompt_tokens: 100, completion_tokens: 30 }, toolCalls: [
      { id: "p1", name: "publish", arguments: { title: "Tides, first edition" } },
      { id: "p2", name: "publish", arguments: { title: "Tides, second edition" } },
      { id: "d1", name: "double", arguments: { x: 5 } },
    ] };
    return withFakeModel([
      { match: (req) => req.messages.at(-1)?.role === "user", reply: turn1 },
      { match: (req) => req.messages.at(-1)?.role === "tool", reply: { usage: { prompt_tokens: 200, completion_tokens: 20 }, content: "Published the first edition; the second was declined." } },
    ], async (fake) => {
      const r = await (await s.rt.start(loadPlanFile(template("tool-approval")), {}, { seed: SEED })).done;
      check(r.status === "waiting", name, `status ${r.status} ${JSON.stringify(r.error)}`);
      const a = await s.rt.answer(r.id, "report", { approved: true, call: "p1", by: "fixture", comment: "first edition ok" });
      const mid = await a.handle.done;
      check(mid.status === "waiting", name, `after the first answer: ${mid.status} ${JSON.stringify(mid.error)}`);
      const b = await s.rt.answer(r.id, "report", { approved: false, call: "p2", by: "fixture", comment: "not the second edition" });
      const end = await b.handle.done;
      check(end.status === "succeeded", name, `after the second answer: ${end.status} ${JSON.stringify(end.error)}`);
      check(fake.requests.length === 2, name, `the model was asked ${fake.requests.length} times, not 2 (turn 1 replayed after the answers)`);
      return r.id;
    });
  },
};

/**
 * Run `fn(fake)` against Baton's fake OpenAI server (dist/testing) scripted with `rules`: the
 * templates' agents read its address from FAKE_URL (`base_url: "${FAKE_URL}"`), and the
 * provider client needs a key (never a real one).
 */
async function withFakeModel(rules, fn) {
  const { startFakeOpenAI } = await import(pathToFileURL(join(DIST, "testing/index.js")).href);
  const fake = await startFakeOpenAI({ rules });
  const saved = { FAKE_URL: process.env.FAKE_URL, OPENAI_API_KEY: process.env.OPENAI_API_KEY };
  process.env.FAKE_URL = fake.url;
  process.env.OPENAI_API_KEY = "sk-fixture-not-a-real-key";
  try {
    return await fn(fake);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await fake.close();
  }
}

/** `--child TEMPLATE DB BATCHFILE`: start the run, say `running ID` once every attempt to interrupt runs, wait to be killed. */
async function child([file, db, batchFile]) {
  const store = recording(SqliteStore.open(db), (_id, n) => appendFileSync(batchFile, `${n}\n`));
  let started = 0;
  const rt = new Runtime({
    store, loadPlan: planFromSource,
    onEvents: (id, es) => {
      started += es.filter((e) => e.type === "stage_started" && ["slow", "single", "shaky"].includes(e.stage)).length;
      if (started === 5) process.stdout.write(`running ${id}\n`);
    },
  });
  const h = await rt.start(loadPlanFile(file), {}, { seed: SEED });
  await h.done;
  console.error("the crash fixture's child finished before it was killed");
  process.exit(3);
}

async function main(names) {
  const unknown = names.filter((n) => !(n in FIXTURES));
  if (unknown.length) throw new Error(`unknown fixture ${unknown.join(", ")}: pick from ${Object.keys(FIXTURES).join(", ")}`);
  for (const name of names.length ? names : Object.keys(FIXTURES)) {
    const db = dbOf(name);
    const batches = new Map();
    const s = session(db, batches);
    let id;
    try {
      id = await FIXTURES[name](name, s, { db, batches });
    } finally {
      await s.close();
    }
    const store = SqliteStore.open(db);
    const { events } = await store.load(id);
    await store.close();
    const sizes = batches.get(id) ?? [];
    const total = sizes.reduce((a, b) => a + b, 0);
    check(total === events.length, name, `the appends recorded (${total} events) do not add up to the log (${events.length})`);
    checkPath(name, events);
    writeFileSync(join(OUT, `${name}.jsonl`), events.map((e) => JSON.stringify(e)).join("\n") + "\n");
    writeFileSync(join(OUT, `${name}.batches.json`), JSON.stringify(sizes) + "\n");
    console.log(`${name}: ${events.length} events in ${sizes.length} appends → test/fixtures/logs/${name}.jsonl`);
  }
  rmSync(tmp, { recursive: true, force: true });
}

/** What each log must show, so a recording that raced down another path is caught here. */
function checkPath(name, events) {
  const t = (type, pred = () => true) => has(events, (e) => e.type === type && pred(e));
  const last = events[events.length - 1];
  switch (name) {
    case "retries":
      check(events.filter((e) => e.type === "retry_scheduled" && e.stage === "flaky").length === 2, name, "flaky retried twice");
      check(t("retry_scheduled", (e) => e.stage === "throttled" && e.delay_ms >= 30), name, "Retry-After honoured");
      check(!t("retry_scheduled", (e) => e.stage === "strict"), name, "non-retryable not retried");
      check(t("stage_settled", (e) => e.stage === "exhausted" && e.outcome === "continued"), name, "retries used up, continued");
      break;
    case "routes":
      check(events.filter((e) => e.type === "decision" && e.kind === "route" && e.stage === "check" && e.taken).length === 2, name, "backward route taken twice");
      check(t("stage_cancelled", (e) => e.stage === "side" && e.reason === "route back"), name, "a route back cut `side`");
      check(t("stage_skipped", (e) => e.stage === "deep") && t("stage_skipped", (e) => e.stage === "polish"), name, "the forward goto skipped deep and polish");
      check(t("stage_skipped", (e) => e.stage === "after_note"), name, "after_note skipped (needs a skipped stage)");
      break;
    case "fallback":
      check(events.filter((e) => e.type === "decision" && e.kind === "fallback").length === 2, name, "two fallbacks");
      break;
    case "approval":
      check(t("stage_waiting") && t("approval") && t("run_resumed"), name, "waited, answered, resumed");
      break;
    case "escalation":
      check(t("stage_escalated", (e) => e.stage === "risky") && events.filter((e) => e.type === "approval").length === 2, name, "escalated and answered twice");
      break;
    case "for_each":
      check(t("retry_scheduled", (e) => e.stage === "each" && e.item === 2), name, "item 3 retried");
      check(t("stage_settled", (e) => e.stage === "each" && e.item === 3 && e.outcome === "continued"), name, "item 4 continued");
      check(t("stage_completed", (e) => e.stage === "each"), name, "for_each completed");
      break;
    case "failure":
      check(t("stage_cancelled", (e) => e.stage === "slow" && e.reason === "run failed"), name, "the failure cut `slow`");
      break;
    case "rerun":
      check(events[0].rerun_from === "triage" && t("stage_reused", (e) => e.stage === "draft") && !t("stage_started", (e) => e.stage === "draft"), name, "draft reused, not run");
      break;
    case "cancel":
      check(t("run_cancel_requested") && t("run_finished", (e) => e.status === "cancelled") && t("run_resumed"), name, "cancelled, then resumed");
      break;
    case "crash":
      check(events.filter((e) => e.type === "stage_cancelled" && e.reason.startsWith("interrupted")).length === 5, name, "five interrupted attempts");
      check(t("retry_scheduled", (e) => e.stage === "shaky" && e.attempt === 3) && t("stage_succeeded", (e) => e.stage === "shaky" && e.attempt === 3), name, "shaky retried after the restart");
      break;
    case "steps": {
      const stepsOf = (pred) => events.filter((e) => e.type === "step_recorded" && e.kind === "step" && pred(e)).map((e) => e.name);
      check(stepsOf((e) => e.stage === "work").join() === "fetch,extract", name, "work recorded fetch and extract once (attempt 1)");
      check(t("stage_succeeded", (e) => e.stage === "work" && e.attempt === 2 && e.replayed?.join() === "fetch,extract"), name, "work's attempt 2 replayed both steps");
      check(stepsOf((e) => e.stage === "each").length === 2, name, "each item recorded its step");
      check(stepsOf((e) => e.stage === "loop" && e.visit === 2).join() === "first,second", name, "loop's steps ran again on visit 2");
      break;
    }
    case "tools": {
      const st = (n) => events.find((e) => e.type === "step_recorded" && e.stage === "research" && e.name === n);
      check(["turn:1", "call:d1", "call:l1", "call:u1", "call:m1", "turn:2", "call:d2", "turn:3"].every(st), name, "every turn and call recorded");
      check(st("call:l1").output.attempts === 2 && st("call:u1").output.status === "failed" && st("call:m1").output.status === "failed", name, "lookup retried, the unknown tool and the malformed call failed");
      check(t("stage_failed", (e) => e.stage === "research" && e.attempt === 1) && t("stage_succeeded", (e) => e.stage === "research" && e.attempt === 2 && e.replayed?.[0] === "turn:1"), name, "turn 2 failed attempt 1; attempt 2 replayed turn 1");
      break;
    }
    case "tool-approval":
      check(t("stage_waiting", (e) => e.calls?.map((c) => c.id).join() === "p1,p2"), name, "both publish calls waited");
      check(events.filter((e) => e.type === "approval" && e.call !== undefined).map((e) => `${e.call}:${e.approved}`).join() === "p1:true,p2:false", name, "p1 approved, then p2 rejected");
      check(t("step_recorded", (e) => e.name === "call:p2" && e.output.status === "declined"), name, "p2 went back declined");
      break;
  }
  check(last.type === "run_finished", name, `the log ends with ${last.type}`);
}

const args = process.argv.slice(2);
if (args[0] === "--child") await child(args.slice(1));
else await main(args);
