/**
 * The process runtime: starts, resumes and cancels runs against a store, shares the
 * process-wide execution slots among them, holds each run's lease and listens for signals
 * (cancel) sent from other processes.
 */
import { closeMcp, mcpToolsFor } from "./mcp-tools.js";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { apply, createState, decide, fold, runningAttempts, type BatonEvent, type RunStarted } from "../engine/index.js";
import { descendants } from "../engine/state.js";
import type { Plan, StagePlan } from "../plan/types.js";
import { ConflictError, type Store } from "../store/port.js";
import type { BatonConfig } from "../agents/config.js";
import { UserError } from "./errors.js";
import { redactingStore } from "./redact.js";
import { Pools, type PoolLease, type PoolLimitKind } from "./pools.js";
import type { PoolWait } from "./attempt.js";
import { StageHistory } from "./history.js";
import { childRunId, parentOf } from "./children.js";
import { checkCompiledPlan, runStartedEvent } from "./started.js";
import { checkCode } from "./code.js";
import { RunDriver, sliceUsed, type DriverHost, type RunResult } from "./driver.js";
import { LiveWriter } from "../store/live.js";
import { liveExecKey, liveKey, type LiveExec } from "../store/port.js";

export type { RunResult } from "./driver.js";

/** Continuing a recorded run whose pinned `run:` modules changed (code pinning, see ./code.ts). */
export interface CodeChangeOptions {
  /** Continue anyway with the code as it is now; recorded as a `code_changed` event. */
  readonly allowCodeChange?: boolean;
  /** Who continues it (recorded with `code_changed`). */
  readonly by?: string;
}

/** Options of a {@link Runtime}. Compiled once; the CLI only maps flags onto them. */
export interface RuntimeOptions {
  readonly store: Store;
  /** Stage executions in flight in this process, over all runs. @default Infinity */
  readonly concurrency?: number;
  /** Clock (ms since epoch). @default Date.now */
  readonly now?: () => number;
  /**
   * Lease time-to-live; the lease is renewed at a third of it. A process that fails to renew
   * in time (its event loop blocked for longer) may have its runs taken over by `baton resume`;
   * it then stops driving them (fencing, see `RunDriver.lose`).
   * @default 30000, or the hidden `BATON_LEASE_MS` environment variable (for tests of takeovers)
   */
  readonly leaseMs?: number;
  /** Operational lines (a run lost to another process). @default none */
  readonly log?: (line: string) => void;
  /** How often to look for signals (cancel) from other processes. @default 250 */
  readonly signalPollMs?: number;
  /** Called with every batch of events a run appends. */
  readonly onEvents?: (runId: string, events: readonly BatonEvent[], plan: Plan) => void;
  /**
   * Compile the plan of a run that is resumed, from what `run_started` recorded. The CLI
   * recompiles YAML/JSON source; TS pipelines pass their plan to `resume` instead.
   */
  readonly loadPlan?: (source: RunStarted["source"]) => Plan | Promise<Plan>;
  /** Providers and model facts for agent stages (see `loadConfig`). @default {} */
  readonly config?: BatonConfig;
  /** Resource pools. @default the process's pools (shared by every Runtime in the process) */
  readonly pools?: Pools;
  /**
   * Called with each streamed piece of a model turn: `key` is `liveKey(exec, turn)`
   * (`stage#visit[item]:turn:N`), `text` the turn's text so far. Setting it makes agent turns
   * stream; so does a shared store (its live text is written, coalesced, for other processes).
   */
  readonly onDelta?: (runId: string, key: string, text: string) => void;
  /**
   * Called when an execution starts waiting for a resource pool (`w.state` "waiting") and when it
   * stops (granted, or gave up: cancelled or timed out): `key` is `liveExecKey(exec)`
   * (`stage#visit[item]`). For live views; the wait is recorded with the attempt's outcome.
   */
  readonly onPoolWait?: (runId: string, key: string, w: PoolWait) => void;
}

let shared: Pools | undefined;
/** The process's pools: every run in the process draws from the same ones. */
export function processPools(): Pools {
  return (shared ??= new Pools());
}

/** A run in progress. */
export interface RunHandle {
  readonly id: string;
  readonly done: Promise<RunResult>;
}

let host: string | undefined;
/** This machine's host name (looked up once). */
function thisHost(): string {
  return (host ??= hostname());
}

let owner: string | undefined;
let runtimes = 0;
/** Lease owner id of this process: `host:pid:random`. */
function processOwner(): string {
  return (owner ??= `${thisHost()}:${process.pid}:${randomUUID().slice(0, 6)}`);
}

/** A new run id: time-sortable, 18 characters. */
export function newRunId(now = Date.now()): string {
  return now.toString(36).padStart(9, "0") + randomUUID().slice(0, 8) + randomUUID().slice(9, 10);
}

export class Runtime {
  readonly store: Store;
  private readonly concurrency: number;
  private readonly clock: () => number;
  private inflight = 0;
  private readonly drivers = new Map<string, RunDriver>();
  private readonly waitingForSlots = new Set<RunDriver>();
  private readonly owner = `${processOwner()}:${++runtimes}`;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly timers = new Map<string, NodeJS.Timeout[]>();
  private readonly host: DriverHost;
  /** Resource pools shared by the runs of this runtime (and, by default, the whole process). */
  readonly pools: Pools;
  private readonly history = new StageHistory();
  private readonly live: LiveWriter | undefined;

  constructor(private readonly opts: RuntimeOptions) {
    // Every write of this runtime (steps, starts, answers, signals, cancels) is redacted there, once.
    this.store = redactingStore(opts.store);
    this.concurrency = opts.concurrency ?? Infinity;
    if (!(this.concurrency >= 1)) throw new UserError(`concurrency must be a number from 1 up, got ${opts.concurrency}`, 2);
    this.clock = opts.now ?? Date.now;
    this.leaseMs = opts.leaseMs ?? leaseFromEnv() ?? 30_000;
    this.pollMs = opts.signalPollMs ?? 250;
    const self = this;
    this.pools = opts.pools ?? processPools();
    if (opts.config?.limits) this.pools.configure(opts.config.limits);
    // Live turn text: coalesced into the store (other processes' views), and to onDelta here.
    const live = this.store.shared && this.store.putLive ? new LiveWriter(this.store) : opts.onDelta ? new LiveWriter(undefined) : undefined;
    this.live = live;
    this.host = {
      ...(live ? { delta: (d: RunDriver, _s: StagePlan, key: LiveExec, piece: string, turn: number) => {
        const k = liveKey(key, turn);
        const text = live.delta(d.runId, k, piece);
        opts.onDelta?.(d.runId, k, text);
      } } : {}),
      acquire: (plan, stage, tokens, signal, pool, key, onWait, run) => self.acquire(plan, stage, tokens, signal, pool, key, onWait, run),
      ...(opts.onPoolWait ? { poolWait: (d: RunDriver, key: LiveExec, w: PoolWait) => opts.onPoolWait!(d.runId, liveExecKey(key), w) } : {}),
      store: this.store,
      config: opts.config ?? {},
      children: { run: (plan, inputs, base, attempt, signal) => self.runChild(plan, inputs, base, attempt, signal) },
      now: this.clock,
      freeSlots: () => self.concurrency - self.inflight,
      take: (n) => void (self.inflight += n),
      release: () => {
        self.inflight--;
        if (self.waitingForSlots.size > 0) {
          const d = self.waitingForSlots.values().next().value!;
          self.waitingForSlots.delete(d);
          d.schedule();
        }
      },
      blocked: (d) => void self.waitingForSlots.add(d),
      onEvents: (d, events) => {
        if (self.history.tracks(d.plan)) self.history.observe(d.plan, d.runId, events);
        self.live?.observe(d.runId, events);
        self.opts.onEvents?.(d.runId, events, d.plan);
      },
      finished: (d) => self.detach(d),
      leaseMs: this.leaseMs,
      lost: (_d, err) => self.opts.log?.(err.message),
    };
  }

  /** Runs being driven by this runtime. */
  get active(): readonly string[] {
    return [...this.drivers.keys()];
  }

  /**
   * Start a new run of a plan. `inputs` must already be validated (see `validateInputs`).
   */
  async start(plan: Plan, inputs: Record<string, unknown>, o: { runId?: string; parentId?: string; seed?: number; rerun?: { of: string; from: string; reused: BatonEvent[] } } = {}): Promise<RunHandle> {
    if (Object.keys(plan.limits).length > 0 || this.history.tracks(plan) || Object.keys(plan.mcp).length > 0) await this.prepare(plan);
    // Starting many runs at once must not hold the event loop either.
    if (sliceUsed()) await new Promise<void>((r) => setImmediate(r));
    const id = o.runId ?? newRunId(this.clock());
    const started = runStartedEvent(plan, {
      runId: id, at: this.clock(), inputs, seed: o.seed ?? Math.floor(Math.random() * 0x7fffffff),
      ...(o.parentId ? { parentId: o.parentId } : {}), ...(o.rerun ? { rerun: o.rerun } : {}),
    });
    const first: BatonEvent[] = [started, ...(o.rerun?.reused ?? [])];
    const seq = await this.store.create({ id, pipeline: plan.name, planHash: plan.hash, ...(o.parentId ? { parentId: o.parentId } : {}) }, first);
    if (!(await this.store.claim(id, this.owner, this.leaseMs))) throw new UserError(`run ${id} was claimed by another process as it started`);
    this.opts.onEvents?.(id, first, plan);
    const state = createState(plan);
    for (const e of first) apply(state, e);
    return this.drive(plan, state, id, seq);
  }

  /**
   * Resume a run: after a crash, a cancel, or (later) a human decision. A run that already
   * succeeded or failed is not run again; its result is returned.
   */
  async resume(runId: string, o: { plan?: Plan } & CodeChangeOptions = {}): Promise<RunHandle> {
    if (this.drivers.has(runId)) return { id: runId, done: this.drivers.get(runId)!.done };
    const { run, events } = await this.store.load(runId);
    const first = events[0];
    if (!first || first.type !== "run_started") throw new UserError(`run ${runId} has no run_started event: its log is damaged`);
    const plan = o.plan ?? (await this.loadPlan(first.source, runId));
    if (plan.hash !== first.plan_hash) {
      throw new UserError(`run ${runId} was started from a different version of '${first.pipeline}' (plan ${first.plan_hash.slice(0, 12)}, given ${plan.hash.slice(0, 12)}): resume it with the plan it started with`);
    }
    if (run.status !== "succeeded" && run.status !== "failed") checkCompiledPlan(first, plan); // a finished run is only read
    const state = fold(plan, events);
    if (state.status === "succeeded" || state.status === "failed") {
      return { id: runId, done: Promise.resolve(resultOf(plan, runId, events)) };
    }
    const codeChanged = this.checkCode(runId, events, plan, o); // before anything runs: a changed run: module refuses
    await this.prepare(plan);
    if (!(await this.claimOrTakeOver(runId))) {
      const holder = await this.store.leaseHolder(runId);
      throw new UserError(`run ${runId} is being executed by another process (${holder}); wait for it, or cancel it with \`baton cancel ${runId}\``);
    }
    // Attempts that were in flight when the process died are recorded as interrupted; they run again.
    const now = this.clock();
    const batch: BatonEvent[] = [];
    if (codeChanged) batch.push(codeChanged);
    for (const k of runningAttempts(state)) batch.push({ type: "stage_cancelled", at: now, ...k, reason: "interrupted: the process running it stopped (or stopped renewing its lease)" });
    batch.push({ type: "run_resumed", at: now });
    let seq: number;
    try {
      seq = await this.store.append(runId, batch, run.seq);
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      // The process whose lease had lapsed woke up and wrote first: it goes on; this one leaves.
      await this.store.release(runId, this.owner).catch(() => undefined);
      throw new UserError(`run ${runId} moved on while this process was taking it over (the process that ran it is still writing to it): nothing was recorded here; wait for it, or cancel it with \`baton cancel ${runId}\``);
    }
    this.opts.onEvents?.(runId, batch, plan);
    for (const e of batch) apply(state, e);
    return this.drive(plan, state, runId, seq);
  }

  /**
   * Fork a run (time travel): a new run of the same plan (or `o.plan`, e.g. an edited template)
   * that reuses the recorded outputs of every stage not downstream of `from` and executes `from`
   * and everything after it. Inputs default to the original run's; `o.inputs` overrides some.
   */
  async rerun(runId: string, from: string, o: { plan?: Plan; inputs?: Record<string, unknown>; seed?: number } = {}): Promise<RunHandle & { reused: string[] }> {
    const f = await this.fork(runId, from, o);
    const handle = await this.start(f.plan, f.inputs, { ...(o.seed !== undefined ? { seed: o.seed } : {}), rerun: f.rerun });
    return { ...handle, reused: f.rerun.reused.map((e) => (e as { stage: string }).stage) };
  }

  /** What a fork of a run starts with: its plan, inputs and the recorded outputs it reuses (see {@link rerun}). */
  async fork(runId: string, from: string, o: { plan?: Plan; inputs?: Record<string, unknown> } = {}): Promise<{ plan: Plan; inputs: Record<string, unknown>; rerun: { of: string; from: string; reused: BatonEvent[] } }> {
    const { events } = await this.store.load(runId);
    const first = events[0] as RunStarted;
    const origPlan = await this.loadPlan(first.source, runId).catch((err: unknown) => {
      if (o.plan && o.plan.hash === first.plan_hash) return o.plan;
      throw err;
    });
    const plan = o.plan ?? origPlan;
    const fromIdx = plan.stageIndex.get(from);
    if (fromIdx === undefined) {
      throw new UserError(`no stage '${from}' in '${plan.name}': rerun --from one of ${plan.stages.filter((s) => !s.isFallback).map((s) => s.id).join(", ")}`, 2);
    }
    const orig = fold(origPlan, events);
    const again = descendants(plan, fromIdx);
    again.add(fromIdx);
    const at = this.clock();
    const reused: BatonEvent[] = [];
    for (const idx of plan.topo) {
      const s = plan.stages[idx]!;
      if (again.has(idx) || s.isFallback) continue;
      const j = origPlan.stageIndex.get(s.id);
      const node = j === undefined ? undefined : orig.nodes[j];
      if (!node?.done || node.outcome === "failed" || node.outcome === undefined) continue;
      reused.push({ type: "stage_reused", at, stage: s.id, visit: 1, outcome: node.outcome, output: node.outcome === "skipped" ? null : node.output, from_run: runId });
    }
    const inputs = { ...orig.inputs, ...(o.inputs ?? {}) };
    return { plan, inputs, rerun: { of: runId, from, reused } };
  }

  /**
   * Cancel a run. In this process: at once. Driven by another live process: a signal it picks
   * up within its poll interval. Not running anywhere (crashed, waiting): recorded directly.
   */
  async cancel(runId: string, reason = "cancelled by user"): Promise<"cancelled" | "signalled" | "finished"> {
    const d = this.drivers.get(runId);
    if (d) {
      d.push({ type: "run_cancel_requested", at: this.clock(), reason });
      return "cancelled";
    }
    const { run, events } = await this.store.load(runId);
    if (run.status === "succeeded" || run.status === "failed" || run.status === "cancelled") return "finished";
    const holder = await this.store.leaseHolder(runId);
    if (holder !== undefined && !(await this.claimOrTakeOver(runId))) {
      await this.store.signal(runId, "cancel", { reason });
      return "signalled";
    }
    const first = events[0] as RunStarted;
    const plan = await this.loadPlan(first.source, runId);
    const state = fold(plan, events);
    const req: BatonEvent = { type: "run_cancel_requested", at: this.clock(), reason };
    apply(state, req);
    const step = decide(state, this.clock());
    await this.store.append(runId, [req, ...step.events], run.seq);
    await this.store.release(runId, this.owner);
    return "cancelled";
  }

  /**
   * Answer a waiting stage (approval stage, escalating route, on_error escalate) and continue
   * the run. Driven here: at once. Driven by another live process (other branches still
   * running): a signal it picks up. Paused: recorded, then the run continues in this process
   * (`handle` is returned).
   */
  async answer(runId: string, stage: string, answer: HumanAnswer, o: { plan?: Plan } & CodeChangeOptions = {}): Promise<{ recorded: number; handle?: RunHandle; signalled?: boolean }> {
    const d = this.drivers.get(runId);
    if (d) {
      const events = answerEvents(d.state, stage, answer, this.clock());
      d.push(...events);
      return { recorded: events.length, handle: { id: runId, done: d.done } };
    }
    const { run, events } = await this.store.load(runId);
    const first = events[0] as RunStarted;
    const plan = o.plan ?? (await this.loadPlan(first.source, runId));
    checkCompiledPlan(first, plan);
    const state = fold(plan, events);
    const answers = answerEvents(state, stage, answer, this.clock()); // throws when nothing waits there
    if (run.status === "running" && !(await this.claimOrTakeOver(runId))) {
      await this.store.signal(runId, "answer", { stage, ...answer });
      return { recorded: answers.length, signalled: true };
    }
    if (state.status === "succeeded" || state.status === "failed") throw new UserError(`run ${runId} already ${state.status}`);
    const codeChanged = this.checkCode(runId, events, plan, o); // the run continues here: a changed run: module refuses first
    if (!(await this.claimOrTakeOver(runId))) throw new UserError(`run ${runId} is being executed by another process; try again in a moment`);
    const batch: BatonEvent[] = [...(codeChanged ? [codeChanged] : []), ...answers, { type: "run_resumed", at: this.clock() }];
    const seq = await this.store.append(runId, batch, run.seq);
    this.opts.onEvents?.(runId, batch, plan);
    for (const e of batch) apply(state, e);
    return { recorded: answers.length, handle: this.drive(plan, state, runId, seq) };
  }

  /** Runs continued here with `allowCodeChange`: their sub-pipeline runs continue likewise. */
  private readonly codeAllowed = new Set<string>();

  /** Code pinning (see ./code.ts): refuse a run whose `run:` modules changed, or, allowed, the `code_changed` event to record. */
  private checkCode(runId: string, events: readonly BatonEvent[], plan: Plan, o: CodeChangeOptions): BatonEvent | undefined {
    const allow = o.allowCodeChange === true || (runId.includes("~") && this.codeAllowed.has(parentOf(runId)));
    const changed = checkCode(runId, events, plan, { allow, flag: "--allow-code-change", at: this.clock(), ...(o.by ? { by: o.by } : {}) });
    if (allow) this.codeAllowed.add(runId);
    return changed;
  }

  /**
   * Send a named signal to a run (`baton signal RUN NAME`): a `wait:` stage waiting for it takes
   * it (its data is the stage's output); one that waits later takes a signal kept until then.
   * Like `answer`: driven here, at once; driven by another live process, a signal it picks up;
   * paused, recorded and the run continues in this process (`handle`).
   */
  async signal(runId: string, name: string, o: { data?: unknown; by?: string } = {}, opts: { plan?: Plan } & CodeChangeOptions = {}): Promise<{ handle?: RunHandle; signalled?: boolean }> {
    const d = this.drivers.get(runId);
    if (d) {
      checkSignal(d.plan, d.state, runId, name);
      d.push(signalEvent(name, o, this.clock()));
      return { handle: { id: runId, done: d.done } };
    }
    const { run, events } = await this.store.load(runId);
    const first = events[0] as RunStarted;
    const plan = opts.plan ?? (await this.loadPlan(first.source, runId));
    checkCompiledPlan(first, plan);
    const state = fold(plan, events);
    checkSignal(plan, state, runId, name);
    if (run.status === "running" && !(await this.claimOrTakeOver(runId))) {
      await this.store.signal(runId, "signal", { name, ...o });
      return { signalled: true };
    }
    const codeChanged = this.checkCode(runId, events, plan, opts); // the run continues here: a changed run: module refuses first
    if (!(await this.claimOrTakeOver(runId))) throw new UserError(`run ${runId} is being executed by another process; try again in a moment`);
    const batch: BatonEvent[] = [...(codeChanged ? [codeChanged] : []), signalEvent(name, o, this.clock())];
    if (state.status !== "running") batch.push({ type: "run_resumed", at: this.clock() });
    const seq = await this.store.append(runId, batch, run.seq);
    this.opts.onEvents?.(runId, batch, plan);
    for (const e of batch) apply(state, e);
    return { handle: this.drive(plan, state, runId, seq) };
  }

  /** Define the plan's pools and learn its stage durations (critical-path priority) from earlier runs. */
  private async prepare(plan: Plan): Promise<void> {
    if (Object.keys(plan.limits).length > 0) this.pools.define(plan.limits);
    // MCP tool lists are fetched when the run starts: a tool its server lacks stops it here.
    if (Object.keys(plan.mcp).length > 0) await mcpToolsFor(plan);
    if (this.history.tracks(plan) && !this.history.known(plan)) await this.history.load(this.store, plan);
  }

  /** Wait for a stage's pool, ranked by its run (older runs first) and the stage's remaining critical path. */
  private async acquire(plan: Plan, stage: StagePlan, tokens: number, signal: AbortSignal, poolName?: string, key?: string, onWait?: (reason: string, limit: PoolLimitKind) => void, run?: string): Promise<PoolLease | undefined> {
    const name = poolName ?? stage.limit;
    if (name === undefined) return undefined;
    const pool = this.pools.get(name, key);
    if (!pool) throw new UserError(`stage '${stage.id}': pool '${name}' is not defined: declare it under limits: in the template or in baton.config`);
    return pool.acquire({ priority: this.history.remaining(plan, stage.idx), tokens, signal, label: stage.id, ...(onWait ? { onWait } : {}), ...(run !== undefined ? { run } : {}) });
  }

  /** See {@link ChildRuns.run}. */
  private async runChild(plan: Plan, inputs: Record<string, unknown>, base: string, attempt: number, signal: AbortSignal): Promise<RunResult> {
    const { id, existing } = await childRunId(this.store, base, attempt);
    const parentId = parentOf(base);
    let handle: RunHandle;
    if (!existing) handle = await this.start(plan, inputs, { runId: id, parentId });
    else if (existing.status === "succeeded" || existing.status === "failed") handle = { id, done: this.store.load(id).then((l) => resultOf(plan, id, l.events)) };
    else handle = await this.resume(id);
    const onAbort = (): void => void this.cancel(id, "the parent run's stage was cancelled").catch(() => undefined);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    try {
      return await handle.done;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Cancel every run this process drives (Ctrl-C). */
  cancelAll(reason = "cancelled by user (interrupt)", except?: string): void {
    for (const [id, d] of this.drivers) if (id !== except) d.push({ type: "run_cancel_requested", at: this.clock(), reason });
  }

  /** Stop driving runs (abort in-flight work, release leases). Runs stay resumable. */
  async close(): Promise<void> {
    await closeMcp();
    for (const d of this.drivers.values()) d.abortAll("runtime closed");
    for (const id of [...this.drivers.keys()]) {
      this.stopTimers(id);
      await this.store.release(id, this.owner).catch(() => undefined);
    }
    this.drivers.clear();
    await this.live?.close();
  }

  /**
   * Claim a run's lease. A lease held by a process on this host that no longer exists (it was
   * killed) is taken over at once instead of waiting for it to expire.
   */
  private async claimOrTakeOver(runId: string): Promise<boolean> {
    if (await this.store.claim(runId, this.owner, this.leaseMs)) return true;
    const holder = await this.store.leaseHolder(runId);
    if (holder === undefined) return this.store.claim(runId, this.owner, this.leaseMs);
    if (holderDead(holder)) {
      await this.store.release(runId, holder);
      return this.store.claim(runId, this.owner, this.leaseMs);
    }
    return false;
  }

  private async loadPlan(source: RunStarted["source"], runId: string): Promise<Plan> {
    if (!this.opts.loadPlan) {
      throw new UserError(`run ${runId} was started from a ${source.format === "ts" ? "TypeScript pipeline: pass the same pipeline to resume it" : "template, but this runtime cannot compile templates"}`);
    }
    return this.opts.loadPlan(source);
  }

  private drive(plan: Plan, state: ReturnType<typeof createState>, id: string, seq: number): RunHandle {
    const driver = new RunDriver(this.host, plan, state, id, seq);
    this.drivers.set(id, driver);
    this.startTimers(driver);
    driver.schedule();
    return { id, done: driver.done };
  }

  private startTimers(d: RunDriver): void {
    if (!this.store.shared) return; // no other process can see the run: nothing to renew or poll
    let renewedAt = Date.now(); // the store's lease clock is the wall clock
    const renew = setInterval(() => {
      const at = Date.now();
      void this.store.claim(d.runId, this.owner, this.leaseMs).then(async (ok) => {
        if (!ok) return d.lose(); // another process holds the lease now: stop at once
        const lapsed = at - renewedAt > this.leaseMs;
        renewedAt = at;
        // The lease ran out before this renewal (a blocked event loop): if another process took
        // the run over and wrote to it meanwhile (and let go), stop now rather than at the next append.
        if (lapsed && !d.busy) {
          const seq = d.loop.seq;
          const rec = await this.store.get(d.runId);
          if (rec !== undefined && rec.seq > seq && d.loop.seq === seq && !d.busy) d.lose();
        }
      }, () => undefined);
    }, Math.max(50, this.leaseMs / 3));
    const poll = setInterval(() => {
      void this.store.takeSignals(d.runId).then((signals) => {
        for (const s of signals) {
          if (s.kind === "cancel") {
            const reason = (s.data as { reason?: string } | undefined)?.reason ?? "cancelled by signal";
            d.push({ type: "run_cancel_requested", at: this.clock(), reason });
          } else if (s.kind === "signal") {
            const x = s.data as { name: string; data?: unknown; by?: string };
            d.push(signalEvent(x.name, x, this.clock()));
          } else if (s.kind === "answer") {
            const a = s.data as HumanAnswer & { stage: string };
            try {
              d.push(...answerEvents(d.state, a.stage, a, this.clock()));
            } catch {
              // the stage stopped waiting meanwhile (e.g. a route re-ran it): nothing to answer
            }
          }
        }
      }, () => undefined);
    }, this.pollMs);
    renew.unref();
    poll.unref();
    this.timers.set(d.runId, [renew, poll]);
  }

  private stopTimers(id: string): void {
    for (const t of this.timers.get(id) ?? []) clearInterval(t);
    this.timers.delete(id);
  }

  private detach(d: RunDriver): void {
    this.drivers.delete(d.runId);
    this.waitingForSlots.delete(d);
    this.stopTimers(d.runId);
    void this.store.release(d.runId, this.owner).catch(() => undefined);
    void this.live?.stop(d.runId);
  }
}

/** A human's answer to a waiting stage. */
export interface HumanAnswer {
  readonly approved: boolean;
  /** Approved: the stage's output (default `{ approved: true }` for approval stages). */
  readonly data?: unknown;
  /** A for_each item; all waiting items of the stage when absent. */
  readonly item?: number;
  readonly by?: string;
  readonly comment?: string;
  /** A tool call waiting for approval (its id); needed only when several calls of the stage wait. */
  readonly call?: string;
}

/** The `signal` event of `baton signal` (`o`: its data and sender). */
export function signalEvent(name: string, o: { data?: unknown; by?: string }, at: number): BatonEvent {
  return { type: "signal", at, name, ...(o.data !== undefined ? { data: o.data } : {}), ...(o.by !== undefined ? { by: o.by } : {}) };
}

/** Throws a clear error when a run cannot take signal `name`: it is over, or no `wait:` stage of its pipeline waits for that name. */
export function checkSignal(plan: Plan, state: ReturnType<typeof createState>, runId: string, name: string): void {
  if (state.status === "succeeded" || state.status === "failed" || state.status === "cancelled") throw new UserError(`run ${runId} already ${state.status}: it takes no signals`);
  const names = [...new Set(plan.stages.flatMap((s) => (s.spec.kind === "wait" ? [s.spec.signal] : [])))];
  if (!names.includes(name)) {
    throw new UserError(`pipeline '${plan.name}' has no wait: stage for signal '${name}'` + (names.length ? ` (its signals: ${names.join(", ")})` : " (it has no wait: stages)"), 2);
  }
}

/** The approval events answering `stage` (every waiting item unless one is named); throws when nothing waits there. */
export function answerEvents(state: ReturnType<typeof createState>, stage: string, a: HumanAnswer, at: number): BatonEvent[] {
  const out: BatonEvent[] = [];
  const base = (w: { visit: number; item: number | undefined }): Record<string, unknown> => ({
    type: "approval", at, stage, visit: w.visit, approved: a.approved,
    ...(w.item !== undefined ? { item: w.item } : {}), ...(a.data !== undefined ? { data: a.data } : {}),
    ...(a.by !== undefined ? { by: a.by } : {}), ...(a.comment !== undefined ? { comment: a.comment } : {}),
  });
  for (const w of state.waitingOn.values()) {
    if (w.stage !== stage || (a.item !== undefined && w.item !== a.item)) continue;
    if (w.kind === "signal") throw new UserError(`stage '${stage}' waits for signal '${w.signal}', not for an approval: send it with baton signal RUN ${w.signal} [--data JSON]`, 2);
    if (w.kind === "sleep") throw new UserError(`stage '${stage}' sleeps until ${new Date(w.dueAt ?? 0).toISOString()}: there is nothing to answer`, 2);
    if (w.dueAt !== undefined && at >= w.dueAt) {
      // The deadline passed: its on_timeout decides, not a late answer (the run records it when it next advances).
      throw new UserError(`stage '${stage}'${w.item !== undefined ? ` item ${w.item}` : ""} stopped waiting for an answer at ${new Date(w.dueAt).toISOString()} (its approval timeout passed): this answer is too late and is not recorded; the stage's on_timeout applies (baton resume ${state.runId} records it if no worker has yet)`);
    }
    if (w.calls) {
      // Tool calls waiting for approval: one answer per call (the id is needed when several wait).
      const ids = [...w.calls.keys()];
      if (a.call !== undefined) {
        if (!w.calls.has(a.call)) throw new UserError(`stage '${stage}' has no tool call '${a.call}' waiting for approval (waiting: ${ids.join(", ")})`);
        out.push({ ...base(w), call: a.call } as unknown as BatonEvent);
      } else if (ids.length === 1) out.push({ ...base(w), call: ids[0] } as unknown as BatonEvent);
      else {
        const list = [...w.calls.values()].map((c) => `${c.id} (${c.tool} ${JSON.stringify(c.args).slice(0, 80)})`).join(", ");
        throw new UserError(`stage '${stage}' has ${ids.length} tool calls waiting for approval: name the one you answer (--call ID on the command line, "call" in the API), one of ${list}`, 2);
      }
      continue;
    }
    if (a.call !== undefined) throw new UserError(`stage '${stage}' waits for an approval of the stage itself, not of a tool call: answer it without a call id`, 2);
    out.push(base(w) as unknown as BatonEvent);
  }
  if (out.length === 0) {
    const waiting = [...new Set([...state.waitingOn.values()].map((w) => w.stage))];
    throw new UserError(`stage '${stage}'${a.item !== undefined ? ` item ${a.item}` : ""} is not waiting for a decision` + (waiting.length ? ` (waiting: ${waiting.join(", ")})` : " (nothing in this run is waiting)"));
  }
  return out;
}

/** The hidden `BATON_LEASE_MS` override of the lease time-to-live (tests of takeovers use a short one). */
function leaseFromEnv(): number | undefined {
  const v = Number(process.env["BATON_LEASE_MS"]);
  return Number.isFinite(v) && v >= 100 ? v : undefined;
}

/** Whether a lease holder (`host:pid:…`) is a process of this machine that no longer exists (killed): its lease can be taken over at once. */
export function holderDead(holder: string): boolean {
  const [host, pid] = holder.split(":");
  return host === thisHost() && pid !== undefined && !processAlive(Number(pid));
}

/** Whether a process with this pid exists on this machine. */
function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The result of a finished run, read from its log. */
export function resultOf(plan: Plan | undefined, runId: string, events: readonly BatonEvent[]): RunResult {
  const first = events[0] as RunStarted | undefined;
  let status: RunResult["status"] = "waiting";
  let output: unknown;
  let error: RunResult["error"];
  let last = first?.at ?? 0;
  for (const e of events) {
    last = e.at;
    if (e.type === "run_finished") {
      status = e.status;
      output = e.output;
      error = e.error;
    } else if (e.type === "run_resumed") {
      status = "waiting";
      error = undefined;
    } else if (e.type === "run_waiting") {
      status = "waiting";
      error = { stage: e.stage, kind: "waiting", message: e.message };
    }
  }
  return {
    id: runId, pipeline: plan?.name ?? first?.pipeline ?? "?", status,
    ...(status === "succeeded" ? { output } : {}), ...(error && status !== "succeeded" ? { error } : {}),
    duration_ms: Math.max(0, last - (first?.at ?? last)),
  };
}
