/**
 * The embedded host of the step loop (./loop.ts): it schedules steps of one run (completions
 * that arrived in the same tick batch into ONE append), runs attempts in this process, aborts
 * them through their AbortSignal, owns the retry/timeout timer and the run's share of the
 * process slots. It never decides what runs next.
 */
import type { RunResult } from "../base/result.js";
import { enableRelease, usageBeyondSteps, type BatonEvent, type CancelCommand, type ExecuteCommand, type ExprCommand, type RunState } from "../engine/index.js";
import type { Plan, StagePlan } from "../plan/types.js";
import { ConflictError, type Store } from "../store/port.js";
import { LeaseLostError } from "./errors.js";
import type { BatonConfig } from "../agents/config.js";
import type { ChildRuns } from "../stages/types.js";
import { Attempt, type AttemptHost, type PoolWait } from "./attempt.js";
import { evaluateCommand } from "./effects.js";
import { RunLoop, type HostPort } from "./loop.js";
import { LocalBudget } from "./budget.js";
import { mcpToolsReady } from "./mcp-tools.js";
export { truthy } from "./effects.js";
import type { PoolLease, PoolLimitKind } from "./pools.js";
import { setLongTimeout, type LongTimer } from "../base/timers.js";

/** What a run ended as (SPEC §4 `--json`): declared in ../base/result.ts, below stages and workers. */
export type { RunResult };

/** What the driver needs from the process runtime. */
export interface DriverHost {
  readonly store: Store;
  /** Providers and model facts for agent stages. */
  readonly config: BatonConfig;
  readonly children: ChildRuns;
  /** Wait for a stage's resource pool (undefined when it has none). */
  acquire(plan: Plan, stage: StagePlan, tokens: number, signal: AbortSignal, pool?: string, key?: string, onWait?: (reason: string, limit: PoolLimitKind) => void, run?: string): Promise<PoolLease | undefined>;
  /** An execution waits for a pool, or no longer does (live views); optional. */
  poolWait?(driver: RunDriver, key: ExecuteCommand["key"], w: PoolWait): void;
  /** Streamed text of a model turn (live views); optional. */
  delta?(driver: RunDriver, stage: StagePlan, key: ExecuteCommand["key"], text: string, turn: number): void;
  now(): number;
  /** Execution slots free in the process now. */
  freeSlots(): number;
  take(n: number): void;
  release(): void;
  /** Called when this run could start more if slots were free. */
  blocked(driver: RunDriver): void;
  onEvents(driver: RunDriver, events: readonly BatonEvent[]): void;
  finished(driver: RunDriver): void;
  /** The lease time-to-live, in ms (named when the run is lost to another process). */
  readonly leaseMs?: number;
  /** Another process took the run over: this driver stopped (see {@link RunDriver.lose}). */
  lost?(driver: RunDriver, err: LeaseLostError): void;
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
export class RunDriver implements HostPort {
  private flushing = false;
  private scheduled = false;
  private timer: LongTimer | undefined;
  /** Attempts in flight (a cancel, rare, finds its attempt by key: no key string per attempt). */
  private readonly running = new Set<Attempt>();
  /** The store's append, looked up once (the store is a redacting proxy: every lookup is a trap). */
  private readonly appendTo: (runId: string, events: readonly BatonEvent[], seq: number) => number | Promise<number>;
  private resolveDone!: (r: RunResult) => void;
  private rejectDone!: (e: unknown) => void;
  private stopped = false;
  /** Resolves when the run stops. */
  readonly done: Promise<RunResult>;
  private readonly attemptHost: AttemptHost;
  private readonly budget: LocalBudget;
  readonly loop: RunLoop;

  constructor(
    private readonly host: DriverHost,
    readonly plan: Plan,
    readonly state: RunState,
    readonly runId: string,
    seq: number,
  ) {
    // Outputs no stage reads any more are let go as the run goes (they are in the log).
    enableRelease(state);
    const budget = new LocalBudget(plan, () => this.loop.state.usage);
    const mcp = mcpToolsReady(plan);
    this.budget = budget;
    this.loop = new RunLoop(this, plan, state, runId, seq);
    this.attemptHost = {
      plan, budget,
      acquire: (stage, tokens, signal, pool, key, onWait) => host.acquire(plan, stage, tokens, signal, pool, key, onWait, runId),
      ...(host.poolWait ? { poolWait: (a: Attempt, w: PoolWait) => host.poolWait!(this, a.ef.key, w) } : {}),
      record: (_a, e) => {
        const stored = this.loop.pushDurable(e);
        this.schedule();
        return stored;
      },
      ...(host.delta ? { delta: (a: Attempt, text: string, turn: number) => host.delta!(this, a.stage, a.ef.key, text, turn) } : {}),
      services: {
        config: host.config,
        children: host.children,
        ...(mcp ? { mcp } : {}),
      },
      now: () => this.host.now(),
      done: (a: Attempt, e: BatonEvent | undefined) => {
        this.running.delete(a);
        // A sub-pipeline stage holds no slot while its child runs (the child's stages take them).
        if (a.stage.spec.kind !== "pipeline") this.host.release();
        if (e) this.push(e);
      },
    };
    const store = host.store;
    const appendNow = store.appendNow;
    this.appendTo = appendNow ? appendNow.bind(store) : store.append.bind(store);
    this.done = new Promise<RunResult>((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
  }

  // ── HostPort ────────────────────────────────────────────────────────────────────────────
  now(): number {
    return this.host.now();
  }
  slots(): number {
    return this.host.freeSlots();
  }
  append(runId: string, events: readonly BatonEvent[], seq: number): number | Promise<number> {
    return this.appendTo(runId, events, seq);
  }
  start(_loop: RunLoop, cmd: ExecuteCommand): void {
    if (this.plan.stages[cmd.stage]!.spec.kind !== "pipeline") this.host.take(1);
    const a = new Attempt(this.attemptHost, cmd);
    this.running.add(a);
    a.start();
  }
  abort(_loop: RunLoop, cmd: CancelCommand): void {
    const k = cmd.key;
    for (const a of this.running) {
      const x = a.ef;
      if (x.attempt === cmd.attempt && x.key.stage === k.stage && x.key.visit === k.visit && x.key.item === k.item && x.key.fallback_for === k.fallback_for) {
        a.cancel(new DOMException(cmd.reason, "AbortError"));
        return;
      }
    }
  }
  evaluate(_loop: RunLoop, cmd: ExprCommand): Promise<BatonEvent[]> {
    return evaluateCommand(this.plan, cmd, this.host.now);
  }
  applied(e: BatonEvent): void {
    // Usage the run's state counted (a recorded turn, or an outcome beyond its recorded turns) is no longer unapplied.
    if ((e.type === "step_recorded" || e.type === "stage_succeeded" || e.type === "stage_failed" || e.type === "stage_waiting") && e.tokens) {
      const u = usageBeyondSteps(e);
      this.budget.onApplied(u.input + u.output, u.usd);
    }
  }

  appended(_loop: RunLoop, events: readonly BatonEvent[]): void {
    this.host.onEvents(this, events);
  }

  // ── scheduling ──────────────────────────────────────────────────────────────────────────
  /** Queue events that happened (results, decisions, signals) and schedule a step. */
  push(...events: BatonEvent[]): void {
    this.loop.push(...events);
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
    // Steps chain through microtasks (fast), but never hold the event loop for more than a
    // slice: then the next step waits for the loop to turn (timers, I/O, other processes' work).
    if (sliceUsed()) setImmediate(this.runScheduled);
    else queueMicrotask(this.runScheduled);
  }

  /** The scheduled step (one function per driver: scheduling allocates nothing). */
  private readonly runScheduled = (): void => {
    this.scheduled = false;
    this.step();
  };
  private readonly stepLater = (): void => this.step();

  /** Whether a step is in progress (an append may be in flight). */
  get busy(): boolean {
    return this.flushing;
  }

  /**
   * Another process took the run over (fencing): stop driving it at once — abort every attempt
   * in flight (their AbortSignals fire), schedule and append nothing more — then reject `done`
   * with a {@link LeaseLostError} naming the new holder (looked up when not given).
   */
  lose(holder?: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.timer?.clear();
    this.abortAll(`run ${this.runId} was taken over by another process`);
    const end = (h: string | undefined): void => {
      const err = new LeaseLostError(this.runId, h, this.host.leaseMs ?? 30_000);
      this.loop.abandon(err);
      this.host.lost?.(this, err);
      this.host.finished(this);
      this.rejectDone(err);
    };
    if (holder !== undefined) end(holder);
    else this.host.store.leaseHolder(this.runId).then(end, () => end(undefined));
  }

  /** Abort every execution in flight (process shutdown). */
  abortAll(reason: string): void {
    for (const a of [...this.running]) a.cancel(new DOMException(reason, "AbortError"));
  }

  private step(): void {
    if (this.flushing) {
      this.again = true;
      return;
    }
    if (sliceUsed()) {
      // Many runs' steps may be queued in this turn: each waits for the next once the slice is used.
      setImmediate(this.stepLater);
      return;
    }
    this.flushing = true;
    this.steps();
  }

  /**
   * Advance until nothing is left to do (or the slice is used). Synchronous while the loop's
   * steps are (the common case: no promise per step); a step that goes asynchronous continues
   * this when it is done.
   */
  private steps(): void {
    const loop = this.loop;
    try {
      for (;;) {
        this.again = false;
        const r = loop.advance();
        if (r instanceof Promise) {
          r.then((res) => {
            let go: boolean;
            try {
              go = this.advanced(res.more);
            } catch (err) {
              return this.stepFailed(err);
            }
            if (go) this.steps();
            else this.stepsDone();
          }, (err: unknown) => this.stepFailed(err));
          return;
        }
        if (!this.advanced(r.more)) break;
      }
    } catch (err) {
      this.stepFailed(err);
      return;
    }
    this.stepsDone();
  }

  /** After one advance: whether to advance again now (else, maybe, after yielding to the event loop). */
  private advanced(more: boolean): boolean {
    const loop = this.loop;
    if (loop.blocked) this.host.blocked(this);
    const again = this.again || loop.hasPending || more;
    // Synchronous handlers can keep this loop busy indefinitely: yield once the slice is used.
    if (again && sliceUsed()) {
      this.again = false;
      setImmediate(this.stepLater);
      return false;
    }
    return again && !this.stopped;
  }

  private stepsDone(): void {
    this.flushing = false;
    this.afterStep();
  }

  private stepFailed(err: unknown): void {
    // A lost append race: in this host only the lease holder writes, so another process took
    // the run over (this one's lease lapsed while it was blocked). Stop; never rebase onto it.
    if (err instanceof ConflictError) this.lose();
    else this.fail(err);
    this.flushing = false;
  }

  private again = false;

  private afterStep(): void {
    if (this.stopped) return;
    const loop = this.loop;
    if (loop.stopped) {
      this.finish();
      return;
    }
    this.timer?.clear();
    this.timer = undefined;
    const wake = loop.wakeAt;
    // A retry or deadline may be weeks away: a long timer, not one that overflows to 1 ms.
    if (wake !== undefined) this.timer = setLongTimeout(() => this.schedule(), wake - this.host.now());
  }

  private finish(): void {
    this.stopped = true;
    this.timer?.clear();
    const result = runResult(this.plan, this.runId, this.state, this.loop);
    this.host.finished(this);
    this.resolveDone(result);
  }

  private fail(err: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.timer?.clear();
    this.abortAll("run driver stopped");
    this.loop.abandon(err);
    this.host.finished(this);
    this.rejectDone(err);
  }
}

/**
 * The result of a run that stopped, from its state; output and error as the log has them
 * (redacted: the state may hold the values from before the append redacted its events).
 */
export function runResult(plan: Plan, runId: string, s: RunState, loop: Pick<RunLoop, "output" | "finished" | "waited">): RunResult {
  const output = loop.output;
  const failure = loop.finished?.error ?? s.failure;
  const status = s.status === "running" ? "waiting" : s.status;
  return {
    id: runId,
    pipeline: plan.name,
    status: status as RunResult["status"],
    ...(s.status === "succeeded" ? { output } : {}),
    ...(failure && s.status !== "succeeded" ? { error: failure } : {}),
    ...(s.status === "waiting" && s.waiting ? { error: { stage: s.waiting.stage, kind: "waiting", message: loop.waited?.stage === s.waiting.stage ? loop.waited.message : s.waiting.message } } : {}),
    duration_ms: Math.max(0, s.lastAt - s.startedAt),
  };
}
