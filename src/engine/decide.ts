/**
 * `decide(state, now)`: what happens next. Pure and deterministic: no clocks, no I/O, no
 * randomness but the run's seeded jitter. It looks only at what the last events changed
 * (the dirty and ready queues), records its own transitions as events (already applied to
 * the state when it returns) and asks the runtime for effects — work that needs I/O:
 * execute an attempt, evaluate an expression, abort an execution, assemble the output.
 */
import type { Plan, RetryPolicy, StageIdx } from "../plan/types.js";
import type { BatonEvent, StageError, StageStarted } from "./events.js";
import { apply, enterExec, execAt, markDirty, requeue, routeAvailable, type Exec, type Node, type RunState } from "./state.js";
import { jitter } from "./jitter.js";
import { FOR_EACH_CONCURRENCY } from "./version.js";
import { attemptId } from "./key.js";
import { assembleCommand, conditionCommand, executeCommand, keyOf, routesCommand, type Command } from "./commands.js";

/** Work for the host: commands as plain data (see ./commands.ts). */
export type Effect = Command;

export interface Step {
  /** Events decided (already applied to the state); append them before acting on effects. */
  readonly events: BatonEvent[];
  readonly effects: Effect[];
}

export interface DecideOptions {
  /** Executions the process can start now (process-wide concurrency). @default Infinity */
  readonly slots?: number;
}

/** Delay before retry number `n` (1 = the first retry) under a policy, given a uniform random r ∈ [0,1). */
export function backoffDelay(policy: RetryPolicy, n: number, r: number): number {
  const base = policy.backoff === "fixed" ? policy.delayMs : policy.delayMs * 2 ** Math.max(0, n - 1);
  const capped = Math.min(base, policy.maxDelayMs);
  return policy.jitter === "full" ? Math.floor(r * capped) : capped;
}


/** When `decide` next has something to do by itself (a retry falls due, the run times out). */
export function nextWakeAt(state: RunState): number | undefined {
  // A paused run wakes by itself only for a wait's deadline (approval/wait `timeout`, sleep).
  if (state.status === "waiting") return state.cancelRequested ? undefined : waitDue(state);
  if (state.status !== "running") return undefined;
  let at = deadline(state);
  for (const x of state.timers) if (x.status === "retry_wait" && (at === undefined || x.dueAt < at)) at = x.dueAt;
  const w = waitDue(state);
  if (w !== undefined && (at === undefined || w < at)) at = w;
  return at;
}

/** The earliest deadline of a waiting stage (visits and items), if any. */
function waitDue(state: RunState): number | undefined {
  if (state.timedWaits === 0) return undefined;
  let at: number | undefined;
  for (const w of state.waitingOn.values()) if (w.dueAt !== undefined && (at === undefined || w.dueAt < at)) at = w.dueAt;
  return at;
}

/** A duration as written in messages: 1500 → "1.5s", 7200000 → "2h". */
function humanMs(ms: number): string {
  for (const [u, n] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) if (ms >= n && ms % (n / 10) === 0) return `${ms / n}${u}`;
  return `${ms}ms`;
}

/**
 * Waits that end now: a `wait:` stage whose signal was sent, a deadline that passed (an
 * approval's or wait's `on_timeout`, a sleep's wake-up). Each is recorded as an `approval` (by
 * "signal", "timeout" or "timer"); a paused run is resumed first (`run_resumed`), so the log
 * says why it went on. Only plans with `wait:`, `sleep:`/`until:` or an approval `timeout` have
 * such waits, so older logs decide exactly as before.
 */
function endWaits(state: RunState, now: number, emit: Emit): void {
  if (state.waitingOn.size === 0) return;
  const checkSignals = state.signalsDirty;
  state.signalsDirty = false;
  if (!checkSignals && state.timedWaits === 0) return;
  const out: BatonEvent[] = [];
  const taken = new Map<string, number>();
  for (const w of state.waitingOn.values()) {
    const base = { type: "approval" as const, at: now, stage: w.stage, visit: w.visit, ...(w.item !== undefined ? { item: w.item } : {}) };
    if (checkSignals && w.kind === "signal") {
      const q = state.signals.get(w.signal!);
      const n = taken.get(w.signal!) ?? 0;
      if (q && q.length > n) {
        taken.set(w.signal!, n + 1);
        out.push({ ...base, approved: true, data: q[n], by: "signal", comment: `signal '${w.signal}'` });
        continue;
      }
    }
    if (w.dueAt === undefined || now < w.dueAt) continue;
    const spec = state.plan.stages[w.node.idx]!.spec;
    if (w.kind === "sleep") {
      out.push({ ...base, approved: true, data: { woke_at: new Date(w.dueAt).toISOString() }, by: "timer", comment: "sleep ended" });
    } else if (spec.kind === "approval" && spec.timeoutMs !== undefined) {
      const comment = `no answer within ${humanMs(spec.timeoutMs)}`;
      const on = spec.onTimeout ?? "reject";
      if (on === "approve") out.push({ ...base, approved: true, by: "timeout", comment });
      else if (on === "reject") out.push({ ...base, approved: false, by: "timeout", comment });
      else out.push({ ...base, approved: false, by: "timeout", comment, error: { kind: "timeout", message: `stage '${w.stage}': ${comment}`, retryable: false } });
    } else if (spec.kind === "wait" && spec.timeoutMs !== undefined) {
      const comment = `no signal '${spec.signal}' within ${humanMs(spec.timeoutMs)}`;
      if (spec.onTimeout === "continue") out.push({ ...base, approved: true, data: null, by: "timeout", comment });
      else out.push({ ...base, approved: false, by: "timeout", comment, error: { kind: "timeout", message: `stage '${w.stage}': ${comment}`, retryable: false } });
    }
  }
  if (out.length === 0) return;
  if (state.status === "waiting") emit({ type: "run_resumed", at: now });
  for (const e of out) emit(e);
}

function deadline(state: RunState): number | undefined {
  const t = state.plan.timeoutMs;
  return t === undefined ? undefined : state.activeStart + Math.max(0, t - state.activeBefore);
}

/** Decide the next step of a run. Mutates `state` only through `apply` and its work queues. */
export function decide(state: RunState, now: number, opts: DecideOptions = {}): Step {
  const step: Step = { events: [], effects: [] };
  const emit = (e: BatonEvent): void => {
    apply(state, e);
    step.events.push(e);
  };
  drainCut(state, now, emit, step);
  if (state.status === "succeeded" || state.status === "failed" || state.status === "cancelled") return step;

  if (state.cancelRequested) {
    cutRunning(state, now, "run cancelled", emit, step);
    emit({ type: "run_finished", at: now, status: "cancelled", error: { kind: "cancelled", message: "run cancelled" } });
    return step;
  }
  endWaits(state, now, emit);
  const dl = deadline(state);
  if (dl !== undefined && now >= dl && !state.failure) {
    state.failure = { kind: "timeout", message: `run exceeded its timeout of ${state.plan.timeoutMs} ms` };
  }
  if (!state.failure) {
    wakeTimers(state, now);
    handleFailures(state, now, emit);
    processDirty(state, now, emit, step);
  }
  if (state.failure) {
    cutRunning(state, now, "run failed", emit, step);
    emit({ type: "run_finished", at: now, status: "failed", error: { ...state.failure } });
    return step;
  }
  if (state.status !== "running") return step;
  startReady(state, now, opts.slots ?? Infinity, emit, step);
  // Pause when nothing can progress without a human: no work in flight, ready or scheduled.
  // (Engine ≥ 2: not while this step asked for evaluations — a route, `if` or for_each may still let work go on.)
  if (state.waitingOn.size > 0 && state.inflight === 0 && state.ready.length === 0 && (state.engine < 2 || step.effects.length === 0) && !state.timers.some((x) => x.status === "retry_wait") && !sleeping(state)) {
    const all = [...state.waitingOn.values()];
    const first = all[0]!;
    emit({
      type: "run_waiting", at: now, stage: first.stage, message: first.message,
      ...(all.length > 1 ? { waiting: all.map((w) => ({ stage: w.stage, visit: w.visit, ...(w.item !== undefined ? { item: w.item } : {}), message: w.message })) } : {}),
    });
    return step;
  }
  if (state.unsettled === 0 && state.inflight === 0 && !state.assemblePending) {
    state.assemblePending = true;
    step.effects.push(assembleCommand(state));
  }
  return step;
}

type Emit = (e: BatonEvent) => void;

/** A sleep is pending: like a retry's wait, it keeps the run going (its timer wakes it). */
function sleeping(state: RunState): boolean {
  for (const w of state.waitingOn.values()) if (w.kind === "sleep") return true;
  return false;
}

function drainCut(state: RunState, now: number, emit: Emit, step: Step): void {
  if (state.cut.length === 0) return;
  const cut = state.cut.splice(0);
  for (const c of cut) {
    const k = keyOf(state, c.exec);
    emit({ type: "stage_cancelled", at: now, ...k, visit: c.visit, attempt: c.attempt, reason: c.reason });
    step.effects.push({ kind: "cancel", key: { ...k, visit: c.visit }, attempt: c.attempt, reason: c.reason });
  }
}

function cutRunning(state: RunState, now: number, reason: string, emit: Emit, step: Step): void {
  for (const exec of [...state.running]) {
    const key = keyOf(state, exec);
    emit({ type: "stage_cancelled", at: now, ...key, attempt: exec.attempt, reason });
    step.effects.push({ kind: "cancel", key, attempt: exec.attempt, reason });
  }
}

function wakeTimers(state: RunState, now: number): void {
  if (state.timers.length === 0) return;
  const keep: Exec[] = [];
  for (const x of state.timers) {
    if (x.status !== "retry_wait" || x.visit !== x.node.visit) continue;
    if (x.dueAt > now) {
      keep.push(x);
      continue;
    }
    requeue(state, x, x.dueAt, false);
  }
  state.timers = keep;
}

function handleFailures(state: RunState, now: number, emit: Emit): void {
  if (state.failedQ.length === 0) return;
  const q = state.failedQ.splice(0);
  for (const exec of q) {
    if (exec.status !== "failed" || exec.visit !== exec.node.visit || state.failure) continue;
    const stage = state.plan.stages[exec.stage]!;
    const err: StageError = exec.lastError ?? { kind: "handler", message: "failed", retryable: true };
    const k = keyOf(state, exec);
    if (err.retryable && exec.attempt < stage.retry.attempts + exec.interruptions) {
      const n = exec.attempt - exec.interruptions;
      const r = jitter(state.seed, attemptId(k, exec.attempt));
      let delay = backoffDelay(stage.retry, n, r);
      // A provider's Retry-After waits at least that long, but never past the stage's max_delay
      // (a huge or hostile Retry-After must not park a run for a month).
      if (err.retry_after_ms !== undefined) delay = Math.max(delay, Math.min(err.retry_after_ms, stage.retry.maxDelayMs));
      emit({ type: "retry_scheduled", at: now, ...k, attempt: exec.attempt + 1, delay_ms: delay, due_at: now + delay });
      continue;
    }
    if (exec.owner) {
      // A fallback failed for good: the stage it stood in for fails, with the fallback's error.
      emit({ type: "stage_settled", at: now, ...keyOf(state, exec.owner), outcome: "failed", error: err });
      continue;
    }
    const onError = stage.onError;
    if (onError.kind === "continue") {
      emit({ type: "stage_settled", at: now, ...k, outcome: "continued", output: null });
    } else if (onError.kind === "fallback") {
      const fb = state.plan.stages[onError.stage]!;
      const d: BatonEvent = {
        type: "decision", at: now, stage: stage.id, visit: k.visit, kind: "fallback", expression: `on_error.fallback: ${fb.id}`,
        read: { error: { kind: err.kind, message: err.message } }, result: fb.id,
        ...(k.item !== undefined ? { item: k.item } : {}),
      };
      emit(d);
    } else if (onError.kind === "escalate") {
      emit({ type: "stage_escalated", at: now, ...k, message: `stage '${stage.id}' failed (${err.kind}: ${err.message}): approve (optionally with the output to use) to continue, or reject to fail the run` });
    } else {
      emit({ type: "stage_settled", at: now, ...k, outcome: "failed" });
    }
  }
}

function firstSkippedDep(state: RunState, idx: StageIdx): string {
  for (const d of state.plan.stages[idx]!.deps) {
    if (state.nodes[d]!.outcome === "skipped") return state.plan.stages[d]!.id;
  }
  return "?";
}

function processDirty(state: RunState, now: number, emit: Emit, step: Step): void {
  const plan: Plan = state.plan;
  // Processing may dirty more nodes (settling one readies its dependents); loop until quiet.
  while (state.dirty.length > 0) {
    const batch = state.dirty;
    state.dirty = [];
    for (const node of batch) {
      node.inDirty = false;
      const stage = plan.stages[node.idx]!;
      if (stage.isFallback || state.failure) continue;
      if (node.done) {
        if (node.items && !node.completed && node.outcome === "succeeded") {
          emit({ type: "stage_completed", at: now, stage: stage.id, visit: node.visit });
        }
        continue;
      }
      if (node.total < 0) {
        if (node.routeSkip !== undefined) {
          emit({ type: "stage_skipped", at: now, stage: stage.id, visit: node.visit, reason: `skipped by ${node.routeSkip}` });
          continue;
        }
        if (node.waitingDeps > 0) continue;
        if (node.depSkipped && !node.forced && !stage.if) {
          emit({ type: "stage_skipped", at: now, stage: stage.id, visit: node.visit, reason: `needs '${firstSkippedDep(state, node.idx)}', which was skipped` });
          continue;
        }
        if (stage.if && !node.ifDone) {
          if (!node.effectPending && state.status === "running") {
            node.effectPending = true;
            step.effects.push(conditionCommand(state, "evaluate_if", node.idx, node.visit));
          }
          continue;
        }
        if (stage.if && !node.ifResult) {
          emit({ type: "stage_skipped", at: now, stage: stage.id, visit: node.visit, reason: "`if` was false" });
          continue;
        }
        if (stage.forEach && !node.items) {
          if (!node.effectPending && state.status === "running") {
            node.effectPending = true;
            step.effects.push(conditionCommand(state, "expand", node.idx, node.visit));
          }
          continue;
        }
        enterExec(state, node, now);
      }
      if (node.settledCount >= node.total) {
        complete(state, node, step);
      } else if (!node.inReady && hasReady(node)) {
        node.inReady = true;
        state.ready.push(node);
      }
    }
  }
}

/** All executions settled: evaluate routes (settling itself is derived in `apply`). */
function complete(state: RunState, node: Node, step: Step): void {
  const stage = state.plan.stages[node.idx]!;
  if (node.outcome === "failed" || node.routed || state.status !== "running") return;
  for (let i = node.routeCursor; i < stage.routes.length; i++) {
    if (!routeAvailable(state, node.idx, i)) continue;
    if (!node.effectPending) {
      node.effectPending = true;
      step.effects.push(routesCommand(state, node.idx, node.visit, i));
    }
    return;
  }
}

function hasReady(node: Node): boolean {
  if (!node.items) return node.execs[0]?.status === "ready";
  while (node.readyAgain.length > 0) {
    const x = node.execs[node.readyAgain[0]!];
    if (x && x.status === "ready") return true;
    node.readyAgain.shift();
  }
  return node.nextItem < node.total;
}

function takeReady(node: Node): Exec | undefined {
  if (!hasReady(node)) return undefined;
  if (!node.items) return node.execs[0];
  if (node.readyAgain.length > 0) return node.execs[node.readyAgain.shift()!];
  return execAt(node, node.nextItem, node.readyAt);
}

function startExec(state: RunState, exec: Exec, now: number, emit: Emit, step: Step): void {
  const k = keyOf(state, exec);
  const attempt = exec.attempt + 1;
  const queued = Math.max(0, now - exec.readyAt);
  // Built field by field (the per-stage hot path: an object spread here costs more than the rest).
  const e: { -readonly [P in keyof StageStarted]: StageStarted[P] } = exec.item === undefined && exec.owner === undefined
    ? { type: "stage_started", at: now, stage: k.stage, visit: k.visit, attempt, queued_ms: queued }
    : { type: "stage_started", at: now, ...k, attempt, queued_ms: queued };
  if (exec.interrupted && exec.attempt > 0) e.rerun = true;
  emit(e);
  step.effects.push(executeCommand(state, exec, attempt, k));
}

/**
 * Executions of a stage in flight at once: its `concurrency:` (for_each items); without one, a
 * for_each runs {@link FOR_EACH_CONCURRENCY} items at once in runs of engine ≥ 3 (older runs: all).
 */
function itemLimit(state: RunState, stage: Plan["stages"][number]): number {
  const c = stage.itemConcurrency;
  return c === Infinity && stage.forEach && state.engine >= 3 ? FOR_EACH_CONCURRENCY : c;
}

function startReady(state: RunState, now: number, slots: number, emit: Emit, step: Step): void {
  const cap = state.plan.concurrency;
  let free = Math.min(slots, cap - state.inflight);
  if (free <= 0) return;
  if (state.readyFallbacks.length > 0) {
    const q = state.readyFallbacks;
    while (q.length > 0 && free > 0) {
      const x = q.shift()!;
      if (x.status !== "ready" || x.visit !== x.node.visit) continue;
      startExec(state, x, now, emit, step);
      free--;
    }
  }
  // Nodes that stay ready (allocated only when some do: usually every ready node starts).
  let keep: Node[] | undefined;
  const ready = state.ready;
  let i = 0;
  for (; i < ready.length && free > 0; i++) {
    const node = ready[i]!;
    const stage = state.plan.stages[node.idx]!;
    if (node.done || node.total < 0) {
      node.inReady = false;
      continue;
    }
    const limit = itemLimit(state, stage);
    while (free > 0 && node.running < limit) {
      const x = takeReady(node);
      if (!x) break;
      startExec(state, x, now, emit, step);
      free--;
    }
    if (free <= 0 && node.running < limit && hasReady(node)) (keep ??= []).push(node);
    else node.inReady = false;
  }
  for (; i < ready.length; i++) (keep ??= []).push(ready[i]!);
  state.ready = keep ?? [];
}
