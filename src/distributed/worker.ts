/**
 * Distributed mode (SPEC §6): `baton worker` processes on any number of machines share one
 * store (PostgreSQL) and one Redis. BullMQ does the dispatch, stalled-job recovery and delays:
 *
 * - `advance` jobs (one run): load the run's log, fold, `decide` — the same pure engine as a
 *   single process — evaluate expression effects inline, append the step's events under
 *   optimistic concurrency (a conflict reloads and decides again), then enqueue an `exec` job per
 *   execution to start and a delayed `advance` for the next retry or timeout.
 * - `exec` jobs (one attempt): check the attempt is still the current one, run it exactly as the
 *   local runtime does, append its result, enqueue an `advance`.
 *
 * Job ids derive from (run, stage, visit, item, attempt), so duplicates collapse. A worker that
 * dies mid-stage leaves a stalled job that BullMQ hands to another worker; a result appended
 * twice is impossible because the second append finds the attempt no longer running.
 */
import { Queue, Worker, type Job, type ConnectionOptions } from "bullmq";
import { hostname } from "node:os";
import { ConflictError, type Store } from "../store/port.js";
import { apply, decide, fold, execAt, nextWakeAt, type BatonEvent, type Effect, type Exec, type RunState, type RunStarted } from "../engine/index.js";
import type { Plan } from "../plan/types.js";
import { evaluateEffect } from "../runtime/effects.js";
import { Attempt, type AttemptHost } from "../runtime/attempt.js";
import { Redactor } from "../runtime/redact.js";
import { RedisPools } from "./redis-pool.js";
import type { RedisOptions } from "ioredis";
import type { BatonConfig } from "../agents/config.js";

/** Job payloads. */
export interface AdvanceJob {
  readonly run: string;
  /** Re-enqueue every running execution too (the sweep's advances, after lost jobs). */
  readonly recover?: boolean;
}
export interface ExecJob {
  readonly run: string;
  readonly stage: string;
  readonly visit: number;
  readonly item?: number;
  readonly fallbackFor?: string;
  readonly attempt: number;
}

/** Queue names (a prefix keeps several Batons on one Redis apart). */
export const ADVANCE = "baton-advance";
export const EXEC = "baton-exec";

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

const jobId = (...parts: (string | number | undefined)[]): string => parts.map((p) => String(p ?? "").replace(/[:|]/g, "_")).join("|");

/** Enqueue the first `advance` of a run (the submitter's side). */
export async function enqueueAdvance(queue: Queue, run: string, seq: number, delayMs = 0, recover = false): Promise<void> {
  await queue.add("advance", { run, ...(recover ? { recover: true } : {}) } satisfies AdvanceJob, {
    jobId: recover ? jobId("recover", run, seq) : delayMs > 0 ? jobId("wake", run, Date.now() + delayMs) : jobId("adv", run, seq),
    ...(delayMs > 0 ? { delay: delayMs } : {}),
    ...JOB_OPTS,
  });
}

/** Finished jobs leave no key behind (a failed one must not block its id forever); failures retry. */
const JOB_OPTS = { removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: "exponential", delay: 200 } } as const;

interface Cached {
  plan: Plan;
  state: RunState;
  seq: number;
}

/** Options of a worker process. */
export interface WorkerOptions {
  readonly store: Store;
  readonly connection: ConnectionOptions;
  /** Stage executions at once in this worker. @default 8 */
  readonly concurrency?: number;
  /** Compile a run's plan from its recorded source. */
  readonly loadPlan: (source: RunStarted["source"]) => Plan | Promise<Plan>;
  readonly config?: BatonConfig;
  /** How long a job's lock lasts; a dead worker's job is picked up after about this long. @default 10000 */
  readonly lockMs?: number;
  /**
   * How often to re-enqueue a step for every running run. Redis may lose jobs (a restart of a
   * Redis that keeps nothing on disk); the store does not, so the sweep re-creates them (ids
   * collapse duplicates). @default 5000
   */
  readonly sweepMs?: number;
  readonly log?: (line: string) => void;
}

/** A `baton worker`: runs `advance` and `exec` jobs until closed. */
export class BatonWorker {
  private readonly runs = new Map<string, Cached>();
  private readonly advanceQ: Queue;
  private readonly execQ: Queue;
  private readonly workers: Worker[] = [];
  private readonly redactor = new Redactor();
  /** Pools held in Redis, so their limits hold across every worker. */
  private readonly pools: RedisPools;
  readonly id = `${hostname()}:${process.pid}`;

  constructor(private readonly o: WorkerOptions) {
    this.pools = new RedisPools(o.connection as RedisOptions);
    this.advanceQ = new Queue(ADVANCE, { connection: o.connection });
    this.execQ = new Queue(EXEC, { connection: o.connection });
  }

  /** Start consuming jobs. */
  start(): void {
    const lockDuration = this.o.lockMs ?? 10_000;
    const common = { connection: this.o.connection, lockDuration, stalledInterval: Math.max(1000, lockDuration / 2), maxStalledCount: 100 };
    this.workers.push(new Worker<AdvanceJob>(ADVANCE, (job) => this.advance(job.data.run, job.data.recover === true), { ...common, concurrency: Math.max(4, this.o.concurrency ?? 8) }));
    this.workers.push(new Worker<ExecJob>(EXEC, (job) => this.exec(job), { ...common, concurrency: this.o.concurrency ?? 8 }));
    for (const w of this.workers) {
      w.on("error", (err) => this.o.log?.(`worker error: ${err.message}`));
      w.on("failed", (job, err) => this.o.log?.(`job ${job?.id ?? "?"} failed: ${err.message}`));
    }
    this.sweeper = setInterval(() => void this.sweep().catch((err: Error) => this.o.log?.(`sweep: ${err.message}`)), this.o.sweepMs ?? 5000);
    this.sweeper.unref();
  }

  private sweeper: NodeJS.Timeout | undefined;

  /** Enqueue a step for every running run (recovers jobs Redis lost). */
  async sweep(): Promise<void> {
    const runs = await this.o.store.list({ status: "running", limit: 500 });
    await Promise.all(runs.map((r) => enqueueAdvance(this.advanceQ, r.id, r.seq, 0, true)));
  }

  /** Stop taking jobs; wait for the ones in progress (SIGTERM: finish what is in flight). */
  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    await Promise.all(this.workers.map((w) => w.close()));
    await this.advanceQ.close();
    await this.execQ.close();
    await this.pools.close();
  }

  /** Bring the cached state of a run up to date with the store. */
  private async sync(run: string): Promise<Cached> {
    let c = this.runs.get(run);
    if (!c) {
      const { events } = await this.o.store.load(run);
      const first = events[0] as RunStarted;
      const plan = await this.o.loadPlan(first.source);
      if (Object.keys(plan.limits).length) this.pools.define(plan.limits);
      // fold marks every node for decide's first look; later events mark what they change.
      c = { plan, state: fold(plan, events), seq: events.length };
      this.runs.set(run, c);
      return c;
    }
    const more = await this.o.store.eventsAfter(run, c.seq);
    for (const e of more) apply(c.state, e);
    c.seq += more.length;
    return c;
  }

  private forget(run: string): void {
    this.runs.delete(run);
  }

  private readonly locks = new Map<string, Promise<unknown>>();

  /** Run `fn` alone for this run in this worker: advances and appends never interleave on the cached state. */
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

  /** One engine step for a run, appended atomically; then dispatch its executions. */
  advance(run: string, recover = false): Promise<void> {
    return this.locked(run, () => this.advanceNow(run, recover));
  }

  private async advanceNow(run: string, recover: boolean): Promise<void> {
    for (let tries = 0; tries < 20; tries++) {
      const c = await this.sync(run);
      const s = c.state;
      if (s.status === "succeeded" || s.status === "failed" || s.status === "cancelled") return this.forget(run);
      const batch: BatonEvent[] = [];
      const execs: Extract<Effect, { kind: "execute" }>[] = [];
      let more = false;
      for (let loops = 0; ; loops++) {
        if (loops >= 200) {
          more = true; // a long run of inline stages: append this much, then continue in a new step
          break;
        }
        const step = decide(s, Date.now());
        batch.push(...step.events);
        const exprs = step.effects.filter((e) => e.kind === "evaluate_if" || e.kind === "expand" || e.kind === "routes" || e.kind === "assemble");
        // `value:` stages are pure: evaluate them here, in this step, instead of a job round trip.
        const inline: Extract<Effect, { kind: "execute" }>[] = [];
        for (const e of step.effects) {
          if (e.kind !== "execute") continue;
          const st = c.plan.stages[e.stage]!;
          if (st.spec.kind === "value" && st.limit === undefined && e.fallbackFor === undefined) inline.push(e);
          else execs.push(e);
        }
        for (const ef of inline) {
          const e = await this.runAttempt(c, run, ef);
          if (e) {
            this.redactor.event(e);
            apply(s, e);
            batch.push(e);
          }
        }
        if (exprs.length === 0 && inline.length === 0) break;
        for (const ef of exprs) {
          const events = await evaluateEffect(c.plan, s, ef as Parameters<typeof evaluateEffect>[2], Date.now);
          for (const e of events) {
            apply(s, e);
            batch.push(e);
          }
        }
      }
      if (batch.length === 0 && execs.length === 0) {
        // Nothing new. A recovery advance makes sure every running execution has its job (a
        // worker may have died between appending stage_started and enqueueing, or Redis lost it).
        if (recover) await this.dispatch(run, c, [...c.state.running]);
        const wake = nextWakeAt(s);
        if (wake !== undefined) await enqueueAdvance(this.advanceQ, run, c.seq, Math.max(1, wake - Date.now()));
        return;
      }
      for (const e of batch) this.redactor.event(e);
      try {
        c.seq = await this.o.store.append(run, batch, c.seq);
      } catch (err) {
        if (err instanceof ConflictError) {
          this.forget(run); // another worker advanced it: reload and decide again
          continue;
        }
        throw err;
      }
      await this.dispatch(run, c, recover ? [...c.state.running] : execs.map((e) => e.exec).filter((x) => x.status === "running"));
      if (more) await enqueueAdvance(this.advanceQ, run, c.seq);
      const wake = nextWakeAt(s);
      if (wake !== undefined) await enqueueAdvance(this.advanceQ, run, c.seq, Math.max(1, wake - Date.now()));
      if ((s.status as string) !== "running") this.forget(run);
      return;
    }
    throw new Error(`run ${run}: could not advance it after 20 conflicting attempts`);
  }

  /** Enqueue a job for each execution (ids collapse duplicates). */
  private async dispatch(run: string, c: Cached, execs: readonly Exec[]): Promise<void> {
    const plan = c.plan;
    await Promise.all(execs.map((x) => {
      const job: ExecJob = {
        run, stage: plan.stages[x.stage]!.id, visit: x.visit, attempt: x.attempt,
        ...(x.item !== undefined ? { item: x.item } : {}),
        ...(x.owner ? { fallbackFor: plan.stages[x.owner.stage]!.id } : {}),
      };
      return this.execQ.add("exec", job, { jobId: jobId("exec", run, job.stage, job.visit, job.item, job.fallbackFor, job.attempt), ...JOB_OPTS });
    }));
  }

  /** Run one attempt as the local runtime does; resolves to its outcome event (undefined if cancelled). */
  private runAttempt(c: Cached, run: string, ef: Extract<Effect, { kind: "execute" }>): Promise<BatonEvent | undefined> {
    const plan = c.plan;
    return new Promise<BatonEvent | undefined>((resolve) => {
      const host: AttemptHost = {
        plan, state: c.state, runId: run, now: Date.now,
        budget: { reserved: { tokens: 0, usd: 0 }, unapplied: { tokens: 0, usd: 0 } },
        acquire: async (stage, tokens, signal) => (stage.limit !== undefined && this.pools.has(stage.limit) ? this.pools.acquire(stage.limit, tokens, signal) : undefined),
        services: {
          config: this.o.config ?? {},
          usage: () => ({ tokens: c.state.usage.input + c.state.usage.output, usd: c.state.usage.usd }),
          children: { run: () => Promise.reject(new Error("sub-pipelines are not supported by distributed workers yet")) },
        },
        done: (_a, e) => resolve(e),
      };
      new Attempt(host, ef).start();
    });
  }

  /** Run one attempt, unless it is no longer the current one. */
  async exec(job: Job<ExecJob>): Promise<void> {
    const j = job.data;
    let c = await this.locked(j.run, () => this.sync(j.run));
    const find = (st: RunState) => {
      const owner = st.plan.stageIndex.get(j.fallbackFor ?? j.stage);
      if (owner === undefined) return undefined;
      const node = st.nodes[owner]!;
      if (node.visit !== j.visit) return undefined;
      const x = j.item === undefined ? node.execs[0] : execAt(node, j.item, node.readyAt);
      const exec = j.fallbackFor !== undefined ? x?.fallback : x;
      return exec && exec.status === "running" && exec.attempt === j.attempt ? exec : undefined;
    };
    const exec = find(c.state);
    const debug = process.env.BATON_WORKER_DEBUG ? (m: string) => this.o.log?.(`[${j.stage}:${j.visit}:${j.item ?? ""}#${j.attempt}] ${m}`) : undefined;
    if (!exec) {
      debug?.("superseded before it ran");
      return; // already done, or superseded (cancelled, routed back, retried elsewhere)
    }
    const plan = c.plan;
    const ef: Extract<Effect, { kind: "execute" }> = {
      kind: "execute", exec, stage: exec.stage, visit: j.visit, item: j.item, attempt: j.attempt,
      fallbackFor: j.fallbackFor !== undefined ? plan.stageIndex.get(j.fallbackFor) : undefined,
    };
    const result = await this.runAttempt(c, j.run, ef);
    if (!result) return;
    this.redactor.event(result);
    const appended = await this.locked(j.run, async () => {
    for (let tries = 0; tries < 20; tries++) {
      try {
        c = await this.sync(j.run);
        if (!find(c.state)) {
          debug?.("superseded while it ran");
          return false;
        }
        c.seq = await this.o.store.append(j.run, [result], c.seq);
        apply(c.state, result);
        debug?.(`appended ${result.type} at seq ${c.seq}`);
        break;
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        debug?.(`conflict at seq ${c.seq}: ${err.message}`);
        this.forget(j.run);
        c = await this.sync(j.run);
        if (!find(c.state)) {
          debug?.("superseded while it ran");
          return false;
        }
      }
    }
    return true;
    });
    if (!appended) return;
    await enqueueAdvance(this.advanceQ, j.run, c.seq);
  }
}
