/**
 * The submitting side of distributed mode: create a run in the shared store and hand it to
 * the workers; optionally follow it to the end from the store's log.
 */
import { Queue, type ConnectionOptions } from "bullmq";
import type { BatonEvent } from "../engine/events.js";
import type { Plan } from "../plan/types.js";
import { newRunId, resultOf, type RunResult } from "../runtime/runtime.js";
import { Redactor } from "../runtime/redact.js";
import { runStartedEvent } from "../runtime/started.js";
import type { Store } from "../store/port.js";
import { ADVANCE, DEFAULT_PREFIX, enqueueAdvance } from "./worker.js";

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
  store: Store, target: QueueTarget, plan: Plan, inputs: Record<string, unknown>,
  o: { rerun?: { of: string; from: string; reused: BatonEvent[] }; parentId?: string } = {},
): Promise<{ id: string; events: BatonEvent[] }> {
  const id = newRunId();
  const started = runStartedEvent(plan, {
    runId: id, at: Date.now(), inputs, seed: Math.floor(Math.random() * 0x7fffffff),
    ...(o.rerun ? { rerun: { of: o.rerun.of, from: o.rerun.from } } : {}), ...(o.parentId ? { parentId: o.parentId } : {}),
  });
  new Redactor().event(started);
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
