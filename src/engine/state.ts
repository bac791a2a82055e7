/**
 * Run state and `apply`: the only place run state changes in response to events.
 *
 * `fold(plan, events)` = `createState(plan)` then `apply` each event. State is updated
 * incrementally (dependency counters, ready queues), so `decide` never rescans the plan.
 *
 * Lifecycle of a stage visit (a {@link Node}):
 *   pending ──deps settled──▶ [if decision] ──▶ [for_each decision] ──▶ executing
 *   executing ──all executions settled──▶ [route decisions] ──▶ done (succeeded | continued | fallback)
 *   pending ──skip (if false, needs a skipped stage, forward goto)──▶ done (skipped)
 *   any ──backward goto──▶ pending on visit + 1
 * Lifecycle of an execution (an {@link Exec}, one per item; attempts are numbered from 1):
 *   ready ──stage_started──▶ running ──succeeded──▶ succeeded
 *                                    ──failed────▶ failed ──retry_scheduled──▶ retry_wait ──due──▶ ready
 *                                                         ──stage_settled / fallback──▶ settled
 *   running ──run cancelled / crash + resume──▶ ready (an interruption does not use up a retry)
 */
import type { RunStatus } from "../base/result.js";
import type { Plan, StageIdx } from "../plan/types.js";
import type { AttemptUsage, BatonEvent, StageError } from "./events.js";
import { usageBeyondSteps } from "./usage.js";
import { waitKey } from "./key.js";
import { onSettled } from "./release.js";

export type ExecStatus = "ready" | "running" | "failed" | "retry_wait" | "fallback" | "waiting" | "escalated" | "succeeded" | "settled";

/**
 * The execution lifecycle (see the header): every status change goes through {@link transition},
 * which refuses any change not listed here. `succeeded` and `settled` are final.
 */
const TRANSITIONS: Readonly<Record<ExecStatus, readonly ExecStatus[]>> = {
  ready: ["running", "ready"],
  // retry_wait → running: a folded log starts the retry without the wake-up decide performs live.
  retry_wait: ["ready", "running"],
  running: ["succeeded", "settled", "failed", "waiting", "ready"],
  failed: ["retry_wait", "settled", "fallback", "escalated"],
  fallback: ["settled", "succeeded"],
  waiting: ["succeeded", "failed", "ready"],
  escalated: ["settled", "succeeded", "failed"],
  succeeded: [],
  settled: [],
};

/** Thrown on a status change the lifecycle does not allow: a bug in the engine, never user input. */
export class EngineInvariantError extends Error {
  override readonly name = "EngineInvariantError";
}

/** Change an execution's status, checked against the lifecycle. */
export function transition(exec: Exec, to: ExecStatus): void {
  if (!TRANSITIONS[exec.status].includes(to)) {
    throw new EngineInvariantError(`engine invariant: execution of stage #${exec.stage} visit ${exec.visit}${exec.item === undefined ? "" : ` item ${exec.item}`} cannot go from ${exec.status} to ${to}`);
  }
  exec.status = to;
}

/** One execution slot: a stage visit's single execution, or one for_each item, or a fallback call. */
export interface Exec {
  readonly node: Node;
  /** for_each item index; undefined for a plain stage. */
  readonly item: number | undefined;
  /** The owner exec when this is a fallback call. */
  readonly owner: Exec | undefined;
  /** The stage this exec runs (the fallback stage for fallback calls). */
  readonly stage: StageIdx;
  /** The node's visit this exec belongs to (stale once the node moves on to a new visit). */
  readonly visit: number;
  status: ExecStatus;
  /** Number of the last attempt started (0 before the first). */
  attempt: number;
  /** Attempts cut short by a crash or cancel: they do not count against `retry.attempts`. */
  interruptions: number;
  /** Its last attempt was cut short (the next one re-runs it: `stage_started.rerun`). */
  interrupted: boolean;
  /** When it last became ready (ms). */
  readyAt: number;
  dueAt: number;
  output: unknown;
  /** How a settled exec ended. */
  outcome: "succeeded" | "continued" | "fallback" | "failed" | undefined;
  lastError: StageError | undefined;
  lastInput: unknown;
  fallback: Exec | undefined;
  /** Durable steps recorded on this execution (SPEC §9), by name; kept across its attempts. */
  steps: Map<string, unknown> | undefined;
}

/** A stage on its current visit. */
export interface Node {
  readonly idx: StageIdx;
  visit: number;
  /** Deps not settled yet. */
  waitingDeps: number;
  /** Some dep settled as skipped. */
  depSkipped: boolean;
  /** A forward goto targets this stage: it runs even if stages it needs were skipped on the way. */
  forced: boolean;
  /** Reason to skip without looking at deps (forward goto jumped over it). */
  routeSkip: string | undefined;
  ifDone: boolean;
  ifResult: boolean;
  /** for_each items once expanded. */
  items: readonly unknown[] | undefined;
  /** Executions; created lazily (for_each: up to `nextItem`). */
  execs: Exec[];
  /** Next for_each item index never started. */
  nextItem: number;
  /** Exec indices ready again (retries due, interrupted attempts). Entries may be stale. */
  readyAgain: number[];
  running: number;
  settledCount: number;
  /** Items (or 1) in total once executing; -1 before. */
  total: number;
  /** Next route index to evaluate. */
  routeCursor: number;
  /** A route decision on this visit was taken (the visit ends by it). */
  routed: boolean;
  /** An escalating route holds the stage until a human answers. */
  held: boolean;
  done: boolean;
  outcome: "succeeded" | "skipped" | "continued" | "fallback" | "failed" | undefined;
  output: unknown;
  /** Output of the previous visit (`prev`). */
  prev: unknown;
  /** `with:` of the route that brought this stage back (`route`). */
  routeWith: unknown;
  /** Something happened on this visit (a backward goto then starts a new visit). */
  active: boolean;
  /** When the node started executing (ready time of its executions). */
  readyAt: number;
  /** stage_completed was recorded for this for_each visit. */
  completed: boolean;
  // transient (not derived from events; reset by fold):
  effectPending: boolean;
  inDirty: boolean;
  inReady: boolean;
}

/** Declared once, with `RUN_STATUSES`, in ../base/result.ts. */
export type { RunStatus };

/** Something a human must answer: an approval stage, an escalating route or an on_error escalate. */
export interface WaitEntry {
  /** signal: a `wait:` stage (answered by a signal); sleep: a `sleep:`/`until:` stage (answered by its timer, never pauses the run). */
  readonly kind: "approval" | "route" | "on_error" | "signal" | "sleep";
  readonly stage: string;
  readonly visit: number;
  readonly item: number | undefined;
  readonly message: string;
  readonly node: Node;
  readonly exec: Exec | undefined;
  /** Tool calls still waiting for an answer (an agent's attempt stopped before them), by id. */
  readonly calls?: Map<string, import("./events.js").WaitingCall>;
  /** The wait's deadline (stage_waiting `due_at`). */
  readonly dueAt?: number;
  /** The signal a `wait:` stage waits for. */
  readonly signal?: string;
}

/** Whether a route may still be taken (its `max` not used up). */
export function routeAvailable(state: RunState, stage: StageIdx, route: number): boolean {
  const r = state.plan.stages[stage]!.routes[route];
  return r !== undefined && (state.routeTaken.get(stage * 1024 + route) ?? 0) < r.max;
}

export { waitKey };

export interface RunState {
  readonly plan: Plan;
  runId: string;
  status: RunStatus;
  inputs: Readonly<Record<string, unknown>>;
  seed: number;
  /** The engine version that started the run (its rules apply to it; see engine/version.ts). */
  engine: number;
  startedAt: number;
  /** Start of the current active segment (run_started / run_resumed). */
  activeStart: number;
  /** Active time used before the current segment (ms), for the run timeout. */
  activeBefore: number;
  lastAt: number;
  nodes: Node[];
  /** Non-fallback nodes not done. */
  unsettled: number;
  /** Executions running. */
  inflight: number;
  running: Set<Exec>;
  /** Times each route was taken, keyed `stageIdx*1024+routeIdx`. */
  routeTaken: Map<number, number>;
  /** Execs waiting for a retry, in no particular order (stale entries skipped). */
  timers: Exec[];
  /** Fallback calls ready to start (stale entries skipped). */
  readyFallbacks: Exec[];
  /** Execs whose attempt failed, awaiting retry or on_error (stale entries skipped). */
  failedQ: Exec[];
  failure: { stage?: string; kind: string; message: string } | undefined;
  cancelRequested: boolean;
  /** Model usage so far (every attempt that reported some). */
  usage: { input: number; output: number; usd: number };
  /** The first waiting stage, as the last run_waiting said (for results and messages). */
  waiting: { stage: string; message: string } | undefined;
  /** Stages (visits, items) waiting for a human, keyed `stage#visit[item]`. */
  waitingOn: Map<string, WaitEntry>;
  /** Signals sent that no wait has taken yet, by name, oldest first. */
  signals: Map<string, unknown[]>;
  /** Waits with a deadline the run has had (0: decide and nextWakeAt skip looking for due waits). */
  timedWaits: number;
  // transient:
  /** A signal arrived or a stage started waiting for one: decide matches them. */
  signalsDirty: boolean;
  dirty: Node[];
  ready: Node[];
  /** Executions cut off by a route/failure/cancel whose handlers must be aborted. */
  cut: { exec: Exec; attempt: number; visit: number; reason: string }[];
  assemblePending: boolean;
  /** Release of outputs nothing reads any more (./release.ts), when a live host turned it on: readers left per stage (-1: kept). */
  unread: Int32Array | undefined;
}

function newExec(node: Node, item: number | undefined, stage: StageIdx, owner: Exec | undefined, at: number): Exec {
  return {
    node, item, owner, stage, visit: node.visit, status: "ready", attempt: 0, interruptions: 0, interrupted: false, readyAt: at, dueAt: 0,
    output: undefined, outcome: undefined, lastError: undefined, lastInput: undefined, fallback: undefined, steps: undefined,
  };
}

function newNode(idx: StageIdx, deps: number): Node {
  return {
    idx, visit: 1, waitingDeps: deps, depSkipped: false, forced: false, routeSkip: undefined,
    ifDone: false, ifResult: false, items: undefined, execs: [], nextItem: 0, readyAgain: [],
    running: 0, settledCount: 0, total: -1, routeCursor: 0, routed: false, held: false, done: false,
    outcome: undefined, output: undefined, prev: undefined, routeWith: undefined, active: false, readyAt: 0, completed: false,
    effectPending: false, inDirty: false, inReady: false,
  };
}

/** A fresh state for a plan (before `run_started`). */
export function createState(plan: Plan): RunState {
  const nodes = plan.stages.map((s) => newNode(s.idx, s.deps.length));
  return {
    plan, runId: "", status: "running", inputs: {}, seed: 0, engine: 1, startedAt: 0, activeStart: 0, activeBefore: 0,
    lastAt: 0, nodes, unsettled: plan.stages.filter((s) => !s.isFallback).length, inflight: 0,
    running: new Set(), routeTaken: new Map(), timers: [], failedQ: [], readyFallbacks: [], failure: undefined, cancelRequested: false, usage: { input: 0, output: 0, usd: 0 },
    waiting: undefined, waitingOn: new Map(), signals: new Map(), timedWaits: 0, signalsDirty: false, dirty: [], ready: [], cut: [], assemblePending: false, unread: undefined,
  };
}

/** Fold a whole log into state, then mark everything for `decide` to look at. */
export function fold(plan: Plan, events: readonly BatonEvent[]): RunState {
  const state = createState(plan);
  for (const e of events) apply(state, e);
  for (const n of state.nodes) markDirty(state, n);
  return state;
}

export function markDirty(state: RunState, node: Node): void {
  if (!node.inDirty) {
    node.inDirty = true;
    state.dirty.push(node);
  }
}

/** Create a node's executions when it starts executing (idempotent). */
export function enterExec(state: RunState, node: Node, at: number): void {
  if (node.total >= 0) return;
  node.active = true;
  node.readyAt = at;
  if (node.items) {
    node.total = node.items.length;
    if (node.total === 0) maybeComplete(state, node);
  } else {
    node.total = 1;
    node.execs.push(newExec(node, undefined, node.idx, undefined, at));
  }
}

/**
 * A node whose executions have all settled completes: its output is set (so its routes can
 * read it); once no route is left to evaluate it settles. Derived from events, so folding a
 * log settles exactly what the live run settled.
 */
export function maybeComplete(state: RunState, node: Node): void {
  if (node.done || node.total < 0 || node.settledCount < node.total || node.outcome === "failed") return;
  const stage = state.plan.stages[node.idx]!;
  if (node.items) {
    const out = new Array<unknown>(node.total);
    for (let i = 0; i < node.total; i++) out[i] = node.execs[i]!.output;
    node.output = out;
  } else {
    node.output = node.execs[0]!.output;
  }
  if (!node.routed) {
    for (let i = node.routeCursor; i < stage.routes.length; i++) if (routeAvailable(state, node.idx, i)) return; // routes to evaluate first
  }
  if (node.held) return;
  const x = node.execs[0];
  const outcome = node.items ? "succeeded" : x?.outcome === "continued" || x?.outcome === "fallback" ? x.outcome : "succeeded";
  settleNode(state, node, outcome, node.output);
  if (node.items) markDirty(state, node); // decide records stage_completed
}

/** The exec a for_each item or plain stage maps to, creating for_each execs lazily. */
export function execAt(node: Node, item: number | undefined, at: number): Exec | undefined {
  if (item === undefined) return node.items ? undefined : node.execs[0];
  if (!node.items || item < 0 || item >= node.items.length) return undefined;
  while (node.execs.length <= item) node.execs.push(newExec(node, node.execs.length, node.idx, undefined, at));
  if (node.nextItem <= item) node.nextItem = item + 1;
  return node.execs[item];
}

/** Start a fallback call for a failed exec. */
export function startFallback(exec: Exec, fallbackStage: StageIdx, at: number): Exec {
  const fb = newExec(exec.node, exec.item, fallbackStage, exec, at);
  exec.fallback = fb;
  return fb;
}

function findExec(state: RunState, e: { stage: string; visit: number; item?: number; fallback_for?: string }): Exec | undefined {
  const plan = state.plan;
  const ownerId = e.fallback_for ?? e.stage;
  const idx = plan.stageIndex.get(ownerId);
  if (idx === undefined) return undefined;
  const node = state.nodes[idx]!;
  if (node.visit !== e.visit) return undefined;
  if (node.total < 0 && e.fallback_for === undefined) enterExec(state, node, state.lastAt);
  const exec = execAt(node, e.item, state.lastAt);
  if (!exec) return undefined;
  return e.fallback_for !== undefined ? exec.fallback : exec;
}

/** Settle a node: done, with an outcome and output; dependents are told. */
export function settleNode(state: RunState, node: Node, outcome: NonNullable<Node["outcome"]>, output: unknown): void {
  if (node.done) return;
  node.done = true;
  node.outcome = outcome;
  node.output = outcome === "skipped" ? null : output;
  const stage = state.plan.stages[node.idx]!;
  if (!stage.isFallback) state.unsettled--;
  for (const d of stage.dependents) {
    const dep = state.nodes[d]!;
    if (dep.done) continue;
    dep.waitingDeps--;
    if (outcome === "skipped") dep.depSkipped = true;
    if (dep.waitingDeps <= 0) markDirty(state, dep);
  }
  if (state.unread) onSettled(state, node);
}

function stopRunning(state: RunState, exec: Exec): void {
  if (exec.status !== "running") return;
  state.running.delete(exec);
  state.inflight--;
  if (!exec.owner) exec.node.running--;
}

/** Mark an exec's outcome; updates the node's settled count. */
export function settleExec(state: RunState, exec: Exec, outcome: NonNullable<Exec["outcome"]>, output: unknown): void {
  stopRunning(state, exec);
  if (exec.owner) {
    transition(exec, outcome === "succeeded" ? "succeeded" : "settled");
    exec.outcome = outcome;
    exec.output = output;
    if (outcome === "succeeded") settleExec(state, exec.owner, "fallback", output);
    else if (outcome === "continued") settleExec(state, exec.owner, "continued", null);
    else markDirty(state, exec.owner.node);
    return;
  }
  transition(exec, outcome === "succeeded" ? "succeeded" : "settled");
  exec.outcome = outcome;
  exec.output = outcome === "continued" ? null : output;
  exec.node.settledCount++;
  markDirty(state, exec.node);
  maybeComplete(state, exec.node);
}

/**
 * Make an exec ready to start again and queue it where `decide` looks: fallback calls in
 * `readyFallbacks`, for_each items in their node's `readyAgain` (a plain stage's single exec is
 * found by its status). `interrupted`: its attempt was cut short (crash, cancel), which does not
 * use up a retry.
 */
export function requeue(state: RunState, exec: Exec, at: number, interrupted: boolean): void {
  stopRunning(state, exec);
  transition(exec, "ready");
  exec.readyAt = at;
  if (interrupted) exec.interruptions++;
  exec.interrupted = interrupted;
  if (exec.owner) state.readyFallbacks.push(exec);
  else if (exec.node.items) exec.node.readyAgain.push(exec.item!);
  markDirty(state, exec.node);
}

/** Cut every running exec (failure, cancel): returns them to ready so a resume re-runs them. */
function cutAll(state: RunState, reason: string, at: number): void {
  for (const exec of [...state.running]) {
    state.cut.push({ exec, attempt: exec.attempt, visit: exec.node.visit, reason });
    requeue(state, exec, at, true);
  }
}

/**
 * Apply one event to the state. Returns whether the event was placed: false for an event about
 * a stale visit or attempt, or one the state has no place for (strict replay fails on those).
 */
export function apply(state: RunState, e: BatonEvent): boolean {
  const prevAt = state.lastAt;
  state.lastAt = e.at;
  switch (e.type) {
    case "run_started":
      state.runId = e.run_id;
      state.inputs = e.inputs;
      state.seed = e.seed;
      state.engine = e.engine ?? 1;
      state.startedAt = e.at;
      state.activeStart = e.at;
      for (const n of state.nodes) if (n.waitingDeps === 0) markDirty(state, n);
      return true;
    case "stage_started": {
      const exec = findExec(state, e);
      if (!exec || (exec.status !== "ready" && exec.status !== "retry_wait")) return false;
      transition(exec, "running");
      exec.attempt = e.attempt;
      exec.node.active = true;
      state.running.add(exec);
      state.inflight++;
      if (!exec.owner) exec.node.running++;
      return true;
    }
    case "stage_succeeded": {
      if (e.tokens) addUsage(state, e);
      const exec = findExec(state, e);
      // A superseded attempt's outcome that reports usage is stored for its cost: placed as usage.
      if (!exec || exec.status !== "running" || exec.attempt !== e.attempt) return e.tokens !== undefined;
      exec.lastInput = e.input;
      settleExec(state, exec, "succeeded", e.output);
      return true;
    }
    case "stage_failed": {
      if (e.tokens) addUsage(state, e);
      const exec = findExec(state, e);
      if (!exec || exec.status !== "running" || exec.attempt !== e.attempt) return e.tokens !== undefined;
      stopRunning(state, exec);
      transition(exec, "failed");
      exec.lastError = e.error;
      exec.lastInput = e.input;
      state.failedQ.push(exec);
      markDirty(state, exec.node);
      return true;
    }
    case "retry_scheduled": {
      const exec = findExec(state, e);
      if (!exec || exec.status !== "failed") return false;
      transition(exec, "retry_wait");
      exec.dueAt = e.due_at;
      state.timers.push(exec);
      return true;
    }
    case "stage_settled": {
      const exec = findExec(state, e);
      if (!exec || (exec.status !== "failed" && exec.status !== "fallback")) return false;
      if (e.error) exec.lastError = e.error;
      settleExec(state, exec, e.outcome, e.output ?? null);
      if (e.outcome === "failed" && !exec.owner) {
        exec.node.outcome = "failed";
        const err = exec.lastError;
        state.failure ??= { stage: e.stage, kind: err?.kind ?? "handler", message: err?.message ?? "stage failed" };
      }
      return true;
    }
    case "stage_cancelled": {
      // The decision that cut it already updated the state (see `cut`); a cancel of a live exec
      // (e.g. written by another process) returns it to ready.
      let wasCut = false;
      if (state.cut.length > 0) {
        const ids = state.plan.stages;
        const before = state.cut.length;
        state.cut = state.cut.filter(
          (c) => !(ids[c.exec.stage]!.id === e.stage && c.visit === e.visit && c.attempt === e.attempt && c.exec.item === e.item &&
            (c.exec.owner ? ids[c.exec.owner.stage]!.id : undefined) === e.fallback_for),
        );
        wasCut = state.cut.length < before;
      }
      const exec = findExec(state, e);
      if (!exec || exec.status !== "running" || exec.attempt !== e.attempt) return wasCut;
      requeue(state, exec, e.at, true);
      return true;
    }
    case "stage_skipped": {
      const idx = state.plan.stageIndex.get(e.stage);
      if (idx === undefined) return false;
      const node = state.nodes[idx]!;
      if (node.visit !== e.visit || node.done) return false;
      node.active = true;
      settleNode(state, node, "skipped", null);
      return true;
    }
    case "stage_reused": {
      const idx = state.plan.stageIndex.get(e.stage);
      const node = idx === undefined ? undefined : state.nodes[idx];
      if (!node || node.visit !== e.visit || node.done) return false;
      node.active = true;
      settleNode(state, node, e.outcome, e.output);
      return true;
    }
    case "stage_completed": {
      const idx = state.plan.stageIndex.get(e.stage);
      const node = idx === undefined ? undefined : state.nodes[idx];
      if (!node || node.visit !== e.visit || node.completed) return false;
      node.completed = true;
      return true;
    }
    case "decision":
      return applyDecision(state, e);
    case "stage_waiting": {
      // An agent's attempt that stopped for tool-call approvals reports usage no turn recorded.
      if (e.tokens) addUsage(state, e);
      const exec = findExec(state, e);
      if (!exec || exec.status !== "running" || exec.attempt !== e.attempt) return e.tokens !== undefined;
      stopRunning(state, exec);
      transition(exec, "waiting");
      const calls = e.calls && e.calls.length > 0 ? new Map(e.calls.map((c) => [c.id, c])) : undefined;
      const kind = e.signal !== undefined ? "signal" : e.sleep ? "sleep" : "approval";
      state.waitingOn.set(waitKey(e.stage, e.visit, e.item), {
        kind, stage: e.stage, visit: e.visit, item: e.item, message: e.message, node: exec.node, exec, ...(calls ? { calls } : {}),
        ...(e.due_at !== undefined ? { dueAt: e.due_at } : {}), ...(e.signal !== undefined ? { signal: e.signal } : {}),
      });
      if (e.signal !== undefined) state.signalsDirty = true;
      if (e.due_at !== undefined) state.timedWaits++;
      markDirty(state, exec.node);
      return true;
    }
    case "step_recorded": {
      // Usage of a turn counts at once (the attempt's outcome reports only what no step recorded).
      if (e.tokens) addUsage(state, e);
      const exec = findExec(state, e);
      // Completed work stays reusable by later attempts of the execution, until it is over.
      if (!exec || exec.status === "succeeded" || exec.status === "settled" || exec.steps?.has(e.name)) return e.tokens !== undefined;
      (exec.steps ??= new Map()).set(e.name, e.output);
      return true;
    }
    case "stage_escalated": {
      const exec = findExec(state, e);
      if (!exec || exec.status !== "failed") return false;
      transition(exec, "escalated");
      state.waitingOn.set(waitKey(e.stage, e.visit, e.item), { kind: "on_error", stage: e.stage, visit: e.visit, item: e.item, message: e.message, node: exec.node, exec });
      return true;
    }
    case "approval":
      return applyApproval(state, e);
    case "signal": {
      if (state.status !== "running" && state.status !== "waiting") return false;
      const q = state.signals.get(e.name);
      if (q) q.push(e.data ?? null);
      else state.signals.set(e.name, [e.data ?? null]);
      state.signalsDirty = true;
      return true;
    }
    case "run_waiting":
      state.status = "waiting";
      state.waiting = { stage: e.stage, message: e.message };
      return true;
    case "run_cancel_requested":
      if (state.status !== "running" && state.status !== "waiting") return false;
      state.cancelRequested = true;
      return true;
    case "run_resumed": {
      state.activeBefore += Math.max(0, prevAt - state.activeStart);
      state.activeStart = e.at;
      state.status = "running";
      state.cancelRequested = false;
      state.waiting = undefined;
      // A crash left these running: run them again (at-least-once), without using up a retry.
      for (const exec of [...state.running]) requeue(state, exec, e.at, true);
      // A sub-pipeline stage waiting on its child runs again: it resumes the child.
      for (const [k, w] of state.waitingOn) {
        if (w.kind !== "approval" || !w.exec || state.plan.stages[w.exec.stage]!.spec.kind !== "pipeline") continue;
        state.waitingOn.delete(k);
        requeue(state, w.exec, e.at, true);
      }
      for (const n of state.nodes) markDirty(state, n);
      return true;
    }
    case "code_changed":
      // A note in the log (code pinning): no state, and no effect on the run's timing.
      state.lastAt = prevAt;
      return true;
    case "run_finished":
      if (e.status === "cancelled") cutAll(state, "run cancelled", e.at);
      state.status = e.status;
      state.cancelRequested = false;
      state.assemblePending = false;
      if (e.status === "failed" && e.error) state.failure ??= { ...e.error };
      return true;
  }
}

function addUsage(state: RunState, e: AttemptUsage): void {
  // An outcome's usage includes what its recorded turns counted already (step_recorded).
  const u = usageBeyondSteps(e);
  state.usage.input += u.input;
  state.usage.output += u.output;
  state.usage.usd += u.usd;
}

function applyDecision(state: RunState, e: Extract<BatonEvent, { type: "decision" }>): boolean {
  const idx = state.plan.stageIndex.get(e.stage);
  if (idx === undefined) return false;
  const node = state.nodes[idx]!;
  if (node.visit !== e.visit) return false;
  node.effectPending = false;
  markDirty(state, node);
  switch (e.kind) {
    case "if":
      if (node.ifDone) return false;
      node.ifDone = true;
      node.ifResult = e.error === undefined && e.result === true;
      if (e.error !== undefined) failRun(state, e.stage, "expression", e.error);
      return true;
    case "for_each":
      if (node.items) return false;
      if (e.error !== undefined) {
        failRun(state, e.stage, "expression", e.error);
        return true;
      }
      node.items = e.items ?? [];
      enterExec(state, node, e.at);
      return true;
    case "fallback": {
      const exec = node.items ? execAt(node, e.item, e.at) : node.execs[0];
      const stage = state.plan.stages[idx]!;
      if (!exec || exec.status !== "failed" || stage.onError.kind !== "fallback") return false;
      transition(exec, "fallback");
      state.readyFallbacks.push(startFallback(exec, stage.onError.stage, e.at));
      return true;
    }
    case "escalate":
      return true;
    case "route":
      return applyRoute(state, node, e);
  }
}

function applyApproval(state: RunState, e: Extract<BatonEvent, { type: "approval" }>): boolean {
  const key = waitKey(e.stage, e.visit, e.item);
  const w = state.waitingOn.get(key);
  if (!w || w.node.visit !== e.visit) return false;
  state.waitingOn.delete(key);
  const why = `rejected by ${e.by ?? "a human"}${e.comment ? `: ${e.comment}` : ""}`;
  if (w.kind === "route") {
    w.node.held = false;
    if (!e.approved) {
      failRun(state, e.stage, "rejected", why);
      return true;
    }
    if (e.data !== undefined && !w.node.items && w.node.execs[0]) w.node.execs[0].output = e.data;
    maybeComplete(state, w.node);
    return true;
  }
  const exec = w.exec!;
  if (w.calls) {
    // Tool calls waiting for approval: record each answer as a step of the execution; once every
    // call is answered the execution runs again (its turns and calls so far are replayed).
    const ids = e.call !== undefined ? [e.call] : [...w.calls.keys()];
    let any = false;
    for (const id of ids) {
      if (!w.calls.delete(id)) continue;
      any = true;
      (exec.steps ??= new Map()).set(`approval:${id}`, { approved: e.approved, ...(e.data !== undefined ? { data: e.data } : {}), ...(e.by ? { by: e.by } : {}), ...(e.comment ? { comment: e.comment } : {}) });
    }
    if (!any) {
      state.waitingOn.set(key, w);
      return false;
    }
    if (w.calls.size > 0) {
      // Still waiting: on the calls that are left (the message says which).
      const left = [...w.calls.values()];
      const message = left.length === 1
        ? `stage '${w.stage}': ${left[0]!.message} (tool call ${left[0]!.id}: ${left[0]!.tool})`
        : `stage '${w.stage}': ${left.length} tool calls wait for approval: ${left.map((c) => `${c.id} (${c.tool})`).join(", ")} — answer each by its call id`;
      state.waitingOn.set(key, { ...w, message });
    } else requeue(state, exec, e.at, true);
    return true;
  }
  if (w.kind === "signal" && e.by === "signal") {
    // The signal this wait takes (decide records the answer only when one was kept).
    const q = state.signals.get(w.signal!);
    q?.shift();
    if (q && q.length === 0) state.signals.delete(w.signal!);
  }
  if (w.kind === "approval" || w.kind === "signal" || w.kind === "sleep") {
    if (e.approved) {
      settleExec(state, exec, "succeeded", e.data === undefined ? { approved: true, ...(e.by ? { by: e.by } : {}), ...(e.comment ? { comment: e.comment } : {}) } : e.data);
      return true;
    }
    transition(exec, "failed");
    exec.lastError = e.error ?? { kind: "handler", message: why, retryable: false };
    state.failedQ.push(exec);
    markDirty(state, exec.node);
    return true;
  }
  // on_error escalate: a human stands in for the failed stage, or confirms the failure.
  if (e.approved) {
    settleExec(state, exec, e.data === undefined ? "continued" : "fallback", e.data ?? null);
    return true;
  }
  settleExec(state, exec, "failed", null);
  exec.node.outcome = "failed";
  failRun(state, e.stage, "rejected", why);
  return true;
}

function failRun(state: RunState, stage: string, kind: string, message: string): void {
  state.failure ??= { stage, kind, message };
}

function applyRoute(state: RunState, node: Node, e: Extract<BatonEvent, { type: "decision" }>): boolean {
  const i = e.route ?? node.routeCursor;
  if (e.error !== undefined) {
    failRun(state, e.stage, "expression", e.error);
    return true;
  }
  const stage = state.plan.stages[node.idx]!;
  // Routes are decided after every execution of the visit settled, once per visit.
  if (node.routed || node.done || node.total < 0 || node.settledCount < node.total || i < node.routeCursor || i > stage.routes.length) return false;
  if (e.taken && !routeAvailable(state, node.idx, i)) return false;
  node.routeCursor = i + 1;
  if (!e.taken) {
    maybeComplete(state, node);
    return true;
  }
  const route = stage.routes[i];
  if (!route) return false;
  const key = node.idx * 1024 + i;
  state.routeTaken.set(key, (state.routeTaken.get(key) ?? 0) + 1);
  node.routed = true;
  if (route.fail !== undefined) {
    failRun(state, stage.id, "route", route.fail);
    return true;
  }
  if (route.escalate !== undefined) {
    node.held = true;
    state.waitingOn.set(waitKey(stage.id, node.visit, undefined), { kind: "route", stage: stage.id, visit: node.visit, item: undefined, message: route.escalate, node, exec: undefined });
    return true;
  }
  if (route.goto === undefined) return true;
  const target = state.nodes[route.goto]!;
  if (route.backward) {
    resetFrom(state, target, e.with);
  } else {
    maybeComplete(state, node);
    target.forced = true;
    for (const between of pathBetween(state.plan, node.idx, route.goto)) {
      const n = state.nodes[between]!;
      if (!n.done) {
        n.routeSkip = `route from '${stage.id}' to '${state.plan.stages[route.goto]!.id}'`;
        markDirty(state, n);
      }
    }
  }
  return true;
}

/** Stages strictly between `from` and `to`: descendants of `from` that are ancestors of `to`. */
export function pathBetween(plan: Plan, from: StageIdx, to: StageIdx): StageIdx[] {
  const down = descendants(plan, from);
  const out: StageIdx[] = [];
  const seen = new Set<StageIdx>();
  const stack = [...plan.stages[to]!.deps];
  while (stack.length) {
    const s = stack.pop()!;
    if (seen.has(s) || s === from) continue;
    seen.add(s);
    if (down.has(s)) out.push(s);
    stack.push(...plan.stages[s]!.deps);
  }
  return out.sort((a, b) => a - b);
}

/** All stages downstream of `from` (not including it). */
export function descendants(plan: Plan, from: StageIdx): Set<StageIdx> {
  const seen = new Set<StageIdx>();
  const stack = [...plan.stages[from]!.dependents];
  while (stack.length) {
    const s = stack.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    stack.push(...plan.stages[s]!.dependents);
  }
  return seen;
}

/** Backward goto: the target and everything downstream of it start a new visit. */
function resetFrom(state: RunState, target: Node, withValue: unknown): void {
  const plan = state.plan;
  const set = descendants(plan, target.idx);
  set.add(target.idx);
  const members = [...set].sort((a, b) => a - b);
  for (const [k, w] of state.waitingOn) if (set.has(w.node.idx)) state.waitingOn.delete(k);
  for (const idx of members) {
    const node = state.nodes[idx]!;
    for (const exec of node.execs) {
      for (const x of [exec, exec.fallback]) {
        if (x && x.status === "running") {
          state.cut.push({ exec: x, attempt: x.attempt, visit: node.visit, reason: "route back" });
          stopRunning(state, x);
        }
      }
    }
    if (node.done && !plan.stages[idx]!.isFallback) state.unsettled++;
    const prev = node.done ? node.output : node.prev;
    const fresh = newNode(idx, 0);
    Object.assign(node, fresh, { visit: node.visit + 1, prev, inDirty: node.inDirty, inReady: node.inReady });
    node.routeWith = idx === target.idx ? withValue : undefined;
  }
  // Recount what each member still waits for.
  for (const idx of members) {
    const node = state.nodes[idx]!;
    if (node.done) continue;
    let waiting = 0;
    let skipped = false;
    for (const d of plan.stages[idx]!.deps) {
      const dep = state.nodes[d]!;
      if (!dep.done) waiting++;
      else if (dep.outcome === "skipped") skipped = true;
    }
    node.waitingDeps = waiting;
    node.depSkipped = skipped;
    markDirty(state, node);
  }
}
