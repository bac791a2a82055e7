/**
 * Commands: what `decide` asks a host to do, as plain data. A command carries its `ExecKey` and
 * everything the host needs to carry it out (the scope an expression or handler sees, the
 * previous error, the fallback's context), so no host reads `RunState` internals: it performs
 * commands and reports events. Commands are cheap to build (O(reads) each) and serialisable.
 */
import type { StageIdx } from "../plan/types.js";
import type { ExecKey, StageError } from "./events.js";
import { execKey, type AttemptKey } from "./key.js";
import { scopeFor } from "./scope.js";
import { execAt, routeAvailable, type Exec, type RunState } from "./state.js";

/** Run one attempt of one execution. */
export interface ExecuteCommand {
  readonly kind: "execute";
  readonly key: ExecKey;
  readonly attempt: number;
  readonly stage: StageIdx;
  readonly visit: number;
  readonly item: number | undefined;
  /** Set when this is a fallback call standing in for that stage. */
  readonly fallbackFor: StageIdx | undefined;
  readonly runId: string;
  /** The scope the stage's expressions see (`inputs`, outputs it reads, item, visit, attempt, route, prev; fallback input/error). */
  readonly scope: Record<string, unknown>;
  /** Outputs of the stages it needs or reads, by id (`ctx.outputs`). */
  readonly outputs: Record<string, unknown>;
  /** The previous attempt's error, on a retry (e.g. a malformed reply to repair). */
  readonly previous: StageError | undefined;
  /** Durable steps earlier attempts of this execution recorded (SPEC §9), by name; undefined when none. */
  readonly steps: ReadonlyMap<string, unknown> | undefined;
}

/** Abort an attempt in flight; its result, if any arrives, is ignored. */
export interface CancelCommand {
  readonly kind: "cancel";
  readonly key: ExecKey;
  readonly attempt: number;
  readonly reason: string;
}

/** Evaluate a stage's `if` or its `for_each` items. */
export interface ConditionCommand {
  readonly kind: "evaluate_if" | "expand";
  readonly stage: StageIdx;
  readonly visit: number;
  readonly scope: Record<string, unknown>;
}

/** Evaluate a stage's routes, in this order (the ones whose `max` is not used up), until one is taken. */
export interface RoutesCommand {
  readonly kind: "routes";
  readonly stage: StageIdx;
  readonly visit: number;
  readonly from: number;
  readonly routes: readonly number[];
  readonly scope: Record<string, unknown>;
}

/** Assemble the run's output from `inputs` and the outputs it reads (the `output:` expression's stages, or every sink). */
export interface AssembleCommand {
  readonly kind: "assemble";
  readonly inputs: Readonly<Record<string, unknown>>;
  readonly outputs: Record<string, unknown>;
}

export type ExprCommand = ConditionCommand | RoutesCommand | AssembleCommand;
export type Command = ExecuteCommand | CancelCommand | ExprCommand;

/** The key of an execution in the state. */
export function keyOf(state: RunState, exec: Exec): ExecKey {
  const stages = state.plan.stages;
  return execKey(stages[exec.stage]!.id, exec.visit, exec.item, exec.owner ? stages[exec.owner.stage]!.id : undefined);
}

/** The command that runs attempt `attempt` of `exec` (`key`: its key, when the caller has it already). */
export function executeCommand(state: RunState, exec: Exec, attempt: number, key: ExecKey = keyOf(state, exec)): ExecuteCommand {
  const plan = state.plan;
  const stage = plan.stages[exec.stage]!;
  const owner = exec.owner;
  const scope = scopeFor(state, exec.stage, owner
    ? { item: exec.item, attempt, node: exec.node, fallback: { input: owner.lastInput ?? null, error: owner.lastError ? { kind: owner.lastError.kind, message: owner.lastError.message } : null } }
    : { item: exec.item, attempt });
  const outputs: Record<string, unknown> = {};
  for (const d of stage.deps) outputs[plan.stages[d]!.id] = state.nodes[d]!.output;
  for (const id of stage.reads) if (Object.hasOwn(scope, id)) outputs[id] = scope[id];
  return {
    kind: "execute", key, attempt, stage: exec.stage, visit: exec.visit, item: exec.item,
    fallbackFor: owner ? owner.stage : undefined, runId: state.runId, scope, outputs,
    previous: attempt > 1 ? exec.lastError : undefined,
    steps: exec.steps && exec.steps.size > 0 ? new Map(exec.steps) : undefined,
  };
}

/** The execution a key names on its stage's current visit, if any. */
export function execOf(state: RunState, k: ExecKey): Exec | undefined {
  const idx = state.plan.stageIndex.get(k.fallback_for ?? k.stage);
  if (idx === undefined) return undefined;
  const node = state.nodes[idx]!;
  if (node.visit !== k.visit || node.total < 0) return undefined;
  const x = k.item === undefined ? (node.items ? undefined : node.execs[0]) : node.items && k.item < node.items.length ? execAt(node, k.item, node.readyAt) : undefined;
  return k.fallback_for !== undefined ? x?.fallback : x;
}

/**
 * The command for an attempt a host was asked to run (e.g. a queued job), if that attempt is
 * still the current one — running, with that number; undefined when it is done or superseded
 * (cancelled, routed back, retried elsewhere).
 */
export function commandFor(state: RunState, k: AttemptKey): ExecuteCommand | undefined {
  const exec = execOf(state, k);
  return exec && exec.status === "running" && exec.attempt === k.attempt ? executeCommand(state, exec, k.attempt) : undefined;
}

/** Model usage the run's log records so far (tokens in and out, USD). */
export function usageOf(state: RunState): { readonly tokens: number; readonly usd: number } {
  return { tokens: state.usage.input + state.usage.output, usd: state.usage.usd };
}

/** Attempts running now, as keys (a host re-dispatching after lost jobs, or recording interruptions). */
export function runningAttempts(state: RunState): AttemptKey[] {
  return [...state.running].map((x) => ({ ...keyOf(state, x), attempt: x.attempt }));
}

export function conditionCommand(state: RunState, kind: "evaluate_if" | "expand", stage: StageIdx, visit: number): ConditionCommand {
  return { kind, stage, visit, scope: scopeFor(state, stage) };
}

export function routesCommand(state: RunState, stage: StageIdx, visit: number, from: number): RoutesCommand {
  const routes: number[] = [];
  const n = state.plan.stages[stage]!.routes.length;
  for (let i = from; i < n; i++) if (routeAvailable(state, stage, i)) routes.push(i);
  return { kind: "routes", stage, visit, from, routes, scope: scopeFor(state, stage) };
}

export function assembleCommand(state: RunState): AssembleCommand {
  const plan = state.plan;
  const outputs: Record<string, unknown> = {};
  if (plan.output) {
    for (const r of plan.output.roots) {
      const idx = plan.stageIndex.get(r);
      if (idx !== undefined) outputs[r] = state.nodes[idx]!.output;
    }
  } else {
    for (const s of plan.stages) {
      if (!s.isFallback && s.dependents.every((d) => plan.stages[d]!.isFallback)) outputs[s.id] = state.nodes[s.idx]!.output ?? null;
    }
  }
  return { kind: "assemble", inputs: state.inputs, outputs };
}
