/** The stage-kind registry. */
import type { StageKind } from "../plan/types.js";
import { NonRetryableError } from "../base/errors.js";
import { executeApproval, executeSleep, executeWait } from "./approval.js";
import { executeHttp } from "./http.js";
import { executePipeline } from "./pipeline.js";
import { executeRun } from "./run.js";
import type { StageKindExecutor } from "./types.js";
import { executeValue } from "./value.js";

export type { ExecuteArgs, StageContext, StageKindExecutor } from "./types.js";
export { loadHandler } from "./run.js";

const registry = new Map<StageKind, StageKindExecutor>([
  ["run", executeRun],
  ["value", executeValue],
  ["http", executeHttp],
  // The AI SDK is loaded on first use, so commands that run no agent start fast.
  ["agent", (args) => import("./agent.js").then((m) => m.executeAgent(args))],
  ["approval", executeApproval],
  ["wait", executeWait],
  ["sleep", executeSleep],
  ["pipeline", executePipeline],
]);

/** Register (or replace) the executor of a stage kind. */
export function registerStageKind(kind: StageKind, executor: StageKindExecutor): void {
  registry.set(kind, executor);
}

/** The executor of a stage kind; kinds without one fail with a clear, non-retryable error. */
export function executorFor(kind: StageKind): StageKindExecutor {
  return (
    registry.get(kind) ??
    (({ stage }) => {
      throw new NonRetryableError(`stage '${stage.id}': '${kind}' stages are not available in this version of Baton (${[...registry.keys()].join(", ")} stages are)`, { kind: "template" });
    })
  );
}
