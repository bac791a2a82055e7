/**
 * The scope an expression of a stage sees (SPEC §1 "Expressions and data routing"): `inputs`,
 * the outputs of the stages it reads, and for the stage itself `item`/the `as` name, `index`,
 * `visit`, `attempt`, `route`, `prev` (and `input`, `error` in a fallback call).
 * Only the stages the stage reads are put in scope, so building it costs O(reads).
 */
import type { StageIdx } from "../plan/types.js";
import type { Node, RunState } from "./state.js";

export interface ScopeOptions {
  readonly item?: number | undefined;
  readonly attempt?: number;
  /** For a fallback call: the failed stage's input and error. */
  readonly fallback?: { readonly input: unknown; readonly error: unknown };
  /** Take visit/item/route/prev from this node instead of the stage's own (fallback calls use their owner's). */
  readonly node?: Node;
}

/** The output of a stage as other stages read it: its settled output, `null` if skipped. */
export function outputOf(state: RunState, idx: StageIdx): unknown {
  const node = state.nodes[idx]!;
  return node.done ? node.output : undefined;
}

/** Build the scope for evaluating an expression of stage `idx` on its current visit. */
export function scopeFor(state: RunState, idx: StageIdx, opts: ScopeOptions = {}): Record<string, unknown> {
  const plan = state.plan;
  const stage = plan.stages[idx]!;
  const node = opts.node ?? state.nodes[idx]!;
  const scope: Record<string, unknown> = { inputs: state.inputs };
  for (const id of stage.reads) {
    const j = plan.stageIndex.get(id);
    if (j === undefined) continue;
    scope[id] = j === node.idx ? node.output : outputOf(state, j);
  }
  scope.visit = node.visit;
  if (opts.attempt !== undefined) scope.attempt = opts.attempt;
  if (node.routeWith !== undefined) scope.route = node.routeWith;
  if (node.prev !== undefined) scope.prev = node.prev;
  if (opts.item !== undefined && node.items) {
    const item = node.items[opts.item];
    scope.item = item;
    scope[plan.stages[node.idx]!.as] = item;
    scope.index = opts.item;
  }
  if (opts.fallback) {
    scope.input = opts.fallback.input;
    scope.error = opts.fallback.error;
  }
  return scope;
}

/** The values an expression read: the scope restricted to the expression's root names. */
export function readOf(scope: Readonly<Record<string, unknown>>, roots: readonly string[]): Record<string, unknown> {
  const read: Record<string, unknown> = {};
  for (const r of roots) if (Object.hasOwn(scope, r)) read[r] = scope[r] === undefined ? null : scope[r];
  return read;
}
