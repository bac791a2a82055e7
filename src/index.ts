/**
 * Baton: a pipeline orchestrator for agentic workflows.
 *
 * @packageDocumentation
 */
export { definePipeline, loadTemplate, PipelineBuilder, tool, type AgentDef, type McpServerDef, type Pipeline, type PipelineConfig, type RetrySpec, type RouteSpec, type StageDef, type ToolDef } from "./api/pipeline.js";
export { execute, run, RunFailedError, planFromSource, type RunOptions } from "./api/run.js";
export { NonRetryableError, StageFailure, Runtime, type RunHandle, type RunResult, type RuntimeOptions } from "./runtime/index.js";
export type { StageContext } from "./stages/types.js";
export { registerStageKind } from "./stages/index.js";
export type { BatonEvent, StageError, ErrorKind } from "./engine/events.js";
export type { Plan, StagePlan } from "./plan/types.js";
export { openStore, MemoryStore, SqliteStore, type Store } from "./store/index.js";
export { compileSource, compileObject, loadPlanFile, validateFile, validateInputs, describePlan, TemplateError, InputError, formatDiagnostic, type Diagnostic } from "./template/index.js";
export { createTelemetry, traceIdOf, type Telemetry } from "./telemetry/index.js";
