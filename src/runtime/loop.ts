/**
 * The one step loop. Every host — the embedded driver (runtime/driver.ts), the BullMQ worker
 * (distributed/worker.ts) and the engine tests' simulator (test/engine/sim.ts) — advances a
 * run with {@link RunLoop.advance}: apply the events that arrived → `decide` → evaluate the
 * expression commands (their decisions are applied and decided on in the same step) → append in
 * one transaction (through the host's redacting store: runtime/redact.ts) → perform the commands (start attempts, abort attempts). Hosts
 * differ only in the small {@link HostPort} they give it: clock, slots, append with conflict,
 * start, abort, evaluate, and optionally completing pure stages inside the step.
 *
 * The loop is synchronous when the host is (the simulator's in-memory append, synchronous
 * evaluation): `advance` then returns a plain value, not a promise.
 */
import { apply, decide, nextWakeAt, type BatonEvent, type RunFinished, type RunWaiting, type CancelCommand, type ExecuteCommand, type ExprCommand, type RunState } from "../engine/index.js";
import type { Plan } from "../plan/types.js";

/** What a host gives the loop. */
export interface HostPort {
  /** ms since epoch (a simulated clock in tests). */
  now(): number;
  /** Executions this host can start now (process-wide slots). Infinity when unbounded. */
  slots(): number;
  /** Append atomically at `expectedSeq`; throws ConflictError when someone else appended first. */
  append(runId: string, events: readonly BatonEvent[], expectedSeq: number): number | Promise<number>;
  /** Start an attempt. Its outcome comes back later through {@link RunLoop.push}. */
  start(loop: RunLoop, cmd: ExecuteCommand): void | Promise<void>;
  /** Abort an attempt in flight, wherever it runs; a result it still reports is ignored. */
  abort(loop: RunLoop, cmd: CancelCommand): void | Promise<void>;
  /** Evaluate an expression command: the events that record its decision. */
  evaluate(loop: RunLoop, cmd: ExprCommand): BatonEvent[] | Promise<BatonEvent[]>;
  /**
   * Optionally complete an attempt inside the step (pure `value:` stages in workers: no job
   * round trip): resolves to its outcome event. Undefined: start it after the append.
   */
  inline?(loop: RunLoop, cmd: ExecuteCommand): Promise<BatonEvent | undefined> | undefined;
  /** `decide` ran (tests record each decision point: `before` = events of this step's batch before it). */
  decided?(loop: RunLoop, before: number, events: readonly BatonEvent[], now: number): void;
  /** An event that arrived from outside (a result, an answer) was applied to the state. */
  applied?(e: BatonEvent, placed: boolean): void;
  /** A batch was appended (live views, telemetry, history). */
  appended?(loop: RunLoop, events: readonly BatonEvent[]): void;
}

/** What one step did. */
export interface StepResult {
  /** Events appended in this step. */
  readonly events: number;
  /** The step stopped early (a long run of inline work): advance again soon. */
  readonly more: boolean;
}

/** Decide/evaluate rounds inside one step before appending (bounds a step's latency and size). */
const MAX_ROUNDS = 64;
/**
 * Executions one step starts at most (bounds a step's latency and size likewise): more ready
 * work is started by the next step, which the host runs at once (`more`) or after yielding to
 * the event loop. Like the host's slots, it only spreads starts over steps; what starts is decide's.
 */
export const MAX_STARTS_PER_STEP = 256;

type Maybe<T> = T | Promise<T>;

/** What one step has gathered so far: its events, the commands to perform after the append, the starts decided. */
interface StepState {
  readonly batch: BatonEvent[];
  readonly deferred: (ExecuteCommand | CancelCommand)[];
  starts: number;
}
function then<T, R>(v: Maybe<T>, f: (t: T) => Maybe<R>): Maybe<R> {
  return v instanceof Promise ? v.then(f) : f(v);
}

/** One run advanced by one host. */
export class RunLoop {
  private pending: BatonEvent[] = [];
  /** External events of the step in progress (re-pushed by a host that lost an append race). */
  private external: BatonEvent[] = [];
  /** The run's `run_finished`, once appended (redacted by the store's append, in place). */
  finished: RunFinished | undefined;
  /** The run's last `run_waiting` appended by this loop (redacted likewise). */
  waited: RunWaiting | undefined;
  /** The assembled output, once the run succeeded (as stored: redacted). */
  get output(): unknown {
    return this.finished?.status === "succeeded" ? this.finished.output : undefined;
  }

  constructor(
    readonly host: HostPort,
    readonly plan: Plan,
    public state: RunState,
    readonly runId: string,
    public seq: number,
  ) {}

  /** Queue events that happened (results, answers, signals) for the next step. */
  push(...events: BatonEvent[]): void {
    for (const e of events) this.pending.push(e);
  }

  /** Durable events queued (completed steps): resolved once the step that carries them committed. */
  private waiters: Map<BatonEvent, { resolve: () => void; reject: (err: unknown) => void }> | undefined;

  /** Queue an event and learn when it is stored (a completed step an attempt waits on). */
  pushDurable(e: BatonEvent): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      (this.waiters ??= new Map()).set(e, { resolve, reject });
      this.pending.push(e);
    });
  }

  /** The loop will not commit again (its host stopped): fail what waits on it. */
  abandon(err: unknown): void {
    const w = this.waiters;
    this.waiters = undefined;
    if (w) for (const x of w.values()) x.reject(err);
  }

  private settleWaiters(events: readonly BatonEvent[]): void {
    const w = this.waiters;
    if (!w) return;
    for (const e of events) {
      const x = w.get(e);
      if (x) {
        w.delete(e);
        x.resolve();
      }
    }
    if (w.size === 0) this.waiters = undefined;
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /** Whether the run is stopped: finished, or waiting with nothing in flight. */
  get stopped(): boolean {
    const s = this.state;
    return s.status === "succeeded" || s.status === "failed" || s.status === "cancelled" || (s.status === "waiting" && s.inflight === 0);
  }

  /** Whether the run could start more executions if the host had slots. */
  get blocked(): boolean {
    return this.state.ready.length > 0 && this.state.status === "running";
  }

  /** When the engine next has something to do by itself (a retry due, the run's timeout). */
  get wakeAt(): number | undefined {
    return nextWakeAt(this.state);
  }

  /**
   * After a lost append race: continue from `state` (folded from the store at `seq`) with the
   * external events of the failed step queued again. Those no longer current are dropped when
   * applied (apply places only current ones).
   */
  rebase(state: RunState, seq: number): void {
    this.state = state;
    this.seq = seq;
    this.pending = [...this.external, ...this.pending];
    this.external = [];
  }

  /** One step: apply → decide (→ evaluate → decide …) → append → perform. */
  advance(): Maybe<StepResult> {
    const host = this.host;
    const state = this.state;
    const batch: BatonEvent[] = [];
    const external = this.pending;
    this.pending = [];
    this.external = external;
    for (let i = 0; i < external.length; i++) {
      const e = external[i]!;
      const placed = apply(state, e);
      if (host.applied) host.applied(e, placed);
      // An event that no longer has a place (a result of an attempt superseded meanwhile, an
      // answer to a stage that stopped waiting, a cancel of a finished run) is not stored, so the
      // log replays strictly. (An outcome with usage is placed as usage even when superseded.)
      if (placed) batch.push(e);
    }
    return this.rounds({ batch, deferred: [], starts: 0 }, 0);
  }

  /** Decide/evaluate rounds (synchronous while the host's evaluations are), then commit. */
  private rounds(st: StepState, from: number): Maybe<StepResult> {
    const host = this.host;
    const state = this.state;
    const { batch, deferred } = st;
    for (let n = from; ; n++) {
      const now = host.now();
      const before = batch.length;
      const step = decide(state, now, { slots: Math.max(0, Math.min(host.slots(), MAX_STARTS_PER_STEP) - st.starts) });
      for (let i = 0; i < step.events.length; i++) batch.push(step.events[i]!);
      if (host.decided) host.decided(this, before, step.events, now);
      let work: Maybe<BatonEvent[]>[] | undefined;
      let async = false;
      let refunded = false;
      for (const cmd of step.effects) {
        if (cmd.kind === "execute") {
          const r = host.inline?.(this, cmd);
          if (r) {
            (work ??= []).push(r.then((e) => (e ? [e] : [])));
            async = true;
          } else {
            deferred.push(cmd);
            st.starts++;
          }
        } else if (cmd.kind === "cancel") {
          // An attempt decided and cut within this step never reaches the host (nor takes a slot).
          const i = deferred.findIndex((d) => d.kind === "execute" && d.attempt === cmd.attempt && sameKey(d.key, cmd.key));
          if (i >= 0) {
            deferred.splice(i, 1);
            st.starts--;
            refunded = true;
          } else deferred.push(cmd);
        } else {
          const r = host.evaluate(this, cmd);
          if (r instanceof Promise) async = true;
          (work ??= []).push(r);
        }
      }
      if (!work) {
        // A slot given back by an attempt cut in this step may start what waited for it: decide again.
        if (refunded && n + 1 < MAX_ROUNDS) continue;
        // Capped with more ready to start: the host advances again soon.
        return this.commit(st, st.starts >= MAX_STARTS_PER_STEP && this.blocked);
      }
      if (async) {
        return Promise.all(work).then((results) => {
          this.applyResults(batch, results);
          return n + 1 >= MAX_ROUNDS ? this.commit(st, true) : this.rounds(st, n + 1);
        });
      }
      this.applyResults(batch, work as BatonEvent[][]);
      if (n + 1 >= MAX_ROUNDS) return this.commit(st, true);
    }
  }

  private applyResults(batch: BatonEvent[], results: readonly BatonEvent[][]): void {
    for (const events of results) {
      for (const e of events) {
        apply(this.state, e);
        batch.push(e);
      }
    }
  }

  /** Append (one transaction; the host's store redacts), then perform the step's commands. */
  private commit(st: StepState, more: boolean): Maybe<StepResult> {
    const { batch, deferred } = st;
    if (batch.length === 0) {
      if (this.waiters) this.settleWaiters(this.external);
      return this.perform(deferred, { events: 0, more });
    }
    const host = this.host;
    return then(host.append(this.runId, batch, this.seq), (seq) => {
      this.seq = seq;
      for (let i = 0; i < batch.length; i++) {
        const e = batch[i]!;
        if (e.type === "run_finished") this.finished = e;
        else if (e.type === "run_waiting") this.waited = e;
      }
      if (this.waiters) this.settleWaiters(this.external);
      this.external = [];
      host.appended?.(this, batch);
      return this.perform(deferred, { events: batch.length, more });
    });
  }

  private perform(commands: readonly (ExecuteCommand | CancelCommand)[], result: StepResult): Maybe<StepResult> {
    let waits: Promise<void>[] | undefined;
    for (const cmd of commands) {
      const r = cmd.kind === "execute" ? this.host.start(this, cmd) : this.host.abort(this, cmd);
      if (r instanceof Promise) (waits ??= []).push(r);
    }
    return waits ? Promise.all(waits).then(() => result) : result;
  }
}

function sameKey(a: ExecuteCommand["key"], b: ExecuteCommand["key"]): boolean {
  return a.stage === b.stage && a.visit === b.visit && a.item === b.item && a.fallback_for === b.fallback_for;
}
