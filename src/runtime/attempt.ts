/**
 * One attempt of one execution: evaluate the stage's input, call its kind's executor with a
 * `ctx`, and report exactly one outcome (or none, when cancelled). Kept allocation-light: this
 * is the per-stage hot path. Synchronous handlers complete without a promise, and the
 * AbortController exists only once a handler reads `ctx.signal`.
 */
import { idempotencyKey, usageBeyondSteps, type BatonEvent, type ExecuteCommand } from "../engine/index.js";
import type { Plan, StagePlan } from "../plan/types.js";
import { executorFor, type StageContext } from "../stages/index.js";
import type { RunServices } from "../stages/types.js";
import type { PoolLease, PoolLimitKind } from "./pools.js";
import { evaluatePoolKey } from "../plan/limit.js";
import type { AttemptUsage } from "../engine/events.js";
import { toStageError } from "./errors.js";
import { toJsonValue } from "./json.js";
import { AwaitHuman, Detached } from "../stages/approval.js";
import type { BudgetHold, BudgetPort } from "./budget.js";
import { Journal, type StepMeta } from "./journal.js";
import { callTool } from "./tool-call.js";
import { setLongTimeout, type LongTimer } from "../base/timers.js";
import type { StepRecorded } from "../engine/events.js";

/** What an attempt needs from its host (everything about the run itself comes in its command). */
export interface AttemptHost {
  readonly plan: Plan;
  now(): number;
  readonly services: RunServices;
  /**
   * Wait for a pool (`pool`, else the stage's `limit:`); undefined when there is none. `onWait`
   * is called once if the request has to wait (why, and which limit holds it).
   */
  acquire(stage: StagePlan, tokens: number, signal: AbortSignal, pool?: string, key?: string, onWait?: (reason: string, limit: PoolLimitKind) => void): Promise<PoolLease | undefined>;
  /** The attempt waits for a pool, or (`state` granted/gave_up) no longer does (live views); optional. */
  poolWait?(a: Attempt, w: PoolWait): void;
  /** Append a completed durable step to the run's log; resolves once it is stored. */
  record(a: Attempt, e: StepRecorded): Promise<void>;
  /** Streamed text of a model turn (live views); optional. */
  delta?(a: Attempt, text: string, turn: number): void;
  /** The run's budget (held estimates of attempts in flight; shared by every attempt of the run). */
  readonly budget: BudgetPort;
  /** The attempt is over; `event` (its outcome) is undefined when it was cancelled. */
  done(a: Attempt, event: BatonEvent | undefined): void;
}

/** A wait of an attempt for a pool, as live views see it. */
export interface PoolWait {
  readonly state: "waiting" | "granted" | "gave_up";
  readonly pool: string;
  readonly key?: string;
  /** Which limit holds it ("rpm", "tpm", "concurrency", "paused"), and the pool's words for it. */
  readonly limit: PoolLimitKind;
  readonly reason: string;
  /** granted: how long it waited. */
  readonly waitedMs?: number;
}

/** The `ctx` handed to handlers (a class: a getter on the prototype is far cheaper than on a literal). */
class StageCtx implements StageContext {
  constructor(
    private readonly a: Attempt,
    readonly input: unknown,
    readonly inputs: Record<string, unknown>,
    readonly outputs: Record<string, unknown>,
    readonly item: unknown,
    readonly index: number | undefined,
    readonly visit: number,
    readonly attempt: number,
    readonly route: unknown,
    readonly prev: unknown,
    readonly runId: string,
    readonly idempotencyKey: string,
  ) {}

  get signal(): AbortSignal {
    return this.a.signal();
  }

  log(message: string): void {
    (this.a.logs ??= []).push(String(message));
  }

  step<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    return this.a.journal().step(name, fn);
  }

  agent(name: string, opts: { prompt: string; output?: object; step?: string }): Promise<unknown> {
    return this.a.agent(name, opts);
  }
}

export class Attempt {
  readonly stage: StagePlan;
  /** The host's key for this attempt (set by the host that tracks it). */
  hostKey: string | undefined;
  private ctrl: AbortController | undefined;
  private reason: unknown;
  private over = false;
  private timer: LongTimer | undefined;
  private input: unknown;
  logs: string[] | undefined;
  /** Model usage reported by the executor (agent stages). */
  private usage: AttemptUsage | undefined;
  /** Budget this attempt holds until it is over. */
  private holds: BudgetHold[] | undefined;
  /** A pool lease held by the attempt itself (stages other than agents, which manage their own). */
  private lease: PoolLease | undefined;
  private journalOf: Journal | undefined;
  /** Pool waits in progress: the timeout does not run while any is (it restarts at the grant). */
  private waits = 0;
  /** When the running timeout fires (Date.now() based, like its timer), and what was left of it at a pause. */
  private deadline = 0;
  private left: number | undefined;
  /** Some wait of the current pause was held back by its pool (then the timeout starts anew at the grant). */
  private waited = false;
  private args: import("../stages/types.js").ExecuteArgs | undefined;
  private agentCalls = 0;

  constructor(
    private readonly host: AttemptHost,
    readonly ef: ExecuteCommand,
  ) {
    this.stage = host.plan.stages[ef.stage]!;
  }

  /** The attempt's AbortSignal, created on first use. */
  signal(): AbortSignal {
    this.ctrl ??= new AbortController();
    if (this.reason !== undefined && !this.ctrl.signal.aborted) this.ctrl.abort(this.reason);
    return this.ctrl.signal;
  }

  /** The execution's durable steps (created on first use). */
  journal(): Journal {
    return (this.journalOf ??= new Journal(this.ef.steps, (name, output, startedAt, meta) => this.recordStep(name, output, startedAt, meta), () => this.host.now(), `stage '${this.stage.id}'`));
  }

  private recordStep(name: string, output: unknown, startedAt: number, meta: StepMeta): Promise<void> {
    const { ef, stage, host } = this;
    const e: Record<string, unknown> = { type: "step_recorded", at: host.now(), stage: stage.id, visit: ef.visit };
    if (ef.key.item !== undefined) e.item = ef.key.item;
    if (ef.key.fallback_for !== undefined) e.fallback_for = ef.key.fallback_for;
    e.attempt = ef.attempt;
    e.name = name;
    e.kind = meta.kind;
    e.started_at = startedAt;
    e.output = output;
    if (meta.model !== undefined) e.model = meta.model;
    if (meta.tokens !== undefined) e.tokens = meta.tokens;
    if (meta.cost_usd !== undefined) e.cost_usd = meta.cost_usd;
    if (meta.messages !== undefined) e.messages = meta.messages;
    return host.record(this, e as unknown as StepRecorded);
  }

  /** `ctx.agent(name, { prompt })`: a declared agent's loop, inside this attempt. */
  agent(name: string, opts: { prompt: string; output?: object; step?: string }): Promise<unknown> {
    const args = this.args;
    if (!args) return Promise.reject(new Error("ctx.agent is only available while the handler runs"));
    const step = opts.step ?? `agent:${name}:${++this.agentCalls}`;
    return import("../stages/agent.js").then((m) => m.runAgent(args, { agent: name, prompt: opts.prompt, ...(opts.output ? { output: opts.output } : {}), namespace: step }));
  }

  /** Abort the handler and drop whatever it returns later. */
  cancel(reason: unknown): void {
    if (this.over) return;
    this.abort(reason);
    this.finish(undefined);
  }

  private abort(reason: unknown): void {
    this.reason = reason;
    if (this.ctrl && !this.ctrl.signal.aborted) this.ctrl.abort(reason);
  }

  /** (Re)start the per-attempt timeout; `leftMs`: run only what was left of it (after a pause). */
  private armTimeout(leftMs?: number): void {
    const { stage, ef } = this;
    if (stage.timeoutMs === undefined || this.over) return;
    this.timer?.clear();
    const ms = stage.timeoutMs;
    const runFor = leftMs ?? ms;
    this.deadline = Date.now() + runFor;
    // `timeout: 25d` is longer than one Node timer holds: a chained timer, never a 1 ms one.
    this.timer = setLongTimeout(() => {
      const reason = new DOMException(`stage '${stage.id}' attempt ${ef.attempt} timed out after ${ms} ms`, "TimeoutError");
      this.abort(reason);
      this.fail(reason); // a late result of the timed-out attempt is ignored
    }, runFor);
  }

  /**
   * A pool wait begins: the timeout bounds the call, not the queue, so it stops until no wait is
   * left (every path — an agent's turns, tool calls, `ctx.agent`, a stage's own lease — waits here).
   */
  private pauseTimeout(): void {
    if (this.waits++ > 0 || this.timer === undefined) return;
    this.left = Math.max(0, this.deadline - Date.now());
    this.timer.clear();
    this.timer = undefined;
  }

  /**
   * A pool wait ended (`held`: the pool held it back, rather than granting at once): with none
   * left, the timeout runs again — anew after a real wait, else with what was left of it (an
   * agent's turns each pass their pool: an attempt's timeout still bounds all of them).
   */
  private resumeTimeout(held: boolean): void {
    if (held) this.waited = true;
    if (--this.waits > 0) return;
    const left = this.left;
    const anew = this.waited;
    this.left = undefined;
    this.waited = false;
    if (left !== undefined) this.armTimeout(anew ? undefined : left);
  }

  /** Wait for a pool, with the timeout paused and live views told while it waits. */
  private async waitForPool(tokens: number, signal: AbortSignal, pool: string | undefined, key: string | undefined): Promise<PoolLease | undefined> {
    const { host, stage } = this;
    let told: PoolWait | undefined;
    const onWait = host.poolWait
      ? (reason: string, limit: PoolLimitKind): void => {
        if (this.over) return;
        told = { state: "waiting", pool: pool ?? stage.limit ?? "", ...(key !== undefined ? { key } : {}), limit, reason };
        host.poolWait!(this, told);
      }
      : undefined;
    this.pauseTimeout();
    let lease: PoolLease | undefined;
    try {
      lease = await host.acquire(stage, tokens, signal, pool, key, onWait);
      return lease;
    } finally {
      this.resumeTimeout(lease?.reason !== undefined);
      if (told) host.poolWait!(this, lease ? { ...told, state: "granted", waitedMs: lease.waitedMs } : { ...told, state: "gave_up" });
    }
  }

  start(): void {
    const { stage, ef } = this;
    this.armTimeout();
    try {
      const scope = ef.scope;
      if (stage.input) {
        const v = stage.input.evaluate(scope);
        if (v instanceof Promise) {
          v.then((val) => this.call(scope, val), (err) => this.fail(err));
          return;
        }
        this.call(scope, v);
      } else this.call(scope, undefined);
    } catch (err) {
      this.fail(err);
    }
  }

  private call(scope: Record<string, unknown>, rawInput: unknown): void {
    if (this.over) return;
    try {
      const { stage, ef, host } = this;
      const plan = host.plan;
      const input = rawInput === undefined ? undefined : toJsonValue(rawInput, `input of '${stage.id}'`);
      this.input = input;
      const key = idempotencyKey(ef.runId, ef.key);
      const ctx = new StageCtx(this, input, scope.inputs as Record<string, unknown>, ef.outputs, scope.item, ef.item, ef.visit, ef.attempt, scope.route, scope.prev, ef.runId, key);
      const previous = ef.previous;
      const self = this;
      const args: import("../stages/types.js").ExecuteArgs = {
        plan, stage, ctx, scope, previous, services: host.services,
        // (created when a stage kind or handler first uses it: most stages never do)
        get journal() {
          return self.journal();
        },
        ...(host.delta ? { delta: (text: string, turn: number) => host.delta!(this, text, turn) } : {}),
        report: (u: AttemptUsage) => void (this.usage = mergeUsage(this.usage, u)),
        callTool: (req) => callTool(args, req),
        acquire: async (tokens: number, pool?: string, key?: string) => {
          const own = pool === undefined || pool === stage.limit;
          // The stage's own keyed limit: a pool instance per key, the key evaluated in the stage's scope.
          if (key === undefined && own && stage.limitKey !== undefined) key = await evaluatePoolKey(stage.limitKey, scope, `stage '${stage.id}'`);
          const lease = await this.waitForPool(tokens, ctx.signal, pool, key);
          // Every pool the attempt drew from shows in its trace (the wait of `ctx.agent`'s and its tools' too).
          if (lease) this.report({ pool: lease.pool, ...(lease.key !== undefined ? { pool_key: lease.key } : {}), pool_wait_ms: lease.waitedMs, ...(lease.reason ? { pool_wait_reason: lease.reason } : {}) });
          return lease;
        },
        settle: (h: BudgetHold, spent: { tokens: number; usd: number }) => {
          const i = this.holds ? this.holds.indexOf(h) : -1;
          if (i < 0) return;
          this.holds!.splice(i, 1);
          host.budget.settle(h, spent, true);
        },
        hold: async (tokens: number, usd: number): Promise<BudgetHold> => {
          const h = await host.budget.hold(tokens, usd);
          if (h.ok) {
            if (this.over) host.budget.settle(h, undefined, false);
            else (this.holds ??= []).push(h);
          }
          return h;
        },
      };
      this.args = args;
      const exec = executorFor(stage.spec.kind);
      if (stage.limit !== undefined && stage.spec.kind !== "agent") {
        // The attempt holds the pool for the whole call; a 429/overload from it pauses the pool.
        args.acquire(0).then((lease) => {
          this.lease = lease;
          if (this.over) return lease?.release();
          const result = exec(args);
          if (result instanceof Promise) result.then((v) => this.succeed(v), (err) => this.fail(err));
          else this.succeed(result);
        }, (err) => this.fail(err));
        return;
      }
      const result = exec(args);
      if (result instanceof Promise) result.then((v) => this.succeed(v), (err) => this.fail(err));
      else this.succeed(result);
    } catch (err) {
      this.fail(err);
    }
  }

  private event(type: "stage_succeeded" | "stage_failed" | "stage_waiting"): Record<string, unknown> {
    const { ef, stage, host } = this;
    const e: Record<string, unknown> = { type, at: host.now(), stage: stage.id, visit: ef.visit };
    if (ef.key.item !== undefined) e.item = ef.key.item;
    if (ef.key.fallback_for !== undefined) e.fallback_for = ef.key.fallback_for;
    e.attempt = ef.attempt;
    if (this.input !== undefined) e.input = this.input;
    const u = this.usage;
    if (u) {
      if (u.model !== undefined) e.model = u.model;
      if (u.tokens !== undefined) e.tokens = u.tokens;
      if (u.cost_usd !== undefined) e.cost_usd = u.cost_usd;
      if (u.child_run !== undefined) e.child_run = u.child_run;
      if (u.pool !== undefined) e.pool = u.pool;
      if (u.pool_key !== undefined) e.pool_key = u.pool_key;
      if (u.pool_wait_ms !== undefined) e.pool_wait_ms = u.pool_wait_ms;
      if (u.pool_wait_reason !== undefined) e.pool_wait_reason = u.pool_wait_reason;
      if (u.recorded_tokens !== undefined) e.recorded_tokens = u.recorded_tokens;
      if (u.recorded_cost_usd !== undefined) e.recorded_cost_usd = u.recorded_cost_usd;
    }
    const replayed = this.journalOf?.replayed;
    if (replayed) e.replayed = replayed;
    return e;
  }

  private succeed(result: unknown): void {
    if (this.over) return;
    let output: unknown;
    try {
      output = toJsonValue(result, `output of stage '${this.stage.id}'`);
    } catch (err) {
      return this.fail(err);
    }
    const e = this.event("stage_succeeded");
    e.output = output;
    if (this.logs) e.logs = this.logs;
    this.finish(e as unknown as BatonEvent);
  }

  private fail(err: unknown): void {
    if (this.over) return;
    if (err instanceof Detached) return this.finish(undefined);
    if (err instanceof AwaitHuman) {
      const w = this.event("stage_waiting");
      w.message = err.prompt;
      if (err.calls && err.calls.length > 0) w.calls = err.calls;
      const wait = err.wait;
      if (wait) {
        const due = wait.at ?? (wait.inMs !== undefined ? (w.at as number) + wait.inMs : undefined);
        if (due !== undefined) w.due_at = due;
        if (wait.signal !== undefined) w.signal = wait.signal;
        if (wait.sleep) w.sleep = true;
      }
      delete w.input;
      this.finish(w as unknown as BatonEvent);
      return;
    }
    const e = this.event("stage_failed");
    e.error = toStageError(err);
    if (this.logs) e.logs = this.logs;
    this.finish(e as unknown as BatonEvent);
  }

  private report(u: AttemptUsage): void {
    this.usage = mergeUsage(this.usage, u);
  }

  private finish(e: BatonEvent | undefined): void {
    this.over = true;
    this.timer?.clear();
    if (this.lease) {
      const err = e?.type === "stage_failed" ? e.error : undefined;
      const rejected = err !== undefined && (err.kind === "rate_limited" || err.kind === "overloaded");
      this.lease.release(rejected ? { rejected, ...(err.retry_after_ms !== undefined ? { retryAfterMs: err.retry_after_ms } : {}) } : {});
    }
    // Budget held by the attempt turns into usage that is reported (with its event) but not yet applied.
    const u = this.usage;
    // (What recorded turns spent was settled as each turn was recorded.)
    const beyond = u?.tokens ? usageBeyondSteps(u) : undefined;
    const spent = beyond && (beyond.input + beyond.output > 0 || beyond.usd > 0) ? { tokens: beyond.input + beyond.output, usd: beyond.usd } : undefined;
    if (this.holds && this.holds.length > 0) {
      for (let i = 0; i < this.holds.length; i++) this.host.budget.settle(this.holds[i]!, i === 0 ? spent : undefined, e !== undefined);
    } else if (spent) this.host.budget.settle(undefined, spent, e !== undefined);
    this.host.done(this, e);
  }
}

/** Usage reports of one attempt add up (an agent's failed turns, `ctx.agent` calls). */
function mergeUsage(a: AttemptUsage | undefined, u: AttemptUsage): AttemptUsage {
  if (!a) return u;
  const merged: AttemptUsage = { ...a, ...u };
  // Pool waits add up; the trace names the first pool that made the attempt wait (one with a
  // reason: it was held back), and why — else the first pool it drew from.
  if (a.pool_wait_ms !== undefined && u.pool_wait_ms !== undefined) {
    const first = a.pool_wait_reason !== undefined || u.pool_wait_reason === undefined ? a : u;
    Object.assign(merged, { pool: first.pool, pool_key: first.pool_key, pool_wait_reason: first.pool_wait_reason, pool_wait_ms: a.pool_wait_ms + u.pool_wait_ms });
    if (first.pool_key === undefined) delete (merged as { pool_key?: string }).pool_key;
    if (first.pool_wait_reason === undefined) delete (merged as { pool_wait_reason?: string }).pool_wait_reason;
  }
  if (a.tokens && u.tokens) (merged as { tokens: AttemptUsage["tokens"] }).tokens = { input: a.tokens.input + u.tokens.input, output: a.tokens.output + u.tokens.output };
  if (a.cost_usd !== undefined && u.cost_usd !== undefined) (merged as { cost_usd: number }).cost_usd = a.cost_usd + u.cost_usd;
  if (a.recorded_tokens && u.recorded_tokens) (merged as { recorded_tokens: AttemptUsage["recorded_tokens"] }).recorded_tokens = { input: a.recorded_tokens.input + u.recorded_tokens.input, output: a.recorded_tokens.output + u.recorded_tokens.output };
  if (a.recorded_cost_usd !== undefined && u.recorded_cost_usd !== undefined) (merged as { recorded_cost_usd: number }).recorded_cost_usd = a.recorded_cost_usd + u.recorded_cost_usd;
  return merged;
}
