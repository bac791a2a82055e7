/**
 * Read-only views the UI's API serves: a run's plan as the graph draws it, run summaries for
 * the runs list (tokens and cost come from each run's trace, cached by sequence number), and
 * a run's detail. Nothing here writes.
 */
import type { BatonEvent, RunStarted, StageWaiting } from "../engine/events.js";
import type { Plan } from "../plan/types.js";
import type { RunRecord, Store } from "../store/port.js";
import { recordedPlan } from "../api/run.js";
import { describePlan } from "../template/index.js";
import { buildTrace } from "../trace/index.js";
import type { Trace } from "../trace/types.js";
import type { PlanView, RunDetail, RunSummary, StageView, WaitReason } from "./types.js";

/** The plan as the web app draws it: {@link describePlan} plus routes, for_each and fallbacks. */
export function planView(plan: Plan): PlanView {
  const d = describePlan(plan);
  const id = (i: number): string => plan.stages[i]!.id;
  const stages = plan.stages.map((s, i): StageView => {
    const desc = d.stages[i]!;
    return {
      id: s.id, kind: desc.kind,
      ...(s.description !== undefined ? { description: s.description } : {}),
      deps: desc.deps, level: desc.level,
      ...(s.forEach ? { for_each: true, for_each_expr: s.forEach.source } : {}),
      ...(s.if ? { if: s.if.source } : {}),
      routes: s.routes.map((r) => ({
        when: r.when.source, max: r.max,
        ...(r.goto !== undefined ? { goto: id(r.goto) } : {}),
        ...(r.fail !== undefined ? { fail: r.fail } : {}),
        ...(r.escalate !== undefined ? { escalate: r.escalate } : {}),
      })),
      ...(s.onError.kind === "fallback" ? { fallback: id(s.onError.stage) } : {}),
      ...(s.isFallback ? { is_fallback: true } : {}),
    };
  });
  return { name: plan.name, hash: plan.hash, output: plan.output?.source ?? null, stages, critical_path: d.critical_path };
}

const execKey = (e: { stage: string; visit: number; item?: number; fallback_for?: string }): string =>
  `${e.stage}#${e.visit}${e.item !== undefined ? `[${e.item}]` : ""}${e.fallback_for !== undefined ? `<-${e.fallback_for}` : ""}`;

/**
 * What a run waits for, from its events and trace: each execution the trace shows waiting,
 * with the kind of its last `stage_waiting` (signal, sleep, approval, tool calls); a waiting
 * stage without one is an escalating route (`run.waiting`). A running run (which does not
 * pause while a stage sleeps) reports its sleeping stages only.
 */
export function waitReasons(events: readonly BatonEvent[], trace: Trace): WaitReason[] {
  const status = trace.run.status;
  if (status !== "waiting" && status !== "running") return [];
  const last = new Map<string, StageWaiting>();
  for (const e of events) if (e.type === "stage_waiting") last.set(execKey(e), e);
  const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());
  const out: WaitReason[] = [];
  for (const x of trace.stages) {
    if (x.status !== "waiting" && x.status !== "escalated") continue;
    const w = last.get(x.id);
    if (!w || (status === "running" && !w.sleep)) continue;
    const due = iso(w.due_at);
    out.push({
      kind: w.signal !== undefined ? "signal" : w.sleep ? "sleep" : "approval", stage: x.stage, visit: x.visit,
      ...(x.item !== undefined ? { item: x.item } : {}), message: w.message,
      ...(w.signal !== undefined ? { signal: w.signal } : {}), ...(due !== undefined ? { due_at: due } : {}),
      ...(w.calls && w.calls.length > 0 ? { calls: w.calls.length } : {}),
    });
  }
  const first = status === "waiting" ? trace.run.waiting : undefined;
  if (first && !out.some((r) => r.stage === first.stage)) out.unshift({ kind: "escalation", stage: first.stage, message: first.message });
  // The run's own `waiting` (its first waiting stage) leads.
  const lead = out.findIndex((r) => r.stage === first?.stage);
  if (lead > 0) out.unshift(...out.splice(lead, 1));
  return out;
}

/** Summary of one run for `GET /api/runs` (`events`: its log, for what a waiting run waits for). */
export function runSummary(record: RunRecord, trace: Trace, events: readonly BatonEvent[] = []): RunSummary {
  const waiting = record.status === "waiting" || record.status === "running" ? waitReasons(events, trace) : [];
  return {
    id: record.id, pipeline: record.pipeline, status: record.status, started_at: record.startedAt,
    ended_at: record.endedAt ?? null, duration_ms: trace.run.duration_ms, tokens: { ...trace.run.tokens },
    cost_usd: trace.run.cost_usd, parent_id: record.parentId ?? null,
    ...(trace.run.error && record.status !== "succeeded" ? { error: { ...trace.run.error } } : {}),
    ...(waiting.length > 0 ? { waiting_for: waiting } : {}),
  };
}

/**
 * Caches of what is costly to recompute: compiled plans by plan hash (a template compiles in
 * milliseconds, but the runs list would compile one per run) and run summaries by (run, seq).
 */
export class Views {
  private readonly plans = new Map<string, Plan | null>();
  private readonly summaries = new Map<string, { seq: number; summary: RunSummary }>();

  constructor(private readonly store: Store) {}

  /** The run's plan recompiled from its stored template, or `null` when that is not possible. */
  planOf(first: RunStarted): Plan | null {
    const key = first.plan_hash;
    if (this.plans.has(key)) return this.plans.get(key)!;
    const plan = recordedPlan(first) ?? null;
    if (this.plans.size > 200) this.plans.clear();
    this.plans.set(key, plan);
    return plan;
  }

  /** Runs, newest first, with tokens and cost from their traces. */
  async list(filter: { status?: RunRecord["status"]; pipeline?: string; limit: number }): Promise<RunSummary[]> {
    const records = await this.store.list(filter);
    const out: RunSummary[] = [];
    for (const r of records) {
      const hit = this.summaries.get(r.id);
      if (hit && hit.seq === r.seq) {
        out.push(hit.summary);
        continue;
      }
      const { run, events } = await this.store.load(r.id);
      const summary = runSummary(run, buildTrace(events), events);
      this.summaries.set(r.id, { seq: events.length, summary });
      out.push(summary);
    }
    if (this.summaries.size > 5000) this.summaries.clear();
    return out;
  }

  /** A run's trace (with its plan when it recompiles) and the sequence number it was built at. */
  async detail(runId: string): Promise<RunDetail> {
    const { events } = await this.store.load(runId);
    const first = events[0];
    const plan = first?.type === "run_started" ? this.planOf(first) : null;
    const trace = buildTrace(events, plan ?? undefined);
    return { run: trace.run, plan: plan ? planView(plan) : null, trace, seq: events.length };
  }
}
