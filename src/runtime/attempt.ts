/**
 * One attempt of one execution: evaluate the stage's input, call its kind's executor with a
 * `ctx`, and report exactly one outcome (or none, when cancelled). Kept allocation-light: this
 * is the per-stage hot path. Synchronous handlers complete without a promise, and the
 * AbortController exists only once a handler reads `ctx.signal`.
 */
import { idempotencyKey, type BatonEvent, type ExecuteCommand } from "../engine/index.js";
import type { Plan, StagePlan } from "../plan/types.js";
import { executorFor, type StageContext } from "../stages/index.js";
import type { RunServices } from "../stages/types.js";
import type { PoolLease } from "./pools.js";
import type { AttemptUsage } from "../engine/events.js";
import { toStageError } from "./errors.js";
import { toJsonValue } from "./json.js";
import { AwaitHuman, Detached } from "../stages/approval.js";
import type { BudgetHold, BudgetPort } from "./budget.js";

/** What an attempt needs from its host (everything about the run itself comes in its command). */
export interface AttemptHost {
  readonly plan: Plan;
  now(): number;
  readonly services: RunServices;
  /** Wait for a pool; undefined when the stage has none. */
  acquire(stage: StagePlan, tokens: number, signal: AbortSignal): Promise<PoolLease | undefined>;
  /** The run's budget (held estimates of attempts in flight; shared by every attempt of the run). */
  readonly budget: BudgetPort;
  /** The attempt is over; `event` (its outcome) is undefined when it was cancelled. */
  done(a: Attempt, event: BatonEvent | undefined): void;
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
}

export class Attempt {
  readonly stage: StagePlan;
  /** The host's key for this attempt (set by the host that tracks it). */
  hostKey: string | undefined;
  private ctrl: AbortController | undefined;
  private reason: unknown;
  private over = false;
  private timer: NodeJS.Timeout | undefined;
  private input: unknown;
  logs: string[] | undefined;
  /** Model usage reported by the executor (agent stages). */
  private usage: AttemptUsage | undefined;
  /** Budget this attempt holds until it is over. */
  private holds: BudgetHold[] | undefined;
  /** A pool lease held by the attempt itself (stages other than agents, which manage their own). */
  private lease: PoolLease | undefined;

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

  /** (Re)start the per-attempt timeout. */
  private armTimeout(): void {
    const { stage, ef } = this;
    if (stage.timeoutMs === undefined || this.over) return;
    if (this.timer) clearTimeout(this.timer);
    const ms = stage.timeoutMs;
    this.timer = setTimeout(() => {
      const reason = new DOMException(`stage '${stage.id}' attempt ${ef.attempt} timed out after ${ms} ms`, "TimeoutError");
      this.abort(reason);
      this.fail(reason); // a late result of the timed-out attempt is ignored
    }, ms);
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
      const args = {
        plan, stage, ctx, scope, previous, services: host.services,
        report: (u: AttemptUsage) => void (this.usage = { ...this.usage, ...u }),
        acquire: async (tokens: number) => {
          const lease = await host.acquire(stage, tokens, ctx.signal);
          if (lease) {
            this.report({ pool: lease.pool, pool_wait_ms: lease.waitedMs, ...(lease.reason ? { pool_wait_reason: lease.reason } : {}) });
            // The per-attempt timeout bounds the call, not the wait for the pool: start it anew.
            if (lease.waitedMs > 0) this.armTimeout();
          }
          return lease;
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
      if (u.pool_wait_ms !== undefined) e.pool_wait_ms = u.pool_wait_ms;
      if (u.pool_wait_reason !== undefined) e.pool_wait_reason = u.pool_wait_reason;
    }
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
    this.usage = { ...this.usage, ...u };
  }

  private finish(e: BatonEvent | undefined): void {
    this.over = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.lease) {
      const err = e?.type === "stage_failed" ? e.error : undefined;
      const rejected = err !== undefined && (err.kind === "rate_limited" || err.kind === "overloaded");
      this.lease.release(rejected ? { rejected, ...(err.retry_after_ms !== undefined ? { retryAfterMs: err.retry_after_ms } : {}) } : {});
    }
    // Budget held by the attempt turns into usage that is reported (with its event) but not yet applied.
    const u = this.usage;
    const spent = u?.tokens ? { tokens: u.tokens.input + u.tokens.output, usd: u.cost_usd ?? 0 } : undefined;
    if (this.holds) {
      for (let i = 0; i < this.holds.length; i++) this.host.budget.settle(this.holds[i]!, i === 0 ? spent : undefined, e !== undefined);
    } else if (spent) this.host.budget.settle(undefined, spent, e !== undefined);
    this.host.done(this, e);
  }
}
