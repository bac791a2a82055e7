/**
 * Commands that need expression evaluation (async JSONata) but no handler: an `if`, a
 * `for_each` expansion, a stage's routes, the final assembly. Shared by the local run driver
 * and distributed workers: each turns an effect into the events that record its decision.
 */
import type { Expr } from "../expr/types.js";
import { readOf, type AssembleCommand, type BatonEvent, type ExprCommand } from "../engine/index.js";
import type { Plan } from "../plan/types.js";
import { toJsonValue } from "./json.js";

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

/** The events an expression command decides (never throws: evaluation errors become decisions with `error`). */
export async function evaluateCommand(plan: Plan, cmd: ExprCommand, now: () => number): Promise<BatonEvent[]> {
  if (cmd.kind === "assemble") return [await assemble(plan, cmd, now)];
  const stage = plan.stages[cmd.stage]!;
  const scope = cmd.scope;
  const base = { type: "decision" as const, stage: stage.id, visit: cmd.visit };
  const one = async (kind: "if" | "for_each" | "route", expr: Expr, extra: Record<string, unknown> = {}): Promise<{ value: unknown; event: BatonEvent }> => {
    const read = readOf(scope, expr.roots);
    try {
      const value = await evaluate(expr, scope);
      return { value, event: { ...base, at: now(), kind, expression: expr.source, read, result: kind === "for_each" ? value : truthy(value), ...extra } };
    } catch (err) {
      const message = `stage '${stage.id}': ${kind === "route" ? "route `when`" : kind} ${(err as Error).message}`;
      return { value: undefined, event: { ...base, at: now(), kind, expression: expr.source, read, result: null, error: message, ...extra } };
    }
  };
  if (cmd.kind === "evaluate_if") return [(await one("if", stage.if!)).event];
  if (cmd.kind === "expand") {
    const { value, event } = await one("for_each", stage.forEach!);
    if (event.type !== "decision" || event.error !== undefined) return [event];
    const items = value === undefined || value === null ? [] : Array.isArray(value) ? value : [value];
    try {
      return [{ ...event, result: items.length, items: items.map((x) => toJsonValue(x, `for_each item of '${stage.id}'`)) }];
    } catch (err) {
      return [{ ...event, result: null, error: (err as Error).message }];
    }
  }
  // Routes: the available ones in order, until one is taken.
  if (cmd.kind !== "routes") return [];
  const out: BatonEvent[] = [];
  for (const i of cmd.routes) {
    const route = stage.routes[i]!;
    const { value, event } = await one("route", route.when, route.goto !== undefined ? { route: i, goto: plan.stages[route.goto]!.id } : { route: i });
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
  return out;
}

/** The run's final output (the `output:` expression, or every sink stage's output). */
async function assemble(plan: Plan, cmd: AssembleCommand, now: () => number): Promise<BatonEvent> {
  try {
    let output: unknown;
    let read: string[];
    if (plan.output) {
      const scope: Record<string, unknown> = { inputs: cmd.inputs, ...cmd.outputs };
      output = toJsonValue(await evaluate(plan.output, scope), "the run's output");
      read = plan.output.roots.filter((r) => plan.stageIndex.has(r));
    } else {
      output = { ...cmd.outputs };
      read = Object.keys(cmd.outputs);
    }
    return { type: "run_finished", at: now(), status: "succeeded", output, read };
  } catch (err) {
    return { type: "run_finished", at: now(), status: "failed", error: { kind: "expression", message: `output: ${(err as Error).message}` } };
  }
}
