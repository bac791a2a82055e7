/**
 * Read-only views the UI's API serves: a run's plan as the graph draws it, run summaries for
 * the runs list (tokens and cost come from each run's trace, cached by sequence number), and
 * a run's detail. Nothing here writes.
 */
import type { RunStarted } from "../engine/events.js";
import type { Plan } from "../plan/types.js";
import type { RunRecord, Store } from "../store/port.js";
import { recordedPlan } from "../api/run.js";
import { describePlan } from "../template/index.js";
import { buildTrace } from "../trace/index.js";
import type { Trace } from "../trace/types.js";
import type { PlanView, RunDetail, RunSummary, StageView } from "./types.js";

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

/** Summary of one run for `GET /api/runs`. */
export function runSummary(record: RunRecord, trace: Trace): RunSummary {
  return {
    id: record.id, pipeline: record.pipeline, status: record.status, started_at: record.startedAt,
    ended_at: record.endedAt ?? null, duration_ms: trace.run.duration_ms, tokens: { ...trace.run.tokens },
    cost_usd: trace.run.cost_usd, parent_id: record.parentId ?? null,
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
      const summary = runSummary(run, buildTrace(events));
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
