/**
 * A deterministic simulated runtime for engine tests: it builds plans directly (no template
 * compiler), performs the engine's effects with outcomes from a seeded random source on a
 * simulated clock, and records the log. Crashes are simulated by folding the log and resuming.
 */
import { createHash } from "node:crypto";
import type { Expr } from "../../src/expr/types.js";
import type { OnError, Plan, RetryPolicy, Route, StagePlan } from "../../src/plan/types.js";
import { apply, createState, ENGINE_VERSION, fold, keyId, type BatonEvent, type ExecuteCommand, type ExprCommand, type RunState } from "../../src/engine/index.js";
import { RunLoop, type HostPort } from "../../src/runtime/loop.js";

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
    concurrency: opts.concurrency ?? Infinity, limits: {}, agents: {}, tools: {}, mcp: {}, topo: plans.map((p) => p.idx),
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

/**
 * Run a plan to the end in simulation: the simulator is a host of the one step loop
 * (src/runtime/loop.ts), like the embedded driver and the distributed worker. It completes
 * started attempts one at a time in random order on a simulated clock; expression commands
 * are answered from seeded coin flips.
 */
export function simulate(plan: Plan, o: SimOptions): SimResult {
  const rand = rng(o.seed);
  let now = 1_000_000;
  const log: BatonEvent[] = [];
  const decisions: BatonEvent[][] = [];
  const points: { prefix: number; now: number }[] = [];
  // Attempts in flight: the host's pending work, completed in random order.
  let pending: ExecuteCommand[] = [];
  const crashes = new Set(o.crashAt ?? []);
  const max = o.maxSteps ?? 20000;
  let steps = 0;
  // Outcome of an execution attempt is a function of its key so it is the same after a crash.
  const attemptFails = (key: string): { fail: boolean; retryable: boolean } => {
    const r = rng(hashStr(key) ^ o.seed);
    return { fail: r() < (o.failRate ?? 0), retryable: r() < (o.retryableRate ?? 0.7) };
  };
  const cond = (key: string, p: number): boolean => rng(hashStr(key) ^ o.seed)() < p;
  const host: HostPort = {
    now: () => now,
    slots: () => (o.slots !== undefined ? o.slots - pending.length : Infinity),
    append: (_id, events, seq) => {
      if (seq !== log.length) throw new Error(`sim: append at ${seq}, log has ${log.length}`);
      for (const e of events) log.push(e);
      return log.length;
    },
    start: (_l, cmd) => void pending.push(cmd),
    abort: (_l, cmd) => {
      pending = pending.filter((p) => !(p.attempt === cmd.attempt && keyId(p.key) === keyId(cmd.key)));
    },
    evaluate: (_l, cmd) => evaluateSim(plan, cmd, now, cond, o),
    decided: (_l, before, events, at) => {
      points.push({ prefix: log.length + before, now: at });
      decisions.push([...events]);
      o.onStep?.(loop.state, [...events]);
    },
  };
  const state = createState(plan);
  const start: BatonEvent = { type: "run_started", at: now, run_id: "r1", pipeline: plan.name, plan_hash: plan.hash, engine: ENGINE_VERSION, source: { format: "ts" }, inputs: {}, seed: o.seed };
  apply(state, start);
  log.push(start);
  let loop = new RunLoop(host, plan, state, "r1", log.length);
  let blockedStep = false;
  const placed = (e: BatonEvent): void => {
    if (!apply(loop.state, e)) throw new Error(`sim: the engine could not place ${JSON.stringify(e)}`);
    log.push(e);
  };
  for (; steps < max; steps++) {
    const r = loop.advance();
    if (r instanceof Promise) throw new Error("sim: the step loop went asynchronous");
    const s = loop.state;
    if (s.status === "waiting" && o.approveRate !== undefined) {
      now += 7;
      for (const w of [...s.waitingOn.values()]) {
        placed({ type: "approval", at: now, stage: w.stage, visit: w.visit, ...(w.item !== undefined ? { item: w.item } : {}), approved: cond(`answer:${w.stage}:${w.visit}:${w.item}`, o.approveRate) });
      }
      placed({ type: "run_resumed", at: now });
      loop.seq = log.length;
      continue;
    }
    if (s.status !== "running") break;
    if (crashes.has(steps)) {
      crashes.delete(steps);
      now += 5;
      pending = [];
      loop = new RunLoop(host, plan, fold(plan, log), "r1", log.length);
      placed({ type: "run_resumed", at: now });
      loop.seq = log.length;
      continue;
    }
    if (loop.hasPending) continue;
    // Executions ready but held back for slots: a step with free slots starts them.
    if (loop.blocked && (o.slots === undefined || pending.length < o.slots) && !blockedStep) {
      blockedStep = true;
      continue;
    }
    blockedStep = false;
    if (pending.length === 0) {
      const wake = loop.wakeAt;
      if (wake === undefined) throw new Error(`run stuck at step ${steps}: nothing pending, nothing to wake for`);
      now = Math.max(now + 1, wake);
      continue;
    }
    // Complete one attempt in flight, chosen at random.
    const i = Math.floor(rand() * pending.length);
    const ef = pending.splice(i, 1)[0]!;
    now += 1 + Math.floor(rand() * 10);
    loop.push(...performSim(plan, ef, now, attemptFails));
  }
  return { log, state: loop.state, steps, decisions, points };
}

export function hashStr(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
  return h;
}

function performSim(plan: Plan, ef: ExecuteCommand, now: number, attemptFails: (k: string) => { fail: boolean; retryable: boolean }): BatonEvent[] {
  const stage = plan.stages[ef.stage]!;
  if (stage.spec.kind === "approval") {
    return [{ type: "stage_waiting", at: now, ...ef.key, attempt: ef.attempt, message: "approve?" }];
  }
  const f = attemptFails(`${stage.id}:${ef.visit}:${ef.item}:${ef.fallbackFor}:${ef.attempt}`);
  if (f.fail) return [{ type: "stage_failed", at: now, ...ef.key, attempt: ef.attempt, error: { kind: "handler", message: "boom", retryable: f.retryable } }];
  return [{ type: "stage_succeeded", at: now, ...ef.key, attempt: ef.attempt, output: { stage: stage.id, visit: ef.visit, item: ef.item ?? null } }];
}

function evaluateSim(plan: Plan, cmd: ExprCommand, now: number, cond: (k: string, p: number) => boolean, o: SimOptions): BatonEvent[] {
  switch (cmd.kind) {
    case "evaluate_if": {
      const stage = plan.stages[cmd.stage]!;
      const r = cond(`if:${stage.id}:${cmd.visit}`, o.ifRate ?? 0.7);
      return [{ type: "decision", at: now, stage: stage.id, visit: cmd.visit, kind: "if", expression: "cond", read: {}, result: r }];
    }
    case "expand": {
      const stage = plan.stages[cmd.stage]!;
      const n = itemCounts.get(plan)?.get(stage.id) ?? 3;
      return [{ type: "decision", at: now, stage: stage.id, visit: cmd.visit, kind: "for_each", expression: "items", read: {}, result: n, items: Array.from({ length: n }, (_, i) => i) }];
    }
    case "routes": {
      const stage = plan.stages[cmd.stage]!;
      const out: BatonEvent[] = [];
      for (const i of cmd.routes) {
        const taken = cond(`route:${stage.id}:${cmd.visit}:${i}`, o.routeRate ?? 0.3);
        out.push({ type: "decision", at: now, stage: stage.id, visit: cmd.visit, kind: "route", expression: `route ${i}`, read: {}, result: taken, route: i, taken });
        if (taken) break;
      }
      if (out.length === 0) out.push({ type: "decision", at: now, stage: stage.id, visit: cmd.visit, kind: "route", expression: "none", read: {}, result: false, route: stage.routes.length, taken: false });
      return out;
    }
    case "assemble":
      return [{ type: "run_finished", at: now, status: "succeeded", output: null }];
  }
}

const itemCounts = new WeakMap<Plan, Map<string, number>>();
