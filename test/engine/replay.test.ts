/**
 * Strict replay of recorded logs (test/fixtures/logs/*.jsonl, written by scripts/record-logs.mjs
 * from real runs): the engine of today must read every recorded run exactly as the engine that
 * recorded it did, so runs in flight survive an upgrade.
 *
 * For each log, compiled from its run_started's recorded source as resume does:
 *  1. it folds strictly: `apply` places every event (a false return names the line);
 *  2. `decide` on every prefix where the recording engine decided gives the events it recorded
 *     there, and nothing where it recorded nothing;
 *  3. it was recorded by this engine version or an older one, with a plan this compiler still
 *     compiles the same way (`compiled_hash`): otherwise resume would refuse such runs.
 *
 * Where `decide` ran: at the start of every run of events the engine decides (a run can span
 * several decides, e.g. when a retry's timer fires with nothing in between), and it gave
 * nothing right after such a run when an external event follows, nor at the end of the log.
 * <name>.batches.json (written by the recorder) lists the size of every append — one store
 * transaction: the events that arrived, then rounds of what `decide` added and what its
 * expression commands evaluated to, ending with a decide — so the end of every append is a
 * point too, where decide gave nothing unless the append ends with decided events (or the
 * next append starts with them: start, resume and answers are appended outside a step).
 *
 * archive/<commit>/ holds logs recorded by earlier builds, never re-recorded: runs started
 * before an upgrade, replayed by the engine after it.
 *
 * A changed engine rule or compiler default that changes what a recorded run does next fails
 * here. When that is intended: bump ENGINE_VERSION (src/engine/version.ts), copy the current
 * logs to archive/<commit>/, re-record with `npm run record-logs`, and decide what happens to
 * runs of the older version (an archived log that no longer replays is a run resume must refuse).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { planFromSource } from "../../src/api/run.js";
import {
  apply, createState, decide, ENGINE_VERSION, execAt, fold, waitKey,
  type BatonEvent, type ExecuteCommand, type RunStarted, type RunState, type StepRecorded,
} from "../../src/engine/index.js";
import { compiledPlanHash } from "../../src/plan/hash.js";
import type { Plan } from "../../src/plan/types.js";

const DIR = resolve("test/fixtures/logs");
const logsIn = (dir: string): string[] => readdirSync(join(DIR, dir)).filter((f) => f.endsWith(".jsonl")).map((f) => join(dir, f.slice(0, -".jsonl".length))).sort();
/** The current recordings (scripts/record-logs.mjs rewrites them). */
const CURRENT = logsIn(".");
/**
 * Logs recorded by earlier builds (archive/<commit>/), kept as they were and never re-recorded:
 * runs started before an upgrade, replayed by the engine after it.
 */
const ARCHIVED = existsSync(join(DIR, "archive")) ? readdirSync(join(DIR, "archive")).sort().flatMap((c) => logsIn(join("archive", c))) : [];
const NAMES = [...CURRENT, ...ARCHIVED];

/** What the recordings must cover (scripts/record-logs.mjs records these). */
const REQUIRED = ["approval", "cancel", "crash", "escalation", "fallback", "for_each", "retries", "routes", "steps", "tool-approval", "tools"];

interface Fixture {
  readonly name: string;
  readonly log: readonly BatonEvent[];
  /** Sizes of the appends that wrote the log, when recorded. */
  readonly batches: readonly number[] | undefined;
  readonly plan: Plan;
}

function load(name: string): Fixture {
  const lines = readFileSync(join(DIR, `${name}.jsonl`), "utf8").split("\n").filter((l) => l.trim() !== "");
  const log = lines.map((l, i) => {
    try {
      return JSON.parse(l) as BatonEvent;
    } catch (err) {
      throw new Error(`${name}.jsonl line ${i + 1}: not JSON: ${(err as Error).message}`);
    }
  });
  const first = log[0];
  if (first?.type !== "run_started") throw new Error(`${name}.jsonl: line 1 is ${first?.type ?? "missing"}, not run_started`);
  const bf = join(DIR, `${name}.batches.json`);
  const batches = existsSync(bf) ? (JSON.parse(readFileSync(bf, "utf8")) as number[]) : undefined;
  // As resume does: recompile the recorded template text.
  return { name, log, batches, plan: planFromSource(first.source) };
}

/**
 * Whether `decide` records this event (it then ends the append it is in), or it comes from
 * outside the engine: a handler's result, an evaluated expression, an answer, a signal, the
 * runtime's own records of a resume, the output assembly.
 */
function decidedByEngine(e: BatonEvent): boolean {
  switch (e.type) {
    case "stage_started":
    case "retry_scheduled":
    case "stage_settled":
    case "stage_skipped":
    case "stage_completed":
    case "stage_escalated":
    case "run_waiting":
      return true;
    case "decision":
      return e.kind === "fallback"; // if / for_each / route: evaluated by the host
    case "stage_cancelled":
      return !e.reason.startsWith("interrupted"); // resume records interrupted attempts before run_resumed
    case "run_finished":
      // succeeded, or failed while assembling the output: the host's assembly
      return e.status === "cancelled" || (e.status === "failed" && !(e.error?.kind === "expression" && e.error.message.startsWith("output:")));
    default:
      // run_started, stage_succeeded, stage_failed, stage_waiting, stage_reused, approval,
      // run_cancel_requested, run_resumed
      return false;
  }
}

/** JSON with keys sorted at every level (events compare by value, whatever their key order). */
function canon(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canon).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canon(o[k])}`).join(",")}}`;
}

/** Fold a whole log into a fresh state, strictly; returns the problems (line numbers 1-based). */
function foldStrict(plan: Plan, log: readonly BatonEvent[]): string[] {
  const state = createState(plan);
  const problems: string[] = [];
  log.forEach((e, i) => {
    try {
      if (!apply(state, e)) problems.push(`line ${i + 1}: apply could not place ${canon(e)}`);
    } catch (err) {
      problems.push(`line ${i + 1}: apply threw ${(err as Error).message} on ${canon(e)}`);
    }
  });
  return problems;
}

/** A point where the recording engine ran `decide`: after log[0..at) at time `now`, it recorded log[at..at+count). */
interface Point {
  readonly at: number;
  readonly count: number;
  readonly now: number;
  /** Where the point comes from, for messages. */
  readonly why: string;
}

/**
 * Decide points found from the log alone: each run of engine-decided events starts one (a run
 * can span several decides: a retry's timer fires with no event in between), decide gives
 * nothing right after a run that an external event follows, nor at the end of the log.
 */
function pointsFromLog(f: Fixture, problems: string[]): Point[] {
  const { log, plan } = f;
  const points: Point[] = [];
  let i = 0;
  while (i < log.length) {
    if (!decidedByEngine(log[i]!)) {
      i++;
      continue;
    }
    let j = i;
    while (j < log.length && decidedByEngine(log[j]!)) j++;
    while (i < j) {
      const got = decide(fold(plan, log.slice(0, i)), log[i]!.at).events;
      if (got.length === 0) {
        problems.push(`line ${i + 1}: the log has events decided by the engine from here (${canon(log[i])}…), decide gives none`);
        break;
      }
      points.push({ at: i, count: Math.min(got.length, j - i), now: log[i]!.at, why: `lines ${i + 1}–${j} (decided events)` });
      i += got.length;
    }
    i = j;
    if (j < log.length) points.push({ at: j, count: 0, now: log[j - 1]!.at, why: `end of the decided events at line ${j}` });
  }
  points.push({ at: log.length, count: 0, now: log[log.length - 1]!.at, why: "end of the log" });
  return points;
}

/**
 * With the recorded appends, also: every step ends with a decide, so an append that ends with
 * an external event is a point where decide gave nothing — unless the next append starts with
 * decided events (then that is the decide: an append written outside a step, such as start,
 * resume or an answer, or a step cut short).
 */
function pointsFromBatches(f: Fixture, problems: string[]): Point[] {
  const { log } = f;
  const sizes = f.batches!;
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== log.length) {
    problems.push(`${f.name}.batches.json adds up to ${total} events, the log has ${log.length}: re-record both`);
    return [];
  }
  const points = pointsFromLog(f, problems);
  const known = new Set(points.filter((p) => p.count === 0).map((p) => p.at));
  let pos = 0;
  sizes.forEach((size, b) => {
    pos += size;
    const last = log[pos - 1]!;
    const next = log[pos];
    if (next === undefined || decidedByEngine(last) || decidedByEngine(next) || known.has(pos)) return;
    points.push({ at: pos, count: 0, now: last.at, why: `end of append ${b + 1} (lines ${pos - size + 1}–${pos})` });
  });
  return points.sort((a, b) => a.at - b.at);
}

interface Outcome {
  readonly problems: string[];
  /** Points where decide gave the recorded events in another order. */
  readonly reordered: string[];
}

function replay(f: Fixture): Outcome {
  const problems: string[] = [];
  const reordered: string[] = [];
  const points = f.batches ? pointsFromBatches(f, problems) : pointsFromLog(f, problems);
  for (const p of points) {
    const expected = f.log.slice(p.at, p.at + p.count);
    let got: BatonEvent[];
    try {
      got = decide(fold(f.plan, f.log.slice(0, p.at)), p.now).events;
    } catch (err) {
      problems.push(`index ${p.at} (${p.why}): decide threw ${(err as Error).stack ?? err}`);
      continue;
    }
    const e = expected.map(canon);
    const g = got.map(canon);
    if (e.join("\n") === g.join("\n")) continue;
    if ([...e].sort().join("\n") === [...g].sort().join("\n")) {
      reordered.push(`index ${p.at} (${p.why})`);
      continue;
    }
    problems.push(
      `index ${p.at} (${p.why}), decide(now=${p.now}) on the ${p.at} events before line ${p.at + 1}:\n` +
        `  expected (${e.length}):\n${e.map((x) => `    ${x}`).join("\n") || "    (nothing)"}\n` +
        `  got (${g.length}):\n${g.map((x) => `    ${x}`).join("\n") || "    (nothing)"}`,
    );
  }
  return { problems, reordered };
}

describe("recorded logs", () => {
  it("cover retries, routes both ways, fallback, approval, escalation, for_each, crash + resume, cancel, durable steps, tool loops, per-call approval", () => {
    expect(CURRENT).toEqual(expect.arrayContaining(REQUIRED));
  });
});

describe.each(NAMES)("replay of %s.jsonl", (name) => {
  const f = load(name);
  const first = f.log[0] as RunStarted;

  it("was recorded by this engine version or an older one, with a plan that compiles the same", () => {
    expect(typeof first.engine, `${name}: run_started records no engine version`).toBe("number");
    expect(first.engine!, `${name}: recorded by engine version ${first.engine}, this is ${ENGINE_VERSION}`).toBeLessThanOrEqual(ENGINE_VERSION);
    expect(f.plan.hash, `${name}: the recorded template text no longer hashes the same`).toBe(first.plan_hash);
    expect(compiledPlanHash(f.plan), `${name}: the compiler now compiles this template differently (resume would refuse such runs)`).toBe(first.compiled_hash);
  });

  it("folds strictly: apply places every event", () => {
    const problems = foldStrict(f.plan, f.log);
    expect(problems, `${name}.jsonl:\n${problems.join("\n")}`).toEqual([]);
  });

  it("decide on every prefix gives the recorded next events", () => {
    const { problems } = replay(f);
    expect(problems, `${name}.jsonl:\n${problems.slice(0, 5).join("\n")}${problems.length > 5 ? `\n… ${problems.length - 5} more` : ""}`).toEqual([]);
  });

  it("decide gives them in the recorded order", () => {
    const { reordered } = replay(f);
    expect(reordered, `${name}.jsonl: same events in another order at ${reordered.join("; ")}`).toEqual([]);
  });

  if (f.batches) {
    it("replays the same without the recorded appends (points found from the log alone)", () => {
      const problems = replay({ ...f, batches: undefined }).problems;
      expect(problems, `${name}.jsonl (log only):\n${problems.slice(0, 5).join("\n")}`).toEqual([]);
    });
  }
});

describe("the replay check itself", () => {
  const f = load("retries");
  const i = f.log.findIndex((e) => e.type === "retry_scheduled");

  it("fails when the log lacks an event decide records there", () => {
    const batches = [...f.batches!];
    for (let b = 0, pos = 0; b < batches.length; pos += batches[b]!, b++) {
      if (i < pos + batches[b]!) {
        batches[b]!--;
        break;
      }
    }
    const { problems } = replay({ ...f, log: f.log.filter((_, k) => k !== i), batches });
    expect(problems.join("\n")).toContain(canon(f.log[i]));
  });

  it("fails where decide gives events and the log has none", () => {
    const { problems } = replay({ ...f, log: f.log.slice(0, i), batches: undefined });
    expect(problems.join("\n")).toMatch(/end of the log[\s\S]*"type":"retry_scheduled"/);
  });

  it("names the line of an event apply cannot place", () => {
    const j = f.log.findIndex((e) => e.type === "stage_succeeded");
    const log = [...f.log.slice(0, j + 1), f.log[j]!, ...f.log.slice(j + 1)];
    expect(foldStrict(f.plan, log)).toEqual([expect.stringContaining(`line ${j + 2}: apply could not place`)]);
  });
});

/**
 * Durable steps (step_recorded): ctx.step in run: handlers (steps.jsonl), an agent's turns and
 * tool calls (tools.jsonl) and answers to tool calls waiting for approval (tool-approval.jsonl).
 * Beyond replaying strictly, the folded state must hand every later attempt of an execution what
 * its earlier attempts recorded — and what an attempt reports as `replayed` must be exactly that.
 */
describe("recorded durable steps, tool loops and per-call approvals", () => {
  type Outcome = Extract<BatonEvent, { type: "stage_succeeded" | "stage_failed" | "stage_waiting" }>;
  const sameExec = (a: { stage: string; visit: number; item?: number }, b: { stage: string; visit: number; item?: number }): boolean =>
    a.stage === b.stage && a.visit === b.visit && a.item === b.item;
  const recorded = (log: readonly BatonEvent[], pred: (e: StepRecorded) => boolean = () => true): StepRecorded[] =>
    log.filter((e): e is StepRecorded => e.type === "step_recorded" && pred(e));
  /** The execution of `stage` (its current visit; `item` for a for_each item) in a folded state. */
  const execIn = (state: RunState, stage: string, item?: number) => {
    const exec = execAt(state.nodes[state.plan.stageIndex.get(stage)!]!, item, 0);
    expect(exec, `no execution of ${stage}${item === undefined ? "" : `[${item}]`}`).toBeDefined();
    return exec!;
  };
  const stepsOf = (state: RunState, stage: string, item?: number): Record<string, unknown> => Object.fromEntries(execIn(state, stage, item).steps ?? []);
  /** What decide hands the attempt that the log starts at `i` (a stage_started): its execute command. */
  const commandAt = (f: Fixture, i: number): ExecuteCommand => {
    const started = f.log[i]!;
    if (started.type !== "stage_started") throw new Error(`line ${i + 1} is ${started.type}, not stage_started`);
    const step = decide(fold(f.plan, f.log.slice(0, i)), started.at);
    const cmd = step.effects.find((c): c is ExecuteCommand => c.kind === "execute" && sameExec(c.key, started) && c.attempt === started.attempt);
    expect(cmd, `decide before line ${i + 1} starts no attempt ${started.attempt} of ${started.stage}`).toBeDefined();
    return cmd!;
  };
  const startOf = (f: Fixture, stage: string, visit: number, attempt: number, item?: number): number => {
    const i = f.log.findIndex((e) => e.type === "stage_started" && sameExec(e, { stage, visit, ...(item === undefined ? {} : { item }) }) && e.attempt === attempt);
    expect(i, `${f.name}: no stage_started of ${stage} visit ${visit} attempt ${attempt}`).toBeGreaterThanOrEqual(0);
    return i;
  };

  describe.each(["steps", "tools", "tool-approval"])("%s.jsonl", (name) => {
    const f = load(name);
    it("every attempt that lists `replayed` reused exactly the steps the folded state handed it", () => {
      const outcomes = f.log.filter((e): e is Outcome => (e.type === "stage_succeeded" || e.type === "stage_failed" || e.type === "stage_waiting") && e.replayed !== undefined);
      expect(outcomes.length, `${name}: no attempt replayed a step`).toBeGreaterThan(0);
      for (const o of outcomes) {
        const cmd = commandAt(f, startOf(f, o.stage, o.visit, o.attempt, o.item));
        expect([...o.replayed!].sort(), `${name}: ${o.type} of ${o.stage} attempt ${o.attempt}`).toEqual([...(cmd.steps?.keys() ?? [])].sort());
        // …and every one of them was recorded by an earlier attempt of the same execution (or is an answer to a call).
        const before = recorded(f.log.slice(0, f.log.indexOf(o)), (e) => sameExec(e, o) && e.attempt < o.attempt).map((e) => e.name);
        for (const n of o.replayed!) if (!n.startsWith("approval:")) expect(before, `${name}: ${o.stage} replayed ${n}`).toContain(n);
      }
    });
  });

  describe("steps.jsonl: ctx.step in run: handlers", () => {
    const f = load("steps");
    const state = fold(f.plan, f.log);

    it("the folded state holds every recorded step on its execution, with its recorded output", () => {
      const out = (stage: string, visit: number, n: string, item?: number): unknown =>
        recorded(f.log, (e) => sameExec(e, { stage, visit, ...(item === undefined ? {} : { item }) }) && e.name === n)[0]?.output;
      expect(stepsOf(state, "work")).toEqual({ fetch: out("work", 1, "fetch"), extract: out("work", 1, "extract") });
      expect(stepsOf(state, "work")).toMatchObject({ fetch: { attempt: 1 }, extract: { attempt: 1 } });
      expect(stepsOf(state, "each", 0)).toEqual({ scale: 10 });
      expect(stepsOf(state, "each", 1)).toEqual({ scale: 20 });
      // The route back started visit 2 of `loop`: its steps are visit 2's, not carried over.
      expect(state.nodes[state.plan.stageIndex.get("loop")!]!.visit).toBe(2);
      expect(stepsOf(state, "loop")).toEqual({ first: "first on visit 2", second: "second on visit 2" });
    });

    it("a retry gets the steps of the attempt before it and replays them; a new visit gets none", () => {
      expect(recorded(f.log, (e) => e.stage === "work").map((e) => `${e.name}@${e.attempt}`)).toEqual(["fetch@1", "extract@1"]);
      expect(Object.fromEntries(commandAt(f, startOf(f, "work", 1, 2)).steps ?? [])).toEqual(stepsOf(state, "work"));
      expect(commandAt(f, startOf(f, "work", 1, 1)).steps).toBeUndefined();
      const ok = f.log.find((e) => e.type === "stage_succeeded" && e.stage === "work") as Outcome;
      expect(ok).toMatchObject({ attempt: 2, replayed: ["fetch", "extract"] });
      expect(commandAt(f, startOf(f, "loop", 2, 1)).steps).toBeUndefined();
      expect(recorded(f.log, (e) => e.stage === "loop").map((e) => `${e.name}@${e.visit}`)).toEqual(["first@1", "second@1", "first@2", "second@2"]);
      expect(f.log.some((e) => e.type === "stage_succeeded" && e.stage === "loop" && e.replayed !== undefined)).toBe(false);
    });

    it("a step recorded again on a finished execution is not placed", () => {
      const s = fold(f.plan, f.log);
      const again = recorded(f.log, (e) => e.stage === "each" && e.item === 0)[0]!;
      expect(apply(s, { ...again, name: "late" })).toBe(false);
      expect(stepsOf(s, "each", 0)).toEqual({ scale: 10 });
    });
  });

  describe("tools.jsonl: an agent's tool loop", () => {
    const f = load("tools");
    const state = fold(f.plan, f.log);
    const byName = new Map(recorded(f.log).map((e) => [e.name, e]));

    it("records every turn and call: a value: tool, a run: tool retried, an unknown tool, malformed arguments", () => {
      expect([...byName.keys()].sort()).toEqual(["call:d1", "call:d2", "call:l1", "call:m1", "call:u1", "turn:1", "turn:2", "turn:3"]);
      expect(recorded(f.log, (e) => e.kind === "turn").map((e) => e.name)).toEqual(["turn:1", "turn:2", "turn:3"]);
      expect(byName.get("call:d1")!.output).toMatchObject({ status: "succeeded", output: 42, attempts: 1 });
      expect(byName.get("call:l1")!.output).toMatchObject({ status: "succeeded", attempts: 2 });
      expect(byName.get("call:u1")!.output).toMatchObject({ status: "failed", error: { kind: "tool", message: expect.stringContaining("unknown tool 'weather'") } });
      expect(byName.get("call:m1")!.output).toMatchObject({ status: "failed", error: { kind: "tool", message: expect.stringContaining("not valid JSON") } });
      for (const t of recorded(f.log, (e) => e.kind === "turn")) expect(t.tokens, t.name).toBeDefined();
    });

    it("the folded execution holds every turn and call; attempt 2 got turn 1 and its calls, not the failed turn 2", () => {
      expect(Object.keys(stepsOf(state, "research")).sort()).toEqual([...byName.keys()].sort());
      for (const [n, e] of byName) expect(stepsOf(state, "research")[n], n).toEqual(e.output);
      expect(f.log.find((e) => e.type === "stage_failed" && e.stage === "research")).toMatchObject({ attempt: 1, error: { retryable: true } });
      const cmd = commandAt(f, startOf(f, "research", 1, 2));
      expect([...(cmd.steps?.keys() ?? [])].sort()).toEqual(["call:d1", "call:l1", "call:m1", "call:u1", "turn:1"]);
      expect(recorded(f.log, (e) => e.name.startsWith("turn:")).map((e) => `${e.name}@${e.attempt}`)).toEqual(["turn:1@1", "turn:2@2", "turn:3@2"]);
    });

    it("counts each turn's tokens once: the attempts' outcomes report what their turns recorded already", () => {
      const turns = recorded(f.log, (e) => e.kind === "turn");
      const sum = (k: "input" | "output"): number => turns.reduce((a, e) => a + e.tokens![k], 0);
      expect(state.usage.input).toBe(sum("input"));
      expect(state.usage.output).toBe(sum("output"));
      expect(state.usage.usd).toBeCloseTo(turns.reduce((a, e) => a + (e.cost_usd ?? 0), 0), 12);
    });
  });

  describe("tool-approval.jsonl: approval with call settles the waiting calls one by one", () => {
    const f = load("tool-approval");
    const key = waitKey("report", 1, undefined);
    const iWait = f.log.findIndex((e) => e.type === "stage_waiting");
    const approvals = f.log.map((e, i) => [e, i] as const).filter(([e]) => e.type === "approval");

    it("the attempt stopped before both publish calls; the other call of the turn ran", () => {
      const w = f.log[iWait] as Extract<BatonEvent, { type: "stage_waiting" }>;
      expect(w.calls?.map((c) => `${c.id}:${c.tool}`)).toEqual(["p1:publish", "p2:publish"]);
      expect(w.calls?.[0]).toMatchObject({ args: { title: "Tides, first edition" }, message: "Publish 'Tides, first edition'?" });
      expect(recorded(f.log.slice(0, iWait)).map((e) => e.name)).toEqual(["turn:1", "call:d1"]);
      const s = fold(f.plan, f.log.slice(0, iWait + 1));
      expect([...s.waitingOn.get(key)!.calls!.keys()]).toEqual(["p1", "p2"]);
      expect(execIn(s, "report").status).toBe("waiting");
    });

    it("each answer names its call, in its own append, and the first leaves the other call waiting", () => {
      expect(approvals.map(([e]) => e.type === "approval" && `${e.call}:${e.approved}`)).toEqual(["p1:true", "p2:false"]);
      const i1 = approvals[0]![1];
      const i2 = approvals[1]![1];
      // each answer opens an append of its own (answer + run_resumed), apart from the other
      const appendOf = (i: number): number => {
        let pos = 0;
        for (const [b, size] of f.batches!.entries()) if ((pos += size) > i) return b;
        return -1;
      };
      expect(appendOf(i1)).not.toBe(appendOf(i2));
      expect(appendOf(i1 - 1)).not.toBe(appendOf(i1));
      expect(appendOf(i2 - 1)).not.toBe(appendOf(i2));
      // after p1: p2 still waits, the execution still waits, and the answer is a step of it
      const s = fold(f.plan, f.log.slice(0, i1 + 1));
      expect([...s.waitingOn.get(key)!.calls!.keys()]).toEqual(["p2"]);
      expect(execIn(s, "report").status).toBe("waiting");
      expect(stepsOf(s, "report")["approval:p1"]).toEqual({ approved: true, by: "fixture", comment: "first edition ok" });
      expect(stepsOf(s, "report")["approval:p2"]).toBeUndefined();
      // …so the run waits again, and p1 cannot be answered twice
      expect(f.log.slice(i1 + 1, i2).map((e) => e.type)).toEqual(["run_resumed", "run_waiting"]);
      expect(apply(fold(f.plan, f.log.slice(0, i1 + 1)), f.log[i1]!)).toBe(false);
      // after p2: nothing waits, the execution is ready to run again with both answers
      const t = fold(f.plan, f.log.slice(0, i2 + 1));
      expect(t.waitingOn.has(key)).toBe(false);
      expect(execIn(t, "report").status).toBe("ready");
      expect(stepsOf(t, "report")["approval:p2"]).toEqual({ approved: false, by: "fixture", comment: "not the second edition" });
      expect(apply(fold(f.plan, f.log.slice(0, i2 + 1)), f.log[i2]!)).toBe(false);
    });

    it("the re-run replays the turn, the answers and the call that ran; runs p1 and returns p2 declined", () => {
      const cmd = commandAt(f, startOf(f, "report", 1, 2));
      expect([...(cmd.steps?.keys() ?? [])].sort()).toEqual(["approval:p1", "approval:p2", "call:d1", "turn:1"]);
      const rerun = recorded(f.log, (e) => e.attempt === 2);
      expect(rerun.map((e) => e.name).sort()).toEqual(["call:p1", "call:p2", "turn:2"]);
      expect(rerun.find((e) => e.name === "call:p1")!.output).toMatchObject({ status: "succeeded", output: { published: "Tides, first edition" } });
      expect(rerun.find((e) => e.name === "call:p2")!.output).toMatchObject({ status: "declined", error: { message: "the user declined this call: not the second edition" } });
      expect(f.log.at(-1)).toMatchObject({ type: "run_finished", status: "succeeded" });
    });
  });
});
