/** The trace (SPEC §5): a read-only view over a run's event log, as JSON and as text. */
export { buildTrace, SINK_OUTPUTS } from "./build.js";
export { executionId } from "./entry.js";
export { renderTrace, type RenderOptions } from "./render.js";
export { messagesRef } from "./steps.js";
export type {
  Trace, TraceAssembly, TraceAttempt, TraceAttemptError, TraceAttemptStatus, TraceCallApproval, TraceDecision, TraceError, TraceOptions,
  TraceRun, TraceRunStatus, TraceStage, TraceStageStatus, TraceStep, TraceTokens, TraceToolCall, TraceToolCallStatus, TraceTurn, TraceTurnTokens,
} from "./types.js";
