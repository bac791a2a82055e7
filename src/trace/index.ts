/** The trace (SPEC §5): a read-only view over a run's event log, as JSON and as text. */
export { buildTrace, SINK_OUTPUTS } from "./build.js";
export { executionId } from "./entry.js";
export { renderTrace, type RenderOptions } from "./render.js";
export type {
  Trace, TraceAssembly, TraceAttempt, TraceAttemptError, TraceAttemptStatus, TraceDecision, TraceError, TraceRun, TraceRunStatus,
  TraceStage, TraceStageStatus, TraceTokens,
} from "./types.js";
