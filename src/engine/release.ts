/**
 * Outputs nothing can read any more are let go (issue 14: 300 distinct 1 MB outputs kept a run
 * at 450 MB). They stay in the log; the state drops its references once every stage that reads
 * an output has settled for good. Folds keep every output (a fork, `baton rerun --from`, reads
 * them from its fold); a host driving a run live turns release on for its state.
 *
 * Which outputs may go, decided per plan: not the ones the run's output is assembled from (the
 * `output:` expression's stages, or every sink), not a stage a backward route can run again (its
 * next visit reads its `prev`) nor one a stage that can run again reads (its next visit reads it
 * again), and not one a fallback stage reads (a fallback call may come at any time). Readers are
 * the stages that need or read it (`deps` covers both).
 */
import type { Plan, StageIdx } from "../plan/types.js";

// The shapes of state.ts this file touches, declared here (state.ts calls into this file: a type
// import back would make the two files a cycle).
interface ReleasableExec {
  output?: unknown;
  lastInput?: unknown;
  steps?: unknown;
  readonly fallback?: ReleasableExec | undefined;
}
interface Node {
  readonly idx: StageIdx;
  readonly done: boolean;
  output?: unknown;
  readonly execs: Iterable<ReleasableExec>;
}
interface RunState {
  readonly plan: Plan;
  readonly nodes: readonly Node[];
  unread?: Int32Array | undefined;
}

interface ReleasePlan {
  /** Per stage: whether its output may be let go once its readers settled. */
  readonly releasable: readonly boolean[];
  /** Per stage: the stages that read it (other than itself). */
  readonly readers: readonly (readonly StageIdx[])[];
}

const plans = new WeakMap<Plan, ReleasePlan>();

function releasePlan(plan: Plan): ReleasePlan {
  let r = plans.get(plan);
  if (r) return r;
  const n = plan.stages.length;
  const readers: StageIdx[][] = plan.stages.map(() => []);
  for (const s of plan.stages) for (const d of s.deps) if (d !== s.idx) readers[d]!.push(s.idx);
  const releasable = new Array<boolean>(n).fill(true);
  // The run's output reads these.
  if (plan.output) {
    for (const id of plan.output.roots) {
      const idx = plan.stageIndex.get(id);
      if (idx !== undefined) releasable[idx] = false;
    }
  } else {
    for (const s of plan.stages) if (!s.isFallback && s.dependents.every((d) => plan.stages[d]!.isFallback)) releasable[s.idx] = false;
  }
  // Stages a backward route may run again: they, and what they read, are read again.
  const again = new Set<StageIdx>();
  for (const s of plan.stages) {
    for (const route of s.routes) {
      if (!route.backward || route.goto === undefined) continue;
      const stack = [route.goto];
      while (stack.length > 0) {
        const x = stack.pop()!;
        if (again.has(x)) continue;
        again.add(x);
        stack.push(...plan.stages[x]!.dependents);
      }
    }
  }
  for (const x of again) {
    releasable[x] = false;
    for (const d of plan.stages[x]!.deps) releasable[d] = false;
  }
  for (const s of plan.stages) {
    if (s.isFallback) {
      releasable[s.idx] = false;
      for (const d of s.deps) releasable[d] = false;
    }
  }
  r = { releasable, readers };
  plans.set(plan, r);
  return r;
}

/**
 * Turn release on for a live run's state: from now on, an output is let go once its last reader
 * settles; outputs already read by every reader (a resumed run's fold) go at once.
 */
export function enableRelease(state: RunState): void {
  if (state.unread) return;
  const { releasable, readers } = releasePlan(state.plan);
  const unread = new Int32Array(state.nodes.length);
  for (let s = 0; s < unread.length; s++) {
    let left = 0;
    for (const r of readers[s]!) if (!state.nodes[r]!.done) left++;
    unread[s] = releasable[s] ? left : -1;
  }
  state.unread = unread;
  for (const node of state.nodes) if (node.done && unread[node.idx] === 0) release(node);
}

/** A stage settled: the outputs it read may have lost their last reader (and its own, if it has none). */
export function onSettled(state: RunState, node: Node): void {
  const unread = state.unread!;
  if (unread[node.idx] === 0) release(node);
  for (const d of state.plan.stages[node.idx]!.deps) {
    if (d === node.idx || unread[d]! <= 0) continue;
    if (--unread[d]! === 0 && state.nodes[d]!.done) release(state.nodes[d]!);
  }
}

/** Drop a settled stage's output (and its executions' outputs, inputs and steps): the log has them. */
function release(node: Node): void {
  node.output = undefined;
  for (const x of node.execs) {
    x.output = undefined;
    x.lastInput = undefined;
    x.steps = undefined;
    if (x.fallback) {
      x.fallback.output = undefined;
      x.fallback.lastInput = undefined;
      x.fallback.steps = undefined;
    }
  }
}
