/**
 * `diffTraces`: compare two runs' traces (`baton diff RUN_A RUN_B`): whether they ran the same
 * plan, how their inputs and outputs differ, and per stage execution (matched by trace id:
 * stage, visit, item, fallback) what changed — status, input, output, attempts, model,
 * tokens — with both durations; the decisions that went differently; error counts by kind;
 * and the run totals side by side.
 *
 * `jsonDiff` is the compact structural JSON diff it uses: objects by key, arrays by index.
 * Both are pure and their results are plain JSON (`baton diff --json` prints them as they are).
 */
import type { Trace, TraceDecision, TraceRunStatus, TraceStage, TraceStageStatus, TraceTokens } from "./types.js";

/** One difference between two JSON values. */
export interface JsonChange {
  /**
   * Where: `sources[2].url`, `["odd key"].x`; `""` is the value itself. For the cap marker
   * (`op: "more"`) it reads `… N more`.
   */
  readonly path: string;
  /**
   * `added`: only in B (`b` set); `removed`: only in A (`a` set); `changed`: both, different
   * (`a` and `b` set); `more`: the marker that ends a capped list (`more` = changes left out).
   */
  readonly op: "added" | "removed" | "changed" | "more";
  /** The value in A (shortened: long strings are cut, big containers summarised). */
  readonly a?: unknown;
  /** The value in B (shortened the same way). */
  readonly b?: unknown;
  /** `op: "more"`: how many changes were left out. */
  readonly more?: number;
}

/** Options of {@link jsonDiff}. */
export interface JsonDiffOptions {
  /** Changes listed before the rest are counted in one `more` marker. @default 50 */
  readonly max?: number;
  /** Strings longer than this are cut (around the first difference when both sides are strings). @default 120 */
  readonly maxString?: number;
}

const DEFAULT_MAX = 50;
const DEFAULT_MAX_STRING = 120;
/** Size limits of a value shown whole (added, removed, or changed to another type). */
const SHOW_ITEMS = 10;
const SHOW_DEPTH = 3;

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);
const has = (o: Obj, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k) && o[k] !== undefined;

/** Deep equality of JSON values (an `undefined` member counts as absent). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return a !== a && b !== b; // NaN
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], bb[i])) return false;
    return true;
  }
  const ao = a as Obj;
  const bo = b as Obj;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  if (ak.length !== bk.length) return false;
  for (const k of ak) if (!has(bo, k) || !jsonEqual(ao[k], bo[k])) return false;
  return true;
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `path` + `.key` (or `["odd key"]`). */
function keyPath(path: string, key: string): string {
  if (!IDENT.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === "" ? key : `${path}.${key}`;
}

/** A string cut to `max` characters; when `at` (first differing index) lies past the kept head, the window moves to show it. */
function clipString(s: string, max: number, at = 0): string {
  const chars = [...s];
  if (chars.length <= max) return s;
  const lead = Math.min(20, Math.floor(max / 4));
  if (at <= max - lead - 1) return `${chars.slice(0, max - 1).join("")}…`;
  const start = Math.max(0, at - lead);
  const body = chars.slice(start, start + max - 2).join("");
  return `…${body}${start + max - 2 < chars.length ? "…" : ""}`;
}

/** A value made small enough to show: long strings cut, containers capped in size and depth. */
export function shorten(v: unknown, maxString = DEFAULT_MAX_STRING, depth = 0): unknown {
  if (typeof v === "string") return clipString(v, maxString);
  if (Array.isArray(v)) {
    if (depth >= SHOW_DEPTH) return v.length === 0 ? [] : `[… ${v.length} ${v.length === 1 ? "item" : "items"}]`;
    const head = v.slice(0, SHOW_ITEMS).map((x) => shorten(x, maxString, depth + 1));
    return v.length > SHOW_ITEMS ? [...head, `… ${v.length - SHOW_ITEMS} more`] : head;
  }
  if (isObj(v)) {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    if (depth >= SHOW_DEPTH) return keys.length === 0 ? {} : `{… ${keys.length} ${keys.length === 1 ? "key" : "keys"}}`;
    const out: Obj = {};
    for (const k of keys.slice(0, SHOW_ITEMS)) out[k] = shorten(v[k], maxString, depth + 1);
    if (keys.length > SHOW_ITEMS) out["…"] = `${keys.length - SHOW_ITEMS} more keys`;
    return out;
  }
  return v;
}

/** Index of the first character where two strings differ. */
function firstDiff(a: string, b: string): number {
  const ac = [...a];
  const bc = [...b];
  let i = 0;
  while (i < ac.length && i < bc.length && ac[i] === bc[i]) i++;
  return i;
}

/**
 * The differences between two JSON values: objects compared by key (A's key order, then keys
 * only in B), arrays by index, anything else by value. Identical values give `[]`. At most
 * `max` changes are listed; a last `{ op: "more", more: N }` entry counts the rest.
 *
 * @example
 * jsonDiff({ sources: [{ url: "a" }], n: 1 }, { sources: [{ url: "b" }] })
 * // [{ path: "sources[0].url", op: "changed", a: "a", b: "b" }, { path: "n", op: "removed", a: 1 }]
 */
export function jsonDiff(a: unknown, b: unknown, opts: JsonDiffOptions = {}): JsonChange[] {
  const max = Math.max(0, opts.max ?? DEFAULT_MAX);
  const maxString = Math.max(8, opts.maxString ?? DEFAULT_MAX_STRING);
  const out: JsonChange[] = [];
  let total = 0;
  const push = (c: () => JsonChange): void => {
    total++;
    if (out.length < max) out.push(c());
  };
  const walk = (x: unknown, y: unknown, path: string): void => {
    if (x === y) return;
    if (Array.isArray(x) && Array.isArray(y)) {
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) walk(x[i], y[i], `${path}[${i}]`);
      for (let i = n; i < x.length; i++) push(() => ({ path: `${path}[${i}]`, op: "removed", a: shorten(x[i], maxString) }));
      for (let i = n; i < y.length; i++) push(() => ({ path: `${path}[${i}]`, op: "added", b: shorten(y[i], maxString) }));
      return;
    }
    if (isObj(x) && isObj(y)) {
      for (const k of Object.keys(x)) {
        if (x[k] === undefined) continue;
        if (has(y, k)) walk(x[k], y[k], keyPath(path, k));
        else push(() => ({ path: keyPath(path, k), op: "removed", a: shorten(x[k], maxString) }));
      }
      for (const k of Object.keys(y)) {
        if (y[k] !== undefined && !has(x, k)) push(() => ({ path: keyPath(path, k), op: "added", b: shorten(y[k], maxString) }));
      }
      return;
    }
    if (jsonEqual(x, y)) return;
    if (x === undefined) return push(() => ({ path, op: "added", b: shorten(y, maxString) }));
    if (y === undefined) return push(() => ({ path, op: "removed", a: shorten(x, maxString) }));
    push(() => {
      if (typeof x === "string" && typeof y === "string") {
        const at = firstDiff(x, y);
        return { path, op: "changed", a: clipString(x, maxString, at), b: clipString(y, maxString, at) };
      }
      return { path, op: "changed", a: shorten(x, maxString), b: shorten(y, maxString) };
    });
  };
  walk(a, b, "");
  if (total > out.length) out.push({ path: `… ${total - out.length} more`, op: "more", more: total - out.length });
  return out;
}

/** One run, as the diff shows it. */
export interface RunSide {
  readonly id: string;
  readonly pipeline: string;
  readonly plan_hash: string;
  readonly status: TraceRunStatus;
  readonly started_at: string;
  readonly duration_ms: number | null;
}

/** A pair of values: A's, then B's. */
export type Pair<T> = readonly [a: T, b: T];

/**
 * One stage execution in either run, matched by trace id (`research#1`, `fact_check#1[2]`,
 * `fb#1[0]<-s7`). Fields other than the identity appear only when they differ, except the
 * durations, which are always given (they differ in every pair of real runs, so they alone
 * do not make an entry `changed`).
 */
export interface StageDiff {
  /** The trace id both runs share. */
  readonly key: string;
  readonly stage: string;
  readonly visit: number;
  readonly item?: number;
  readonly fallback_for?: string;
  /** The execution happened in one run only. */
  readonly only_in?: "a" | "b";
  /** Something other than timing differs (always true with `only_in`). */
  readonly changed: boolean;
  /** Statuses when they differ, or with `only_in` (then the missing side is `null`). */
  readonly status?: Pair<TraceStageStatus | null>;
  readonly input?: readonly JsonChange[];
  readonly output?: readonly JsonChange[];
  /** Attempt counts when they differ. */
  readonly attempts?: Pair<number>;
  readonly duration_ms: Pair<number | null>;
  /** B's duration minus A's, when both are known. */
  readonly delta_ms?: number;
  readonly model?: Pair<string | null>;
  readonly tokens?: Pair<TraceTokens | null>;
  readonly cost_usd?: Pair<number | null>;
  /** Agent loops: model turns recorded, when the counts differ. */
  readonly turns?: Pair<number>;
  /** Agent loops: tool calls the turns made, when the counts differ. */
  readonly tool_calls?: Pair<number>;
  /** The error of the last failed attempt on each side, when the statuses differ. */
  readonly error?: Pair<string | null>;
  /**
   * `baton rerun --from`: the run each side's output was reused from (`null`: executed), when
   * either side reused it. A reused stage did not execute, so only its status and output are
   * compared — with the last visit of the stage in the run it came from, when that is the other
   * run (what the fork took) — not its input, attempts or usage.
   */
  readonly reused?: Pair<string | null>;
}

/** How one decision went in a run. */
export interface DecisionSide {
  readonly result: unknown;
  readonly taken?: boolean;
  readonly read: Readonly<Record<string, unknown>>;
  readonly error?: string;
  /** route: passed over, its `max` used up (see {@link TraceDecision.exhausted}). */
  readonly exhausted?: { readonly taken: number; readonly max: number };
}

/** A decision that went differently, or was evaluated in one run only. */
export interface DecisionDiff {
  readonly stage: string;
  readonly visit: number;
  readonly item?: number;
  readonly kind: TraceDecision["kind"];
  /** route: index in the stage's `routes:`. */
  readonly route?: number;
  /** route: its goto target (B's, else A's). */
  readonly goto?: string;
  /** B's expression, else A's. */
  readonly expression: string;
  /** Absent when the decision was evaluated in B only. */
  readonly a?: DecisionSide;
  /** Absent when the decision was evaluated in A only. */
  readonly b?: DecisionSide;
}

/** The whole comparison (`baton diff A B --json`). */
export interface RunDiff {
  readonly a: RunSide;
  readonly b: RunSide;
  /** Both runs ran the same plan (equal `plan_hash`). */
  readonly same_plan: boolean;
  readonly inputs: readonly JsonChange[];
  readonly output: readonly JsonChange[];
  /** Changed stage executions and those in one run only (all of them with `all`), in run order. */
  readonly stages: readonly StageDiff[];
  /** Matched executions where nothing but timing differs. */
  readonly unchanged: number;
  readonly decisions: readonly DecisionDiff[];
  /** Errors per kind (every kind seen in either run): A's count, B's count. */
  readonly errors: Readonly<Record<string, Pair<number>>>;
  readonly totals: {
    readonly duration_ms: Pair<number | null>;
    readonly tokens: Pair<TraceTokens>;
    readonly cost_usd: Pair<number>;
  };
}

/** Options of {@link diffTraces}. */
export interface DiffOptions extends JsonDiffOptions {
  /** List unchanged stage executions too (with `changed: false`). @default false */
  readonly all?: boolean;
}

function side(t: Trace): RunSide {
  const r = t.run;
  return { id: r.id, pipeline: r.pipeline, plan_hash: r.plan_hash, status: r.status, started_at: r.started_at, duration_ms: r.duration_ms };
}

/** Keys of both runs in one order that keeps each run's own order (B's, with A-only keys where A had them). */
function mergeOrder(a: readonly string[], b: readonly string[]): string[] {
  const posA = new Map(a.map((k, i) => [k, i]));
  const inB = new Set(b);
  const out: string[] = [];
  let i = 0;
  for (const k of b) {
    const at = posA.get(k);
    if (at !== undefined && at >= i) {
      for (; i < at; i++) if (!inB.has(a[i]!)) out.push(a[i]!);
      i = at + 1;
    }
    out.push(k);
  }
  for (; i < a.length; i++) if (!inB.has(a[i]!)) out.push(a[i]!);
  return out;
}

const lastError = (s: TraceStage): string | null => {
  for (let i = s.attempts.length - 1; i >= 0; i--) {
    const e = s.attempts[i]!.error;
    if (e) return `${e.kind}: ${e.message}`;
  }
  return null;
};

function identity(s: TraceStage): { key: string; stage: string; visit: number; item?: number; fallback_for?: string } {
  return { key: s.id, stage: s.stage, visit: s.visit, ...(s.item !== undefined ? { item: s.item } : {}), ...(s.fallback_for !== undefined ? { fallback_for: s.fallback_for } : {}) };
}

const turnCount = (s: TraceStage): number => s.turns?.length ?? 0;
const callCount = (s: TraceStage): number => (s.turns ?? []).reduce((n, t) => n + t.tool_calls.length, 0);

function stageDiff(x: TraceStage, y: TraceStage, opts: JsonDiffOptions, reusedFrom?: TraceStage): StageDiff {
  if (x.reused_from !== undefined || y.reused_from !== undefined) return reusedDiff(x, y, opts, reusedFrom);
  const input = jsonDiff(x.input, y.input, opts);
  const output = jsonDiff(x.output, y.output, opts);
  const tokensEqual = jsonEqual(x.tokens ?? null, y.tokens ?? null);
  const d = {
    ...identity(x),
    ...(x.status !== y.status ? { status: [x.status, y.status] as const, error: [lastError(x), lastError(y)] as const } : {}),
    ...(input.length ? { input } : {}),
    ...(output.length ? { output } : {}),
    ...(x.attempts.length !== y.attempts.length ? { attempts: [x.attempts.length, y.attempts.length] as const } : {}),
    ...((x.model ?? null) !== (y.model ?? null) ? { model: [x.model ?? null, y.model ?? null] as const } : {}),
    ...(!tokensEqual ? { tokens: [x.tokens ?? null, y.tokens ?? null] as const } : {}),
    ...((x.cost_usd ?? null) !== (y.cost_usd ?? null) ? { cost_usd: [x.cost_usd ?? null, y.cost_usd ?? null] as const } : {}),
    ...(turnCount(x) !== turnCount(y) ? { turns: [turnCount(x), turnCount(y)] as const } : {}),
    ...(callCount(x) !== callCount(y) ? { tool_calls: [callCount(x), callCount(y)] as const } : {}),
  };
  const changed = Object.keys(d).length > Object.keys(identity(x)).length;
  return {
    ...d, changed, duration_ms: [x.duration_ms, y.duration_ms],
    ...(x.duration_ms !== null && y.duration_ms !== null ? { delta_ms: y.duration_ms - x.duration_ms } : {}),
  };
}

/**
 * A stage reused on either side: status and output compared (the reused side's against `from`,
 * the entry it was taken from, when that is in the other run), and which run it came from.
 */
function reusedDiff(x: TraceStage, y: TraceStage, opts: JsonDiffOptions, from: TraceStage | undefined): StageDiff {
  const [ex, ey] = from === undefined ? [x, y] : x.reused_from !== undefined ? [x, from] : [from, y];
  const output = jsonDiff(ex.output, ey.output, opts);
  const changed = ex.status !== ey.status || output.length > 0;
  return {
    ...identity(x), changed,
    ...(ex.status !== ey.status ? { status: [ex.status, ey.status] as const, error: [lastError(ex), lastError(ey)] as const } : {}),
    ...(output.length ? { output } : {}),
    reused: [x.reused_from ?? null, y.reused_from ?? null],
    duration_ms: [x.duration_ms, y.duration_ms],
    ...(x.duration_ms !== null && y.duration_ms !== null ? { delta_ms: y.duration_ms - x.duration_ms } : {}),
  };
}

/** A stage's last visit (its entry for the whole visit) in a trace. */
function lastVisit(t: Trace, stage: string): TraceStage | undefined {
  let best: TraceStage | undefined;
  for (const s of t.stages) if (s.stage === stage && s.item === undefined && s.fallback_for === undefined && (best === undefined || s.visit > best.visit)) best = s;
  return best;
}

function onlyIn(s: TraceStage, where: "a" | "b"): StageDiff {
  const pair = <T>(v: T): Pair<T | null> => (where === "a" ? [v, null] : [null, v]);
  return {
    ...identity(s), only_in: where, changed: true, status: pair(s.status), duration_ms: pair(s.duration_ms),
    attempts: where === "a" ? [s.attempts.length, 0] : [0, s.attempts.length],
  };
}

/** `stage#visit[item]:kind[:route]`, numbered when a run evaluated the same decision more than once. */
function decisionKeys(ds: readonly TraceDecision[]): Map<string, TraceDecision> {
  const m = new Map<string, TraceDecision>();
  const seen = new Map<string, number>();
  for (const d of ds) {
    const base = `${d.stage}#${d.visit}${d.item !== undefined ? `[${d.item}]` : ""}:${d.kind}${d.route !== undefined ? `:${d.route}` : ""}`;
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    m.set(n === 1 ? base : `${base}/${n}`, d);
  }
  return m;
}

function decisionSide(d: TraceDecision): DecisionSide {
  return {
    result: d.result, ...(d.taken !== undefined ? { taken: d.taken } : {}), read: d.read, ...(d.error !== undefined ? { error: d.error } : {}),
    ...(d.exhausted !== undefined ? { exhausted: d.exhausted } : {}),
  };
}

function decisionsDiff(a: readonly TraceDecision[], b: readonly TraceDecision[]): DecisionDiff[] {
  const am = decisionKeys(a);
  const bm = decisionKeys(b);
  const out: DecisionDiff[] = [];
  for (const k of mergeOrder([...am.keys()], [...bm.keys()])) {
    const x = am.get(k);
    const y = bm.get(k);
    if (x && y && jsonEqual(x.result, y.result) && x.taken === y.taken && x.error === y.error) continue;
    const d = (y ?? x)!;
    out.push({
      stage: d.stage, visit: d.visit, ...(d.item !== undefined ? { item: d.item } : {}), kind: d.kind,
      ...(d.route !== undefined ? { route: d.route } : {}), ...(d.goto !== undefined ? { goto: d.goto } : {}),
      expression: d.expression, ...(x ? { a: decisionSide(x) } : {}), ...(y ? { b: decisionSide(y) } : {}),
    });
  }
  return out;
}

function errorCounts(a: Trace, b: Trace): Record<string, Pair<number>> {
  const m = new Map<string, [number, number]>();
  const add = (kind: string, i: 0 | 1): void => {
    const c = m.get(kind) ?? [0, 0];
    c[i]++;
    m.set(kind, c);
  };
  for (const e of a.errors) add(e.kind, 0);
  for (const e of b.errors) add(e.kind, 1);
  return Object.fromEntries([...m].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
}

/**
 * Compare two traces (A, the baseline, and B).
 *
 * @example
 * const d = diffTraces(buildTrace(logA, plan), buildTrace(logB, plan));
 * d.same_plan; // true
 * d.stages;    // [{ key: "draft#1", changed: true, output: [{ path: "text", op: "changed", a: "…", b: "…" }], duration_ms: [1200, 800], delta_ms: -400 }]
 */
export function diffTraces(a: Trace, b: Trace, opts: DiffOptions = {}): RunDiff {
  const json: JsonDiffOptions = { ...(opts.max !== undefined ? { max: opts.max } : {}), ...(opts.maxString !== undefined ? { maxString: opts.maxString } : {}) };
  const as = new Map(a.stages.map((s) => [s.id, s]));
  const bs = new Map(b.stages.map((s) => [s.id, s]));
  const stages: StageDiff[] = [];
  let unchanged = 0;
  for (const key of mergeOrder([...as.keys()], [...bs.keys()])) {
    const x = as.get(key);
    const y = bs.get(key);
    if (x && y) {
      // A reused stage stands for the last visit of the stage in the run it was taken from.
      const from = y.reused_from !== undefined && y.reused_from === a.run.id ? lastVisit(a, y.stage) : x.reused_from !== undefined && x.reused_from === b.run.id ? lastVisit(b, x.stage) : undefined;
      const d = stageDiff(x, y, json, from);
      if (!d.changed) unchanged++;
      if (d.changed || opts.all) stages.push(d);
    } else if (x) stages.push(onlyIn(x, "a"));
    else if (y) stages.push(onlyIn(y, "b"));
  }
  return {
    a: side(a), b: side(b), same_plan: a.run.plan_hash === b.run.plan_hash,
    inputs: jsonDiff(a.run.inputs, b.run.inputs, json),
    output: jsonDiff(a.run.output, b.run.output, json),
    stages, unchanged,
    decisions: decisionsDiff(a.decisions, b.decisions),
    errors: errorCounts(a, b),
    totals: {
      duration_ms: [a.run.duration_ms, b.run.duration_ms],
      tokens: [a.run.tokens, b.run.tokens],
      cost_usd: [a.run.cost_usd, b.run.cost_usd],
    },
  };
}
