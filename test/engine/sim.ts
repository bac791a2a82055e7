/**
 * A deterministic simulated runtime for engine tests: it builds plans directly (no template
 * compiler), performs the engine's effects with outcomes from a seeded random source on a
 * simulated clock, and records the log. Crashes are simulated by folding the log and resuming.
 */
import { createHash } from "node:crypto";
import type { Expr } from "../../src/expr/types.js";
import type { OnError, Plan, RetryPolicy, Route, StagePlan } from "../../src/plan/types.js";
import { apply, createState, decide, fold, nextWakeAt, type BatonEvent, type Effect, type RunState } from "../../src/engine/index.js";

export const dummyExpr = (source: string): Expr => ({ source, roots: [], inputNames: [], evaluate: () => undefined });

export interface SimStage {
  id: string;
  deps?: string[];
  items?: number; // for_each with this many items
  if?: boolean;
  itemConcurrency?: number;
  retry?: Partial<RetryPolicy>;
  onError?: "fail" | "continue" | "escalate" | { fallback: string };
  routes?: { goto?: string; fail?: string; escalate?: string; max?: number }[];
  isFallback?: boolean;
  /** An approval stage: its executions wait for a (simulated) human. */
  approval?: boolean;
}

/** Build a plan from a compact description (deps must name earlier stages). */
export function makePlan(stages: SimStage[], opts: { concurrency?: number; timeoutMs?: number } = {}): Plan {
  const index = new Map(stages.map((s, i) => [s.id, i]));
  const deps = stages.map((s) => [...new Set((s.deps ?? []).map((d) => index.get(d)!))].sort((a, b) => a - b));
  const dependents = stages.map(() => [] as number[]);
  deps.forEach((ds, i) => ds.forEach((d) => dependents[d]!.push(i)));
  const ancestors = (i: number): Set<number> => {
    const seen = new Set<number>();
    const st = [...deps[i]!];
    while (st.length) { const x = st.pop()!; if (!seen.has(x)) { seen.add(x); st.push(...deps[x]!); } }
    return seen;
  };
  const fallbacks = new Set(stages.flatMap((s) => (typeof s.onError === "object" ? [s.onError.fallback] : [])));
  const plans: StagePlan[] = stages.map((s, i) => {
    const routes: Route[] = (s.routes ?? []).map((r, ri) => {
      const base = { when: dummyExpr(`route ${ri}`) };
      if (r.goto !== undefined) {
        const t = index.get(r.goto)!;
        return { ...base, goto: t, backward: t === i || ancestors(i).has(t), max: r.max ?? 2 };
      }
      if (r.fail !== undefined) return { ...base, fail: r.fail, max: Infinity };
      return { ...base, escalate: r.escalate ?? "check", max: Infinity };
    });
    const onError: OnError =
      s.onError === undefined || s.onError === "fail" ? { kind: "fail" }
      : s.onError === "continue" ? { kind: "continue" }
      : s.onError === "escalate" ? { kind: "escalate" }
      : { kind: "fallback", stage: index.get(s.onError.fallback)! };
    const sp: StagePlan = {
      id: s.id, idx: i, spec: s.approval ? { kind: "approval" } : { kind: "run", fn: () => null }, deps: deps[i]!, dependents: dependents[i]!,
      reads: (s.deps ?? []).slice(), as: "item", itemConcurrency: s.itemConcurrency ?? Infinity, routes,
      retry: { attempts: 1, backoff: "exponential", delayMs: 1000, maxDelayMs: 30000, jitter: "full", ...s.retry },
      onError, isFallback: s.isFallback ?? fallbacks.has(s.id),
      ...(s.if !== undefined ? { if: dummyExpr("cond") } : {}),
      ...(s.items !== undefined ? { forEach: dummyExpr("items") } : {}),
    };
    return sp;
  });
  const plan: Plan = {
    name: "sim", hash: createHash("sha256").update(JSON.stringify(stages)).digest("hex"), source: { format: "ts" },
    inputsSchema: { type: "object", properties: {} }, stages: plans, stageIndex: index,
    concurrency: opts.concurrency ?? Infinity, limits: {}, agents: {}, topo: plans.map((p) => p.idx),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  };
  itemCounts.set(plan, new Map(stages.flatMap((s) => (s.items !== undefined ? [[s.id, s.items] as [string, number]] : []))));
  return plan;
}

/** Seeded PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SimOptions {
  seed: number;
  /** Probability an attempt fails. */
  failRate?: number;
  /** Probability a failure is retryable. */
  retryableRate?: number;
  /** Probability an `if` is true. */
  ifRate?: number;
  /** Probability a route's `when` holds. */
  routeRate?: number;
  /** Crash (fold + resume) after this many steps, each once. */
  crashAt?: number[];
  /** Process slots. */
  slots?: number;
  maxSteps?: number;
  /** Answer waiting runs (approve with this probability, else reject) instead of stopping. */
  approveRate?: number;
  /** Called after every decide with the live state and the step's events. */
  onStep?: (state: RunState, events: BatonEvent[]) => void;
}

export interface SimResult {
  log: BatonEvent[];
  state: RunState;
  steps: number;
  /** For each step: the events decide produced (for replay comparison). */
  decisions: BatonEvent[][];
  /** For each step: the log length before it and the clock it decided at. */
  points: { prefix: number; now: number }[];
}

/** Run a plan to the end in simulation. */
export function simulate(plan: Plan, o: SimOptions): SimResult {
  const rand = rng(o.seed);
  const outcome = rng(o.seed ^ 0x9e3779b9);
  let now = 1_000_000;
  const log: BatonEvent[] = [];
  const decisions: BatonEvent[][] = [];
  const points: { prefix: number; now: number }[] = [];
  let state = createState(plan);
  const start: BatonEvent = { type: "run_started", at: now, run_id: "r1", pipeline: plan.name, plan_hash: plan.hash, source: { format: "ts" }, inputs: {}, seed: o.seed };
  apply(state, start);
  log.push(start);
  // Effects in flight: the runtime's pending work, completed in random order.
  let pending: Effect[] = [];
  const crashes = new Set(o.crashAt ?? []);
  const max = o.maxSteps ?? 20000;
  let steps = 0;
  // Outcome of an execution attempt is a function of its key so it is the same after a crash.
  const attemptFails = (key: string): { fail: boolean; retryable: boolean } => {
    const r = rng(hashStr(key) ^ o.seed);
    return { fail: r() < (o.failRate ?? 0), retryable: r() < (o.retryableRate ?? 0.7) };
  };
  const cond = (key: string, p: number): boolean => rng(hashStr(key) ^ o.seed)() < p;
  for (; steps < max; steps++) {
    points.push({ prefix: log.length, now });
    const step = decide(state, now, o.slots !== undefined ? { slots: o.slots - state.running.size } : {});
    decisions.push(step.events);
    log.push(...step.events);
    o.onStep?.(state, step.events);
    for (const ef of step.effects) if (ef.kind !== "cancel") pending.push(ef);
    const cancelled = new Set(step.effects.flatMap((ef) => (ef.kind === "cancel" ? [ef.exec] : [])));
    pending = pending.filter((ef) => !(ef.kind === "execute" && cancelled.has(ef.exec)));
    if (state.status === "waiting" && o.approveRate !== undefined) {
      now += 7;
      const answers: BatonEvent[] = [...state.waitingOn.values()].map((w) => ({
        type: "approval", at: now, stage: w.stage, visit: w.visit, ...(w.item !== undefined ? { item: w.item } : {}),
        approved: cond(`answer:${w.stage}:${w.visit}:${w.item}`, o.approveRate!),
      }));
      for (const e of [...answers, { type: "run_resumed", at: now } as BatonEvent]) { apply(state, e); log.push(e); }
      continue;
    }
    if (state.status !== "running") break;
    if (crashes.has(steps)) {
      crashes.delete(steps);
      now += 5;
      state = fold(plan, log);
      pending = [];
      const resumed: BatonEvent = { type: "run_resumed", at: now };
      apply(state, resumed);
      log.push(resumed);
      continue;
    }
    if (pending.length === 0) {
      const wake = nextWakeAt(state);
      if (wake === undefined) throw new Error(`run stuck at step ${steps}: nothing pending, nothing to wake for`);
      now = Math.max(now + 1, wake);
      continue;
    }
    // Complete one pending effect, chosen at random.
    const i = Math.floor(rand() * pending.length);
    const ef = pending.splice(i, 1)[0]!;
    now += 1 + Math.floor(rand() * 10);
    const ev = perform(state, ef, now, attemptFails, cond, o);
    if (ev) for (const e of ev) { apply(state, e); log.push(e); }
  }
  return { log, state, steps, decisions, points };
}

export function hashStr(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
  return h;
}

function perform(
  state: RunState, ef: Effect, now: number,
  attemptFails: (k: string) => { fail: boolean; retryable: boolean },
  cond: (k: string, p: number) => boolean, o: SimOptions,
): BatonEvent[] | undefined {
  const plan = state.plan;
  switch (ef.kind) {
    case "execute": {
      const stage = plan.stages[ef.stage]!;
      if (stage.spec.kind === "approval") {
        return [{ type: "stage_waiting", at: now, stage: stage.id, visit: ef.visit, ...(ef.item !== undefined ? { item: ef.item } : {}), attempt: ef.attempt, message: "approve?" }];
      }
      const key = { stage: stage.id, visit: ef.visit, ...(ef.item !== undefined ? { item: ef.item } : {}), ...(ef.fallbackFor !== undefined ? { fallback_for: plan.stages[ef.fallbackFor]!.id } : {}) };
      const f = attemptFails(`${stage.id}:${ef.visit}:${ef.item}:${ef.fallbackFor}:${ef.attempt}`);
      if (f.fail) return [{ type: "stage_failed", at: now, ...key, attempt: ef.attempt, error: { kind: "handler", message: "boom", retryable: f.retryable } }];
      return [{ type: "stage_succeeded", at: now, ...key, attempt: ef.attempt, output: { stage: stage.id, visit: ef.visit, item: ef.item ?? null } }];
    }
    case "evaluate_if": {
      const stage = plan.stages[ef.stage]!;
      const r = cond(`if:${stage.id}:${ef.visit}`, o.ifRate ?? 0.7);
      return [{ type: "decision", at: now, stage: stage.id, visit: ef.visit, kind: "if", expression: "cond", read: {}, result: r }];
    }
    case "expand": {
      const stage = plan.stages[ef.stage]!;
      const n = itemCounts.get(plan)?.get(stage.id) ?? 3;
      return [{ type: "decision", at: now, stage: stage.id, visit: ef.visit, kind: "for_each", expression: "items", read: {}, result: n, items: Array.from({ length: n }, (_, i) => i) }];
    }
    case "routes": {
      const stage = plan.stages[ef.stage]!;
      const out: BatonEvent[] = [];
      for (let i = ef.from; i < stage.routes.length; i++) {
        const taken = cond(`route:${stage.id}:${ef.visit}:${i}:${state.routeTaken.get(ef.stage * 1024 + i) ?? 0}`, o.routeRate ?? 0.3);
        const avail = (state.routeTaken.get(ef.stage * 1024 + i) ?? 0) < stage.routes[i]!.max;
        if (!avail) continue;
        out.push({ type: "decision", at: now, stage: stage.id, visit: ef.visit, kind: "route", expression: `route ${i}`, read: {}, result: taken, route: i, taken });
        if (taken) break;
      }
      if (out.length === 0) out.push({ type: "decision", at: now, stage: stage.id, visit: ef.visit, kind: "route", expression: "none", read: {}, result: false, route: stage.routes.length, taken: false });
      return out;
    }
    case "assemble":
      return [{ type: "run_finished", at: now, status: "succeeded", output: null }];
    case "cancel":
      return undefined;
  }
}

const itemCounts = new WeakMap<Plan, Map<string, number>>();
