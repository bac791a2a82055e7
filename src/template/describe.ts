/**
 * `baton plan`: stages, dependencies, parallel levels and the critical path of a plan, with
 * what shapes a run beyond the dependencies: routes, for_each, fallbacks, approvals and waits.
 */
import { FOR_EACH_CONCURRENCY } from "../base/defaults.js";
import type { Plan, StageKind, StagePlan } from "../plan/types.js";

/** One stage in {@link PlanDescription}. Fields after `level` are present only when the stage has them. */
export interface StageDescription {
  readonly id: string;
  readonly kind: StageKind;
  readonly deps: readonly string[];
  /**
   * 0 for stages without deps, else 1 + the highest level among its deps; a fallback stage
   * comes after the stage it backs up (1 + that stage's level, at least).
   */
  readonly level: number;
  /** `if:` as written. */
  readonly if?: string;
  /** `for_each:`: the expression it runs over, the item's name, items at a time (`null`: no limit). */
  /** `concurrency`: items at once; `default`: the stage sets none (the engine runs FOR_EACH_CONCURRENCY). */
  readonly for_each?: { readonly over: string; readonly as: string; readonly concurrency: number; readonly default?: true };
  /** `on_error:` other than the default `fail`. */
  readonly on_error?: "continue" | "escalate" | { readonly fallback: string };
  /** A fallback stage: the stages it backs up (it runs only when one of them fails for good). */
  readonly fallback_for?: readonly string[];
  /** `routes:` in order (each taken at most `max` times in a run); `backward`: a goto that re-runs the target. */
  readonly routes?: readonly RouteDescription[];
  /** Approval, `wait:` and `sleep:`/`until:` stages: what they wait for, and their deadline (ms) and what happens then. */
  readonly wait?: {
    readonly approval?: true;
    readonly signal?: string;
    readonly sleep_ms?: number;
    readonly until?: string;
    readonly timeout_ms?: number;
    readonly on_timeout?: string;
  };
}

/** One route in {@link StageDescription}: exactly one of `goto`, `fail`, `escalate`. */
export interface RouteDescription {
  readonly when: string;
  readonly goto?: string;
  readonly backward?: boolean;
  readonly fail?: string;
  readonly escalate?: string;
  /** Times it may be taken in one run; `null`: no limit (a `fail:` or `escalate:` route without `max`). */
  readonly max: number | null;
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
  const owners = new Map<number, number[]>();
  for (const s of stages) if (s.onError.kind === "fallback") (owners.get(s.onError.stage) ?? owners.set(s.onError.stage, []).get(s.onError.stage)!).push(s.idx);
  // A fallback comes after the stage it backs up; that may push what follows it (a fallback's
  // own fallback) further: repeat until nothing moves (at most once per stage).
  for (let pass = 0; pass <= stages.length; pass++) {
    let moved = false;
    for (const i of order) {
      const s = stages[i];
      if (!s) continue;
      let l = s.deps.reduce((m, d) => Math.max(m, (level[d] ?? 0) + 1), 0);
      for (const o of owners.get(i) ?? []) l = Math.max(l, (level[o] ?? 0) + 1);
      if (l !== level[i]) {
        level[i] = l;
        moved = true;
      }
    }
    if (!moved) break;
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
    stages: stages.map((s) => ({
      id: s.id, kind: s.spec.kind, deps: s.deps.map((d) => (stages[d] as (typeof stages)[number]).id), level: level[s.idx] as number,
      ...shapeOf(plan, s, owners.get(s.idx)),
    })),
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

/** What a stage adds to a run's shape beyond its dependencies (the optional fields of {@link StageDescription}). */
function shapeOf(plan: Plan, s: StagePlan, owners: readonly number[] | undefined): Partial<StageDescription> {
  const id = (i: number): string => plan.stages[i]!.id;
  const spec = s.spec;
  const wait: StageDescription["wait"] | undefined =
    spec.kind === "approval" ? { approval: true, ...(spec.timeoutMs !== undefined ? { timeout_ms: spec.timeoutMs, on_timeout: spec.onTimeout ?? "reject" } : {}) }
      : spec.kind === "wait" ? { signal: spec.signal, ...(spec.timeoutMs !== undefined ? { timeout_ms: spec.timeoutMs, on_timeout: spec.onTimeout ?? "fail" } : {}) }
        : spec.kind === "sleep" ? { ...(spec.ms !== undefined ? { sleep_ms: spec.ms } : {}), ...(spec.until !== undefined ? { until: spec.until.source } : {}) }
          : undefined;
  return {
    ...(s.if ? { if: s.if.source } : {}),
    ...(s.forEach ? { for_each: { over: s.forEach.source, as: s.as, concurrency: Number.isFinite(s.itemConcurrency) ? s.itemConcurrency : FOR_EACH_CONCURRENCY, ...(Number.isFinite(s.itemConcurrency) ? {} : { default: true }) } } : {}),
    ...(s.onError.kind === "fallback" ? { on_error: { fallback: id(s.onError.stage) } } : s.onError.kind !== "fail" ? { on_error: s.onError.kind } : {}),
    ...(owners && owners.length > 0 ? { fallback_for: owners.map(id) } : {}),
    ...(s.routes.length > 0
      ? {
        routes: s.routes.map((r): RouteDescription => ({
          when: r.when.source,
          ...(r.goto !== undefined ? { goto: id(r.goto), backward: r.backward === true } : {}),
          ...(r.fail !== undefined ? { fail: r.fail } : {}),
          ...(r.escalate !== undefined ? { escalate: r.escalate } : {}),
          max: Number.isFinite(r.max) ? r.max : null,
        })),
      }
      : {}),
    ...(wait ? { wait } : {}),
  };
}

/** A duration in ms as written in templates: 3600000 → "1h", 90000 → "90s". */
function durationText(ms: number): string {
  for (const [u, n] of [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) if (ms >= n && ms % n === 0) return `${ms / n}${u}`;
  return `${ms}ms`;
}

/** What a stage line of `baton plan` says after its dependencies. */
function stageNotes(s: StageDescription): string[] {
  const notes: string[] = [];
  if (s.fallback_for) notes.push(`fallback for ${s.fallback_for.join(", ")} (runs only when ${s.fallback_for.length === 1 ? "it fails" : "one of them fails"})`);
  if (s.if !== undefined) notes.push(`if ${s.if}`);
  if (s.for_each) notes.push(`for_each ${s.for_each.over}${s.for_each.as !== "item" ? ` as ${s.for_each.as}` : ""}, ${s.for_each.concurrency} at a time${s.for_each.default ? " (the default)" : ""}`);
  const w = s.wait;
  if (w) {
    const deadline = w.timeout_ms !== undefined ? ` (timeout ${durationText(w.timeout_ms)}, then ${w.on_timeout})` : "";
    if (w.approval) notes.push(`waits for a human approval${deadline}`);
    else if (w.signal !== undefined) notes.push(`waits for signal '${w.signal}'${deadline}`);
    else notes.push(w.sleep_ms !== undefined ? `sleeps ${durationText(w.sleep_ms)}` : `sleeps until ${w.until}`);
  }
  if (s.on_error !== undefined) notes.push(`on_error: ${typeof s.on_error === "string" ? s.on_error : `fallback ${s.on_error.fallback}`}`);
  return notes;
}

/**
 * The text view of `baton plan FILE`: one line per stage (kind, level, needs, and what else
 * shapes it), the routes, the parallel levels and the critical path.
 *
 * @example
 * process.stdout.write(renderPlan(describePlan(plan)) + "\n");
 */
export function renderPlan(d: PlanDescription): string {
  const lines = [`pipeline ${d.name}  plan ${d.hash.slice(0, 12)}`, "", "stages:"];
  const w = Math.max(...d.stages.map((s) => s.id.length));
  for (const s of d.stages) {
    const parts = [`level ${s.level}`];
    if (s.deps.length) parts.push(`needs ${s.deps.join(", ")}`);
    const notes = stageNotes(s);
    lines.push(`  ${s.id.padEnd(w)}  ${s.kind.padEnd(8)} ${parts.join("  ")}${notes.length ? `${s.deps.length ? " · " : "  "}${notes.join(" · ")}` : ""}`);
  }
  const routes = d.stages.flatMap((s) => (s.routes ?? []).map((r) => ({ from: s.id, r })));
  if (routes.length > 0) {
    lines.push("", "routes:");
    for (const { from, r } of routes) {
      const to = r.goto !== undefined ? r.goto : r.fail !== undefined ? `fail ${JSON.stringify(r.fail)}` : `escalate ${JSON.stringify(r.escalate ?? "")}`;
      const limits = [...(r.max !== null ? [`at most ${r.max}×`] : []), ...(r.backward ? ["back"] : [])];
      lines.push(`  ${from} → ${to}  when ${r.when}${limits.length ? `  (${limits.join(", ")})` : ""}`);
    }
  }
  lines.push("", "parallel levels:");
  d.levels.forEach((l, i) => lines.push(`  ${i}: ${l.join(", ")}`));
  lines.push("", `critical path: ${d.critical_path.join(" → ")}`);
  if (d.triggers) {
    lines.push("", "triggers:");
    for (const t of d.triggers) lines.push(`  ${t.name !== undefined ? `${t.name}: ` : ""}${t.kind === "cron" ? `cron ${t.cron} (${t.timezone})` : `webhook ${t.path}`}`);
  }
  return lines.join("\n");
}
