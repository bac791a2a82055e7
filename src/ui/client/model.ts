/// <reference lib="dom" />
/** Questions the views ask of a trace: a stage's executions, its latest state, its items. */
import type { Trace, TraceStage } from "../../trace/types.js";

/** Status of a stage that has not run (yet): drawn as pending. */
export type NodeStatus = TraceStage["status"] | "pending";

/** Executions of a stage that are not for_each items, in trace order (one per visit, plus fallback calls). */
export function executionsOf(trace: Trace, stage: string): TraceStage[] {
  return trace.stages.filter((s) => s.stage === stage && s.item === undefined);
}

/** The entry the graph shows for a stage: its latest visit. */
export function latestOf(trace: Trace, stage: string): TraceStage | undefined {
  let best: TraceStage | undefined;
  for (const s of trace.stages) if (s.stage === stage && s.item === undefined && (best === undefined || s.visit >= best.visit)) best = s;
  return best;
}

/** The item entries of a for_each entry, by item index. */
export function itemsOf(trace: Trace, whole: TraceStage): TraceStage[] {
  return trace.stages
    .filter((s) => s.stage === whole.stage && s.visit === whole.visit && s.item !== undefined && s.fallback_for === whole.fallback_for)
    .sort((a, b) => a.item! - b.item!);
}

/** Number of distinct visits a stage ran (skipped visits included). */
export function visitsOf(trace: Trace, stage: string): number {
  const v = new Set<number>();
  for (const s of trace.stages) if (s.stage === stage) v.add(s.visit);
  return v.size;
}

/** The status of each visit of a stage, in visit order: its entry for that visit (the last one when a fallback call also ran). */
export function visitStatusesOf(trace: Trace, stage: string): NodeStatus[] {
  const by = new Map<number, TraceStage>();
  for (const s of trace.stages) {
    if (s.stage !== stage) continue;
    const had = by.get(s.visit);
    // A visit's own entry beats its items; a later entry of the visit (a fallback call) beats an earlier one.
    if (!had || (had.item !== undefined && s.item === undefined) || (s.item === undefined && had.item === undefined)) by.set(s.visit, s);
  }
  return [...by.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => s.status);
}

/** Entries a human can answer now (approval stages, on_error escalate). */
export function waitingOf(trace: Trace): TraceStage[] {
  return trace.stages.filter((s) => s.status === "waiting" || s.status === "escalated");
}

/** What a human can answer now: one entry per waiting stage visit (with how many of its items wait), plus an escalating route the run waits on. */
export function questionsOf(trace: Trace): { stage: string; visit: number; message?: string; items: number }[] {
  const out = new Map<string, { stage: string; visit: number; message?: string; items: number }>();
  for (const w of waitingOf(trace)) {
    const k = `${w.stage}#${w.visit}`;
    const q = out.get(k);
    if (q) q.items++;
    else out.set(k, { stage: w.stage, visit: w.visit, ...(w.reason ? { message: w.reason } : {}), items: 1 });
  }
  const w = trace.run.waiting;
  if (w && ![...out.values()].some((q) => q.stage === w.stage)) {
    // An escalating route: the stage itself succeeded, the run waits for a human to look.
    out.set(`${w.stage}#route`, { stage: w.stage, visit: latestOf(trace, w.stage)?.visit ?? 1, message: w.message, items: 1 });
  }
  return [...out.values()];
}

/** Find an entry by id. */
export function entryById(trace: Trace, id: string): TraceStage | undefined {
  return trace.stages.find((s) => s.id === id);
}

/** Epoch ms where the trace ends: its end, or now while it is going. */
export function traceEnd(trace: Trace, now: number): number {
  if (trace.run.ended_at) return Date.parse(trace.run.ended_at);
  let last = Date.parse(trace.run.started_at);
  for (const s of trace.stages) {
    for (const a of s.attempts) last = Math.max(last, Date.parse(a.ended_at ?? a.started_at));
    if (s.ended_at) last = Math.max(last, Date.parse(s.ended_at));
  }
  if (trace.run.waiting) last = Math.max(last, Date.parse(trace.run.waiting.at));
  // A waiting run may wait for days: its axis ends at its last activity, not now.
  return trace.run.status === "running" ? Math.max(last, now) : last;
}

/** Human words for statuses. */
export const STATUS_LABEL: Readonly<Record<string, string>> = {
  pending: "pending", running: "running", retrying: "retrying", succeeded: "succeeded", failed: "failed",
  continued: "failed · continued", fallback: "fallback", skipped: "skipped", cancelled: "cancelled",
  waiting: "waiting", escalated: "escalated",
};

/** A status pill. */
export function statusClass(status: string): string {
  return `st-${status}`;
}
