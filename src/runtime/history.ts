/**
 * Stage durations of earlier runs of a plan, for critical-path priority: when several ready
 * stages wait on one pool, the one with the longest remaining path (its own duration plus the
 * longest chain of dependents after it) goes first. Durations come from runs this process has
 * seen and, at first use, from up to 5 recent successful runs of the same plan in the store;
 * a stage never seen counts 1 s (so, with no history at all, paths are compared by stage counts).
 */
import type { BatonEvent } from "../engine/events.js";
import type { Plan, StageIdx } from "../plan/types.js";
import type { Store } from "../store/port.js";

const UNKNOWN_MS = 1000;

/** Whether a plan has pools (a fact of the plan: one answer per plan, for every history). */
const tracked = new WeakMap<Plan, boolean>();

export class StageHistory {
  /** plan hash → stage id → EWMA duration (ms). (A Runtime per run creates one: its maps are small until used.) */
  private readonly durations = new Map<string, Map<string, number>>();
  /** plan hash → remaining path per stage index (recomputed when durations change). */
  private readonly remainingCache = new Map<string, number[]>();
  private readonly started = new Map<string, number>();

  /** Only plans with pools need priorities. */
  tracks(plan: Plan): boolean {
    let t = tracked.get(plan);
    if (t === undefined) {
      t = plan.stages.some((s) => s.limit !== undefined);
      tracked.set(plan, t);
    }
    return t;
  }

  known(plan: Plan): boolean {
    return this.durations.has(plan.hash);
  }

  /** Learn from up to 5 recent successful runs of the same plan. */
  async load(store: Store, plan: Plan): Promise<void> {
    this.durations.set(plan.hash, this.durations.get(plan.hash) ?? new Map());
    const runs = (await store.list({ pipeline: plan.name, status: "succeeded", limit: 25 })).filter((r) => r.planHash === plan.hash).slice(0, 5);
    for (const r of runs.reverse()) {
      const { events } = await store.load(r.id);
      this.observe(plan, r.id, events);
    }
  }

  /** Feed events of a run. */
  observe(plan: Plan, runId: string, events: readonly BatonEvent[]): void {
    for (const e of events) {
      if (e.type === "stage_started") {
        this.started.set(`${runId}|${e.stage}|${e.visit}|${e.item ?? ""}|${e.fallback_for ?? ""}`, e.at);
      } else if (e.type === "stage_succeeded") {
        const k = `${runId}|${e.stage}|${e.visit}|${e.item ?? ""}|${e.fallback_for ?? ""}`;
        const t0 = this.started.get(k);
        if (t0 === undefined || e.fallback_for !== undefined) continue;
        this.started.delete(k);
        let m = this.durations.get(plan.hash);
        if (!m) this.durations.set(plan.hash, (m = new Map()));
        const prev = m.get(e.stage);
        const d = Math.max(0, e.at - t0 - (e.pool_wait_ms ?? 0)); // the stage's own time, not its queueing
        m.set(e.stage, prev === undefined ? d : prev * 0.7 + d * 0.3);
        this.remainingCache.delete(plan.hash);
      }
    }
  }

  /** Remaining critical path (ms) from a stage: its duration plus the longest path after it. */
  remaining(plan: Plan, idx: StageIdx): number {
    let r = this.remainingCache.get(plan.hash);
    if (!r) {
      const m = this.durations.get(plan.hash);
      r = new Array<number>(plan.stages.length).fill(0);
      for (let i = plan.topo.length - 1; i >= 0; i--) {
        const s = plan.stages[plan.topo[i]!]!;
        let after = 0;
        for (const d of s.dependents) after = Math.max(after, r[d]!);
        r[s.idx] = (m?.get(s.id) ?? UNKNOWN_MS) + after;
      }
      this.remainingCache.set(plan.hash, r);
    }
    return r[idx] ?? 0;
  }
}
