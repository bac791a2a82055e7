/**
 * The shell around one run: it folds events into the engine's state, asks `decide`, appends
 * the decided events to the store in ONE transaction per step (completions that arrived in
 * the same tick batch together), and only then carries out the effects: executing attempts,
 * evaluating expressions, aborting executions, assembling the output. It never decides what
 * runs next.
 */
import { apply, decide, nextWakeAt, type BatonEvent, type Effect, type Exec, type RunState } from "../engine/index.js";
import type { Plan, StagePlan } from "../plan/types.js";
import type { Store } from "../store/port.js";
import type { BatonConfig } from "../agents/config.js";
import type { ChildRuns } from "../stages/types.js";
import { Attempt, type AttemptHost } from "./attempt.js";
import { evaluateEffect } from "./effects.js";
export { truthy } from "./effects.js";
import type { Redactor } from "./redact.js";
import type { PoolLease } from "./pools.js";

/** What a run ended as (SPEC §4 `--json`). */
export interface RunResult {
  readonly id: string;
  readonly pipeline: string;
  readonly status: "succeeded" | "failed" | "cancelled" | "waiting";
  readonly output?: unknown;
  readonly error?: { readonly stage?: string; readonly kind: string; readonly message: string };
  readonly duration_ms: number;
}

/** What the driver needs from the process runtime. */
export interface DriverHost {
  readonly store: Store;
  /** Providers and model facts for agent stages. */
  readonly config: BatonConfig;
  readonly children: ChildRuns;
  /** Wait for a stage's resource pool (undefined when it has none). */
  acquire(plan: Plan, stage: StagePlan, tokens: number, signal: AbortSignal): Promise<PoolLease | undefined>;
  /** Removes secrets from events before they are stored. */
  readonly redactor: Redactor;
  now(): number;
  /** Execution slots free in the process now. */
  freeSlots(): number;
  take(n: number): void;
  release(): void;
  /** Called when this run could start more if slots were free. */
  blocked(driver: RunDriver): void;
  onEvents(driver: RunDriver, events: readonly BatonEvent[]): void;
  finished(driver: RunDriver): void;
}

/** Longest stretch (ms) of back-to-back steps before yielding to the event loop. */
const SLICE_MS = 10;
const slice = { start: 0, open: false };

/**
 * Whether this turn of the event loop has run steps for longer than a slice. A turn's slice
 * opens at its first step and closes at the next check phase (no idle timer).
 */
export function sliceUsed(): boolean {
  const now = performance.now();
  if (!slice.open) {
    slice.open = true;
    slice.start = now;
    setImmediate(() => void (slice.open = false));
  }
  return now - slice.start > SLICE_MS;
}

/** Drives one run to a stop (finished, waiting, or cancelled). */
export class RunDriver {
  private pending: BatonEvent[] = [];
  private flushing = false;
  private scheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly running = new Map<Exec, Attempt>();
  private resolveDone!: (r: RunResult) => void;
  private rejectDone!: (e: unknown) => void;
  private stopped = false;
  /** Resolves when the run stops. */
  readonly done: Promise<RunResult>;
  private readonly attemptHost: AttemptHost;
  private readonly budget: AttemptHost["budget"];

  constructor(
    private readonly host: DriverHost,
    readonly plan: Plan,
    readonly state: RunState,
    readonly runId: string,
    private seq: number,
  ) {
    const budget = { reserved: { tokens: 0, usd: 0 }, unapplied: { tokens: 0, usd: 0 } };
    this.budget = budget;
    this.attemptHost = {
      plan, state, runId, budget,
      acquire: (stage, tokens, signal) => host.acquire(plan, stage, tokens, signal),
      services: {
        config: host.config,
        children: host.children,
        usage: () => ({
          tokens: state.usage.input + state.usage.output + budget.reserved.tokens + budget.unapplied.tokens,
          usd: state.usage.usd + budget.reserved.usd + budget.unapplied.usd,
        }),
      },
      now: () => this.host.now(),
      done: (a: Attempt, e: BatonEvent | undefined) => {
        this.running.delete(a.ef.exec);
        // A sub-pipeline stage holds no slot while its child runs (the child's stages take them).
        if (a.stage.spec.kind !== "pipeline") this.host.release();
        if (e) this.push(e);
      },
    };
    this.done = new Promise<RunResult>((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
  }

  /** Queue events that happened (results, decisions, signals) and schedule a step. */
  push(...events: BatonEvent[]): void {
    this.pending.push(...events);
    this.schedule();
  }

  /** Schedule a step soon (batching everything that arrives in this tick). */
  schedule(): void {
    if (this.scheduled || this.stopped) return;
    if (this.flushing) {
      this.again = true; // the step in progress loops once more
      return;
    }
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      void this.step();
    };
    // Steps chain through microtasks (fast), but never hold the event loop for more than a
    // slice: then the next step waits for the loop to turn (timers, I/O, other processes' work).
    if (sliceUsed()) setImmediate(run);
    else queueMicrotask(run);
  }

  /** Abort every execution in flight (process shutdown). */
  abortAll(reason: string): void {
    for (const a of [...this.running.values()]) a.cancel(new DOMException(reason, "AbortError"));
  }

  private async step(): Promise<void> {
    if (this.flushing) {
      this.again = true;
      return;
    }
    if (sliceUsed()) {
      // Many runs' steps may be queued in this turn: each waits for the next once the slice is used.
      setImmediate(() => void this.step());
      return;
    }
    this.flushing = true;
    try {
      do {
        this.again = false;
        const batch = this.pending.splice(0);
        for (const e of batch) {
          if ((e.type === "stage_succeeded" || e.type === "stage_failed") && e.tokens) {
            this.budget.unapplied.tokens -= e.tokens.input + e.tokens.output;
            this.budget.unapplied.usd -= e.cost_usd ?? 0;
          }
          apply(this.state, e);
        }
        const now = this.host.now();
        const step = decide(this.state, now, { slots: this.host.freeSlots() });
        if (step.events.length) for (const e of step.events) batch.push(e);
        if (batch.length > 0) {
          for (const e of batch) this.host.redactor.event(e);
          const store = this.host.store;
          this.seq = store.appendNow ? store.appendNow(this.runId, batch, this.seq) : await store.append(this.runId, batch, this.seq);
          this.host.onEvents(this, batch);
        }
        this.perform(step.effects);
        if (this.state.ready.length > 0 && this.state.status === "running") this.host.blocked(this);
        // Synchronous handlers can keep this loop busy indefinitely: yield once the slice is used.
        if ((this.again || this.pending.length > 0) && sliceUsed()) {
          this.again = false;
          setImmediate(() => void this.step());
          break;
        }
      } while ((this.again || this.pending.length > 0) && !this.stopped);
    } catch (err) {
      this.fail(err);
      return;
    } finally {
      this.flushing = false;
    }
    this.afterStep();
  }

  private again = false;

  private afterStep(): void {
    if (this.stopped) return;
    const s = this.state;
    if (s.status === "succeeded" || s.status === "failed" || s.status === "cancelled" || (s.status === "waiting" && s.inflight === 0)) {
      this.finish();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const wake = nextWakeAt(s);
    if (wake !== undefined) {
      this.timer = setTimeout(() => this.schedule(), Math.max(0, wake - this.host.now()));
    }
  }

  private finish(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const s = this.state;
    const status = s.status === "running" ? "waiting" : s.status;
    const result: RunResult = {
      id: this.runId,
      pipeline: this.plan.name,
      status: status as RunResult["status"],
      ...(s.status === "succeeded" ? { output: this.output } : {}),
      ...(s.failure && s.status !== "succeeded" ? { error: s.failure } : {}),
      ...(s.status === "waiting" && s.waiting ? { error: { stage: s.waiting.stage, kind: "waiting", message: s.waiting.message } } : {}),
      duration_ms: Math.max(0, s.lastAt - s.startedAt),
    };
    this.host.finished(this);
    this.resolveDone(result);
  }

  private output: unknown;

  private fail(err: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.abortAll("run driver stopped");
    this.host.finished(this);
    this.rejectDone(err);
  }

  private perform(effects: readonly Effect[]): void {
    let started = 0;
    for (const ef of effects) {
      switch (ef.kind) {
        case "execute":
          if (this.plan.stages[ef.stage]!.spec.kind !== "pipeline") started++;
          this.execute(ef);
          break;
        case "cancel":
          this.running.get(ef.exec)?.cancel(new DOMException(ef.reason, "AbortError"));
          break;
        case "evaluate_if":
        case "expand":
        case "routes":
        case "assemble":
          void evaluateEffect(this.plan, this.state, ef, this.host.now).then((events) => {
            for (const e of events) if (e.type === "run_finished" && e.status === "succeeded") this.output = e.output;
            if (events.length) this.push(...events);
          });
          break;
      }
    }
    if (started) this.host.take(started);
  }

  /** Execute one attempt (see {@link Attempt}). */
  private execute(ef: Extract<Effect, { kind: "execute" }>): void {
    const a = new Attempt(this.attemptHost, ef);
    this.running.set(ef.exec, a);
    a.start();
  }
}
