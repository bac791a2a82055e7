/**
 * The shell around one run: it folds events into the engine's state, asks `decide`, appends
 * the decided events to the store in ONE transaction per step (completions that arrived in
 * the same tick batch together), and only then carries out the effects: executing attempts,
 * evaluating expressions, aborting executions, assembling the output. It never decides what
 * runs next.
 */
import type { Expr } from "../expr/types.js";
import { apply, decide, nextWakeAt, readOf, scopeFor, type BatonEvent, type Effect, type Exec, type RunState } from "../engine/index.js";
import type { Plan, StagePlan } from "../plan/types.js";
import type { Store } from "../store/port.js";
import type { BatonConfig } from "../agents/config.js";
import type { ChildRuns } from "../stages/types.js";
import { Attempt, type AttemptHost } from "./attempt.js";
import type { Redactor } from "./redact.js";
import type { PoolLease } from "./pools.js";
import { toJsonValue } from "./json.js";

/** What a run ended as (SPEC §4 `--json`). */
export interface RunResult {
  readonly id: string;
  readonly pipeline: string;
  readonly status: "succeeded" | "failed" | "cancelled" | "waiting";
  readonly output?: unknown;
  readonly error?: { readonly stage?: string; readonly kind: string; readonly message: string };
  readonly duration_ms: number;
}

/** What the driver needs from the process runtime. */
export interface DriverHost {
  readonly store: Store;
  /** Providers and model facts for agent stages. */
  readonly config: BatonConfig;
  readonly children: ChildRuns;
  /** Wait for a stage's resource pool (undefined when it has none). */
  acquire(plan: Plan, stage: StagePlan, tokens: number, signal: AbortSignal): Promise<PoolLease | undefined>;
  /** Removes secrets from events before they are stored. */
  readonly redactor: Redactor;
  now(): number;
  /** Execution slots free in the process now. */
  freeSlots(): number;
  take(n: number): void;
  release(): void;
  /** Called when this run could start more if slots were free. */
  blocked(driver: RunDriver): void;
  onEvents(driver: RunDriver, events: readonly BatonEvent[]): void;
  finished(driver: RunDriver): void;
}

/** JSONata truthiness ($boolean). */
export function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === "" || Number.isNaN(v)) return false;
  if (Array.isArray(v)) return v.some(truthy);
  if (typeof v === "object") return Object.keys(v as object).length > 0;
  if (typeof v === "function") return false;
  return true;
}

async function evaluate(expr: { evaluate(scope: Record<string, unknown>): unknown } | undefined, scope: Record<string, unknown>): Promise<unknown> {
  if (!expr) return undefined;
  const v = expr.evaluate(scope);
  return v instanceof Promise ? await v : v;
}

/** Drives one run to a stop (finished, waiting, or cancelled). */
export class RunDriver {
  private pending: BatonEvent[] = [];
  private flushing = false;
  private scheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly running = new Map<Exec, Attempt>();
  private resolveDone!: (r: RunResult) => void;
  private rejectDone!: (e: unknown) => void;
  private stopped = false;
  /** Resolves when the run stops. */
  readonly done: Promise<RunResult>;
  private readonly attemptHost: AttemptHost;
  private readonly budget: AttemptHost["budget"];

  constructor(
    private readonly host: DriverHost,
    readonly plan: Plan,
    readonly state: RunState,
    readonly runId: string,
    private seq: number,
  ) {
    const budget = { reserved: { tokens: 0, usd: 0 }, unapplied: { tokens: 0, usd: 0 } };
    this.budget = budget;
    this.attemptHost = {
      plan, state, runId, budget,
      acquire: (stage, tokens, signal) => host.acquire(plan, stage, tokens, signal),
      services: {
        config: host.config,
        children: host.children,
        usage: () => ({
          tokens: state.usage.input + state.usage.output + budget.reserved.tokens + budget.unapplied.tokens,
          usd: state.usage.usd + budget.reserved.usd + budget.unapplied.usd,
        }),
      },
      now: () => this.host.now(),
      done: (a: Attempt, e: BatonEvent | undefined) => {
        this.running.delete(a.ef.exec);
        // A sub-pipeline stage holds no slot while its child runs (the child's stages take them).
        if (a.stage.spec.kind !== "pipeline") this.host.release();
        if (e) this.push(e);
      },
    };
    this.done = new Promise<RunResult>((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
  }

  /** Queue events that happened (results, decisions, signals) and schedule a step. */
  push(...events: BatonEvent[]): void {
    this.pending.push(...events);
    this.schedule();
  }

  /** Schedule a step soon (batching everything that arrives in this tick). */
  schedule(): void {
    if (this.scheduled || this.stopped) return;
    if (this.flushing) {
      this.again = true; // the step in progress loops once more
      return;
    }
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      void this.step();
    });
  }

  /** Abort every execution in flight (process shutdown). */
  abortAll(reason: string): void {
    for (const a of [...this.running.values()]) a.cancel(new DOMException(reason, "AbortError"));
  }

  private async step(): Promise<void> {
    if (this.flushing) {
      this.again = true;
      return;
    }
    this.flushing = true;
    try {
      do {
        this.again = false;
        const batch = this.pending.splice(0);
        for (const e of batch) {
          if ((e.type === "stage_succeeded" || e.type === "stage_failed") && e.tokens) {
            this.budget.unapplied.tokens -= e.tokens.input + e.tokens.output;
            this.budget.unapplied.usd -= e.cost_usd ?? 0;
          }
          apply(this.state, e);
        }
        const now = this.host.now();
        const step = decide(this.state, now, { slots: this.host.freeSlots() });
        if (step.events.length) for (const e of step.events) batch.push(e);
        if (batch.length > 0) {
          for (const e of batch) this.host.redactor.event(e);
          const store = this.host.store;
          this.seq = store.appendNow ? store.appendNow(this.runId, batch, this.seq) : await store.append(this.runId, batch, this.seq);
          this.host.onEvents(this, batch);
        }
        this.perform(step.effects);
        if (this.state.ready.length > 0 && this.state.status === "running") this.host.blocked(this);
      } while ((this.again || this.pending.length > 0) && !this.stopped);
    } catch (err) {
      this.fail(err);
      return;
    } finally {
      this.flushing = false;
    }
    this.afterStep();
  }

  private again = false;

  private afterStep(): void {
    if (this.stopped) return;
    const s = this.state;
    if (s.status === "succeeded" || s.status === "failed" || s.status === "cancelled" || (s.status === "waiting" && s.inflight === 0)) {
      this.finish();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const wake = nextWakeAt(s);
    if (wake !== undefined) {
      this.timer = setTimeout(() => this.schedule(), Math.max(0, wake - this.host.now()));
    }
  }

  private finish(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const s = this.state;
    const status = s.status === "running" ? "waiting" : s.status;
    const result: RunResult = {
      id: this.runId,
      pipeline: this.plan.name,
      status: status as RunResult["status"],
      ...(s.status === "succeeded" ? { output: this.output } : {}),
      ...(s.failure && s.status !== "succeeded" ? { error: s.failure } : {}),
      ...(s.status === "waiting" && s.waiting ? { error: { stage: s.waiting.stage, kind: "waiting", message: s.waiting.message } } : {}),
      duration_ms: Math.max(0, s.lastAt - s.startedAt),
    };
    this.host.finished(this);
    this.resolveDone(result);
  }

  private output: unknown;

  private fail(err: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.abortAll("run driver stopped");
    this.host.finished(this);
    this.rejectDone(err);
  }

  private perform(effects: readonly Effect[]): void {
    let started = 0;
    for (const ef of effects) {
      switch (ef.kind) {
        case "execute":
          if (this.plan.stages[ef.stage]!.spec.kind !== "pipeline") started++;
          this.execute(ef);
          break;
        case "cancel":
          this.running.get(ef.exec)?.cancel(new DOMException(ef.reason, "AbortError"));
          break;
        case "evaluate_if":
        case "expand":
        case "routes":
          void this.decideExpr(ef);
          break;
        case "assemble":
          void this.assemble();
          break;
      }
    }
    if (started) this.host.take(started);
  }

  private async decideExpr(ef: Extract<Effect, { kind: "evaluate_if" | "expand" | "routes" }>): Promise<void> {
    const stage = this.plan.stages[ef.stage]!;
    const scope = scopeFor(this.state, ef.stage);
    const base = { type: "decision" as const, stage: stage.id, visit: ef.visit };
    const one = async (kind: "if" | "for_each" | "route", expr: Expr, extra: Record<string, unknown> = {}): Promise<{ value: unknown; event: BatonEvent }> => {
      const read = readOf(scope, expr.roots);
      try {
        const value = await evaluate(expr, scope);
        return { value, event: { ...base, at: this.host.now(), kind, expression: expr.source, read, result: kind === "for_each" ? value : truthy(value), ...extra } };
      } catch (err) {
        const message = `stage '${stage.id}': ${kind === "route" ? "route `when`" : kind} ${(err as Error).message}`;
        return { value: undefined, event: { ...base, at: this.host.now(), kind, expression: expr.source, read, result: null, error: message, ...extra } };
      }
    };
    if (ef.kind === "evaluate_if") {
      this.push((await one("if", stage.if!)).event);
    } else if (ef.kind === "expand") {
      const { value, event } = await one("for_each", stage.forEach!);
      if (event.type === "decision" && event.error === undefined) {
        const items = value === undefined || value === null ? [] : Array.isArray(value) ? value : [value];
        this.push({ ...event, result: items.length, items: items.map((x) => toJsonValue(x, `for_each item of '${stage.id}'`)) });
      } else this.push(event);
    } else if (ef.kind === "routes") {
      await this.routes(stage, ef.from, scope, one);
    }
  }

  private async routes(
    stage: StagePlan, from: number, scope: Record<string, unknown>,
    one: (kind: "route", expr: Expr, extra?: Record<string, unknown>) => Promise<{ value: unknown; event: BatonEvent }>,
  ): Promise<void> {
    const out: BatonEvent[] = [];
    for (let i = from; i < stage.routes.length; i++) {
      const route = stage.routes[i]!;
      if ((this.state.routeTaken.get(stage.idx * 1024 + i) ?? 0) >= route.max) continue;
      const { value, event } = await one("route", route.when, route.goto !== undefined ? { route: i, goto: this.plan.stages[route.goto]!.id } : { route: i });
      if (event.type !== "decision" || event.error !== undefined) {
        out.push(event);
        break;
      }
      const taken = truthy(value);
      let withValue: unknown;
      if (taken && route.with) {
        try {
          withValue = toJsonValue(await evaluate(route.with, scope), `route with: of '${stage.id}'`);
        } catch (err) {
          out.push({ ...event, error: `stage '${stage.id}': route with: ${(err as Error).message}` });
          break;
        }
      }
      out.push({ ...event, taken, ...(withValue !== undefined ? { with: withValue } : {}) });
      if (taken) break;
    }
    if (out.length === 0) return;
    this.push(...out);
  }

  private async assemble(): Promise<void> {
    const plan = this.plan;
    const at = (): number => this.host.now();
    try {
      let output: unknown;
      let read: string[];
      if (plan.output) {
        const scope: Record<string, unknown> = { inputs: this.state.inputs };
        for (const r of plan.output.roots) {
          const idx = plan.stageIndex.get(r);
          if (idx !== undefined) scope[r] = this.state.nodes[idx]!.output;
        }
        output = toJsonValue(await evaluate(plan.output, scope), "the run's output");
        read = plan.output.roots.filter((r) => plan.stageIndex.has(r));
      } else {
        const sinks = plan.stages.filter((s) => !s.isFallback && s.dependents.every((d) => plan.stages[d]!.isFallback));
        const o: Record<string, unknown> = {};
        for (const s of sinks) o[s.id] = this.state.nodes[s.idx]!.output ?? null;
        output = o;
        read = sinks.map((s) => s.id);
      }
      this.output = output;
      this.push({ type: "run_finished", at: at(), status: "succeeded", output, read });
    } catch (err) {
      this.push({ type: "run_finished", at: at(), status: "failed", error: { kind: "expression", message: `output: ${(err as Error).message}` } });
    }
  }

  /** Execute one attempt (see {@link Attempt}). */
  private execute(ef: Extract<Effect, { kind: "execute" }>): void {
    const a = new Attempt(this.attemptHost, ef);
    this.running.set(ef.exec, a);
    a.start();
  }
}
