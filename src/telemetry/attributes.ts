/**
 * Span and attribute names Baton exports. The GenAI names follow the OpenTelemetry semantic
 * conventions for generative AI (copied here, as the conventions ask of libraries, rather
 * than imported from the unstable `incubating` entry point).
 */

/**
 * Span names: `baton.run <pipeline>`, `baton.for_each <stage>`, `baton.stage <stage>`,
 * `attempt <n>`, and under an attempt `chat <model>` (a model turn), `execute_tool <tool>` (a tool
 * call) and `baton.step <name>` (a `ctx.step`).
 */
export const SPAN = {
  run: "baton.run",
  forEach: "baton.for_each",
  stage: "baton.stage",
  attempt: "attempt",
  chat: "chat",
  executeTool: "execute_tool",
  step: "baton.step",
} as const;

/** Attribute keys. */
export const ATTR = {
  // run
  runId: "baton.run.id",
  pipeline: "baton.pipeline",
  planHash: "baton.plan_hash",
  runStatus: "baton.run.status",
  runParent: "baton.run.parent_id",
  runResumed: "baton.run.resumed",
  runRerunOf: "baton.run.rerun_of",
  runWaitingStage: "baton.run.waiting_stage",
  runMessage: "baton.run.message",
  usageInput: "baton.usage.input_tokens",
  usageOutput: "baton.usage.output_tokens",
  // stage executions and for_each groups
  stageId: "baton.stage.id",
  stageKind: "baton.stage.kind",
  visit: "baton.stage.visit",
  item: "baton.stage.item",
  items: "baton.stage.items",
  fallbackFor: "baton.stage.fallback_for",
  stageStatus: "baton.stage.status",
  attempts: "baton.stage.attempts",
  // attempts
  attempt: "baton.attempt",
  attemptStatus: "baton.attempt.status",
  queuedMs: "baton.queued_ms",
  rerun: "baton.rerun",
  pool: "baton.pool",
  poolWaitMs: "baton.pool_wait_ms",
  poolWaitReason: "baton.pool_wait_reason",
  childRun: "baton.child_run",
  costUsd: "baton.cost_usd",
  errorKind: "baton.error.kind",
  errorRetryable: "baton.error.retryable",
  retryDelayMs: "baton.retry.delay_ms",
  retryNextAttempt: "baton.retry.next_attempt",
  retryDueAt: "baton.retry.due_at",
  cancelReason: "baton.cancel.reason",
  // durable steps (agent turns, tool calls, ctx.step)
  stepName: "baton.step.name",
  turn: "baton.turn",
  replayed: "baton.replayed",
  waitingCalls: "baton.waiting.calls",
  toolStatus: "baton.tool.status",
  toolAttempts: "baton.tool.attempts",
  // OpenTelemetry general
  errorType: "error.type",
  exceptionType: "exception.type",
  exceptionMessage: "exception.message",
  // GenAI semantic conventions
  genAiOperation: "gen_ai.operation.name",
  genAiProvider: "gen_ai.provider.name",
  genAiSystem: "gen_ai.system",
  genAiRequestModel: "gen_ai.request.model",
  genAiAgentName: "gen_ai.agent.name",
  genAiTemperature: "gen_ai.request.temperature",
  genAiMaxTokens: "gen_ai.request.max_tokens",
  genAiInputTokens: "gen_ai.usage.input_tokens",
  genAiOutputTokens: "gen_ai.usage.output_tokens",
  genAiCachedInputTokens: "gen_ai.usage.cache_read.input_tokens",
  genAiFinishReasons: "gen_ai.response.finish_reasons",
  genAiInputMessages: "gen_ai.input.messages",
  genAiOutputMessages: "gen_ai.output.messages",
  genAiToolName: "gen_ai.tool.name",
  genAiToolCallId: "gen_ai.tool.call.id",
  genAiToolType: "gen_ai.tool.type",
  genAiToolArguments: "gen_ai.tool.call.arguments",
  genAiToolResult: "gen_ai.tool.call.result",
} as const;

/** `gen_ai.operation.name` values. */
export const OPERATION = {
  chat: "chat",
  executeTool: "execute_tool",
  invokeAgent: "invoke_agent",
} as const;

/** Span event names. */
export const EVENT = {
  exception: "exception",
  retry: "baton.retry_scheduled",
  cancelled: "baton.cancelled",
  waiting: "baton.waiting",
  escalated: "baton.escalated",
  fallback: "baton.fallback",
  approval: "baton.approval",
  skipped: "baton.stage_skipped",
  reused: "baton.stage_reused",
  route: "baton.route",
  resumed: "baton.run.resumed",
  cancelRequested: "baton.run.cancel_requested",
  shutdown: "baton.telemetry.shutdown",
} as const;

/**
 * Baton's provider prefix (`provider:model`) → `gen_ai.provider.name`. Well-known values of the
 * conventions where one exists; anything else is passed through as written.
 */
const PROVIDER_NAMES: Readonly<Record<string, string>> = {
  openai: "openai",
  anthropic: "anthropic",
  "openai-compatible": "openai-compatible",
  azure: "azure.ai.openai",
  bedrock: "aws.bedrock",
  vertex: "gcp.vertex_ai",
  google: "gcp.gen_ai",
  gemini: "gcp.gemini",
  mistral: "mistral_ai",
  xai: "x_ai",
};

/** `"openai:gpt-4o-mini"` → `{ provider: "openai", model: "gpt-4o-mini" }` (provider mapped to the semconv name). */
export function splitModel(model: string): { provider: string; model: string } | undefined {
  const colon = model.indexOf(":");
  if (colon <= 0) return undefined;
  const prefix = model.slice(0, colon);
  return { provider: PROVIDER_NAMES[prefix] ?? prefix, model: model.slice(colon + 1) };
}
