/** `baton plan`: stages, dependencies, parallel levels and the critical path of a plan. */
import type { Plan, StageKind } from "../plan/types.js";

/** One stage in {@link PlanDescription}. */
export interface StageDescription {
  readonly id: string;
  readonly kind: StageKind;
  readonly deps: readonly string[];
  /** 0 for stages without deps, else 1 + the highest level among its deps. */
  readonly level: number;
}

/** What `baton plan --json` prints. */
export interface PlanDescription {
  readonly name: string;
  readonly hash: string;
  readonly stages: readonly StageDescription[];
  /** Stage ids by level: everything in one level can run in parallel. */
  readonly levels: readonly (readonly string[])[];
  /** The longest chain of dependencies, first stage first. */
  readonly critical_path: readonly string[];
  /** `triggers:` as written (webhook inputs as expression text); absent when there are none. */
  readonly triggers?: readonly TriggerDescription[];
}

/** One trigger in {@link PlanDescription}. */
export type TriggerDescription =
  | { readonly kind: "cron"; readonly name?: string; readonly cron: string; readonly timezone: string; readonly catch_up: string; readonly inputs: Readonly<Record<string, unknown>> }
  | { readonly kind: "webhook"; readonly name?: string; readonly path: string; readonly secret_env: string; readonly inputs: string };

/**
 * Describe a plan's shape: each stage's level (parallel wave) and the critical path, the
 * longest chain through dependencies, weighted by `durations` (ms per stage id, e.g. from a
 * previous run) when given, else 1 per stage. Ties go to the stage that comes first in the
 * template. Fallback stages have levels but are not on the critical path (they run only when
 * called).
 *
 * @example
 * describePlan(plan).critical_path; // ["research", "fact_check", "draft", "verify"]
 */
export function describePlan(plan: Plan, durations?: Record<string, number>): PlanDescription {
  const { stages } = plan;
  const order = plan.topo.length === stages.length ? plan.topo : stages.map((s) => s.idx);
  const level = new Array<number>(stages.length).fill(0);
  for (const i of order) {
    const s = stages[i];
    if (s) level[i] = s.deps.reduce((m, d) => Math.max(m, (level[d] ?? 0) + 1), 0);
  }
  const levels: string[][] = [];
  stages.forEach((s) => (levels[level[s.idx] as number] ??= []).push(s.id));

  const weight = (id: string): number => (durations === undefined ? 1 : (durations[id] ?? 0));
  const best = new Array<number>(stages.length).fill(-Infinity);
  const pred = new Array<number>(stages.length).fill(-1);
  for (const i of order) {
    const s = stages[i];
    if (s === undefined || s.isFallback) continue;
    let from = -1;
    let base = 0;
    for (const d of s.deps) {
      // deps are in stage order, so a strict > keeps the earlier stage on ties
      const b = best[d] as number;
      if (b === -Infinity) continue;
      if (from < 0 || b > base) {
        base = b;
        from = d;
      }
    }
    best[i] = base + weight(s.id);
    pred[i] = from;
  }
  let end = -1;
  stages.forEach((s) => {
    if (!s.isFallback && (end < 0 || (best[s.idx] as number) > (best[end] as number))) end = s.idx;
  });
  const path: string[] = [];
  for (let i = end; i >= 0; i = pred[i] as number) path.unshift((stages[i] as (typeof stages)[number]).id);

  return {
    name: plan.name,
    hash: plan.hash,
    stages: stages.map((s) => ({ id: s.id, kind: s.spec.kind, deps: s.deps.map((d) => (stages[d] as (typeof stages)[number]).id), level: level[s.idx] as number })),
    levels,
    critical_path: path,
    ...(plan.triggers !== undefined && plan.triggers.length > 0
      ? {
        triggers: plan.triggers.map((t): TriggerDescription => {
          const name = t.name !== undefined ? { name: t.name } : {};
          return t.kind === "cron"
            ? { kind: "cron", ...name, cron: t.cron, timezone: t.timezone, catch_up: t.catchUp, inputs: t.inputs }
            : { kind: "webhook", ...name, path: t.path, secret_env: t.secretEnv, inputs: t.inputs.source };
        }),
      }
      : {}),
  };
}
