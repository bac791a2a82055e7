/** `value:` stages: a pure expression over earlier outputs. */
import type { ExecuteArgs } from "./types.js";

export function executeValue({ stage, scope }: ExecuteArgs): unknown {
  const spec = stage.spec;
  if (spec.kind !== "value") throw new Error("executeValue on a non-value stage");
  return spec.expr.evaluate(scope);
}
