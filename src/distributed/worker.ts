/**
 * Distributed mode (SPEC §6): `baton worker` processes on any number of machines share one
 * store (PostgreSQL) and one Redis. A worker is the third host of the one step loop
 * (runtime/loop.ts), beside the embedded driver and the test simulator:
 *
 * - `advance` jobs (one run): bring the run's cached state up to date, then `RunLoop.advance`:
 *   apply → decide → evaluate expressions and pure `value:` stages inline → redact → append
 *   under optimistic concurrency (a lost race refolds from the store, plan cached, and tries
 *   again) → perform: an `exec` job per attempt to start, an abort broadcast per attempt to cancel.
 * - `exec` jobs (one attempt): resolve the attempt's command from the engine (`commandFor`: is it
 *   still the current attempt?), run it exactly as the embedded host does, then push its outcome
 *   into the run's loop and advance right here — the result and what it decides are ONE append.
 *
 * Cancel reaches the worker running an attempt over Redis pub/sub (its AbortSignal fires there).
 * The run's budget is held in Redis (concurrent calls on different workers cannot overshoot it);
 * pools are Redis pools. A `pipeline:` stage starts its child run on the workers and detaches;
 * the child's last step re-runs the parent's attempt, which then finds the child's result.
 *
 * Job ids derive from the attempt key (one codec, engine/key.ts), so duplicates collapse. A worker
 * that dies mid-stage leaves a stalled job: the next worker to take it records the attempt as
 * interrupted and the engine starts it again (attempt n+1, at-least-once, same idempotency key).
 */
import { Queue, Worker, type Job, type ConnectionOptions } from "bullmq";
import { Redis, type RedisOptions } from "ioredis";
import { hostname } from "node:os";
import { ConflictError, retryConflicts, RunNotFoundError, type Store } from "../store/port.js";
import {
  apply, attemptId, attemptJobId, commandFor, fold, jobId, runningAttempts, usageOf,
  type AttemptKey, type BatonEvent, type CancelCommand, type ExecuteCommand, type ExprCommand, type RunStarted,
} from "../engine/index.js";
import type { Plan } from "../plan/types.js";
import { evaluateCommand } from "../runtime/effects.js";
import { Attempt, type AttemptHost } from "../runtime/attempt.js";
import { LiveWriter } from "../store/live.js";
import { liveKey } from "../store/port.js";
import { redactingStore } from "../runtime/redact.js";
import { RunLoop, type HostPort } from "../runtime/loop.js";
import { closeMcp, mcpToolsFor, mcpToolsReady } from "../runtime/mcp-tools.js";
import { childRunId } from "../runtime/children.js";
import { checkCompiledPlan, runStartedEvent } from "../runtime/started.js";
import { checkCode } from "../runtime/code.js";
import { resultOf } from "../runtime/runtime.js";
import { Detached } from "../stages/approval.js";
import type { ChildRuns } from "../stages/types.js";
import { RedisPools } from "./redis-pool.js";
import { defineBudgetScripts, NO_BUDGET, RedisBudget } from "./redis-budget.js";
import type { BatonConfig } from "../agents/config.js";

/** Job payloads. */
export interface AdvanceJob {
  readonly run: string;
  /** Re-enqueue every running execution too (the sweep's advances, after lost jobs). */
  readonly recover?: boolean;
}
export interface ExecJob extends AttemptKey {
  readonly run: string;
  /**
   * The run's sequence number once the step that started this attempt is committed. The job is
   * enqueued while that commit is in flight (the two round trips overlap): a worker that does
   * not see the attempt yet waits for the run to reach this sequence number.
   */
  readonly at_seq?: number;
}

/** Queue names (the prefix keeps several Batons on one Redis apart). */
export const ADVANCE = "baton-advance";
export const EXEC = "baton-exec";
/** Default key prefix of everything Baton keeps in Redis (queues, pools, budgets, signals). */
export const DEFAULT_PREFIX = "baton";

/** Parse a redis:// URL into BullMQ connection options. */
export function redisConnection(url: string): ConnectionOptions {
  const u = new URL(url);
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") throw new Error(`--queue must be a redis:// URL, got '${url}'`);
  return {
    host: u.hostname || "127.0.0.1",
    port: Number(u.port || 6379),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.pathname.length > 1 ? { db: Number(u.pathname.slice(1)) } : {}),
    ...(u.protocol === "rediss:" ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
  };
}

/** Queues of one deployment (prefix). */
export function queues(connection: ConnectionOptions, prefix = DEFAULT_PREFIX): { advance: Queue; exec: Queue } {
  return { advance: new Queue(ADVANCE, { connection, prefix }), exec: new Queue(EXEC, { connection, prefix }) };
}

/** Enqueue a step of a run (the submitter's side, and workers' wake-ups). */
export async function enqueueAdvance(queue: Queue, run: string, seq: number, delayMs = 0, recover = false): Promise<void> {
  await queue.add("advance", { run, ...(recover ? { recover: true } : {}) } satisfies AdvanceJob, {
    jobId: recover ? jobId("recover", run, seq) : delayMs > 0 ? jobId("wake", run, Date.now() + delayMs) : jobId("adv", run, seq),
    ...(delayMs > 0 ? { delay: delayMs } : {}),
    ...JOB_OPTS,
  });
}

/** Finished jobs leave no key behind (a failed one must not block its id forever); failures retry. */
const JOB_OPTS = { removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: "exponential", delay: 200 } } as const;

/** Options of a worker process. */
export interface WorkerOptions {
  readonly store: Store;
  readonly connection: ConnectionOptions;
  /** Key prefix in Redis: deployments with different prefixes share nothing. @default "baton" */
  readonly prefix?: string;
  /** Stage executions at once in this worker. @default 8 */
  readonly concurrency?: number;
  /** Compile a run's plan from its recorded source. */
  readonly loadPlan: (source: RunStarted["source"]) => Plan | Promise<Plan>;
  readonly config?: BatonConfig;
  /** How long a job's lock lasts; a dead worker's job is picked up after about this long. @default 10000 */
  readonly lockMs?: number;
  /**
   * How often the recovery sweep runs (one worker of the deployment at a time). Redis may lose
   * jobs (a restart of a Redis that keeps nothing on disk); the store does not, so the sweep
   * re-creates them for running runs no worker has advanced for a while. @default 5000
   */
  readonly sweepMs?: number;
  readonly log?: (line: string) => void;
  /**
   * Code pinning: continue runs whose pinned `run:` modules differ from this worker's code
   * (recorded as `code_changed`). Without it such a run is refused, with a log line, before any
   * of its stages runs here. @default false
   */
  readonly allowCodeChange?: boolean;
}

/** A `baton worker`: runs `advance` and `exec` jobs until closed. */
export class BatonWorker {
  private readonly runs = new Map<string, RunLoop>();
  /** The log of each cached run as stored (a lost append race refolds from it plus what is new). */
  private readonly logs = new Map<string, BatonEvent[]>();
  /** When each run was last marked active for the sweep (marked at most once a second). */
  private readonly marked = new Map<string, number>();
  /** Compiled plans by recorded source (a lost race or a new run never recompiles). */
  private readonly plans = new Map<string, Promise<Plan>>();
  /** Attempts running on this worker, by `run|attemptId`. */
  private readonly attempts = new Map<string, Attempt>();
  /** Attempts aborted anywhere in the deployment lately (an exec job that arrives after its abort does not start). */
  private readonly aborted = new Map<string, number>();
  private readonly advanceQ: Queue;
  private readonly execQ: Queue;
  private readonly workers: Worker[] = [];
  /** Pools held in Redis, so their limits hold across every worker. */
  private readonly pools: RedisPools;
  private readonly redis: Redis;
  private readonly sub: Redis;
  readonly prefix: string;
  readonly id = `${hostname()}:${process.pid}`;
  private readonly host: HostPort;
  private readonly abortChannel: string;

  private readonly o: WorkerOptions;

  constructor(o: WorkerOptions) {
    // Every write of this worker (steps, sub-pipeline starts, code_changed) is redacted there, once.
    this.o = { ...o, store: redactingStore(o.store) };
    this.prefix = o.prefix ?? DEFAULT_PREFIX;
    this.pools = new RedisPools(o.connection as RedisOptions, { prefix: `${this.prefix}:pool`, limits: o.config?.limits ?? {} });
    const q = queues(o.connection, this.prefix);
    this.advanceQ = q.advance;
    this.execQ = q.exec;
    const ropts = { ...(o.connection as RedisOptions), maxRetriesPerRequest: null } as never;
    this.redis = new Redis(ropts);
    this.redis.on("error", () => undefined);
    defineBudgetScripts(this.redis);
    this.sub = new Redis(ropts);
    this.sub.on("error", () => undefined);
    this.abortChannel = `${this.prefix}:abort`;
    const self = this;
    this.host = {
      now: Date.now,
      // BullMQ's worker concurrency bounds executions per worker: exec jobs wait in the queue.
      slots: () => Infinity,
      append: (run, events, seq) => self.appendAndDispatch(run, events, seq),
      start: (loop, cmd) => {
        // Enqueued with the append already (see appendAndDispatch); anything else now.
        const id = attemptJobId(loop.runId, cmd.key, cmd.attempt);
        if (self.predispatched.delete(id)) return;
        return self.dispatch(loop.runId, [cmd]);
      },
      abort: (loop, cmd) => self.abort(loop, cmd),
      evaluate: (loop, cmd: ExprCommand) => evaluateCommand(loop.plan, cmd, Date.now),
      inline: (loop, cmd) => {
        // `value:` stages are pure: evaluated in the step instead of a job round trip.
        const st = loop.plan.stages[cmd.stage]!;
        return st.spec.kind === "value" && st.limit === undefined && cmd.fallbackFor === undefined ? self.runAttempt(loop, cmd) : undefined;
      },
      // An event with no place (a superseded attempt's result) is not stored: say so when debugging.
      applied: (e, placed) => {
        if (!placed && process.env.BATON_WORKER_DEBUG) self.o.log?.(`not stored (no place in the run any more): ${e.type} ${"stage" in e ? e.stage : ""}`);
      },
      appended: (loop, events) => {
        const log = self.logs.get(loop.runId);
        if (log) for (const e of events) log.push(e);
      },
    };
  }

  /** Start consuming jobs. */
  start(): void {
    const lockDuration = this.o.lockMs ?? 10_000;
    const common = { connection: this.o.connection, prefix: this.prefix, lockDuration, stalledInterval: Math.max(1000, lockDuration / 2), maxStalledCount: 100 };
    this.workers.push(new Worker<AdvanceJob>(ADVANCE, (job) => this.advance(job.data.run, job.data.recover === true), { ...common, concurrency: Math.max(4, this.o.concurrency ?? 8) }));
    this.workers.push(new Worker<ExecJob>(EXEC, (job) => this.exec(job), { ...common, concurrency: this.o.concurrency ?? 8 }));
    for (const w of this.workers) {
      w.on("error", (err) => this.o.log?.(`worker error: ${err.message}`));
      w.on("failed", (job, err) => this.o.log?.(`job ${job?.id ?? "?"} failed: ${err.message}`));
    }
    void this.sub.subscribe(this.abortChannel).catch((err: Error) => this.o.log?.(`abort channel: ${err.message}`));
    this.sub.on("message", (channel: string, message: string) => {
      if (channel !== this.abortChannel) return;
      const { id, reason } = JSON.parse(message) as { id: string; reason: string };
      this.noteAborted(id);
      this.attempts.get(id)?.cancel(new DOMException(reason, "AbortError"));
    });
    this.sweeper = setInterval(() => void this.sweep().catch((err: Error) => this.o.log?.(`sweep: ${err.message}`)), this.o.sweepMs ?? 5000);
    this.sweeper.unref();
    // Runs with attempts running here are alive: mark them for the sweep (one write per interval).
    this.heartbeat = setInterval(() => {
      const runs = new Set([...this.attempts.keys()].map((k) => k.slice(0, k.indexOf("|"))));
      if (runs.size === 0) return;
      const now = String(Date.now());
      void this.redis.hset(`${this.prefix}:active`, Object.fromEntries([...runs].map((r) => [r, now]))).catch(() => undefined);
    }, Math.max(50, (this.o.sweepMs ?? 5000) / 2));
    this.heartbeat.unref();
  }

  private sweeper: NodeJS.Timeout | undefined;
  /** Live text of turns streaming on this worker (see runAttempt). */
  private live: LiveWriter | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  /**
   * Recovery sweep, run by one worker of the deployment at a time (a Redis lock): enqueue a
   * recovering step for every running run that no worker advanced — or ran an attempt of —
   * within a few sweep intervals, and that no live process holds a lease on (a `baton run`
   * driving it in its own process).
   */
  async sweep(): Promise<void> {
    const every = this.o.sweepMs ?? 5000;
    const got = await this.redis.set(`${this.prefix}:sweep`, this.id, "PX", Math.max(100, every - 50), "NX");
    if (got !== "OK") return;
    const runs = await this.o.store.list({ status: "running", limit: 1_000_000 });
    if (runs.length === 0) return;
    const seen = await this.redis.hmget(`${this.prefix}:active`, ...runs.map((r) => r.id));
    const now = Date.now();
    const quiet = Math.max(3 * every, 1000);
    await Promise.all(runs.map(async (r, i) => {
      const last = Number(seen[i] ?? 0);
      if (now - last < quiet) return;
      if ((await this.o.store.leaseHolder(r.id)) !== undefined) return; // driven by a live process
      await this.redis.hset(`${this.prefix}:active`, r.id, String(now));
      await enqueueAdvance(this.advanceQ, r.id, r.seq, 0, true);
    }));
  }

  /** Stop taking jobs; wait for the ones in progress (SIGTERM: finish what is in flight). */
  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.heartbeat) clearInterval(this.heartbeat);
    await Promise.all(this.workers.map((w) => w.close()));
    await this.advanceQ.close();
    await this.execQ.close();
    await this.pools.close();
    await closeMcp();
    await this.live?.close();
    this.sub.disconnect();
    this.redis.disconnect();
  }

  private planFor(first: RunStarted): Promise<Plan> {
    const key = `${first.plan_hash}|${first.compiled_hash ?? ""}|${first.source.file ?? ""}`;
    let p = this.plans.get(key);
    if (!p) {
      p = Promise.resolve(this.o.loadPlan(first.source));
      p.catch(() => this.plans.delete(key));
      this.plans.set(key, p);
    }
    return p;
  }

  /** The run's loop, its state brought up to date with the store. */
  private async sync(run: string): Promise<RunLoop> {
    const loop = this.runs.get(run);
    if (!loop) return this.load(run);
    const more = await this.o.store.eventsAfter(run, loop.seq);
    if (more.some((e) => e.type === "code_changed")) {
      // Someone continued it with changed code: check this worker's code against the new pin.
      this.forget(run);
      return this.load(run);
    }
    const log = this.logs.get(run)!;
    for (const e of more) {
      apply(loop.state, e);
      log.push(e);
    }
    loop.seq += more.length;
    return loop;
  }

  /** Runs refused for changed code, and the reason last logged (one log line per run and reason). */
  private readonly refused = new Map<string, string>();

  /** Code pinning (runtime/code.ts): refuse a run whose pinned `run:` modules differ from this worker's, or (allowed) the `code_changed` to record. */
  private checkCode(run: string, events: readonly BatonEvent[], plan: Plan): import("../engine/index.js").CodeChanged | undefined {
    try {
      const changed = checkCode(run, events, plan, { allow: this.o.allowCodeChange === true, flag: "`baton worker --allow-code-change`", at: Date.now(), by: `worker ${this.id}` });
      this.refused.delete(run);
      return changed;
    } catch (err) {
      const msg = (err as Error).message;
      if (this.refused.get(run) !== msg) {
        this.refused.set(run, msg);
        if (this.refused.size > 10_000) this.refused.delete(this.refused.keys().next().value!);
        this.o.log?.(`refusing to continue ${msg}`);
      }
      throw err;
    }
  }

  private async load(run: string): Promise<RunLoop> {
    let { events } = await this.o.store.load(run);
    const first = events[0] as RunStarted;
    const plan = await this.planFor(first);
    checkCompiledPlan(first, plan); // a run this version compiles differently is not continued (the job fails, loudly)
    const changed = this.checkCode(run, events, plan); // nor one whose run: modules differ here (unless allowed)
    if (changed) {
      try {
        await this.o.store.append(run, [changed], events.length);
      } catch (err) {
        if (err instanceof ConflictError) return this.load(run);
        throw err;
      }
      this.o.log?.(`run ${run}: continuing with changed run: modules (${Object.keys(changed.files).join(", ")}), recorded as code_changed`);
      events = [...events, changed];
    }
    if (Object.keys(plan.mcp).length > 0) await mcpToolsFor(plan); // MCP tool lists, once per plan
    // fold marks every node for decide's first look; later events mark what they change.
    const loop = new RunLoop(this.host, plan, fold(plan, events), run, events.length);
    this.runs.set(run, loop);
    this.logs.set(run, events);
    return loop;
  }

  private forget(run: string): void {
    this.runs.delete(run);
    this.logs.delete(run);
    this.marked.delete(run);
  }

  private readonly locks = new Map<string, Promise<unknown>>();

  /** Run `fn` alone for this run in this worker: steps never interleave on the cached state. */
  private async locked<T>(run: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(run) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.locks.set(run, settled);
    try {
      return await next;
    } finally {
      if (this.locks.get(run) === settled) this.locks.delete(run);
    }
  }

  /** Advance until the step loop is quiet; a lost append race refolds from the store and tries again. */
  private async step(loop: RunLoop): Promise<void> {
    for (let tries = 0; ; tries++) {
      try {
        let r = await loop.advance();
        while (r.more || loop.hasPending) r = await loop.advance();
        break;
      } catch (err) {
        if (!(err instanceof ConflictError) || tries >= 30) throw err;
        // Another worker advanced the run: refold from the cached log plus what it appended
        // (the plan stays compiled), then decide again with the results of this step.
        const log = this.logs.get(loop.runId);
        const seq = log?.length ?? 0;
        const more = log ? await this.o.store.eventsAfter(loop.runId, seq) : (await this.o.store.load(loop.runId)).events;
        const events = log ? log.concat(more) : more;
        this.logs.set(loop.runId, events);
        loop.rebase(fold(loop.plan, events), events.length);
      }
    }
    const now = Date.now();
    if (now - (this.marked.get(loop.runId) ?? 0) > 1000) {
      this.marked.set(loop.runId, now);
      await this.redis.hset(`${this.prefix}:active`, loop.runId, String(now));
    }
    const wake = loop.wakeAt;
    if (wake !== undefined) await enqueueAdvance(this.advanceQ, loop.runId, loop.seq, Math.max(1, wake - Date.now()));
    if (loop.stopped) await this.stopped(loop);
  }

  /** A run stopped (finished, or waiting for a human): wake its parent's pipeline attempt; drop the cache. */
  private async stopped(loop: RunLoop): Promise<void> {
    const s = loop.state.status;
    if (s === "succeeded" || s === "failed" || s === "cancelled") {
      this.forget(loop.runId);
      await this.redis.hdel(`${this.prefix}:active`, loop.runId);
    }
    const parent = await this.redis.get(`${this.prefix}:parent:${loop.runId}`);
    if (!parent) return;
    const p = JSON.parse(parent) as ExecJob;
    await this.execQ.add("exec", p, { jobId: `${attemptJobId(p.run, p, p.attempt)}|child|${loop.seq}`, ...JOB_OPTS });
  }

  /** One engine step for a run; then dispatch its executions. */
  advance(run: string, recover = false): Promise<void> {
    return this.locked(run, async () => {
      const loop = await this.sync(run);
      const s = loop.state.status;
      if (s === "succeeded" || s === "failed" || s === "cancelled") {
        await this.stopped(loop);
        return;
      }
      // A recovering step makes sure every running attempt has its job (a worker may have died
      // between appending stage_started and enqueueing, or Redis lost it).
      if (recover) await this.dispatchKeys(run, runningAttempts(loop.state));
      await this.step(loop);
    });
  }

  /** Exec jobs enqueued together with the append of the step that started them. */
  private readonly predispatched = new Set<string>();

  /**
   * Append a step and, at the same time, enqueue the exec jobs of the attempts it starts: the
   * PostgreSQL commit and the Redis round trip overlap. A job is only acted on once its start is
   * in the log (the exec job waits for `at_seq`); if the append loses a race, its jobs find
   * their attempt not current and end (the step is decided again and starts what it must).
   */
  private async appendAndDispatch(run: string, events: readonly BatonEvent[], seq: number): Promise<number> {
    const done = new Set<string>();
    for (const e of events) if (e.type === "stage_succeeded" || e.type === "stage_failed" || e.type === "stage_waiting" || e.type === "stage_cancelled") done.add(attemptId(e, e.attempt));
    const starts: AttemptKey[] = [];
    for (const e of events) {
      if (e.type !== "stage_started" || done.has(attemptId(e, e.attempt))) continue;
      starts.push({ stage: e.stage, visit: e.visit, attempt: e.attempt, ...(e.item !== undefined ? { item: e.item } : {}), ...(e.fallback_for !== undefined ? { fallback_for: e.fallback_for } : {}) });
    }
    if (starts.length === 0) return this.o.store.append(run, events, seq);
    const atSeq = seq + events.length;
    const jobs = this.dispatchKeys(run, starts, atSeq);
    try {
      const r = await this.o.store.append(run, events, seq);
      await jobs;
      for (const k of starts) this.predispatched.add(attemptJobId(run, k, k.attempt));
      return r;
    } catch (err) {
      await jobs.catch(() => undefined);
      throw err;
    }
  }

  /** Enqueue a job per attempt to start (ids collapse duplicates). */
  private dispatch(run: string, cmds: readonly ExecuteCommand[]): Promise<void> {
    return this.dispatchKeys(run, cmds.map((c) => ({ ...c.key, attempt: c.attempt })));
  }

  private async dispatchKeys(run: string, keys: readonly AttemptKey[], atSeq?: number): Promise<void> {
    if (keys.length === 0) return;
    if (keys.length === 1) {
      // One job (a chain's next stage): a plain add is one script call, no MULTI pipeline.
      const k = keys[0]!;
      await this.execQ.add("exec", { run, ...k, ...(atSeq !== undefined ? { at_seq: atSeq } : {}) } satisfies ExecJob, { jobId: attemptJobId(run, k, k.attempt), ...JOB_OPTS });
      return;
    }
    await this.execQ.addBulk(keys.map((k) => ({ name: "exec", data: { run, ...k, ...(atSeq !== undefined ? { at_seq: atSeq } : {}) } satisfies ExecJob, opts: { jobId: attemptJobId(run, k, k.attempt), ...JOB_OPTS } })));
  }

  /** Abort an attempt wherever it runs: on this worker at once, on the others through the abort channel. */
  private async abort(loop: RunLoop, cmd: CancelCommand): Promise<void> {
    const id = `${loop.runId}|${attemptId(cmd.key, cmd.attempt)}`;
    this.noteAborted(id);
    this.attempts.get(id)?.cancel(new DOMException(cmd.reason, "AbortError"));
    await this.redis.publish(this.abortChannel, JSON.stringify({ id, reason: cmd.reason }));
    // A sub-pipeline stage's attempt is its child run: cancel that.
    const idx = loop.plan.stageIndex.get(cmd.key.stage);
    if (idx !== undefined && loop.plan.stages[idx]!.spec.kind === "pipeline") await this.cancelChild(loop.runId, cmd);
  }

  private noteAborted(id: string): void {
    const now = Date.now();
    this.aborted.set(id, now);
    if (this.aborted.size > 10_000) for (const [k, t] of this.aborted) if (now - t > 600_000 || this.aborted.size > 10_000) this.aborted.delete(k);
  }

  private async cancelChild(run: string, cmd: CancelCommand): Promise<void> {
    const child = await this.redis.get(`${this.prefix}:child:${run}|${attemptId(cmd.key, cmd.attempt)}`);
    if (!child) return;
    await requestCancel(this.o.store, child, "the parent run's stage was cancelled");
    await enqueueAdvance(this.advanceQ, child, Date.now());
  }

  /** Run one attempt as the embedded host does; resolves to its outcome event (undefined if cancelled or detached). */
  private runAttempt(loop: RunLoop, cmd: ExecuteCommand): Promise<BatonEvent | undefined> {
    const plan = loop.plan;
    const id = `${loop.runId}|${attemptId(cmd.key, cmd.attempt)}`;
    return new Promise<BatonEvent | undefined>((resolve) => {
      const host: AttemptHost = {
        plan, now: Date.now,
        budget: plan.budget ? new RedisBudget(this.redis, this.prefix, plan, loop.runId, () => usageOf(loop.state)) : NO_BUDGET,
        acquire: async (stage, tokens, signal, pool, key) => {
          const name = pool ?? stage.limit;
          return name !== undefined && this.pools.has(name, plan.limits) ? this.pools.acquire(name, tokens, signal, plan.limits, key) : undefined;
        },
        record: (_a, e) => this.deliver(loop.runId, e, true).then(() => this.live?.observe(loop.runId, [e])),
        // Live turn text, coalesced into the store for other processes (the UI).
        ...(this.o.store.putLive ? { delta: (_a: Attempt, text: string, turn: number) => void (this.live ??= new LiveWriter(this.o.store)).delta(loop.runId, liveKey(cmd.key, turn), text) } : {}),
        services: {
          config: this.o.config ?? {},
          children: this.childRuns(loop.runId, cmd),
          ...(mcpToolsReady(plan) ? { mcp: mcpToolsReady(plan)! } : {}),
        },
        done: (_a, e) => {
          this.attempts.delete(id);
          this.live?.endExec(loop.runId, cmd.key);
          resolve(e);
        },
      };
      const a = new Attempt(host, cmd);
      this.attempts.set(id, a);
      a.start();
    });
  }

  /**
   * Hand an event of an attempt that ran here (its outcome, or a completed step) to the run's
   * loop and step it. Group commit: events of one run that arrive while a step is in progress are
   * pushed now and appended together by the next step (the later locked calls then find nothing
   * to do). `durable`: resolve once the event is stored.
   */
  private async deliver(run: string, e: BatonEvent, durable: boolean): Promise<void> {
    let stored: Promise<void> | undefined;
    const push = (loop: RunLoop): void => {
      if (durable) stored = loop.pushDurable(e);
      else loop.push(e);
    };
    const cached = this.runs.get(run);
    if (cached) push(cached);
    await this.locked(run, async () => {
      let loop = this.runs.get(run);
      if (!loop || loop !== cached) {
        loop ??= await this.sync(run);
        if (loop !== cached) push(loop);
      }
      if (loop.hasPending) await this.step(loop);
    });
    await stored;
  }

  /**
   * Sub-pipelines on the workers: the child is an ordinary run in the shared store, submitted to
   * the workers; the parent's attempt detaches and runs again when the child stops.
   */
  private childRuns(run: string, cmd: ExecuteCommand): ChildRuns {
    return {
      run: async (plan, inputs, base, attempt) => {
        const { id, existing } = await childRunId(this.o.store, base, attempt);
        if (existing && existing.status !== "running") return resultOf(plan, id, (await this.o.store.load(id)).events);
        const link: ExecJob = { run, ...cmd.key, attempt: cmd.attempt };
        await this.redis.set(`${this.prefix}:parent:${id}`, JSON.stringify(link), "PX", 30 * 86_400_000);
        await this.redis.set(`${this.prefix}:child:${run}|${attemptId(cmd.key, cmd.attempt)}`, id, "PX", 30 * 86_400_000);
        if (!existing) {
          const started = runStartedEvent(plan, { runId: id, at: Date.now(), inputs, seed: Math.floor(Math.random() * 0x7fffffff), parentId: run });
          try {
            await this.o.store.create({ id, pipeline: plan.name, planHash: plan.hash, parentId: run }, [started]);
          } catch (err) {
            if (!(await this.o.store.get(id))) throw err; // (a duplicate job created it meanwhile)
          }
        }
        await enqueueAdvance(this.advanceQ, id, existing?.seq ?? 1);
        throw new Detached(`sub-pipeline run ${id} runs on the workers`);
      },
    };
  }

  /** Run one attempt, unless it is no longer the current one; then advance its run with the outcome. */
  async exec(job: Job<ExecJob>): Promise<void> {
    const j = job.data;
    const key: AttemptKey = { stage: j.stage, visit: j.visit, attempt: j.attempt, ...(j.item !== undefined ? { item: j.item } : {}), ...(j.fallback_for !== undefined ? { fallback_for: j.fallback_for } : {}) };
    const id = `${j.run}|${attemptId(key, key.attempt)}`;
    if (this.aborted.has(id)) return;
    const debug = process.env.BATON_WORKER_DEBUG ? (m: string) => this.o.log?.(`[${id}] ${m}`) : undefined;
    const found = await this.locked(j.run, async () => {
      // A detached attempt running again (its sub-pipeline child stopped) continues from the
      // steps it recorded before it detached — possibly through another worker: read them first.
      const rerun = job.id?.includes("|child|") === true;
      let loop: RunLoop = rerun ? await this.sync(j.run) : (this.runs.get(j.run) ?? (await this.load(j.run)));
      let cmd = commandFor(loop.state, key);
      if (!cmd) {
        loop = await this.sync(j.run);
        cmd = commandFor(loop.state, key);
      }
      // Enqueued while the step that starts it was committing: wait for that commit to be visible.
      for (let i = 1; !cmd && j.at_seq !== undefined && loop.seq < j.at_seq && i <= 12; i++) {
        await new Promise((r) => setTimeout(r, 2 * i * i));
        loop = await this.sync(j.run);
        cmd = commandFor(loop.state, key);
      }
      if (!cmd) return undefined;
      if (job.stalledCounter > 0 && !job.id?.includes("|child|")) {
        // The worker running this attempt died (its job stalled): record the interruption; the
        // engine starts the attempt again (n+1) and the trace shows both.
        debug?.("stalled: recording the attempt as interrupted");
        const reason = "interrupted: the worker running it stopped";
        loop.push({ type: "stage_cancelled", at: Date.now(), ...cmd.key, attempt: cmd.attempt, reason });
        await this.step(loop);
        // Its worker may only be stalled (an event loop blocked past the lock), not dead: abort it there.
        this.noteAborted(id);
        await this.redis.publish(this.abortChannel, JSON.stringify({ id, reason }));
        return undefined;
      }
      return { loop, cmd };
    });
    if (!found) {
      debug?.("superseded before it ran");
      return;
    }
    const result = await this.runAttempt(found.loop, found.cmd);
    if (!result) return;
    await this.deliver(j.run, result, false);
  }
}

/** Record a cancel request on a run driven by the workers (another appender may race: retried). */
export function requestCancel(raw: Store, run: string, reason: string): Promise<boolean> {
  const store = redactingStore(raw);
  return retryConflicts(run, async () => {
    const rec = await store.get(run);
    if (!rec) throw new RunNotFoundError(run);
    if (rec.status === "succeeded" || rec.status === "failed" || rec.status === "cancelled") return false;
    await store.append(run, [{ type: "run_cancel_requested", at: Date.now(), reason }], rec.seq);
    return true;
  });
}
