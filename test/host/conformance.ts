/**
 * The host conformance suite: the same scenarios run against every host of the one step loop
 * (src/runtime/loop.ts) — the embedded driver (test/host/embedded.test.ts), the BullMQ workers
 * (test/host/distributed.test.ts) and an in-memory simulator on a simulated clock
 * (test/host/sim.test.ts) — like test/store/conformance.ts does for stores.
 *
 * Scenarios run templates from test/fixtures/host/*.yaml whose `run:` stages call
 * test/fixtures/host/stages.mjs. Those handlers write what they see (started, aborted when
 * their ctx.signal fires, finished, failed; each durable step's step_started / step_finished) as
 * JSON lines to $BATON_HOST_LOG/<run id>.jsonl,
 * whichever process runs them; the sim host records the same observations in memory. Each
 * scenario asserts on the stored event log and on those observations. Agent stages call the
 * OpenAI-compatible model server this suite starts ({@link heldModel}: a real HTTP server on
 * 127.0.0.1, reached from worker processes too through $BATON_HOST_MODEL_URL in the template's
 * base_url); the sim host simulates the model.
 *
 * No assertion depends on how long something took: only on what happened and its order (event
 * order, or event timestamps against each other). Timeouts here only bound a stuck test.
 */
import { join, resolve } from "node:path";
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { completionBody, errorBody, estimateTokens, parseChatBody, streamEvents } from "../../src/testing/protocol.js";

/** Directory of the scenario templates and their handlers. */
export const FIXTURES = resolve("test/fixtures/host");
/** A scenario template by name (cancel, slots, budget, retry, crash, route-back, steps-crash, steps-retry, steps-route-back). */
export const template = (name: string): string => join(FIXTURES, `${name}.yaml`);

/** The model id the budget template's agent asks for. */
export const MODEL = "host-held-model";
/** Bound on a wait in a scenario (a stuck host fails the test; not an assertion on speed). */
const WAIT_MS = 30_000;

/** One thing a host saw happen to an attempt (a line of the fixture's log, or the sim's record). */
export interface Observation {
  /** ms since epoch on the observing host's clock (the simulated clock in the sim). */
  readonly t: number;
  /** The process that ran the attempt. */
  readonly pid: number;
  /** step_started / step_finished: a durable step's fn (`ctx.step`) began / returned; `step` names it. */
  readonly event: "started" | "finished" | "failed" | "aborted" | "step_started" | "step_finished";
  readonly run: string;
  readonly stage: string;
  readonly visit: number;
  readonly attempt: number;
  readonly item?: number;
  /** started: attempts running in that process at that moment. */
  readonly running?: number;
  /** aborted: the signal's reason. */
  readonly reason?: string;
  /** step_started, step_finished (and aborted inside a step): the durable step's name. */
  readonly step?: string;
}

/** Read a fixture log file (missing: nothing observed yet). */
export function readObservations(file: string): Observation[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as Observation);
}

/** Options of a run a scenario starts. */
export interface StartOptions {
  /** Execution slots of the host (embedded `concurrency`, one worker with `--concurrency`, sim slots). */
  readonly slots?: number;
  /** The scenario will crash the process running an attempt (embedded: the run goes in a CLI child). */
  readonly crashable?: boolean;
}

/** A run on a host, as a scenario drives and inspects it. */
export interface HostRun {
  readonly id: string;
  /** What the handlers observed for this run, in the order it happened. */
  observed(): Promise<Observation[]>;
  /** The stored event log. */
  events(): Promise<BatonEvent[]>;
  /** Wait until `pred` holds on the observations (the sim advances its simulated world meanwhile). */
  until(pred: (o: Observation[]) => boolean, what: string): Promise<Observation[]>;
  /** Wait until the run stopped (finished, or waiting with nothing in flight); the stored log. */
  finished(): Promise<BatonEvent[]>;
  /** Cancel the run the way this host is told to. */
  cancel(reason: string): Promise<void>;
  /**
   * SIGKILL (or, in the sim, drop) the process running the attempt `o` observed, with no clean-up,
   * and let the run continue the way this host recovers: embedded `baton resume`, distributed
   * another worker, sim fold + run_resumed.
   */
  crash(o: Observation): Promise<void>;
  /** Model calls that reached the model during this run, if the host counts them itself (the sim). */
  modelCalls?(): number;
  /** Release what the run held (processes, connections). */
  dispose(): Promise<void>;
}

/** One host under test. */
export interface HostHarness {
  readonly name: string;
  /** What exactly runs (for the matrix). */
  readonly description: string;
  /**
   * Whether the host's slots gate `decide` (embedded, sim): then the log itself never shows more
   * attempts running than slots. Workers record every start and queue the jobs instead (BullMQ's
   * per-worker concurrency), so only the handlers' observations show the bound.
   */
  readonly slotsInLog: boolean;
  /** Start what the host needs; it must FAIL (never skip) when a service is missing. Awaited by every scenario. */
  ready(): Promise<void>;
  start(file: string, o?: StartOptions): Promise<HostRun>;
  close(): Promise<void>;
}

// ── helpers ────────────────────────────────────────────────────────────────────────────────

type Ev<T extends BatonEvent["type"]> = Extract<BatonEvent, { type: T }>;

function ofType<T extends BatonEvent["type"]>(log: readonly BatonEvent[], type: T, where: (e: Ev<T>) => boolean = () => true): Ev<T>[] {
  return log.filter((e): e is Ev<T> => e.type === type && where(e as Ev<T>));
}

function indexOf(log: readonly BatonEvent[], e: BatonEvent | undefined): number {
  return e === undefined ? -1 : log.indexOf(e);
}

/** The log, one compact line per event (for failure messages). */
export function renderLog(log: readonly BatonEvent[]): string {
  const t0 = log[0]?.at ?? 0;
  return log
    .map((e, i) => {
      const r = e as unknown as Record<string, unknown>;
      const key = "stage" in e ? ` ${String(r.stage)}${r.visit !== undefined ? `#${String(r.visit)}` : ""}${r.item !== undefined ? `[${String(r.item)}]` : ""}${r.attempt !== undefined ? ` a${String(r.attempt)}` : ""}` : "";
      const extra =
        e.type === "stage_cancelled" ? ` (${e.reason})`
        : e.type === "stage_failed" ? ` (${e.error.kind}: ${e.error.message})`
        : e.type === "run_finished" ? ` ${e.status}${e.error ? ` (${e.error.message})` : ""}`
        : e.type === "retry_scheduled" ? ` due +${e.due_at - t0}ms`
        : e.type === "stage_started" && e.rerun ? " rerun"
        : e.type === "step_recorded" ? ` '${e.name}'` : "";
      const replayed = (e.type === "stage_succeeded" || e.type === "stage_failed") && e.replayed ? ` replayed [${e.replayed.join(", ")}]` : "";
      return `  ${String(i + 1).padStart(3)} +${e.at - t0}ms ${e.type}${key}${extra}${replayed}`;
    })
    .join("\n");
}

function renderObs(obs: readonly Observation[]): string {
  const t0 = obs[0]?.t ?? 0;
  return obs.map((o) => `  +${o.t - t0}ms pid ${o.pid} ${o.event}${o.step ? ` '${o.step}'` : ""} ${o.stage}#${o.visit} a${o.attempt}${o.reason ? ` (${o.reason})` : ""}`).join("\n");
}

/** Most attempts running at once according to the observations, in the order they were written. */
export function peakObserved(obs: readonly Observation[]): number {
  let now = 0;
  let peak = 0;
  for (const o of obs) {
    if (o.event === "started") peak = Math.max(peak, ++now);
    else if (o.event !== "step_started" && o.event !== "step_finished") now--;
  }
  return peak;
}

/** Most attempts running at once according to the log (stage_started … outcome or cancel), in log order. */
export function peakInLog(log: readonly BatonEvent[]): number {
  const running = new Set<string>();
  let peak = 0;
  for (const e of log) {
    if (e.type !== "stage_started" && e.type !== "stage_succeeded" && e.type !== "stage_failed" && e.type !== "stage_cancelled") continue;
    const k = `${e.stage}:${e.visit}:${e.item ?? ""}:${e.attempt}`;
    if (e.type === "stage_started") running.add(k);
    else running.delete(k);
    peak = Math.max(peak, running.size);
  }
  return peak;
}

const is = (o: Observation, event: Observation["event"], stage: string, visit?: number, attempt?: number): boolean =>
  o.event === event && o.stage === stage && (visit === undefined || o.visit === visit) && (attempt === undefined || o.attempt === attempt);

/** A durable step's start or finish in the `steps` fixture (stage `work`). */
const isStep = (o: Observation, event: "step_started" | "step_finished", step: string, attempt?: number): boolean =>
  o.event === event && o.stage === "work" && o.step === step && (attempt === undefined || o.attempt === attempt);

/** An observation as `event` or `event step` (for comparing sequences). */
const line = (o: Observation): string => (o.step !== undefined ? `${o.event} ${o.step}` : o.event);

/** Where step `name` of stage `work` was observed starting: "vVISIT aATTEMPT", in order. */
const startsOf = (obs: readonly Observation[], name: string): string[] =>
  obs.filter((o) => isStep(o, "step_started", name)).map((o) => `v${o.visit} a${o.attempt}`);

/** What the `steps` fixture's step `name` returns when attempt `attempt` of visit `visit` runs it. */
const ran = (name: string, attempt: number, visit = 1): { step: string; attempt: number; visit: number } => ({ step: name, attempt, visit });

/** Each step_recorded of the `steps` fixture: a ctx.step, its output from the attempt that ran it, started before it was recorded. */
function checkSteps(steps: readonly Ev<"step_recorded">[], why: string): void {
  for (const e of steps) {
    expect(e, why).toMatchObject({ stage: "work", kind: "step", output: ran(e.name, e.attempt, e.visit) });
    expect(e.item, why).toBeUndefined();
    expect(e.started_at, `step '${e.name}' was recorded before it started${why}`).toBeLessThanOrEqual(e.at);
  }
}

// ── the model, shared by every host in the test process ───────────────────────────────

/**
 * An OpenAI-compatible model on 127.0.0.1 (the wire format of the fake in src/testing, plain or
 * streamed as the request asks) whose answers are held until the scenario releases them. The budget scenario holds them until the
 * run has decided the second call (its budget failure is in the log) or both calls have reached
 * the model (the budget let both through): so the two calls overlap by construction, however
 * slowly a loaded machine starts them, and a budget that is not shared fails deterministically.
 */
export interface HeldModel {
  /** Base URL including `/v1` (also in $BATON_HOST_MODEL_URL). */
  readonly url: string;
  /** Chat requests received, in arrival order. */
  readonly requests: { readonly at: number; readonly model: string; readonly prompt: string }[];
  /** Requests received and not answered yet. */
  readonly pending: number;
  /** Hold answers from now on. */
  hold(): void;
  /** Answer every held request, and later ones at once. */
  release(): void;
  close(): Promise<void>;
}

/** A held request is answered anyway after this long (a stuck scenario fails on its own wait, not here). */
const HOLD_MAX_MS = 60_000;

async function startHeldModel(): Promise<HeldModel> {
  const requests: { at: number; model: string; prompt: string }[] = [];
  let held = false;
  let waiting: (() => void)[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    if (req.method !== "POST" || !(req.url ?? "").split("?")[0]!.endsWith("/chat/completions")) {
      req.resume();
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify(errorBody(404, `no route ${req.method} ${req.url}`)));
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const chat = parseChatBody(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      const prompt = chat.messages.map((m) => m.content).join("\n");
      requests.push({ at: Date.now(), model: chat.model, prompt });
      const n = requests.length;
      let done = false;
      const answer = (): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        waiting = waiting.filter((w) => w !== answer);
        if (res.destroyed) return;
        const usage = { prompt_tokens: estimateTokens(prompt), completion_tokens: 1, total_tokens: estimateTokens(prompt) + 1 };
        const created = Math.floor(Date.now() / 1000);
        if (chat.stream) {
          // Streamed turns (a host that shows live turn text asks for them): SSE, as OpenAI sends it.
          res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
          for (const event of streamEvents(`chatcmpl-held-${n}`, chat.model, "ok", usage, created, chat.includeUsage)) res.write(`data: ${event}\n\n`);
          res.end();
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(completionBody(`chatcmpl-held-${n}`, chat.model, "ok", usage, created)));
      };
      const timer = setTimeout(answer, HOLD_MAX_MS);
      res.once("close", () => {
        done = true;
        clearTimeout(timer);
        waiting = waiting.filter((w) => w !== answer);
      });
      if (held) waiting.push(answer);
      else answer();
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    get pending() {
      return waiting.length;
    },
    hold: () => void (held = true),
    release: () => {
      held = false;
      for (const w of [...waiting]) w();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

let model: Promise<HeldModel> | undefined;

/** The suite's model server (started once; its URL goes to $BATON_HOST_MODEL_URL before any host starts). */
export function heldModel(): Promise<HeldModel> {
  model ??= startHeldModel().then((m) => {
    process.env.BATON_HOST_MODEL_URL = m.url;
    return m;
  });
  return model;
}

// ── the suite ──────────────────────────────────────────────────────────────────────────────

export const SCENARIOS = [
  "cancel aborts the attempt",
  "slots are respected",
  "the run budget is shared by concurrent attempts",
  "retries wake up",
  "a crash records an interrupted attempt",
  "route-back cancels in-flight work",
  "a crash mid-handler re-runs only the step in flight",
  "a retry reuses completed steps",
  "a route back runs the steps again",
] as const;

interface Outcome {
  readonly ok: boolean;
  readonly ms: number;
  readonly error?: string;
}

/** The matrix printed at the end of each host's file: scenario × result. */
export function formatMatrix(host: HostHarness, results: ReadonlyMap<string, Outcome>): string {
  const w = Math.max(...SCENARIOS.map((s) => s.length));
  const lines = [`host conformance — ${host.name}: ${host.description}`, `  ${"scenario".padEnd(w)}  ${host.name.padEnd(11)}  time`];
  let pass = 0;
  for (const s of SCENARIOS) {
    const r = results.get(s);
    if (r?.ok) pass++;
    const cell = r === undefined ? "not run" : r.ok ? "pass" : "FAIL";
    lines.push(`  ${s.padEnd(w)}  ${cell.padEnd(11)}  ${r ? `${(r.ms / 1000).toFixed(1)} s` : ""}${r && !r.ok && r.error ? `  ${r.error}` : ""}`);
  }
  lines.push(`  ${pass}/${SCENARIOS.length} scenarios pass`);
  return lines.join("\n");
}

/** Register the host conformance suite for `host`. */
export function hostConformance(host: HostHarness): void {
  const results = new Map<string, Outcome>();

  describe(`${host.name} host conformance`, () => {
    afterAll(async () => {
      try {
        await host.close();
      } finally {
        const m = model;
        model = undefined;
        if (m) await (await m.catch(() => undefined))?.close();
        console.log("\n" + formatMatrix(host, results) + "\n");
      }
    });

    const scenario = (name: (typeof SCENARIOS)[number], body: () => Promise<void>, timeout = 45_000): void => {
      it(name, async () => {
        const t0 = performance.now();
        try {
          await heldModel();
          await host.ready();
          await body();
          results.set(name, { ok: true, ms: performance.now() - t0 });
        } catch (err) {
          results.set(name, { ok: false, ms: performance.now() - t0, error: String((err as Error).message ?? err).split("\n")[0]!.slice(0, 160) });
          throw err;
        }
      }, timeout);
    };

    /** Start a run, run `body` on it, always dispose of it. */
    const withRun = async (file: string, o: StartOptions, body: (run: HostRun) => Promise<void>): Promise<void> => {
      const run = await host.start(file, o);
      try {
        await body(run);
      } finally {
        await run.dispose();
      }
    };

    scenario("cancel aborts the attempt", () =>
      withRun(template("cancel"), {}, async (run) => {
        await run.until((o) => o.some((x) => is(x, "started", "long")), "stage 'long' to start");
        await run.cancel("cancelled by the host conformance suite");
        const log = await run.finished();
        const why = `\nlog:\n${renderLog(log)}`;
        expect(ofType(log, "run_cancel_requested").map((e) => e.reason), why).toEqual(["cancelled by the host conformance suite"]);
        expect(ofType(log, "run_finished").map((e) => e.status), why).toEqual(["cancelled"]);
        const cut = ofType(log, "stage_cancelled", (e) => e.stage === "long");
        expect(cut, `the log must have stage_cancelled for the running attempt${why}`).toHaveLength(1);
        expect(cut[0], why).toMatchObject({ stage: "long", visit: 1, attempt: 1, reason: "run cancelled" });
        expect(indexOf(log, cut[0])).toBeGreaterThan(indexOf(log, ofType(log, "run_cancel_requested")[0]));
        expect(ofType(log, "stage_succeeded", (e) => e.stage === "long"), why).toHaveLength(0);
        expect(ofType(log, "stage_started", (e) => e.stage === "after"), `nothing downstream starts after the cancel${why}`).toHaveLength(0);
        // The attempt's AbortSignal fired in the process that was running it.
        const obs = await run.until((o) => o.some((x) => is(x, "aborted", "long", 1, 1)), "the attempt's AbortSignal to fire on the host running it");
        const started = obs.find((x) => is(x, "started", "long", 1, 1))!;
        const aborted = obs.find((x) => is(x, "aborted", "long", 1, 1))!;
        expect(aborted.pid, `the abort must reach the process running the attempt\n${renderObs(obs)}`).toBe(started.pid);
        expect(obs.filter((x) => x.stage === "long" && x.event === "finished"), renderObs(obs)).toHaveLength(0);
      }));

    scenario("slots are respected", () =>
      withRun(template("slots"), { slots: 2 }, async (run) => {
        const log = await run.finished();
        const why = `\nlog:\n${renderLog(log)}`;
        expect(ofType(log, "run_finished").map((e) => e.status), why).toEqual(["succeeded"]);
        expect(ofType(log, "stage_succeeded").map((e) => e.stage).sort(), why).toEqual(["s1", "s2", "s3", "s4", "s5", "s6"]);
        const obs = await run.observed();
        expect(obs.filter((o) => o.event === "started"), renderObs(obs)).toHaveLength(6);
        // Never more than 2 handlers running at once, and 2 did run together (the bound was reached).
        expect(peakObserved(obs), `attempts running at once, as the handlers saw it\n${renderObs(obs)}`).toBe(2);
        if (host.slotsInLog) expect(peakInLog(log), `attempts running at once, according to the log${why}`).toBe(2);
      }));

    scenario("the run budget is shared by concurrent attempts", () =>
      withRun(template("budget"), {}, async (run) => {
        let log: BatonEvent[];
        let calls: number;
        if (run.modelCalls) {
          // The sim's model answers after a simulated delay; the sim host counts its calls.
          log = await run.finished();
          calls = run.modelCalls();
        } else {
          // Hold the model's answers until the run has decided the second call: a failure in the
          // log (the budget refused it) or a second request at the model (the budget let it through).
          const m = await heldModel();
          const before = m.requests.length;
          m.hold();
          try {
            let seen: BatonEvent[] = [];
            await pollUntil(
              async () => (seen = await run.events()),
              (l) => l.some((e) => e.type === "stage_failed" || e.type === "run_finished") || m.requests.length - before >= 2,
              WAIT_MS,
              "the run to decide both agent calls while the first one is still in flight",
              () => `log so far:\n${renderLog(seen)}\nmodel requests: ${m.requests.length - before} (${m.pending} held)`,
            );
          } finally {
            m.release();
          }
          log = await run.finished();
          calls = m.requests.slice(before).filter((r) => r.model === MODEL).length;
        }
        const why = `\nlog:\n${renderLog(log)}`;
        expect(ofType(log, "run_finished").map((e) => e.status), why).toEqual(["succeeded"]);
        const failed = ofType(log, "stage_failed");
        expect(failed, `exactly one of the two calls must fail on the budget${why}`).toHaveLength(1);
        const loser = failed[0]!;
        expect(loser.error, why).toMatchObject({ kind: "budget", retryable: false });
        expect(loser.error.message).toMatch(/budget/);
        const winnerId = loser.stage === "left" ? "right" : "left";
        const won = ofType(log, "stage_succeeded", (e) => e.stage === winnerId);
        expect(won, why).toHaveLength(1);
        expect(won[0]!.tokens, why).toBeDefined();
        // Not retryable: the loser ran once, although its policy allows 3 attempts.
        expect(ofType(log, "stage_started", (e) => e.stage === loser.stage), why).toHaveLength(1);
        expect(ofType(log, "retry_scheduled"), why).toHaveLength(0);
        expect(ofType(log, "stage_settled", (e) => e.stage === loser.stage).map((e) => e.outcome), why).toEqual(["continued"]);
        // The budget check was concurrent: it failed while the other call was in flight.
        const winnerStarted = ofType(log, "stage_started", (e) => e.stage === winnerId)[0]!;
        expect(loser.at, why).toBeGreaterThanOrEqual(winnerStarted.at);
        expect(loser.at, why).toBeLessThanOrEqual(won[0]!.at);
        // Only the call that fitted reached the model.
        expect(calls, `model calls made during the run${why}`).toBe(1);
      }));

    scenario("retries wake up", () =>
      withRun(template("retry"), {}, async (run) => {
        const log = await run.finished();
        const why = `\nlog:\n${renderLog(log)}`;
        expect(ofType(log, "run_finished").map((e) => e.status), why).toEqual(["succeeded"]);
        const f1 = ofType(log, "stage_failed", (e) => e.stage === "flaky");
        expect(f1.map((e) => e.attempt), why).toEqual([1]);
        expect(f1[0]!.error.retryable).toBe(true);
        const rs = ofType(log, "retry_scheduled", (e) => e.stage === "flaky");
        expect(rs, why).toHaveLength(1);
        expect(rs[0]).toMatchObject({ attempt: 2, delay_ms: 300 });
        expect(rs[0]!.due_at - rs[0]!.at, why).toBe(300);
        const s2 = ofType(log, "stage_started", (e) => e.stage === "flaky" && e.attempt === 2);
        expect(s2, `attempt 2 must start by itself once due${why}`).toHaveLength(1);
        expect(indexOf(log, s2[0]), why).toBeGreaterThan(indexOf(log, rs[0]));
        expect(s2[0]!.at, `attempt 2 started before its due_at${why}`).toBeGreaterThanOrEqual(rs[0]!.due_at);
        expect(ofType(log, "stage_succeeded", (e) => e.stage === "flaky").map((e) => e.attempt), why).toEqual([2]);
        const obs = await run.observed();
        expect(obs.map((o) => `${o.event} ${o.attempt}`), renderObs(obs)).toEqual(["started 1", "failed 1", "started 2", "finished 2"]);
        expect(obs[2]!.t, `the handler's attempt 2 ran before the retry was due\n${renderObs(obs)}`).toBeGreaterThanOrEqual(rs[0]!.due_at);
      }));

    scenario("a crash records an interrupted attempt", () =>
      withRun(template("crash"), { crashable: true }, async (run) => {
        const seen = await run.until((o) => o.some((x) => is(x, "started", "victim", 1, 1)), "stage 'victim' to start");
        const victim = seen.find((x) => is(x, "started", "victim", 1, 1))!;
        await run.crash(victim);
        const log = await run.finished();
        const why = `\nlog:\n${renderLog(log)}`;
        expect(ofType(log, "run_finished").map((e) => e.status), why).toEqual(["succeeded"]);
        const interrupted = ofType(log, "stage_cancelled", (e) => e.stage === "victim");
        expect(interrupted, `the log must record the attempt that was in flight as interrupted${why}`).toHaveLength(1);
        expect(interrupted[0]).toMatchObject({ visit: 1, attempt: 1 });
        expect(interrupted[0]!.reason, why).toMatch(/^interrupted/);
        const again = ofType(log, "stage_started", (e) => e.stage === "victim" && e.attempt === 2);
        expect(again, why).toHaveLength(1);
        expect(again[0]!.rerun, `attempt 2 re-runs the interrupted one${why}`).toBe(true);
        expect(indexOf(log, again[0]), why).toBeGreaterThan(indexOf(log, interrupted[0]));
        expect(ofType(log, "stage_succeeded", (e) => e.stage === "victim").map((e) => e.attempt), why).toEqual([2]);
        // Nothing that had completed ran again.
        expect(ofType(log, "stage_started", (e) => e.stage === "first"), why).toHaveLength(1);
        const obs = await run.observed();
        expect(obs.filter((o) => o.stage === "first" && o.event === "started"), renderObs(obs)).toHaveLength(1);
        // The killed process left no trace of ending attempt 1; attempt 2 ran in another process.
        expect(obs.filter((o) => o.stage === "victim" && o.attempt === 1 && o.event !== "started"), renderObs(obs)).toHaveLength(0);
        const second = obs.filter((o) => is(o, "started", "victim", 1, 2));
        expect(second, renderObs(obs)).toHaveLength(1);
        expect(second[0]!.pid, `attempt 2 must run in another process than the killed one\n${renderObs(obs)}`).not.toBe(victim.pid);
      }));

    scenario("route-back cancels in-flight work", () =>
      withRun(template("route-back"), {}, async (run) => {
        const log = await run.finished();
        const why = `\nlog:\n${renderLog(log)}`;
        expect(ofType(log, "run_finished").map((e) => e.status), why).toEqual(["succeeded"]);
        const route = ofType(log, "decision", (e) => e.kind === "route" && e.stage === "b" && e.visit === 1 && e.taken === true);
        expect(route, why).toHaveLength(1);
        expect(route[0]!.goto).toBe("a");
        const cut = ofType(log, "stage_cancelled", (e) => e.stage === "c");
        expect(cut, `c's attempt in flight must be cancelled by the route back${why}`).toHaveLength(1);
        expect(cut[0]).toMatchObject({ visit: 1, attempt: 1, reason: "route back" });
        expect(indexOf(log, cut[0]), why).toBeGreaterThan(indexOf(log, route[0]));
        expect(ofType(log, "stage_succeeded", (e) => e.stage === "c" && e.visit === 1), why).toHaveLength(0);
        for (const s of ["a", "b", "c"]) {
          expect(ofType(log, "stage_succeeded", (e) => e.stage === s && e.visit === 2), `${s} must run on visit 2${why}`).toHaveLength(1);
        }
        const c2 = ofType(log, "stage_started", (e) => e.stage === "c" && e.visit === 2)[0];
        expect(indexOf(log, c2), why).toBeGreaterThan(indexOf(log, cut[0]));
        // c's signal fired in the process running it.
        const obs = await run.until((o) => o.some((x) => is(x, "aborted", "c", 1, 1)), "c's AbortSignal to fire on the host running it");
        const started = obs.find((x) => is(x, "started", "c", 1, 1))!;
        const aborted = obs.find((x) => is(x, "aborted", "c", 1, 1))!;
        expect(aborted.pid, renderObs(obs)).toBe(started.pid);
        expect(aborted.reason, renderObs(obs)).toBe("route back");
        for (const s of ["a", "b", "c"]) expect(obs.filter((o) => is(o, "finished", s, 2)), `${s} visit 2\n${renderObs(obs)}`).toHaveLength(1);
      }));

    // ── durable steps (SPEC §9): test/fixtures/host/stages.mjs#steps runs ctx.step one, two, three ──

    scenario("a crash mid-handler re-runs only the step in flight", () =>
      withRun(template("steps-crash"), { crashable: true }, async (run) => {
        const seen = await run.until((o) => o.some((x) => isStep(x, "step_started", "three", 1)), "step 'three' of attempt 1 to start");
        const victim = seen.find((x) => isStep(x, "step_started", "three", 1))!;
        // ctx.step returns once its step is in the log: one and two are recorded before three starts.
        const before = await run.events();
        expect(ofType(before, "step_recorded").map((e) => e.name), `log when step three started:\n${renderLog(before)}`).toEqual(["one", "two"]);
        await run.crash(victim);
        const log = await run.finished();
        const obs = await run.observed();
        const why = `\nlog:\n${renderLog(log)}\nobserved:\n${renderObs(obs)}`;
        expect(ofType(log, "run_finished").map((e) => e.status), why).toEqual(["succeeded"]);
        const steps = ofType(log, "step_recorded", (e) => e.stage === "work");
        expect(steps.map((e) => `${e.name} a${e.attempt}`), `one and two are recorded by attempt 1 only, three by attempt 2${why}`).toEqual(["one a1", "two a1", "three a2"]);
        checkSteps(steps, why);
        const interrupted = ofType(log, "stage_cancelled", (e) => e.stage === "work");
        expect(interrupted, why).toHaveLength(1);
        expect(interrupted[0], why).toMatchObject({ visit: 1, attempt: 1 });
        expect(interrupted[0]!.reason, why).toMatch(/^interrupted/);
        expect(indexOf(log, steps[1]), why).toBeLessThan(indexOf(log, interrupted[0]));
        const again = ofType(log, "stage_started", (e) => e.stage === "work" && e.attempt === 2);
        expect(again, why).toHaveLength(1);
        expect(again[0]!.rerun, why).toBe(true);
        expect(indexOf(log, again[0]), why).toBeGreaterThan(indexOf(log, interrupted[0]));
        expect(indexOf(log, steps[2]), why).toBeGreaterThan(indexOf(log, again[0]));
        const ok = ofType(log, "stage_succeeded", (e) => e.stage === "work");
        expect(ok.map((e) => e.attempt), why).toEqual([2]);
        expect(ok[0]!.replayed, `the re-run's outcome lists the steps it reused${why}`).toEqual(["one", "two"]);
        expect(ok[0]!.output, why).toEqual({ one: ran("one", 1), two: ran("two", 1), three: ran("three", 2), attempt: 2 });
        // The handlers saw one and two run once, three twice (the second time in another process).
        expect(startsOf(obs, "one"), why).toEqual(["v1 a1"]);
        expect(startsOf(obs, "two"), why).toEqual(["v1 a1"]);
        expect(startsOf(obs, "three"), why).toEqual(["v1 a1", "v1 a2"]);
        expect(obs.filter((o) => o.attempt === 1).map(line), why).toEqual(["started", "step_started one", "step_finished one", "step_started two", "step_finished two", "step_started three"]);
        expect(obs.filter((o) => o.attempt === 2).map(line), why).toEqual(["started", "step_started three", "step_finished three", "finished"]);
        const second = obs.find((o) => is(o, "started", "work", 1, 2))!;
        expect(second.pid, `attempt 2 must run in another process than the killed one${why}`).not.toBe(victim.pid);
      }));

    scenario("a retry reuses completed steps", () =>
      withRun(template("steps-retry"), {}, async (run) => {
        const log = await run.finished();
        const obs = await run.observed();
        const why = `\nlog:\n${renderLog(log)}\nobserved:\n${renderObs(obs)}`;
        expect(ofType(log, "run_finished").map((e) => e.status), why).toEqual(["succeeded"]);
        const failed = ofType(log, "stage_failed", (e) => e.stage === "work");
        expect(failed.map((e) => e.attempt), why).toEqual([1]);
        expect(failed[0]!.error, why).toMatchObject({ kind: "handler", retryable: true, message: "attempt 1 fails after step two (host conformance fixture)" });
        expect(failed[0]!.replayed, `attempt 1 reused nothing${why}`).toBeUndefined();
        const steps = ofType(log, "step_recorded", (e) => e.stage === "work");
        expect(steps.map((e) => `${e.name} a${e.attempt}`), why).toEqual(["one a1", "two a1", "three a2"]);
        checkSteps(steps, why);
        expect(indexOf(log, steps[1]), why).toBeLessThan(indexOf(log, failed[0]));
        const rs = ofType(log, "retry_scheduled", (e) => e.stage === "work");
        expect(rs.map((e) => e.attempt), why).toEqual([2]);
        const s2 = ofType(log, "stage_started", (e) => e.stage === "work" && e.attempt === 2);
        expect(s2, why).toHaveLength(1);
        expect(indexOf(log, s2[0]), why).toBeGreaterThan(indexOf(log, rs[0]));
        expect(indexOf(log, steps[2]), why).toBeGreaterThan(indexOf(log, s2[0]));
        const ok = ofType(log, "stage_succeeded", (e) => e.stage === "work");
        expect(ok.map((e) => e.attempt), why).toEqual([2]);
        expect(ok[0]!.replayed, `the retry's outcome lists the steps it reused${why}`).toEqual(["one", "two"]);
        expect(ok[0]!.output, why).toEqual({ one: ran("one", 1), two: ran("two", 1), three: ran("three", 2), attempt: 2 });
        expect(obs.filter((o) => o.attempt === 1).map(line), why).toEqual(["started", "step_started one", "step_finished one", "step_started two", "step_finished two", "failed"]);
        expect(obs.filter((o) => o.attempt === 2).map(line), `attempt 2 must not run one or two again${why}`).toEqual(["started", "step_started three", "step_finished three", "finished"]);
      }));

    scenario("a route back runs the steps again", () =>
      withRun(template("steps-route-back"), {}, async (run) => {
        const log = await run.finished();
        const obs = await run.observed();
        const why = `\nlog:\n${renderLog(log)}\nobserved:\n${renderObs(obs)}`;
        expect(ofType(log, "run_finished").map((e) => e.status), why).toEqual(["succeeded"]);
        const route = ofType(log, "decision", (e) => e.kind === "route" && e.stage === "check" && e.visit === 1 && e.taken === true);
        expect(route.map((e) => e.goto), why).toEqual(["work"]);
        const steps = ofType(log, "step_recorded", (e) => e.stage === "work");
        expect(steps.map((e) => `${e.name} v${e.visit} a${e.attempt}`), `visit 2 records its own steps${why}`).toEqual(["one v1 a1", "two v1 a1", "three v1 a1", "one v2 a1", "two v2 a1", "three v2 a1"]);
        checkSteps(steps, why);
        expect(indexOf(log, steps[3]), why).toBeGreaterThan(indexOf(log, route[0]));
        const ok = ofType(log, "stage_succeeded", (e) => e.stage === "work");
        expect(ok.map((e) => `v${e.visit} a${e.attempt}`), why).toEqual(["v1 a1", "v2 a1"]);
        for (const e of ok) expect(e.replayed, `visit ${e.visit} reused nothing${why}`).toBeUndefined();
        expect(ok[1]!.output, why).toEqual({ one: ran("one", 1, 2), two: ran("two", 1, 2), three: ran("three", 1, 2), attempt: 1 });
        for (const name of ["one", "two", "three"]) expect(startsOf(obs, name), `step ${name}${why}`).toEqual(["v1 a1", "v2 a1"]);
      }));
  });
}

/** Poll `read` until `pred` holds on its value; after `ms` fail saying what did not happen. */
export async function pollUntil<T>(read: () => Promise<T> | T, pred: (v: T) => boolean, ms: number, what: string, detail?: () => Promise<string> | string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (pred(v)) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${detail ? `\n${await detail()}` : ""}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
