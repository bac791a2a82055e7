/**
 * One stage of a template: its kind, fields, policies and expressions, checked and turned
 * into a draft that the graph pass and the plan builder finish.
 */
import { resolve } from "node:path";
import type { CompiledExpr } from "../expr/compile.js";
import type { CompiledValueTemplate } from "../expr/value-template.js";
import type { RetryPolicy, StageKind, StageSpec } from "../plan/types.js";
import { checkJsonSchema, durationOf, isRec, retryOf, type Rec } from "./fields.js";
import { RESERVED_IDS, objectNameProblem, type ExprChecker, type StageScope, type Where } from "./refs.js";
import type { DocPath, Reporter } from "./source.js";
import { didYouMean } from "./suggest.js";
import { analyzeLimit } from "./limit.js";
import { poolRefOf } from "../plan/limit.js";
import { compileValueTemplateCollect } from "../expr/value-template.js";

/** The stage kinds; a stage has exactly one of these fields. */
export const KINDS = ["agent", "run", "value", "http", "pipeline", "approval", "wait", "sleep", "until"] as const;
const ID = /^[A-Za-z_][A-Za-z0-9_]*$/;
const JSONATA_WORDS = new Set(["and", "or", "in", "true", "false", "null", "function"]);

/** A checked route, its goto target still by id. */
export interface RouteDraft {
  readonly path: DocPath;
  readonly when?: CompiledExpr;
  readonly goto?: string;
  readonly fail?: string;
  readonly escalate?: string;
  readonly with?: CompiledValueTemplate;
  readonly max: number;
}

/** `on_error`, a fallback still by id. */
export type OnErrorDraft = { readonly kind: "fail" | "continue" | "escalate" } | { readonly kind: "fallback"; readonly stage: string };

/** A checked stage, with stage references still by id. */
export interface StageDraft {
  readonly id: string;
  readonly idx: number;
  readonly path: DocPath;
  readonly kind?: StageKind;
  readonly spec?: StageSpec;
  readonly description?: string;
  readonly input?: CompiledValueTemplate;
  readonly if?: CompiledExpr;
  readonly forEach?: CompiledExpr;
  readonly as: string;
  readonly itemConcurrency: number;
  readonly routes: readonly RouteDraft[];
  readonly retry: RetryPolicy;
  readonly timeoutMs?: number;
  readonly onError: OnErrorDraft;
  readonly limit?: string;
  /** `limit: { pool, key }`: the key (a pool instance per key). */
  readonly limitKey?: CompiledValueTemplate;
  readonly needs: readonly string[];
  /** Stage ids read by the stage's expressions (itself included). */
  readonly reads: ReadonlySet<string>;
}

/** What a stage is checked against. */
export interface StageContext {
  readonly report: Reporter;
  readonly exprs: ExprChecker;
  readonly stageIds: ReadonlySet<string>;
  readonly agents: Readonly<Record<string, Rec>>;
  readonly agentNames: ReadonlySet<string>;
  readonly limits: ReadonlySet<string>;
  readonly fallbacks: ReadonlySet<string>;
  readonly defaults: { readonly retry: RetryPolicy; readonly timeoutMs?: number; readonly onError: OnErrorDraft };
  readonly baseDir: string;
}

function checkId(id: string, path: DocPath, report: Reporter): void {
  if (!ID.test(id)) report.key(path, `stage id '${id}' is not valid: use letters, digits and _, not starting with a digit`);
  else if (RESERVED_IDS.has(id)) report.key(path, `stage id '${id}' is reserved (it names something in scope): rename the stage`);
  else if (objectNameProblem(id, "stage id")) report.key(path, `${objectNameProblem(id, "stage id")}: rename the stage`);
  else if (JSONATA_WORDS.has(id)) report.key(path, `stage id '${id}' is a JSONata keyword: rename the stage`);
}

function runSpec(raw: unknown, path: DocPath, ctx: StageContext, id: string): StageSpec | undefined {
  if (typeof raw === "function") return { kind: "run", fn: raw as (c: unknown) => unknown };
  if (typeof raw !== "string") return undefined;
  const hash = raw.lastIndexOf("#");
  const module = hash < 0 ? raw : raw.slice(0, hash);
  const name = hash < 0 ? "default" : raw.slice(hash + 1);
  if (module === "" || !/^[A-Za-z_$][\w$]*$/.test(name)) {
    ctx.report.value(path, `stage '${id}': run '${raw}' must be MODULE or MODULE#EXPORT, such as ./stages/fetch.ts#fetch`);
    return undefined;
  }
  return { kind: "run", module, export: name, baseDir: ctx.baseDir };
}

function ref(ctx: StageContext, path: DocPath, name: unknown, set: ReadonlySet<string>, what: "agent" | "limit" | "stage"): string | undefined {
  if (typeof name !== "string") return undefined;
  if (set.has(name)) return name;
  const hint = set.size === 0 && what !== "stage" ? `: declare it under ${what === "limit" ? "limits" : "agents"}:` : didYouMean(name, set);
  ctx.report.value(path, `unknown ${what} '${name}'${hint}`);
  return undefined;
}

/** Check one stage and build its draft. */
export function analyzeStage(id: string, idx: number, raw: unknown, ctx: StageContext): StageDraft {
  const path: DocPath = ["stages", id];
  const { report, exprs } = ctx;
  checkId(id, path, report);
  const s: Rec = isRec(raw) ? raw : {};
  const at = (...p: (string | number)[]): DocPath => [...path, ...p];
  const has = (k: string): boolean => s[k] !== undefined;

  // Kind: exactly one.
  const kinds = KINDS.filter(has);
  if (isRec(raw) && kinds.length === 0) report.key(path, `stage '${id}' has no kind: give it one of ${KINDS.join(", ")}`);
  if (kinds.length > 1) report.key(path, `stage '${id}' has ${kinds.length} kinds (${kinds.join(", ")}): keep exactly one`);
  const kindField = kinds.length === 1 ? kinds[0] : undefined;
  // `until:` is a sleep whose end an expression gives.
  const kind: StageKind | undefined = kindField === "until" ? "sleep" : kindField;
  if (kind === "agent" && !has("prompt")) report.key(at("agent"), `stage '${id}': agent stages need a 'prompt'`);
  if (has("prompt") && !kinds.includes("agent")) report.key(at("prompt"), `stage '${id}': 'prompt' is only for agent stages`);
  if (has("inputs") && !kinds.includes("pipeline")) report.key(at("inputs"), `stage '${id}': 'inputs' is only for pipeline stages (did you mean 'input'?)`);
  if (has("output") && !kinds.includes("agent")) report.key(at("output"), `stage '${id}': 'output' (a JSON Schema for replies) is only for agent stages`);
  if (has("as") && !has("for_each")) report.key(at("as"), `stage '${id}': 'as' names the for_each item: it needs for_each`);
  if (has("concurrency") && !has("for_each")) report.key(at("concurrency"), `stage '${id}': 'concurrency' limits for_each items: it needs for_each`);

  const as = typeof s.as === "string" ? s.as : "item";
  if (objectNameProblem(as, "as name")) report.value(at("as"), `stage '${id}': ${objectNameProblem(as, "as name")}: pick another name`);
  else if (as !== "item" && (RESERVED_IDS.has(as) || ctx.stageIds.has(as))) {
    report.value(at("as"), `stage '${id}': as '${as}' would hide the ${ctx.stageIds.has(as) ? "stage" : "scope name"} of that name: pick another name`);
  }
  const scope: StageScope = {
    id,
    ...(has("for_each") ? { itemNames: new Set(["item", "index", as]) } : {}),
    isFallback: ctx.fallbacks.has(id),
    reads: new Set<string>(),
  };
  const w = (field: string, perItem: boolean): Where => ({ stage: scope, field, perItem });

  // Expressions.
  const ifExpr = has("if") ? exprs.expr(at("if"), s.if, w("if", false)) : undefined;
  const forEach = has("for_each") ? exprs.expr(at("for_each"), s.for_each, w("for_each", false)) : undefined;
  const input = has("input") ? exprs.template(at("input"), s.input, w("input", true)) : undefined;

  let spec: StageSpec | undefined;
  switch (kind) {
    case "agent": {
      const agent = ref(ctx, at("agent"), s.agent, ctx.agentNames, "agent");
      const prompt = has("prompt") ? exprs.template(at("prompt"), s.prompt, w("prompt", true)) : undefined;
      if (has("output")) checkJsonSchema(s.output, at("output"), `stage '${id}': output`, report);
      const output = s.output ?? (agent === undefined ? undefined : ctx.agents[agent]?.output);
      if (agent !== undefined && prompt !== undefined) spec = { kind: "agent", agent, prompt, ...(output === undefined ? {} : { output }) };
      break;
    }
    case "run":
      spec = runSpec(s.run, at("run"), ctx, id);
      break;
    case "value": {
      const e = exprs.expr(at("value"), s.value, w("value", true));
      if (e !== undefined) spec = { kind: "value", expr: e };
      break;
    }
    case "http": {
      // `timeout` stays in the value as written (checked as a duration by the schema).
      const http = isRec(s.http) ? exprs.template(at("http"), s.http, w("http", true)) : undefined;
      if (http !== undefined) spec = { kind: "http", http };
      break;
    }
    case "pipeline": {
      const inputs = has("inputs") ? exprs.template(at("inputs"), s.inputs, w("inputs", true)) : undefined;
      if (typeof s.pipeline === "string") spec = { kind: "pipeline", path: resolve(ctx.baseDir, s.pipeline), ...(inputs ? { inputs } : {}) };
      break;
    }
    case "approval": {
      const a = isRec(s.approval) ? s.approval : {};
      const message = a.message === undefined ? undefined : exprs.template(at("approval", "message"), a.message, w("approval", true));
      const timeoutMs = a.timeout === undefined ? undefined : durationOf(a.timeout);
      const on = a.on_timeout;
      if (on !== undefined && a.timeout === undefined) report.key(at("approval", "on_timeout"), `stage '${id}': on_timeout needs a timeout`);
      spec = {
        kind: "approval", ...(message ? { message } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        ...(timeoutMs !== undefined && (on === "reject" || on === "approve" || on === "fail") ? { onTimeout: on } : {}),
      };
      break;
    }
    case "wait": {
      const a = isRec(s.wait) ? s.wait : {};
      const timeoutMs = a.timeout === undefined ? undefined : durationOf(a.timeout);
      const on = a.on_timeout;
      if (on !== undefined && a.timeout === undefined) report.key(at("wait", "on_timeout"), `stage '${id}': on_timeout needs a timeout`);
      if (typeof a.signal === "string") {
        spec = {
          kind: "wait", signal: a.signal, ...(timeoutMs !== undefined ? { timeoutMs } : {}),
          ...(timeoutMs !== undefined && (on === "fail" || on === "continue") ? { onTimeout: on } : {}),
        };
      }
      break;
    }
    case "sleep": {
      if (kindField === "until") {
        const e = exprs.expr(at("until"), s.until, w("until", true));
        if (e !== undefined) spec = { kind: "sleep", until: e };
      } else {
        const ms = durationOf(s.sleep);
        if (ms !== undefined) spec = { kind: "sleep", ms };
      }
      break;
    }
    default:
      // Still check expressions of a stage whose kind is wrong, so every error shows at once.
      if (has("prompt")) exprs.template(at("prompt"), s.prompt, w("prompt", true));
      if (has("value") && kinds.length > 1) exprs.expr(at("value"), s.value, w("value", true));
  }
  if (kind !== "pipeline" && has("inputs")) exprs.template(at("inputs"), s.inputs, w("inputs", true));

  // References.
  const own = analyzeLimit(s.limit, at("limit"), ctx, w("limit", true));
  const agentLimit = s.limit === undefined && kind === "agent" && typeof s.agent === "string" ? poolRefOf(ctx.agents[s.agent]?.limit) : undefined;
  const limit = own.pool ?? agentLimit?.pool;
  // An agent's keyed limit: its key is evaluated in this stage's scope (analyze.ts reported its errors).
  let limitKey = own.key;
  if (agentLimit && typeof agentLimit.key === "string") {
    limitKey = compileValueTemplateCollect(agentLimit.key).template;
    for (const site of limitKey?.sites ?? []) for (const r of site.expr.refs) if (ctx.stageIds.has(r.name)) scope.reads.add(r.name);
  }
  const needsRaw = typeof s.needs === "string" ? [s.needs] : Array.isArray(s.needs) ? s.needs : [];
  const needs: string[] = [];
  needsRaw.forEach((n, i) => {
    const p = typeof s.needs === "string" ? at("needs") : at("needs", i);
    if (n === id) report.value(p, `stage '${id}' needs itself`);
    else if (ref(ctx, p, n, ctx.stageIds, "stage") !== undefined) needs.push(n as string);
  });

  // Policies.
  const retry = isRec(s.retry) ? retryOf(s.retry, ctx.defaults.retry, at("retry"), `stage '${id}'`, report) : ctx.defaults.retry;
  const timeoutMs = has("timeout") ? durationOf(s.timeout) : ctx.defaults.timeoutMs;
  let onError: OnErrorDraft = ctx.defaults.onError;
  if (typeof s.on_error === "string" && ["fail", "continue", "escalate"].includes(s.on_error)) {
    onError = { kind: s.on_error as "fail" | "continue" | "escalate" };
  } else if (isRec(s.on_error) && typeof s.on_error.fallback === "string") {
    const fb = s.on_error.fallback;
    if (fb === id) report.value(at("on_error", "fallback"), `stage '${id}' cannot be its own fallback`);
    else if (ref(ctx, at("on_error", "fallback"), fb, ctx.stageIds, "stage") !== undefined) onError = { kind: "fallback", stage: fb };
  }

  // Routes.
  const routes: RouteDraft[] = [];
  (Array.isArray(s.routes) ? s.routes : []).forEach((r: unknown, i: number) => {
    if (!isRec(r)) return;
    const rp = at("routes", i);
    const label = `stage '${id}' route ${i + 1}`;
    const actions = (["goto", "fail", "escalate"] as const).filter((k) => r[k] !== undefined);
    if (actions.length === 0) report.value(rp, `${label} has no action: give it one of goto, fail, escalate`);
    if (actions.length > 1) report.value(rp, `${label} has ${actions.length} actions (${actions.join(", ")}): keep exactly one`);
    if (r.with !== undefined && r.goto === undefined) report.key([...rp, "with"], `${label}: 'with' only applies to goto routes`);
    const when = r.when === undefined ? undefined : exprs.expr([...rp, "when"], r.when, w(`routes[${i}].when`, false));
    const withT = r.with === undefined ? undefined : exprs.template([...rp, "with"], r.with, w(`routes[${i}].with`, false));
    const target = ref(ctx, [...rp, "goto"], r.goto, ctx.stageIds, "stage");
    const max = typeof r.max === "number" ? r.max : r.goto !== undefined ? 3 : Infinity;
    routes.push({
      path: rp,
      max,
      ...(when ? { when } : {}),
      ...(target !== undefined ? { goto: target } : {}),
      ...(typeof r.fail === "string" ? { fail: r.fail } : {}),
      ...(typeof r.escalate === "string" ? { escalate: r.escalate } : {}),
      ...(withT ? { with: withT } : {}),
    });
  });

  return {
    id,
    idx,
    path,
    ...(kind !== undefined ? { kind } : {}),
    ...(spec !== undefined ? { spec } : {}),
    ...(typeof s.description === "string" ? { description: s.description } : {}),
    ...(input ? { input } : {}),
    ...(ifExpr ? { if: ifExpr } : {}),
    ...(forEach ? { forEach } : {}),
    as,
    itemConcurrency: typeof s.concurrency === "number" ? s.concurrency : Infinity,
    routes,
    retry,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    onError,
    ...(limit !== undefined ? { limit } : {}),
    ...(limit !== undefined && limitKey !== undefined ? { limitKey } : {}),
    needs,
    reads: scope.reads,
  };
}
