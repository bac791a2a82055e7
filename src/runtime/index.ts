/** The runtime: the imperative shell around the engine for one process. */
export { Runtime, newRunId, resultOf, type RunHandle, type RuntimeOptions, type RunResult } from "./runtime.js";
export { RunDriver, truthy } from "./driver.js";
export { NonRetryableError, StageFailure, UserError, toStageError } from "./errors.js";
export { toJsonValue } from "./json.js";
