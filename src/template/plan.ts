/** Turn a checked template (analysis + graph) into the immutable {@link Plan}, with its hash. */
import { createHash } from "node:crypto";
import { CompiledExpr } from "../expr/compile.js";
import { CompiledValueTemplate } from "../expr/value-template.js";
import type { OnError, Plan, PlanSource, Route, StagePlan } from "../plan/types.js";
import type { Analysis } from "./analyze.js";
import type { Graph } from "./graph.js";

/**
 * Canonical JSON: keys sorted at every level, `undefined` dropped, functions replaced by their
 * source text. Same data → same text, whatever the key order or formatting it came from.
 */
export function canonicalJson(value: unknown): string {
  if (typeof value === "function") return JSON.stringify(value.toString());
  if (value === undefined) return "null";
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  // Built by appending (no per-level arrays of parts): this runs over every template compiled.
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      out += (i > 0 ? "," : "") + (v === undefined ? "null" : canonicalJson(v));
    }
    return out + "]";
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let out = "{";
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    out += (out.length > 1 ? "," : "") + JSON.stringify(k) + ":" + canonicalJson(v);
  }
  return out + "}";
}

/**
 * sha256 (hex) of the canonical JSON of a template's data. Top-level `triggers:` is left out:
 * it says what starts runs, not how they execute, so adding a trigger keeps the hash.
 */
export function templateHash(data: unknown): string {
  let hashed = data;
  if (data !== null && typeof data === "object" && !Array.isArray(data) && "triggers" in data) {
    const { triggers: _triggers, ...rest } = data as Record<string, unknown>;
    hashed = rest;
  }
  return createHash("sha256").update(canonicalJson(hashed)).digest("hex");
}

/** Freeze plain objects, arrays and maps deeply; compiled expressions freeze themselves, functions are left alone. */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== "object" || Object.isFrozen(value)) return value;
  if (value instanceof CompiledExpr || value instanceof CompiledValueTemplate) return value;
  if (value instanceof Map) {
    for (const v of value.values()) deepFreeze(v);
  } else {
    for (const k of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[k]);
  }
  return Object.freeze(value);
}

/** Deep copy of JSON-like data so the plan owns (and may freeze) it. */
function copy<T>(v: T): T {
  try {
    return v === undefined ? v : (structuredClone(v) as T);
  } catch {
    return v; // holds functions (TypeScript templates): keep as given
  }
}

/** A Map that refuses changes once built (Object.freeze does not stop Map#set). */
class SealedMap<K, V> extends Map<K, V> {
  private sealed?: boolean;
  constructor(entries: Iterable<readonly [K, V]>) {
    super(entries);
    this.sealed = true;
  }
  override set(key: K, value: V): this {
    if (this.sealed === true) throw new TypeError("the plan is immutable");
    return super.set(key, value);
  }
  override delete(): boolean {
    throw new TypeError("the plan is immutable");
  }
  override clear(): void {
    throw new TypeError("the plan is immutable");
  }
}

/** Assemble the plan. Only called when the template has no errors. */
export function buildPlan(a: Analysis, g: Graph, source: PlanSource, hash: string): Plan {
  const idx = (id: string): number => a.stageIndex.get(id) as number;
  const stages: StagePlan[] = a.stages.map((s) => {
    const onError: OnError = s.onError.kind === "fallback" ? { kind: "fallback", stage: idx(s.onError.stage) } : { kind: s.onError.kind };
    const routes: Route[] = s.routes.map((r, k) => ({
      when: r.when as CompiledExpr,
      max: r.max,
      ...(r.goto !== undefined ? { goto: idx(r.goto), backward: g.backward.get(`${s.idx}/${k}`) ?? false } : {}),
      ...(r.with ? { with: r.with } : {}),
      ...(r.fail !== undefined ? { fail: r.fail } : {}),
      ...(r.escalate !== undefined ? { escalate: r.escalate } : {}),
    }));
    const spec = s.spec;
    if (spec === undefined) throw new Error(`internal: stage '${s.id}' has no spec`);
    return {
      id: s.id,
      idx: s.idx,
      ...(s.description !== undefined ? { description: s.description } : {}),
      spec: spec.kind === "agent" && spec.output !== undefined ? { ...spec, output: copy(spec.output) } : spec,
      ...(s.input ? { input: s.input } : {}),
      deps: g.deps[s.idx] as number[],
      dependents: g.dependents[s.idx] as number[],
      reads: [...s.reads].sort(),
      ...(s.if ? { if: s.if } : {}),
      ...(s.forEach ? { forEach: s.forEach } : {}),
      as: s.as,
      itemConcurrency: s.itemConcurrency,
      routes,
      retry: { ...s.retry },
      ...(s.timeoutMs !== undefined ? { timeoutMs: s.timeoutMs } : {}),
      onError,
      isFallback: g.isFallback[s.idx] ?? false,
      ...(s.limit !== undefined ? { limit: s.limit } : {}),
      ...(s.limitKey !== undefined ? { limitKey: s.limitKey } : {}),
    };
  });
  const plan: Plan = {
    name: a.name,
    ...(a.description !== undefined ? { description: a.description } : {}),
    hash,
    source: { ...source },
    inputsSchema: copy(a.inputsSchema),
    stages,
    stageIndex: new SealedMap(a.stageIndex),
    ...(a.output ? { output: a.output } : {}),
    concurrency: a.concurrency,
    ...(a.timeoutMs !== undefined ? { timeoutMs: a.timeoutMs } : {}),
    ...(a.budget ? { budget: copy(a.budget) } : {}),
    limits: copy(a.limits),
    agents: copy(a.agents),
    tools: { ...a.tools },
    mcp: copy(a.mcp),
    topo: g.topo ?? [],
    ...(a.triggers.length > 0 ? { triggers: a.triggers } : {}),
  };
  return deepFreeze(plan);
}
