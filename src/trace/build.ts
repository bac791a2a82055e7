/**
 * `buildTrace`: one linear pass over a run's event log into the SPEC §5 trace document.
 * Executions are indexed in a Map by their entry id, so a 10,000-item for_each costs
 * 10,000 map entries and nothing quadratic. The trace is a view: it never changes the events.
 */
import type { BatonEvent, RunFinished, RunStarted } from "../engine/events.js";
import type { Plan } from "../plan/types.js";
import { executionId, iso, isoOrNull, newAttempt, newStepState, recovered, toDecision, toError, toStage, type Attempt, type Entry, type ErrorRow, type StepState } from "./entry.js";
import { shapeSteps } from "./steps.js";
import type { Trace, TraceDecision, TraceError, TraceOptions, TraceRunStatus } from "./types.js";

/** A signal sent to the run, as the trace lists it (`run.signals`). */
type Signal = { at: string; name: string; by?: string; data?: unknown; taken_by?: string };

/** The assembly description used when the plan has no `output:` expression. */
export const SINK_OUTPUTS = "outputs of sink stages";

/**
 * Token/cost fields of an event (outcomes of agent attempts, recorded turns), read structurally.
 * An outcome's `recorded_tokens`/`recorded_cost_usd` — what its attempt's recorded turns counted
 * already — are taken off, so every token is counted once: with its turn, or with the outcome
 * when no turn recorded it (a failed or cut-off turn). `counted`: the engine adds it to the run's
 * usage (it does so for events that carry `tokens`).
 */
function usageOf(e: unknown): { model: string | undefined; input: number; output: number; cost: number; counted: boolean } | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const r = e as Record<string, unknown>;
  const t = r["tokens"] as Record<string, unknown> | undefined;
  const rt = r["recorded_tokens"] as Record<string, unknown> | undefined;
  const n = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  // The same arithmetic as the engine's addUsage, so the sums agree to the last bit.
  const cost = n(r["cost_usd"]) - n(r["recorded_cost_usd"]);
  const model = typeof r["model"] === "string" ? r["model"] : undefined;
  const hasTokens = typeof t === "object" && t !== null;
  if (!hasTokens && cost === 0 && model === undefined) return undefined;
  return { model, input: n(t?.["input"]) - n(rt?.["input"]), output: n(t?.["output"]) - n(rt?.["output"]), cost, counted: hasTokens };
}

/**
 * Build the trace of one run from its event log (SPEC §5). Linear in the number of events.
 *
 * @param events The run's whole log, in order; it must start with `run_started`.
 * @param plan The run's plan (optional). When given and its hash matches the run's, the trace
 *   names route targets and the assembly expression; otherwise those are left out / `null`.
 * @param opts `messages: true` adds the messages every agent turn sent (`Trace.messages`, by `messages_ref`).
 * @throws Error when the log has no `run_started` event.
 * @example
 * const { events } = await store.load(runId);
 * console.log(JSON.stringify(buildTrace(events, plan), null, 2));
 */
export function buildTrace(events: readonly BatonEvent[], plan?: Plan, opts: TraceOptions = {}): Trace {
  const first = events[0];
  if (first?.type !== "run_started") {
    throw new Error(
      `buildTrace: expected the run's event log to start with run_started, got ${events.length === 0 ? "no events" : `'${first?.type}' first`}; ` +
        "pass the whole log, e.g. (await store.load(runId)).events",
    );
  }
  const started: RunStarted = first;
  const usePlan = plan !== undefined && plan.hash === started.plan_hash ? plan : undefined;
  const entries = new Map<string, Entry>();
  const order: Entry[] = [];
  const wholes: Entry[] = [];
  const open = new Set<Entry>();
  const lastVisit = new Map<string, number>();
  const decisions: TraceDecision[] = [];
  const errors: ErrorRow[] = [];
  const runTokens = { input: 0, output: 0 };
  let runCost = 0;
  let status: TraceRunStatus = "running";
  let endedAt: number | undefined;
  let finished: RunFinished | undefined;
  let waiting: { at: number; stage: string; message: string } | undefined;
  const codeChanged: { at: string; files: Record<string, { from: string; to: string | null }>; by?: string }[] = [];

  const entry = (stage: string, visit: number, item: number | undefined, fallbackFor: string | undefined, at: number, whole = false): Entry => {
    const id = executionId(stage, visit, item, fallbackFor);
    let x = entries.get(id);
    if (x) return x;
    x = {
      id, stage, visit, item, fallbackFor, whole, status: "running", reason: undefined, startedAt: at, endedAt: undefined,
      queuedMs: null, input: null, output: null, attempts: [], logs: undefined, itemCount: undefined, completed: false,
      settled: false, model: undefined, tokens: undefined, cost: undefined,
    };
    entries.set(id, x);
    order.push(x);
    if ((lastVisit.get(stage) ?? 0) < visit) lastVisit.set(stage, visit);
    return x;
  };
  const attemptOf = (x: Entry, n: number, at: number): Attempt => {
    for (let i = x.attempts.length - 1; i >= 0; i--) if (x.attempts[i]!.n === n) return x.attempts[i]!;
    const a = newAttempt(n, at, false); // an outcome whose start was not logged
    x.attempts.push(a);
    return a;
  };
  const interrupt = (x: Entry): void => {
    const a = x.attempts[x.attempts.length - 1];
    if (a?.status !== "running") return;
    a.status = "cancelled";
    a.error = { kind: "interrupted", message: "its process stopped or lost the lease; it ran again after resume", retryable: true };
    x.status = "cancelled";
    x.reason = "interrupted (the process stopped or lost its lease)";
    open.delete(x);
  };
  const addPool = (x: Entry, e: { pool?: string; pool_key?: string; pool_wait_ms?: number; pool_wait_reason?: string; child_run?: string }): void => {
    if (e.child_run !== undefined) x.child = e.child_run;
    if (e.pool === undefined) return;
    x.pool = e.pool;
    if (e.pool_key !== undefined) x.poolKey = e.pool_key;
    if (e.pool_wait_ms) x.queuedMs = (x.queuedMs ?? 0) + e.pool_wait_ms;
    if (e.pool_wait_ms !== undefined) x.poolWaitMs = (x.poolWaitMs ?? 0) + e.pool_wait_ms;
    if (e.pool_wait_reason !== undefined) x.waitedFor ??= e.pool_wait_reason;
  };
  const addUsage = (x: Entry, e: unknown): void => {
    addPool(x, e as Parameters<typeof addPool>[1]);
    const u = usageOf(e);
    if (!u) return;
    if (u.model !== undefined) x.model = u.model;
    x.tokens ??= { input: 0, output: 0 };
    x.tokens.input += u.input;
    x.tokens.output += u.output;
    x.cost = (x.cost ?? 0) + u.cost;
    if (!u.counted) return;
    runTokens.input += u.input;
    runTokens.output += u.output;
    runCost += u.cost;
  };
  const durable = (x: Entry): StepState => (x.durable ??= newStepState());
  const addReplayed = (x: Entry, names: readonly string[] | undefined): void => {
    if (names === undefined || names.length === 0) return;
    const st = durable(x);
    for (const n of names) st.replayed.add(n);
  };
  /** Executions whose tool calls wait for approval, by what an `approval` names: stage#visit[item]. */
  const callWaits = new Map<string, Entry>();
  /** Signals sent and not yet taken, by name, in the order sent (each is taken by one wait). */
  const signals = new Map<string, Signal[]>();
  const sentSignals: Signal[] = [];

  for (const e of events) {
    switch (e.type) {
      case "run_started":
        break;
      case "stage_reused": {
        const x = entry(e.stage, e.visit, undefined, undefined, e.at);
        x.status = e.outcome === "skipped" ? "skipped" : e.outcome;
        x.output = e.output;
        x.endedAt = e.at;
        x.reusedFrom = e.from_run;
        x.reason = `reused from run ${e.from_run}`;
        break;
      }
      case "stage_started": {
        const x = entry(e.stage, e.visit, e.item, e.fallback_for, e.at);
        interrupt(x);
        if (x.attempts.length === 0) x.queuedMs = e.queued_ms;
        x.attempts.push(newAttempt(e.attempt, e.at, e.rerun === true));
        const waitKey = executionId(e.stage, e.visit, e.item);
        if (callWaits.get(waitKey) === x) callWaits.delete(waitKey);
        x.status = "running";
        x.reason = undefined;
        x.endedAt = undefined;
        open.add(x);
        break;
      }
      case "stage_succeeded": {
        const x = entry(e.stage, e.visit, e.item, e.fallback_for, e.at);
        const a = attemptOf(x, e.attempt, e.at);
        a.status = "succeeded";
        a.endedAt = e.at;
        a.logs = e.logs;
        open.delete(x);
        x.status = "succeeded";
        x.endedAt = e.at;
        x.output = e.output;
        x.input = e.input ?? null;
        x.logs = e.logs;
        addUsage(x, e);
        addReplayed(x, e.replayed);
        if (e.fallback_for !== undefined) {
          const owner = entries.get(executionId(e.fallback_for, e.visit, e.item));
          if (owner) {
            owner.status = "fallback";
            owner.output = e.output;
            owner.endedAt = e.at;
            owner.settled = true;
          }
        }
        break;
      }
      case "stage_failed": {
        const x = entry(e.stage, e.visit, e.item, e.fallback_for, e.at);
        const a = attemptOf(x, e.attempt, e.at);
        a.status = "failed";
        a.endedAt = e.at;
        a.error = { ...e.error };
        a.logs = e.logs;
        open.delete(x);
        x.status = "failed";
        x.endedAt = e.at;
        x.input = e.input ?? null;
        x.logs = e.logs;
        addUsage(x, e);
        addReplayed(x, e.replayed);
        const { kind, message, retryable } = e.error;
        errors.push({ at: e.at, entry: x, stage: e.stage, attempt: e.attempt, kind, message, retryable, resumed: false });
        break;
      }
      case "retry_scheduled": {
        const x = entry(e.stage, e.visit, e.item, e.fallback_for, e.at);
        attemptOf(x, e.attempt - 1, e.at).retryInMs = e.delay_ms;
        x.status = "retrying";
        x.endedAt = undefined;
        break;
      }
      case "stage_settled": {
        const x = entry(e.stage, e.visit, e.item, e.fallback_for, e.at);
        x.status = e.outcome;
        x.endedAt = e.at;
        if (e.outcome === "continued") x.output = null;
        if (e.outcome === "fallback") x.output = e.output ?? null;
        x.settled = e.outcome !== "failed";
        break;
      }
      case "stage_cancelled": {
        const x = entry(e.stage, e.visit, e.item, e.fallback_for, e.at);
        const a = attemptOf(x, e.attempt, e.at);
        a.status = "cancelled";
        a.endedAt = e.at;
        a.reason = e.reason;
        open.delete(x);
        x.status = "cancelled";
        x.reason = e.reason;
        x.endedAt = e.at;
        break;
      }
      case "stage_skipped": {
        const x = entry(e.stage, e.visit, undefined, undefined, e.at);
        x.status = "skipped";
        x.reason = e.reason;
        x.endedAt = e.at;
        break;
      }
      case "stage_completed": {
        const x = entries.get(executionId(e.stage, e.visit));
        if (x) {
          x.completed = true;
          x.endedAt = e.at;
        }
        break;
      }
      case "decision":
        decisions.push(toDecision(e, usePlan));
        if (e.kind === "for_each" && e.error === undefined) {
          const x = entry(e.stage, e.visit, undefined, undefined, e.at, true);
          x.itemCount = e.items?.length ?? (typeof e.result === "number" ? e.result : 0);
          wholes.push(x);
        } else if (e.kind === "fallback") {
          const x = entries.get(executionId(e.stage, e.visit, e.item));
          if (x) {
            x.status = "fallback";
            x.endedAt = undefined;
          }
        }
        break;
      case "stage_waiting": {
        const x = entry(e.stage, e.visit, e.item, e.fallback_for, e.at);
        const a = attemptOf(x, e.attempt, e.at);
        a.status = "waiting";
        open.delete(x);
        x.status = "waiting";
        x.reason = e.message;
        addUsage(x, e);
        addReplayed(x, e.replayed);
        if (e.calls && e.calls.length > 0) {
          const st = durable(x);
          for (const c of e.calls) st.waits.set(c.id, { message: c.message, answer: undefined });
          callWaits.set(executionId(e.stage, e.visit, e.item), x);
        }
        break;
      }
      case "step_recorded": {
        const x = entry(e.stage, e.visit, e.item, e.fallback_for, e.at);
        if (e.tokens) addUsage(x, e);
        const st = durable(x);
        // Later records of a name (a superseded attempt's) are not what later attempts reuse.
        if (!st.recorded.has(e.name)) st.recorded.set(e.name, e);
        break;
      }
      case "stage_escalated": {
        const x = entry(e.stage, e.visit, e.item, e.fallback_for, e.at);
        x.status = "escalated";
        x.reason = e.message;
        x.endedAt = undefined;
        const err = x.attempts[x.attempts.length - 1]?.error;
        decisions.push({
          at: iso(e.at), stage: e.stage, visit: e.visit, ...(e.item !== undefined ? { item: e.item } : {}), kind: "escalate",
          expression: "on_error: escalate", read: err ? { error: { kind: err.kind, message: err.message } } : {}, result: e.message,
        });
        break;
      }
      case "signal": {
        const sig: Signal = { at: iso(e.at), name: e.name, ...(e.by !== undefined ? { by: e.by } : {}), ...(e.data !== undefined ? { data: e.data } : {}) };
        sentSignals.push(sig);
        const q = signals.get(e.name);
        if (q) q.push(sig);
        else signals.set(e.name, [sig]);
        break;
      }
      case "approval": {
        const waitKey = executionId(e.stage, e.visit, e.item);
        const w = callWaits.get(waitKey);
        if (w) {
          // Tool calls waiting for approval: `call` answers one, no `call` answers all of them.
          if (w.status !== "waiting") {
            callWaits.delete(waitKey); // it stopped waiting (cancelled): nothing takes the answer
            break;
          }
          const waits = durable(w).waits;
          const ids = [...waits].filter(([id, c]) => c.answer === undefined && (e.call === undefined || id === e.call)).map(([id]) => id);
          if (ids.length === 0) break; // nothing waits for this answer (the engine ignores it too)
          for (const id of ids) waits.get(id)!.answer = { approved: e.approved, by: e.by, comment: e.comment, at: e.at };
          const call = e.call ?? (ids.length === 1 ? ids[0] : undefined);
          decisions.push({
            at: iso(e.at), stage: e.stage, visit: e.visit, ...(e.item !== undefined ? { item: e.item } : {}), kind: "approval",
            expression: "human decision", read: {}, result: e.approved ? (e.data ?? { approved: true }) : false, taken: e.approved,
            ...(e.by !== undefined ? { by: e.by } : {}), ...(e.comment !== undefined ? { comment: e.comment } : {}),
            ...(call !== undefined ? { call } : {}),
          });
          w.reason = `call ${ids.join(", ")} ${e.approved ? "approved" : "rejected"}${e.by ? ` by ${e.by}` : ""}${e.comment ? `: ${e.comment}` : ""}`;
          if ([...waits.values()].every((c) => c.answer !== undefined)) {
            // Every call is answered: the execution runs again (its recorded turns and calls replayed).
            callWaits.delete(waitKey);
            const a = w.attempts[w.attempts.length - 1];
            if (a?.status === "waiting") {
              a.status = "answered";
              a.endedAt = e.at;
            }
            w.status = "running";
            w.endedAt = undefined;
            open.add(w);
          }
          break;
        }
        // A wait taking a signal is recorded as an approval by "signal" (comment "signal 'NAME'"): name who sent it.
        const sig = e.by === "signal" ? /^signal '(.+)'$/.exec(e.comment ?? "")?.[1] : undefined;
        const sent = sig !== undefined ? signals.get(sig)?.shift() : undefined;
        if (sent) sent.taken_by = executionId(e.stage, e.visit, e.item);
        decisions.push({
          at: iso(e.at), stage: e.stage, visit: e.visit, ...(e.item !== undefined ? { item: e.item } : {}), kind: "approval",
          expression: "human decision", read: {}, result: e.approved ? (e.data ?? { approved: true }) : false, taken: e.approved,
          ...(e.by !== undefined ? { by: e.by } : {}), ...(e.comment !== undefined ? { comment: e.comment } : {}),
          ...(sig !== undefined ? { signal: { name: sig, ...(sent?.by !== undefined ? { by: sent.by } : {}), at: sent?.at ?? iso(e.at) } } : {}),
        });
        const x = entries.get(executionId(e.stage, e.visit, e.item));
        if (!x) break;
        const a = x.attempts[x.attempts.length - 1];
        if (a && a.status === "waiting") {
          a.status = e.approved ? "succeeded" : "failed";
          a.endedAt = e.at;
        }
        x.reason = `${e.approved ? "approved" : "rejected"}${e.by ? ` by ${e.by}` : ""}${e.comment ? `: ${e.comment}` : ""}`;
        if (e.approved) {
          // An escalation answered: the human's output settles the stage for good (it is not cut off at the run's end).
          if (x.status === "escalated") x.settled = true;
          x.status = x.status === "escalated" ? (e.data === undefined ? "continued" : "fallback") : "succeeded";
          if (e.data !== undefined || x.output === undefined) x.output = e.data ?? { approved: true };
          x.endedAt = e.at;
        }
        break;
      }
      case "run_waiting":
        status = "waiting";
        waiting = { at: e.at, stage: e.stage, message: e.message };
        break;
      case "run_cancel_requested":
        break;
      case "code_changed":
        codeChanged.push({ at: iso(e.at), files: { ...e.files }, ...(e.by !== undefined ? { by: e.by } : {}) });
        break;
      case "run_resumed":
        status = "running";
        endedAt = undefined;
        finished = undefined;
        waiting = undefined;
        for (const x of [...open]) interrupt(x);
        for (const r of errors) if (r.entry === undefined) r.resumed = true;
        break;
      case "run_finished":
        status = e.status;
        endedAt = e.at;
        finished = e;
        waiting = undefined;
        if (e.error) {
          const { kind, message } = e.error;
          errors.push({ at: e.at, entry: undefined, stage: e.error.stage ?? null, attempt: null, kind, message, retryable: false, resumed: false });
        }
        break;
    }
  }

  const done = status === "succeeded" || status === "failed" || status === "cancelled";
  const messages = opts.messages === true ? new Map<string, unknown>() : undefined;
  for (const x of order) {
    if (x.whole || !done) continue;
    if (x.status === "running" || x.status === "retrying" || (x.status === "fallback" && !x.settled)) {
      x.status = "cancelled";
      x.reason = `run ${status}`;
      x.endedAt ??= endedAt;
    }
  }
  for (const w of wholes) settleWhole(w, entries, done ? `run ${status}` : undefined, (lastVisit.get(w.stage) ?? 0) > w.visit, endedAt);
  const allDecisions = usePlan ? withExhausted(usePlan, order, decisions) : decisions;

  const unexplained = new Set<string>();
  for (const r of errors) if (r.entry && !recovered(r.entry)) unexplained.add(`${r.kind}\u0000${r.message}`);
  const traceErrors: TraceError[] = [];
  for (const r of errors) {
    if (!r.entry && unexplained.has(`${r.kind}\u0000${r.message}`)) continue;
    traceErrors.push(toError(r));
  }

  return {
    run: {
      id: started.run_id, pipeline: started.pipeline, plan_hash: started.plan_hash, status, inputs: started.inputs,
      output: status === "succeeded" ? (finished?.output ?? null) : null,
      started_at: iso(started.at), ended_at: isoOrNull(endedAt), duration_ms: endedAt === undefined ? null : endedAt - started.at,
      tokens: runTokens, cost_usd: runCost,
      ...(finished?.error ? { error: { ...finished.error } } : {}),
      ...(waiting && status === "waiting" ? { waiting: { at: iso(waiting.at), stage: waiting.stage, message: waiting.message } } : {}),
      ...(started.parent_id !== undefined ? { parent_id: started.parent_id } : {}),
      ...(started.rerun_of !== undefined ? { rerun_of: started.rerun_of, rerun_from: started.rerun_from } : {}),
      ...(sentSignals.length > 0 ? { signals: sentSignals } : {}),
      ...(codeChanged.length > 0 ? { code_changed: codeChanged } : {}),
    },
    stages: order.map((x) => toStage(x, x.durable ? shapeSteps(x.durable, x.status, messages) : undefined)),
    decisions: allDecisions,
    errors: traceErrors,
    assembly: {
      expression: usePlan ? (usePlan.output?.source ?? SINK_OUTPUTS) : null,
      read: finished?.read ? [...finished.read] : [],
    },
    ...(messages ? { messages: Object.fromEntries(messages) } : {}),
  };
}

/**
 * A for_each stage's own entry: succeeded once `stage_completed` says so (or every item has
 * settled, e.g. when a route back left before completion), failed when an item failed for
 * good, cancelled when a route back or the run's end cut it off, running otherwise.
 */
function settleWhole(w: Entry, entries: ReadonlyMap<string, Entry>, runEnd: string | undefined, superseded: boolean, endedAt: number | undefined): void {
  const n = w.itemCount ?? 0;
  const out = new Array<unknown>(n);
  let settled = 0;
  let failedAt: number | undefined;
  let cancelled: Entry | undefined;
  let last = w.startedAt;
  for (let i = 0; i < n; i++) {
    const x = entries.get(executionId(w.stage, w.visit, i));
    out[i] = null;
    if (!x) continue;
    if (recovered(x)) {
      settled++;
      out[i] = x.output;
      if (x.endedAt !== undefined && x.endedAt > last) last = x.endedAt;
    } else if (x.status === "failed") failedAt ??= x.endedAt;
    else if (x.status === "cancelled") cancelled ??= x;
  }
  if (w.completed || (failedAt === undefined && settled === n)) {
    w.status = "succeeded";
    w.output = out;
    w.endedAt ??= last;
  } else if (failedAt !== undefined) {
    w.status = "failed";
    w.endedAt = failedAt;
  } else if (superseded || runEnd !== undefined) {
    w.status = "cancelled";
    w.reason = cancelled?.reason ?? runEnd ?? "route back";
    w.endedAt = cancelled?.endedAt ?? endedAt;
  }
}


/** Stage visits that settled and so had their routes decided (not reused by a rerun: those decide none). */
const ROUTED: ReadonlySet<string> = new Set(["succeeded", "continued", "fallback"]);

/**
 * The routes the engine passed over because their `max` was used up, as route decisions with
 * `exhausted` (it records no event for them), merged into the decisions in time order. The
 * engine's rule, replayed from the log: on each settled visit its routes are tried in order from
 * the first; a route taken ends the visit's routing, one not taken (or used up) hands over to the
 * next; a route is used up once taken `max` times in the run.
 */
function withExhausted(plan: Plan, order: readonly Entry[], decisions: TraceDecision[]): TraceDecision[] {
  const visits = new Map<string, Entry[]>();
  for (const x of order) {
    if (x.item !== undefined || x.fallbackFor !== undefined || x.reusedFrom !== undefined) continue;
    const idx = plan.stageIndex.get(x.stage);
    if (idx === undefined || (plan.stages[idx]?.routes.length ?? 0) === 0) continue;
    const list = visits.get(x.stage);
    if (list) list.push(x);
    else visits.set(x.stage, [x]);
  }
  if (visits.size === 0) return decisions;
  const decided = new Map<string, TraceDecision>();
  for (const d of decisions) if (d.kind === "route" && d.route !== undefined) decided.set(`${d.stage}#${d.visit}:${d.route}`, d);
  const added: TraceDecision[] = [];
  for (const [id, xs] of visits) {
    const stage = plan.stages[plan.stageIndex.get(id)!]!;
    const taken = new Array<number>(stage.routes.length).fill(0);
    for (const x of xs.sort((a, b) => a.visit - b.visit)) {
      if (!ROUTED.has(x.status)) {
        for (let i = 0; i < stage.routes.length; i++) if (decided.get(`${id}#${x.visit}:${i}`)?.taken === true) taken[i]!++;
        continue;
      }
      const mine: TraceDecision[] = [];
      for (let i = 0; i < stage.routes.length; i++) {
        const d = decided.get(`${id}#${x.visit}:${i}`);
        if (d) {
          if (d.taken === true) taken[i]!++;
          if (d.taken === true || d.error !== undefined) break;
          continue;
        }
        const r = stage.routes[i]!;
        if (taken[i]! < r.max) break; // not reached (the run stopped before)
        const last = i === stage.routes.length - 1;
        const to = r.goto !== undefined ? plan.stages[r.goto]?.id : undefined;
        mine.push({
          at: iso(x.endedAt ?? x.startedAt), stage: id, visit: x.visit, kind: "route", expression: r.when.source, read: {}, result: null, taken: false, route: i,
          ...(to !== undefined ? { goto: to } : {}), ...(r.fail !== undefined ? { fail: r.fail } : {}), ...(r.escalate !== undefined ? { escalate: r.escalate } : {}),
          exhausted: { taken: taken[i]!, max: r.max },
          ...(last ? { continues_to: stage.dependents.map((j) => plan.stages[j]!).filter((s) => !s.isFallback).map((s) => s.id) } : {}),
        });
      }
      added.push(...mine);
    }
  }
  if (added.length === 0) return decisions;
  added.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  // Merge in time order; at the same instant a passed-over route comes before the visit's later routes.
  const before = (s: TraceDecision, d: TraceDecision): boolean =>
    s.at < d.at || (s.at === d.at && d.kind === "route" && d.stage === s.stage && d.visit === s.visit && (d.route ?? 0) > (s.route ?? 0));
  const out: TraceDecision[] = [];
  let k = 0;
  for (const d of decisions) {
    while (k < added.length && before(added[k]!, d)) out.push(added[k++]!);
    out.push(d);
  }
  while (k < added.length) out.push(added[k++]!);
  return out;
}
