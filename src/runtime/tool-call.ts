/**
 * One tool call of an agent's turn (SPEC §8), run by the shell: a declared tool is a small stage
 * — its `run:`, `http:`, `pipeline:` or `value:` runs through the same stage-kind executors as a
 * stage, with `args` and `inputs` in scope — with its own retry policy, per-attempt timeout and
 * pool; an MCP tool is called on its server. The outcome (output or error, attempts) is what the
 * loop records and shows the model; a call that throws past its retries is a failed outcome.
 */
import { backoffDelay } from "../engine/index.js";
import type { StagePlan } from "../plan/types.js";
import { AwaitHuman, Detached } from "../stages/approval.js";
import { executorFor } from "../stages/index.js";
import type { ExecuteArgs, JournalPort, StageContext, StepMeta, ToolCallRequest, ToolOutcome } from "../stages/types.js";
import { toStageError } from "./errors.js";
import { evaluatePoolKey } from "../plan/limit.js";
import { toJsonValue } from "./json.js";
import { runStep } from "./journal.js";
import { setLongTimeout, type LongTimer } from "../base/timers.js";

/** A journal whose step names live under a prefix (a tool call's own `ctx.step`s). */
class PrefixedJournal implements JournalPort {
  constructor(private readonly j: JournalPort, private readonly prefix: string) {}
  lookup(name: string): { found: true; value: unknown } | { found: false } {
    return this.j.lookup(this.prefix + name);
  }
  has(name: string): boolean {
    return this.j.has(this.prefix + name);
  }
  claim(name: string): void {
    this.j.claim(this.prefix + name);
  }
  record(name: string, output: unknown, startedAt: number, meta: StepMeta): Promise<void> {
    return this.j.record(this.prefix + name, output, startedAt, meta);
  }
  step<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    return runStep(this, name, fn, Date.now, `tool call ${this.prefix.slice(0, -1)}`);
  }
}

/** The `ctx` a `run:` tool's handler gets: `input` = the call's arguments. */
class ToolCtx implements StageContext {
  readonly outputs: Record<string, unknown> = {};
  readonly route = undefined;
  readonly prev = undefined;
  constructor(
    private readonly parent: StageContext,
    readonly input: Record<string, unknown>,
    readonly attempt: number,
    readonly signal: AbortSignal,
    readonly idempotencyKey: string,
    private readonly journal: JournalPort,
    private readonly label: string,
  ) {}
  get inputs(): Record<string, unknown> {
    return this.parent.inputs;
  }
  get item(): unknown {
    return this.parent.item;
  }
  get index(): number | undefined {
    return this.parent.index;
  }
  get visit(): number {
    return this.parent.visit;
  }
  get runId(): string {
    return this.parent.runId;
  }
  log(message: string): void {
    this.parent.log(`${this.label}: ${message}`);
  }
  step<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    return this.journal.step(name, fn);
  }
  agent(name: string, opts: { prompt: string; output?: object; step?: string }): Promise<unknown> {
    return this.parent.agent(name, { ...opts, step: opts.step ?? `${this.label}/agent:${name}` });
  }
}

/** A sleep that ends early (rejecting) when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setLongTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      t.clear();
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

const safeId = (id: string): string => id.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64);

/** Run one tool call of `args`' agent: retries, timeout and pool of the tool; never throws for the call's own failure. */
export async function callTool(args: ExecuteArgs, req: ToolCallRequest): Promise<ToolOutcome> {
  const { ctx, stage } = args;
  const plan = req.plan;
  const retry = plan?.retry ?? { attempts: 2, backoff: "exponential" as const, delayMs: 500, maxDelayMs: 5000, jitter: "full" as const };
  const label = `tool '${req.tool}'`;
  let attempt = 0;
  for (;;) {
    attempt++;
    const ctrl = new AbortController();
    const onAbort = (): void => ctrl.abort(ctx.signal.reason);
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener("abort", onAbort, { once: true });
    let timer: LongTimer | undefined;
    let lease: Awaited<ReturnType<ExecuteArgs["acquire"]>>;
    try {
      if (plan?.limit !== undefined) {
        // A keyed limit: the key is evaluated per call, with the call's args and the run's inputs.
        const key = plan.limitKey === undefined ? undefined : await evaluatePoolKey(plan.limitKey, { inputs: args.scope.inputs, args: req.args }, label);
        lease = await args.acquire(0, plan.limit, key);
      }
      // The timeout bounds the call, not the wait for its pool.
      if (plan?.timeoutMs !== undefined) {
        const ms = plan.timeoutMs;
        timer = setLongTimeout(() => ctrl.abort(new DOMException(`${label} call ${req.id} attempt ${attempt} timed out after ${ms} ms`, "TimeoutError")), ms);
      }
      const output = await Promise.race([
        runOnce(args, req, attempt, ctrl.signal, label),
        new Promise<never>((_, reject) => {
          if (ctrl.signal.aborted) reject(ctrl.signal.reason);
          else ctrl.signal.addEventListener("abort", () => reject(ctrl.signal.reason), { once: true });
        }),
      ]);
      lease?.release({});
      return { status: "succeeded", output: toJsonValue(output, `output of ${label}`), attempts: attempt, started_at: req.startedAt, ended_at: Date.now() };
    } catch (err) {
      if (err instanceof Detached || err instanceof AwaitHuman) throw err;
      // The attempt itself was cancelled or timed out: that is the stage's, not the call's.
      if (ctx.signal.aborted) throw ctx.signal.reason ?? err;
      const e = toStageError(err);
      const rejected = e.kind === "rate_limited" || e.kind === "overloaded";
      lease?.release(rejected ? { rejected, ...(e.retry_after_ms !== undefined ? { retryAfterMs: e.retry_after_ms } : {}) } : {});
      if (e.retryable && attempt < retry.attempts) {
        ctx.log(`${label} call ${req.id} attempt ${attempt} failed (${e.message}); retrying`);
        const wait = Math.max(e.retry_after_ms ?? 0, backoffDelay(retry, attempt, Math.random()));
        await sleep(Math.min(wait, retry.maxDelayMs), ctx.signal);
        continue;
      }
      return { status: "failed", error: { kind: e.kind, message: e.message, retryable: e.retryable }, attempts: attempt, started_at: req.startedAt, ended_at: Date.now() };
    } finally {
      timer?.clear();
      ctx.signal.removeEventListener("abort", onAbort);
    }
  }
}

/** One attempt of the call. */
async function runOnce(args: ExecuteArgs, req: ToolCallRequest, attempt: number, signal: AbortSignal, label: string): Promise<unknown> {
  if (req.mcp) {
    const mcp = args.services.mcp;
    if (!mcp) throw new Error(`MCP server '${req.mcp.server}' is not available`);
    return mcp.call(req.mcp.server, req.mcp.tool, req.args, signal);
  }
  const plan = req.plan!;
  const parent = args.stage;
  const stage: StagePlan = {
    ...parent,
    id: `${parent.id}.${req.tool}.${safeId(req.id)}`,
    spec: plan.spec,
    retry: plan.retry,
    ...(plan.timeoutMs !== undefined ? { timeoutMs: plan.timeoutMs } : {}),
  };
  delete (stage as { input?: unknown }).input;
  delete (stage as { limit?: unknown }).limit;
  delete (stage as { limitKey?: unknown }).limitKey;
  const journal = new PrefixedJournal(args.journal, req.journalPrefix);
  const ctx = new ToolCtx(args.ctx, req.args, attempt, signal, `${args.ctx.idempotencyKey}:call:${req.id}`, journal, label);
  const toolArgs: ExecuteArgs = {
    ...args,
    stage,
    ctx,
    scope: { inputs: args.scope.inputs, args: req.args },
    previous: undefined,
    journal,
    report: () => undefined,
  };
  delete (toolArgs as { delta?: unknown }).delta;
  return executorFor(plan.spec.kind)(toolArgs);
}
