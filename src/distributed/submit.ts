/**
 * The submitting side of distributed mode: create a run in the shared store and hand it to
 * the workers; optionally follow it to the end from the store's log.
 */
import { Queue, type ConnectionOptions } from "bullmq";
import type { BatonEvent, RunStarted } from "../engine/events.js";
import type { Plan } from "../plan/types.js";
import { newRunId, resultOf, type RunResult } from "../runtime/runtime.js";
import { Redactor } from "../runtime/redact.js";
import type { Store } from "../store/port.js";
import { ADVANCE, enqueueAdvance } from "./worker.js";

/** Create a run and enqueue its first step. */
export async function submitRun(store: Store, connection: ConnectionOptions, plan: Plan, inputs: Record<string, unknown>): Promise<{ id: string; events: BatonEvent[] }> {
  const id = newRunId();
  const started: RunStarted = {
    type: "run_started", at: Date.now(), run_id: id, pipeline: plan.name, plan_hash: plan.hash,
    source: { format: plan.source.format, ...(plan.source.file ? { file: plan.source.file } : {}), ...(plan.source.text !== undefined ? { text: plan.source.text } : {}) },
    inputs, seed: Math.floor(Math.random() * 0x7fffffff),
  };
  new Redactor().event(started);
  const seq = await store.create({ id, pipeline: plan.name, planHash: plan.hash }, [started]);
  const q = new Queue(ADVANCE, { connection });
  try {
    await enqueueAdvance(q, id, seq);
  } finally {
    await q.close();
  }
  return { id, events: [started] };
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
