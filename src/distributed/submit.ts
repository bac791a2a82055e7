/**
 * The submitting side of distributed mode: create a run in the shared store and hand it to
 * the workers; optionally follow it to the end from the store's log.
 */
import { Queue, type ConnectionOptions } from "bullmq";
import { fold, type BatonEvent, type RunStarted, type RunState } from "../engine/index.js";
import { answerEvents, checkSignal, signalEvent, type HumanAnswer } from "../runtime/runtime.js";
import { UserError } from "../runtime/errors.js";
import { retryConflicts } from "../store/port.js";
import type { Plan } from "../plan/types.js";
import { newRunId, resultOf, type RunResult } from "../runtime/runtime.js";
import { redactingStore } from "../runtime/redact.js";
import { checkCompiledPlan, runStartedEvent } from "../runtime/started.js";
import { checkCode } from "../runtime/code.js";
import type { CodeChangeOptions } from "../runtime/runtime.js";
import type { Store } from "../store/port.js";
import { ADVANCE, DEFAULT_PREFIX, enqueueAdvance, requestCancel } from "./worker.js";

/** Where the workers of a deployment take their jobs. */
export interface QueueTarget {
  readonly connection: ConnectionOptions;
  /** Key prefix of the deployment in Redis. @default "baton" */
  readonly prefix?: string;
}

/** Hand a run to the workers: enqueue a step (recovering: re-dispatch its running attempts too). */
export async function handOff(target: QueueTarget, run: string, seq: number, recover = false): Promise<void> {
  const q = new Queue(ADVANCE, { connection: target.connection, prefix: target.prefix ?? DEFAULT_PREFIX });
  try {
    await enqueueAdvance(q, run, seq, 0, recover);
  } finally {
    await q.close();
  }
}

/** Create a run and hand it to the workers (`rerun`: a fork whose first events reuse recorded outputs). */
export async function submitRun(
  raw: Store, target: QueueTarget, plan: Plan, inputs: Record<string, unknown>,
  o: { rerun?: { of: string; from: string; reused: BatonEvent[] }; parentId?: string; runId?: string } = {},
): Promise<{ id: string; events: BatonEvent[] }> {
  if (plan.source.format === "ts" || (plan.source.file === undefined && plan.source.text === undefined)) {
    // Workers compile a run's plan from its recorded template; a TypeScript pipeline has none.
    throw new UserError(`pipeline '${plan.name}' is defined in TypeScript: workers can only run templates (YAML/JSON files); run it in this process, or write it as a template to run it on the workers`);
  }
  const store = redactingStore(raw); // the run's first events, redacted once there
  const id = o.runId ?? newRunId();
  const started = runStartedEvent(plan, {
    runId: id, at: Date.now(), inputs, seed: Math.floor(Math.random() * 0x7fffffff),
    ...(o.rerun ? { rerun: { of: o.rerun.of, from: o.rerun.from } } : {}), ...(o.parentId ? { parentId: o.parentId } : {}),
  });
  const first: BatonEvent[] = [started, ...(o.rerun?.reused ?? [])];
  const seq = await store.create({ id, pipeline: plan.name, planHash: plan.hash, ...(o.parentId ? { parentId: o.parentId } : {}) }, first);
  await handOff(target, id, seq);
  return { id, events: first };
}

/** Follow a run from the store until it stops (finished, waiting or cancelled). */
export async function followRun(store: Store, id: string, onEvents: (events: readonly BatonEvent[]) => void, signal?: AbortSignal, pollMs = 50): Promise<RunResult> {
  let seq = 0;
  const all: BatonEvent[] = [];
  for (;;) {
    const more = await store.eventsAfter(id, seq);
    if (more.length) {
      seq += more.length;
      all.push(...more);
      onEvents(more);
    }
    const last = all[all.length - 1];
    if (last && (last.type === "run_finished" || last.type === "run_waiting")) return resultOf(undefined, id, all);
    if (signal?.aborted) return resultOf(undefined, id, all);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * Append events to a run driven by the workers: they may append at the same moment, so a lost
 * race reloads and tries again. `build` sees the folded state at the sequence it appends at and
 * returns the events (nothing to append: undefined).
 */
export async function appendToWorkerRun(
  raw: Store, run: string, loadPlan: (source: RunStarted["source"]) => Plan | Promise<Plan>,
  build: (state: RunState, plan: Plan, events: readonly BatonEvent[]) => BatonEvent[] | undefined,
): Promise<{ seq: number; events: BatonEvent[] }> {
  const store = redactingStore(raw); // answers, signals, resumptions: redacted once there
  let plan: Plan | undefined;
  return retryConflicts(run, async () => {
    const { run: rec, events } = await store.load(run);
    if (!plan) {
      const first = events[0] as RunStarted;
      plan = await loadPlan(first.source);
      checkCompiledPlan(first, plan);
    }
    const out = build(fold(plan, events), plan, events);
    if (!out || out.length === 0) return { seq: rec.seq, events: [] };
    return { seq: await store.append(run, out, rec.seq), events: out };
  });
}

/** `baton resume` of a run on the workers: a paused or cancelled run is resumed; every running attempt gets its job again. */
export async function resumeOnWorkers(store: Store, target: QueueTarget, run: string, loadPlan: (source: RunStarted["source"]) => Plan | Promise<Plan>, code: CodeChangeOptions = {}): Promise<void> {
  const { seq } = await appendToWorkerRun(store, run, loadPlan, (state, plan, events) => {
    if (state.status === "succeeded" || state.status === "failed") return undefined;
    // Code pinning, checked against this machine's code too (the workers check theirs when they load the run).
    const changed = codeChangedEvent(run, events, plan, code);
    const resumed: BatonEvent[] = state.status === "waiting" || state.status === "cancelled" ? [{ type: "run_resumed", at: Date.now() }] : [];
    return [...(changed ? [changed] : []), ...resumed];
  });
  await handOff(target, run, seq, true);
}

/** `baton approve/reject` of a run on the workers: the answer (and, if the run paused, its resumption) is recorded; the workers continue it. */
export async function answerOnWorkers(
  store: Store, target: QueueTarget, run: string, stage: string, answer: HumanAnswer, loadPlan: (source: RunStarted["source"]) => Plan | Promise<Plan>,
  code: CodeChangeOptions = {},
): Promise<number> {
  let recorded = 0;
  const { seq } = await appendToWorkerRun(store, run, loadPlan, (state, plan, events) => {
    if (state.status === "succeeded" || state.status === "failed") throw new UserError(`run ${run} already ${state.status}`);
    const answers = answerEvents(state, stage, answer, Date.now()); // throws when nothing waits there
    recorded = answers.length;
    const changed = codeChangedEvent(run, events, plan, code);
    const all = changed ? [changed, ...answers] : answers;
    return state.status === "running" ? all : [...all, { type: "run_resumed", at: Date.now() }];
  });
  await handOff(target, run, seq);
  return recorded;
}

/** Code pinning for a command handing a run to the workers: refuse changed `run:` modules, or (allowed) the `code_changed` event. */
function codeChangedEvent(run: string, events: readonly BatonEvent[], plan: Plan, code: CodeChangeOptions): BatonEvent | undefined {
  return checkCode(run, events, plan, { allow: code.allowCodeChange === true, flag: "--allow-code-change", at: Date.now(), ...(code.by ? { by: code.by } : {}) });
}

/** `baton signal` of a run on the workers: the signal (and, if the run paused, its resumption) is recorded; the workers continue it. */
export async function signalOnWorkers(
  store: Store, target: QueueTarget, run: string, name: string, o: { data?: unknown; by?: string }, loadPlan: (source: RunStarted["source"]) => Plan | Promise<Plan>,
  code: CodeChangeOptions = {},
): Promise<void> {
  const { seq } = await appendToWorkerRun(store, run, loadPlan, (state, plan, events) => {
    checkSignal(plan, state, run, name); // throws when the run is over or nothing can wait for it
    const changed = codeChangedEvent(run, events, plan, code);
    const e = signalEvent(name, o, Date.now());
    const all = changed ? [changed, e] : [e];
    return state.status === "running" ? all : [...all, { type: "run_resumed", at: Date.now() }];
  });
  await handOff(target, run, seq);
}

/** `baton cancel` of a run on the workers: the request is recorded; the workers cancel it and abort its attempts where they run. */
export async function cancelOnWorkers(store: Store, target: QueueTarget, run: string, reason: string): Promise<boolean> {
  if (!(await requestCancel(store, run, reason))) return false;
  const rec = await store.get(run);
  await handOff(target, run, rec?.seq ?? 0);
  return true;
}
