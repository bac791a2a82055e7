/**
 * A small deterministic driver for the semantics property tests (semantics.property.test.ts).
 *
 * Unlike sim.ts it does not pick outcomes at random: the test answers every execution itself
 * (succeed, fail with a chosen error, be cancelled from outside, or crash the process), decides
 * at a simulated `now` it controls and records what it saw. It relies on effects only for
 * `ef.kind` and, for execute effects, `stage`/`visit`/`item`/`attempt`; which attempt runs is
 * read from the `stage_started` events decide records (they carry `fallback_for`).
 */
import type { Plan, StageIdx } from "../../src/plan/types.js";
import {
  apply, createState, decide, ENGINE_VERSION, fold, nextWakeAt, routeAvailable, scopeFor,
  type BatonEvent, type Effect, type RunState, type StageError,
} from "../../src/engine/index.js";

export const T0 = 1_000_000;

/** An attempt in flight, as its stage_started said. */
export interface Attempt {
  readonly stage: string;
  readonly idx: StageIdx;
  readonly visit: number;
  readonly item?: number;
  readonly fallback_for?: string;
  readonly attempt: number;
}

export type Action =
  | { readonly ok: unknown }
  | { readonly fail: StageError }
  /** cancel: a `stage_cancelled` of the running attempt (written by another process); crash: fold the log + `run_resumed`. */
  | { readonly interrupt: "cancel" | "crash" };

export interface DriverOptions {
  readonly seed?: number;
  /** Process slots: decide gets `slots - attempts in flight`. */
  readonly slots?: number;
  /** for_each item counts by stage id (default 3). */
  readonly items?: Readonly<Record<string, number>>;
  /** A route's `when` (default: always holds). */
  readonly when?: (stage: string, route: number, visit: number) => boolean;
  /** Which in-flight attempt to answer next, as a number in [0,1) (default: the oldest). */
  readonly pick?: () => number;
  /** Before the clock jumps to a retry's due time: crash (fold + resume) first? */
  readonly crashWhileWaiting?: () => boolean;
  /** Called after every decide. */
  readonly onDecide?: (d: Driver, events: readonly BatonEvent[], effects: readonly Effect[]) => void;
}

export const keyStr = (e: { stage: string; visit: number; item?: number; fallback_for?: string }): string =>
  `${e.stage}|${e.visit}|${e.item ?? ""}|${e.fallback_for ?? ""}`;

/** The stage index of a non-execute effect (its shape beyond `kind` is not relied on elsewhere). */
function effectStage(ef: Effect): StageIdx | undefined {
  const s = (ef as { stage?: unknown }).stage;
  return typeof s === "number" ? s : undefined;
}

export class Driver {
  state: RunState;
  readonly log: BatonEvent[] = [];
  now = T0;
  running: Attempt[] = [];
  /** Broken rules seen while driving (the tests expect none). */
  readonly violations: string[] = [];
  /** Every routes effect: the route it asked to evaluate from, and whether that route was still available. */
  readonly routeAsks: { stage: string; visit: number; from: number; available: boolean }[] = [];
  /** Every time the clock jumped to nextWakeAt: from when, to when. */
  readonly wakes: { from: number; to: number }[] = [];
  /** What each stage read from the stages it depends on, each time it started. */
  readonly scopes = new Map<string, Record<string, unknown>[]>();
  decides = 0;

  constructor(readonly plan: Plan, readonly o: DriverOptions = {}) {
    this.state = createState(plan);
    this.push({ type: "run_started", at: this.now, run_id: "r1", pipeline: plan.name, plan_hash: plan.hash, engine: ENGINE_VERSION, source: { format: "ts" }, inputs: {}, seed: o.seed ?? 1 });
  }

  idx(id: string): StageIdx {
    return this.plan.stageIndex.get(id)!;
  }

  /** Apply an event the "runtime" reports; it must be placed. */
  push(e: BatonEvent): void {
    this.log.push(e);
    if (!apply(this.state, e)) this.violations.push(`apply refused ${e.type} ${JSON.stringify(e)}`);
  }

  /** One decide at the current clock (or `at`). Returns its events. */
  decide(at = this.now): { events: BatonEvent[]; effects: Effect[] } {
    const slots = this.o.slots === undefined ? {} : { slots: this.o.slots - this.running.length };
    const step = decide(this.state, at, slots);
    this.decides++;
    this.log.push(...step.events);
    for (const e of step.events) {
      if (e.type === "stage_cancelled") {
        const k = keyStr(e);
        this.running = this.running.filter((r) => !(keyStr(r) === k && r.attempt === e.attempt));
      }
    }
    const started = step.events.filter((e): e is Extract<BatonEvent, { type: "stage_started" }> => e.type === "stage_started");
    const execs = step.effects.filter((ef): ef is Extract<Effect, { kind: "execute" }> => ef.kind === "execute");
    if (execs.length !== started.length) this.violations.push(`decide recorded ${started.length} stage_started but asked for ${execs.length} executions`);
    started.forEach((e, i) => {
      const ef = execs[i];
      if (ef && (this.plan.stages[ef.stage]!.id !== e.stage || ef.visit !== e.visit || ef.item !== e.item || ef.attempt !== e.attempt)) {
        this.violations.push(`execute effect ${ef.stage}/${ef.visit}/${ef.item}/${ef.attempt} does not match ${JSON.stringify(e)}`);
      }
      const idx = this.idx(e.stage);
      if (e.fallback_for === undefined) {
        const scope = scopeFor(this.state, idx);
        const seen = Object.fromEntries(this.plan.stages[idx]!.reads.map((r) => [r, scope[r]]));
        this.scopes.set(e.stage, [...(this.scopes.get(e.stage) ?? []), seen]);
      }
      this.running.push({
        stage: e.stage, idx, visit: e.visit, attempt: e.attempt,
        ...(e.item !== undefined ? { item: e.item } : {}),
        ...(e.fallback_for !== undefined ? { fallback_for: e.fallback_for } : {}),
      });
    });
    this.o.onDecide?.(this, step.events, step.effects);
    return step;
  }

  /** Answer the expression effects of a step at once; returns how many events that produced. */
  answer(effects: readonly Effect[]): number {
    let n = 0;
    const put = (e: BatonEvent): void => { this.push(e); n++; };
    for (const ef of effects) {
      if (ef.kind === "execute" || ef.kind === "cancel") continue;
      if (ef.kind === "assemble") {
        put({ type: "run_finished", at: this.now, status: "succeeded", output: null });
        continue;
      }
      const idx = effectStage(ef)!;
      const stage = this.plan.stages[idx]!;
      const node = this.state.nodes[idx]!;
      const base = { type: "decision" as const, at: this.now, stage: stage.id, visit: node.visit, read: {} };
      if (ef.kind === "evaluate_if") put({ ...base, kind: "if", expression: "cond", result: true });
      else if (ef.kind === "expand") {
        const count = this.o.items?.[stage.id] ?? 3;
        put({ ...base, kind: "for_each", expression: "items", result: count, items: Array.from({ length: count }, (_, i) => i) });
      } else if (ef.kind === "routes") {
        const from = typeof (ef as { from?: unknown }).from === "number" ? (ef as { from: number }).from : node.routeCursor;
        this.routeAsks.push({ stage: stage.id, visit: node.visit, from, available: routeAvailable(this.state, idx, from) });
        // As the runtime's evaluator does: in order from `from`, skipping used-up routes, until one is taken.
        const out: BatonEvent[] = [];
        for (let i = from; i < stage.routes.length; i++) {
          if (!routeAvailable(this.state, idx, i)) continue;
          const taken = this.o.when ? this.o.when(stage.id, i, node.visit) : true;
          const goto = stage.routes[i]!.goto;
          out.push({ ...base, kind: "route", expression: `route ${i}`, result: taken, route: i, taken, ...(goto !== undefined ? { goto: this.plan.stages[goto]!.id } : {}) });
          if (taken) break;
        }
        for (const e of out) put(e);
      }
    }
    return n;
  }

  /** Report the outcome of one attempt in flight (removed from `running`). */
  act(a: Attempt, action: Action): void {
    const key = {
      stage: a.stage, visit: a.visit, attempt: a.attempt,
      ...(a.item !== undefined ? { item: a.item } : {}),
      ...(a.fallback_for !== undefined ? { fallback_for: a.fallback_for } : {}),
    };
    if ("ok" in action) this.push({ type: "stage_succeeded", at: this.now, ...key, output: action.ok });
    else if ("fail" in action) this.push({ type: "stage_failed", at: this.now, ...key, error: action.fail });
    else if (action.interrupt === "cancel") this.push({ type: "stage_cancelled", at: this.now, ...key, reason: "cancelled by another process" });
    else this.crash();
  }

  /** The process dies: every attempt in flight is lost; a new one folds the log and resumes. */
  crash(): void {
    this.running = [];
    this.state = fold(this.plan, this.log);
    this.push({ type: "run_resumed", at: this.now });
  }

  /**
   * Drive the run until it stops. `policy` answers each attempt. When nothing is in flight the
   * clock jumps to nextWakeAt; just before it, a decide at `due - 1` must start nothing.
   */
  run(policy: (a: Attempt, d: Driver) => Action, maxIterations = 5000): this {
    for (let it = 0; it < maxIterations; it++) {
      const step = this.decide();
      const answered = this.answer(step.effects);
      if (this.state.status !== "running") return this;
      if (answered > 0) continue;
      if (this.running.length > 0) {
        const i = this.o.pick ? Math.floor(this.o.pick() * this.running.length) : 0;
        const a = this.running.splice(i, 1)[0]!;
        this.now += 1;
        this.act(a, policy(a, this));
        continue;
      }
      if (step.events.length > 0 || step.effects.length > 0) continue;
      let wake = nextWakeAt(this.state);
      if (wake === undefined) throw new Error(`run stuck at ${this.now}: nothing in flight, nothing to wake for\n${this.dump()}`);
      if (wake <= this.now) throw new Error(`decide at ${this.now} did nothing although nextWakeAt is ${wake}\n${this.dump()}`);
      if (this.o.crashWhileWaiting?.()) {
        this.crash();
        const again = nextWakeAt(this.state);
        if (again !== wake) this.violations.push(`nextWakeAt was ${wake} before a crash, ${again} after`);
        if (again !== undefined) wake = again;
      }
      // Not yet due: nothing may start one ms before.
      const early = this.decide(wake - 1);
      for (const e of early.events) if (e.type === "stage_started") this.violations.push(`started ${keyStr(e)} attempt ${e.attempt} at ${wake - 1}, before its due time ${wake}`);
      this.answer(early.effects);
      this.wakes.push({ from: this.now, to: wake });
      this.now = Math.max(this.now, wake);
    }
    throw new Error(`run did not stop within ${maxIterations} iterations\n${this.dump()}`);
  }

  dump(): string {
    return this.log.map((e) => JSON.stringify(e)).join("\n");
  }

  /** Events of a type (optionally of one stage, non-fallback executions only unless `fallbackFor` is given). */
  events<T extends BatonEvent["type"]>(type: T, stage?: string, fallbackFor?: string): Extract<BatonEvent, { type: T }>[] {
    return this.log.filter((e): e is Extract<BatonEvent, { type: T }> => {
      if (e.type !== type) return false;
      if (stage === undefined) return true;
      const x = e as { stage?: string; fallback_for?: string };
      return x.stage === stage && x.fallback_for === fallbackFor;
    });
  }

  finished(): Extract<BatonEvent, { type: "run_finished" }> | undefined {
    return this.events("run_finished")[0];
  }
}

/** mulberry32, for choosing orders from a fast-check seed (the simulator's). */
export { rng } from "./sim.js";
