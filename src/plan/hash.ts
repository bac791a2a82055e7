/**
 * The hash of a COMPILED plan, recorded in `run_started` (`compiled_hash`).
 *
 * `Plan.hash` (`plan_hash`) covers the template's data: the same text gives the same hash
 * whatever the compiler does with it. This one covers what the compiler made of it — every
 * stage's id, index, kind and spec, deps, reads, `if`/`for_each`/`input`, item concurrency,
 * routes, retry policy (with defaults filled in), timeout, on_error, pool, fallback flag; the
 * plan's concurrency, timeout, budget, limits, agents, output, inputs schema and topological
 * order — so a changed default or rule in the compiler changes it, and resume can refuse to
 * continue a run under a plan that no longer compiles the same way.
 *
 * Canonical and machine-independent: keys sorted, expressions reduced to their source text
 * (value templates to the source, place and offset of each `{{ }}` expression: their constant
 * parts are template data, covered by `plan_hash`), functions to a stable marker, `run:`
 * modules as written (relative to the template's directory, never absolute) and `pipeline:`
 * paths relative to the template's directory. Descriptions, the template's source (file path,
 * format, text), `triggers` (what starts runs, not how they execute) and `Plan.hash` are left out. Computed once per plan object.
 */
import { createHash } from "node:crypto";
import { dirname, isAbsolute, relative, sep } from "node:path";
import type { Plan, StagePlan } from "./types.js";

const cache = new WeakMap<Plan, string>();

/** sha256 (hex) of the canonical serialization of a compiled plan. */
export function compiledPlanHash(plan: Plan): string {
  let h = cache.get(plan);
  if (h === undefined) {
    h = createHash("sha256").update(canonical(planData(plan))).digest("hex");
    cache.set(plan, h);
  }
  return h;
}

/** The directory `run:` modules and `pipeline:` paths are relative to, as far as the plan tells. */
function baseDirOf(plan: Plan): string | undefined {
  if (plan.source.file !== undefined) return dirname(plan.source.file);
  for (const s of plan.stages) if (s.spec.kind === "run" && "baseDir" in s.spec) return s.spec.baseDir;
  return undefined;
}

function relPath(p: string, base: string | undefined): string {
  if (base === undefined || !isAbsolute(p)) return p;
  return relative(base, p).split(sep).join("/");
}

function planData(plan: Plan): Record<string, unknown> {
  const { hash: _hash, source: _source, description: _d, stageIndex: _si, triggers: _triggers, stages, tools, mcp, ...rest } = plan;
  const base = baseDirOf(plan);
  const toolData = Object.fromEntries(Object.entries(tools ?? {}).map(([name, t]) => [name, { ...t, spec: specDataOf(t.spec, base) }]));
  const mcpData = Object.fromEntries(Object.entries(mcp ?? {}).map(([name, m]) => {
    const { baseDir: _b, ...server } = m;
    return [name, server];
  }));
  // (Absent when empty, so plans without tools hash as they did before tools existed.)
  return {
    ...rest, stages: stages.map((s) => stageData(plan, s, base)),
    ...(Object.keys(toolData).length > 0 ? { tools: toolData } : {}),
    ...(Object.keys(mcpData).length > 0 ? { mcp: mcpData } : {}),
  };
}

function specDataOf(spec: StagePlan["spec"], base: string | undefined): unknown {
  if (spec.kind === "run") return "fn" in spec ? { kind: "run", fn: FN } : { kind: "run", module: relPath(spec.module, spec.baseDir), export: spec.export };
  if (spec.kind === "pipeline") return { ...spec, path: relPath(spec.path, base) };
  return spec;
}

function stageData(plan: Plan, s: StagePlan, base: string | undefined): Record<string, unknown> {
  const { description: _d, spec, deps, dependents, onError, routes, ...rest } = s;
  const id = (i: number): string => plan.stages[i]?.id ?? `#${i}`;
  const specData = specDataOf(spec, base);
  return {
    ...rest,
    kind: spec.kind,
    spec: specData,
    deps: deps.map(id),
    dependents: dependents.map(id),
    onError: onError.kind === "fallback" ? { kind: "fallback", stage: id(onError.stage) } : onError,
    routes: routes.map((r) => ({ ...r, ...(r.goto !== undefined ? { goto: id(r.goto) } : {}) })),
  };
}

/** Marker for functions (TS API `run:` handlers): their text is not part of the plan. */
const FN = "<function>";

type Sited = { exprs: readonly { source: string }[]; sites?: readonly { expr: { source: string }; path: readonly (string | number)[]; offset: number }[] };

/** Reduce expression objects to their source; value templates to their expressions and where they sit. */
function reduce(v: object): unknown {
  const o = v as { evaluate?: unknown; source?: unknown; exprs?: unknown };
  if (typeof o.evaluate !== "function") return undefined;
  if (typeof o.source === "string") return { expr: o.source };
  if (Array.isArray(o.exprs)) {
    const t = v as Sited;
    return { template: t.sites ? t.sites.map((x) => ({ expr: x.expr.source, path: x.path, offset: x.offset })) : t.exprs.map((x) => ({ expr: x.source })) };
  }
  return FN;
}

/** Canonical JSON: keys sorted, undefined dropped, non-finite numbers as strings, expressions reduced. */
function canonical(v: unknown): string {
  if (typeof v === "function") return JSON.stringify(FN);
  if (v === undefined) return "null";
  if (typeof v === "number") return Number.isFinite(v) ? JSON.stringify(v) : JSON.stringify(String(v));
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v instanceof Map) return canonical(Object.fromEntries([...v.entries()].map(([k, x]) => [String(k), x])));
  const reduced = reduce(v);
  if (reduced !== undefined) return canonical(reduced);
  const obj = v as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`).join(",")}}`;
}
