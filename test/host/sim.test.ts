/**
 * The host conformance suite (./conformance.ts) against a simulated host: the one step loop
 * (`RunLoop`, src/runtime/loop.ts) with an in-memory host written here, on a simulated clock.
 * Plans are the suite's templates compiled as usual; expressions are evaluated for real
 * (`evaluateCommand`), the run's budget is the embedded one (`LocalBudget`). Attempts are not
 * executed: the host plays the fixture handlers' behaviour by export name (sleep, failOnce,
 * slowFirstVisit, slowFirstAttempt, steps — test/fixtures/host/stages.mjs) and an agent call as
 * a budget hold plus a model answer after MODEL_MS simulated ms, and records the same
 * observations the handlers write. `steps` plays its durable steps one after another: each takes
 * its simulated ms and then is recorded (a `step_recorded` event pushed into the loop at that
 * time, as outcomes are); a step already recorded (in the command's `steps`) takes no time,
 * records nothing and is listed in the outcome's `replayed`. Time moves only when nothing can
 * happen before the next completion, step or engine wake-up. A crash drops everything in flight
 * without a word (no abort observed; steps recorded before it stay in the log) and continues as
 * `Runtime.resume` does: fold the log, record the attempts that were in flight as interrupted,
 * `run_resumed`, a new loop.
 */
import { attemptId, fold, runningAttempts, apply, createState, type BatonEvent, type CancelCommand, type ExecuteCommand, type ExprCommand } from "../../src/engine/index.js";
import type { Plan } from "../../src/plan/types.js";
import { countPromptTokens } from "../../src/agents/tokens.js";
import { LocalBudget, type BudgetHold } from "../../src/runtime/budget.js";
import { evaluateCommand } from "../../src/runtime/effects.js";
import { RunLoop, type HostPort } from "../../src/runtime/loop.js";
import { runStartedEvent } from "../../src/runtime/started.js";
import { loadPlanFile } from "../../src/template/index.js";
import { hostConformance, renderLog, type HostHarness, type HostRun, type Observation, type StartOptions } from "./conformance.js";

/** 2026-01-01T00:00:00Z on the simulated clock. */
const T0 = Date.UTC(2026, 0, 1);
/** Simulated time a model call takes. */
const MODEL_MS = 1500;
/** Steps after which a simulation that never stops is a failure. */
const MAX_STEPS = 10_000;

/** An attempt in flight on the simulated host. */
interface Flight {
  readonly cmd: ExecuteCommand;
  /** Insertion order (ties at the same simulated time complete in start order). */
  readonly seq: number;
  /** Simulated time it completes, or its next step does (Infinity until its behaviour is known). */
  due: number;
  /** What happens at `due` instead of completing (a durable step ends); it sets the next `due`. */
  onDue?: (() => void) | undefined;
  /** The durable step running now (`steps`). */
  step?: string | undefined;
  outcome?: (at: number) => BatonEvent;
  /** Observation written when it completes (run stages; agent calls write none). */
  end?: "finished" | "failed";
  /** Its handler was observed starting (run stages). */
  observed: boolean;
  hold?: BudgetHold;
  spent?: { tokens: number; usd: number };
}

type Handler = (input: Record<string, unknown>, cmd: ExecuteCommand) => { ms: number; fail: boolean };

/** The fixture handlers' behaviour, by export name (test/fixtures/host/stages.mjs). */
const HANDLERS: Record<string, Handler> = {
  sleep: (input) => ({ ms: Number(input.ms ?? 0), fail: false }),
  failOnce: (input, cmd) => ({ ms: Number(input.ms ?? 0), fail: cmd.attempt === 1 }),
  slowFirstVisit: (input, cmd) => ({ ms: Number(cmd.visit === 1 ? input.long : input.ms), fail: false }),
  slowFirstAttempt: (input, cmd) => ({ ms: Number(cmd.attempt === 1 ? input.long : input.ms), fail: false }),
};

/** The durable steps of the `steps` handler, in order (test/fixtures/host/stages.mjs). */
const STEPS = ["one", "two", "three"] as const;

let nRun = 0;

class SimRun implements HostRun, HostPort {
  readonly id: string;
  private clock = T0;
  /** The simulated process driving the run (a crash starts another). */
  private pid = 1000;
  private readonly log: BatonEvent[] = [];
  private readonly obs: Observation[] = [];
  private readonly inflight = new Map<string, Flight>();
  private order = 0;
  private calls = 0;
  private budget: LocalBudget;
  private loop: RunLoop;

  constructor(private readonly plan: Plan, private readonly slotLimit: number) {
    this.id = `sim${++nRun}`;
    const state = createState(plan);
    const started = runStartedEvent(plan, { runId: this.id, at: this.clock, inputs: {}, seed: 1 });
    apply(state, started);
    this.log.push(started);
    this.loop = new RunLoop(this, plan, state, this.id, this.log.length);
    this.budget = new LocalBudget(plan, () => this.loop.state.usage);
  }

  async begin(): Promise<void> {
    await this.loop.advance();
  }

  // ── HostPort ────────────────────────────────────────────────────────────────────────────
  now(): number {
    return this.clock;
  }
  slots(): number {
    return this.slotLimit - this.inflight.size;
  }
  append(_run: string, events: readonly BatonEvent[], seq: number): number {
    if (seq !== this.log.length) throw new Error(`sim: append at ${seq}, the log has ${this.log.length}`);
    for (const e of events) this.log.push(e);
    return this.log.length;
  }
  start(_loop: RunLoop, cmd: ExecuteCommand): Promise<void> {
    // Taken at once (slots count it), its behaviour worked out after the input is evaluated.
    const f: Flight = { cmd, seq: ++this.order, due: Infinity, observed: false };
    this.inflight.set(attemptId(cmd.key, cmd.attempt), f);
    return this.behave(f);
  }
  abort(_loop: RunLoop, cmd: CancelCommand): void {
    const id = attemptId(cmd.key, cmd.attempt);
    const f = this.inflight.get(id);
    if (!f) return;
    this.inflight.delete(id);
    if (f.observed) this.observe(f.cmd, "aborted", { reason: cmd.reason, ...(f.step !== undefined ? { step: f.step } : {}) });
    if (f.hold) this.budget.settle(f.hold, undefined, false);
  }
  evaluate(_loop: RunLoop, cmd: ExprCommand): Promise<BatonEvent[]> {
    return evaluateCommand(this.plan, cmd, () => this.clock);
  }
  redact(): void {}
  applied(e: BatonEvent): void {
    if ((e.type === "stage_succeeded" || e.type === "stage_failed") && e.tokens) this.budget.onApplied(e.tokens.input + e.tokens.output, e.cost_usd ?? 0);
  }

  // ── behaviour ───────────────────────────────────────────────────────────────────────────
  private observe(cmd: ExecuteCommand, event: Observation["event"], extra: Partial<Observation> = {}): void {
    const stage = this.plan.stages[cmd.stage]!.id;
    this.obs.push({ t: this.clock, pid: this.pid, event, run: this.id, stage, visit: cmd.visit, attempt: cmd.attempt, ...(cmd.item !== undefined ? { item: cmd.item } : {}), ...extra });
  }

  private outcome(cmd: ExecuteCommand, fields: Record<string, unknown>): (at: number) => BatonEvent {
    return (at) => ({ at, ...cmd.key, attempt: cmd.attempt, ...fields }) as unknown as BatonEvent;
  }

  private async behave(f: Flight): Promise<void> {
    const { cmd } = f;
    const stage = this.plan.stages[cmd.stage]!;
    const spec = stage.spec;
    if (spec.kind === "agent") {
      const agent = this.plan.agents[spec.agent] as { model: string; max_tokens?: number };
      let prompt = spec.prompt.evaluate(cmd.scope);
      if (prompt instanceof Promise) prompt = await prompt;
      const promptTokens = countPromptTokens([{ role: "user", content: typeof prompt === "string" ? prompt : JSON.stringify(prompt) }]);
      const estimate = promptTokens + (agent.max_tokens ?? 4096);
      const h = await this.budget.hold(estimate, 0);
      if (!h.ok) {
        f.due = this.clock;
        f.outcome = this.outcome(cmd, {
          type: "stage_failed",
          error: { kind: "budget", retryable: false, message: `stage '${stage.id}' (${agent.model}) was not started: it could use up to ${estimate} tokens and the run has ${Math.max(0, (this.plan.budget?.tokens ?? 0) - h.used.tokens)} of its budget left` },
        });
        return;
      }
      f.hold = h;
      this.calls++;
      f.due = this.clock + MODEL_MS;
      f.spent = { tokens: promptTokens + 1, usd: 0 };
      f.outcome = this.outcome(cmd, { type: "stage_succeeded", model: agent.model, tokens: { input: promptTokens, output: 1 }, output: "ok" });
      return;
    }
    if (spec.kind !== "run" || !("export" in spec)) throw new Error(`sim: stage '${stage.id}' is a ${spec.kind} stage, which this host does not simulate`);
    if (spec.export === "steps") return this.steps(f);
    const handler = HANDLERS[spec.export];
    if (!handler) throw new Error(`sim: no behaviour for handler '${spec.export}' (stage '${stage.id}')`);
    let input: unknown = stage.input ? stage.input.evaluate(cmd.scope) : {};
    if (input instanceof Promise) input = await input;
    const b = handler((input ?? {}) as Record<string, unknown>, cmd);
    f.observed = true;
    const running = [...this.inflight.values()].filter((x) => x.observed).length;
    this.observe(cmd, "started", { running });
    f.due = this.clock + b.ms;
    f.end = b.fail ? "failed" : "finished";
    f.outcome = b.fail
      ? this.outcome(cmd, { type: "stage_failed", input, error: { kind: "handler", retryable: true, message: "first attempt fails (host conformance fixture)" } })
      : this.outcome(cmd, { type: "stage_succeeded", input, output: { slept: b.ms, visit: cmd.visit, attempt: cmd.attempt } });
  }

  /**
   * `steps`: started; then each of one, two, three not recorded yet runs for its ms (step_started
   * … step_finished, then its step_recorded event at that simulated time); with failAfter "two"
   * attempt 1 fails once two is recorded; else finished with the steps' results.
   */
  private async steps(f: Flight): Promise<void> {
    const { cmd } = f;
    const stage = this.plan.stages[cmd.stage]!;
    let input: unknown = stage.input ? stage.input.evaluate(cmd.scope) : {};
    if (input instanceof Promise) input = await input;
    const args = (input ?? {}) as Record<string, unknown>;
    f.observed = true;
    const running = [...this.inflight.values()].filter((x) => x.observed).length;
    this.observe(cmd, "started", { running });
    const out: Record<string, unknown> = {};
    const replayed: string[] = [];
    const withReplayed = (fields: Record<string, unknown>): Record<string, unknown> => (replayed.length > 0 ? { ...fields, replayed: [...replayed] } : fields);
    const next = (i: number): void => {
      for (; i < STEPS.length; i++) {
        const name = STEPS[i]!;
        if (name === "three" && args.failAfter === "two" && cmd.attempt === 1) {
          f.due = this.clock;
          f.end = "failed";
          f.outcome = this.outcome(cmd, withReplayed({ type: "stage_failed", input, error: { kind: "handler", retryable: true, message: "attempt 1 fails after step two (host conformance fixture)" } }));
          return;
        }
        if (cmd.steps?.has(name)) {
          // ctx.step returns the recorded result without running fn: nothing observed, no time.
          out[name] = cmd.steps.get(name);
          replayed.push(name);
          continue;
        }
        const ms = Number(name === "three" ? (cmd.attempt === 1 ? args.long : args.ms) : args.fast);
        const startedAt = this.clock;
        this.observe(cmd, "step_started", { step: name });
        f.step = name;
        f.due = this.clock + ms;
        f.onDue = () => {
          f.step = undefined;
          this.observe(cmd, "step_finished", { step: name });
          const output = { step: name, attempt: cmd.attempt, visit: cmd.visit };
          out[name] = output;
          this.loop.push({ type: "step_recorded", at: this.clock, ...cmd.key, attempt: cmd.attempt, name, kind: "step", started_at: startedAt, output } as BatonEvent);
          next(i + 1);
        };
        return;
      }
      f.due = this.clock;
      f.end = "finished";
      f.outcome = this.outcome(cmd, withReplayed({ type: "stage_succeeded", input, output: { ...out, attempt: cmd.attempt } }));
    };
    next(0);
  }

  private complete(f: Flight): void {
    this.inflight.delete(attemptId(f.cmd.key, f.cmd.attempt));
    if (f.end) this.observe(f.cmd, f.end);
    if (f.hold) this.budget.settle(f.hold, f.spent, true);
    this.loop.push(f.outcome!(this.clock));
  }

  /** One step of the simulated world; false when nothing more can happen. */
  private async step(): Promise<boolean> {
    if (this.loop.hasPending) {
      await this.loop.advance();
      return true;
    }
    if (this.loop.stopped) return false;
    const flights = [...this.inflight.values()].sort((a, b) => a.due - b.due || a.seq - b.seq);
    const next = Math.min(flights[0]?.due ?? Infinity, this.loop.wakeAt ?? Infinity);
    if (next === Infinity) return false;
    this.clock = Math.max(this.clock, next);
    // What is due now happens, in due-then-start order; a step that ends may make more due now.
    for (;;) {
      const due = [...this.inflight.values()].filter((f) => f.due <= this.clock).sort((a, b) => a.due - b.due || a.seq - b.seq);
      if (due.length === 0) break;
      for (const f of due) {
        const at = f.onDue;
        if (at) {
          f.onDue = undefined;
          at();
        } else this.complete(f);
      }
    }
    await this.loop.advance();
    return true;
  }

  private stuck(what: string): Error {
    return new Error(`sim: ${what} never happened (the run ${this.loop.stopped ? `stopped: ${this.loop.state.status}` : "is stuck: nothing in flight, nothing to wake for"})\nlog:\n${renderLog(this.log)}`);
  }

  // ── HostRun ─────────────────────────────────────────────────────────────────────────────
  observed(): Promise<Observation[]> {
    return Promise.resolve([...this.obs]);
  }
  events(): Promise<BatonEvent[]> {
    return Promise.resolve([...this.log]);
  }
  async until(pred: (o: Observation[]) => boolean, what: string): Promise<Observation[]> {
    for (let i = 0; i < MAX_STEPS; i++) {
      if (pred(this.obs)) return [...this.obs];
      if (!(await this.step())) throw this.stuck(what);
    }
    throw this.stuck(`${what} (within ${MAX_STEPS} steps)`);
  }
  async finished(): Promise<BatonEvent[]> {
    for (let i = 0; i < MAX_STEPS; i++) {
      if (this.loop.stopped && !this.loop.hasPending) return [...this.log];
      if (!(await this.step())) throw this.stuck("the run's end");
    }
    throw this.stuck(`the run's end (within ${MAX_STEPS} steps)`);
  }
  async cancel(reason: string): Promise<void> {
    this.loop.push({ type: "run_cancel_requested", at: this.clock, reason });
    await this.loop.advance();
  }
  async crash(o: Observation): Promise<void> {
    if (o.pid !== this.pid) throw new Error(`sim: the attempt ran in pid ${o.pid}, not in the simulated process ${this.pid}`);
    // The process dies: its attempts, their budget holds and its loop are gone, nothing is recorded.
    this.inflight.clear();
    this.clock += 5;
    this.pid++;
    const state = fold(this.plan, this.log);
    const batch: BatonEvent[] = runningAttempts(state).map((k) => ({ type: "stage_cancelled", at: this.clock, ...k, reason: "interrupted: the process running it stopped" }));
    batch.push({ type: "run_resumed", at: this.clock });
    this.append(this.id, batch, this.log.length);
    for (const e of batch) apply(state, e);
    this.loop = new RunLoop(this, this.plan, state, this.id, this.log.length);
    this.budget = new LocalBudget(this.plan, () => this.loop.state.usage);
    await this.loop.advance();
  }
  modelCalls(): number {
    return this.calls;
  }
  dispose(): Promise<void> {
    return Promise.resolve();
  }
}

const sim: HostHarness = {
  name: "sim",
  description: "RunLoop with an in-memory host on a simulated clock (behaviours played by handler name)",
  slotsInLog: true,
  ready: () => Promise.resolve(),
  start: async (file: string, o: StartOptions = {}) => {
    const run = new SimRun(loadPlanFile(file), o.slots ?? Infinity);
    await run.begin();
    return run;
  },
  close: () => Promise.resolve(),
};

hostConformance(sim);
