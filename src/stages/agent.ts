/**
 * `agent:` stages: one LLM call through the Vercel AI SDK. The SDK's own retries are off —
 * Baton's retry policy decides; the attempt's AbortSignal cancels the HTTP request. With an
 * `output:` JSON Schema the reply must be JSON matching it; a reply that is not is a retryable
 * `malformed_output` error, and the next attempt shows the model its reply and what was wrong
 * so it can repair it. Before the call the prompt is counted against the model's context window
 * and the run's budget.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { generateText } from "ai";
import { classifyProviderError } from "../agents/errors.js";
import { costOf } from "../agents/models.js";
import { resolveModel, type AgentSpec } from "../agents/providers.js";
import { countPromptTokens } from "../agents/tokens.js";
import { NonRetryableError, StageFailure } from "../base/errors.js";
import type { ExecuteArgs } from "./types.js";

(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

/** max_tokens when an agent does not say. */
export const DEFAULT_MAX_TOKENS = 4096;
const REPLY_KEEP = 4000;

const ajv = new Ajv2020({ allErrors: true, strict: false });
const validators = new WeakMap<object, ValidateFunction>();

function validatorFor(schema: object): ValidateFunction {
  let v = validators.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    validators.set(schema, v);
  }
  return v;
}

function describeErrors(errors: readonly ErrorObject[] | null | undefined): string {
  return (errors ?? []).slice(0, 8).map((e) => `${e.instancePath || "(root)"} ${e.message ?? "is invalid"}${e.params && "additionalProperty" in e.params ? ` '${String(e.params.additionalProperty)}'` : ""}`).join("; ");
}

/** Parse a reply as JSON, tolerating a ```json fence around it. */
function parseReply(text: string): { ok: true; value: unknown } | { ok: false; why: string } {
  let t = text.trim();
  const fence = /^```(?:json)?\s*\n([\s\S]*?)\n?```$/i.exec(t);
  if (fence) t = fence[1]!.trim();
  try {
    return { ok: true, value: JSON.parse(t) };
  } catch (err) {
    return { ok: false, why: `it is not valid JSON (${(err as Error).message})` };
  }
}

const n = (x: number): string => x.toLocaleString("en-US");

/** Execute an agent stage. */
export async function executeAgent(args: ExecuteArgs): Promise<unknown> {
  const { plan, stage, ctx, scope, previous, services } = args;
  const spec = stage.spec;
  if (spec.kind !== "agent") throw new Error("executeAgent on a non-agent stage");
  const agent = plan.agents[spec.agent] as AgentSpec | undefined;
  if (!agent) throw new NonRetryableError(`stage '${stage.id}': unknown agent '${spec.agent}'`, { kind: "template" });
  const { model, provider, modelId, info } = resolveModel(spec.agent, agent, services.config);
  const modelName = `${provider}:${modelId}`;
  const where = `stage '${stage.id}' (${modelName})`;

  let prompt = spec.prompt.evaluate(scope);
  if (prompt instanceof Promise) prompt = await prompt;
  const promptText = typeof prompt === "string" ? prompt : JSON.stringify(prompt, null, 2);
  const schema = (spec.output ?? agent.output) as object | undefined;

  const system = [agent.system ?? "", schema ? `Reply with only a JSON value (no prose, no code fences) that matches this JSON Schema:\n${JSON.stringify(schema)}` : ""]
    .filter(Boolean).join("\n\n");
  const messages: { role: "system" | "user" | "assistant"; content: string }[] = [];
  if (system) messages.push({ role: "system", content: system });
  messages.push({ role: "user", content: promptText });
  if (previous?.kind === "malformed_output" && previous.reply !== undefined) {
    messages.push({ role: "assistant", content: previous.reply });
    messages.push({ role: "user", content: `That reply cannot be used: ${previous.message.replace(/^.*?: the reply /, "")}. Reply again with only the corrected JSON.` });
  }

  // The prompt must fit the model's context window with room for the reply.
  const maxTokens = agent.max_tokens ?? DEFAULT_MAX_TOKENS;
  const promptTokens = countPromptTokens(messages, info.tokenizer);
  if (info.context_window !== undefined && promptTokens + maxTokens > info.context_window) {
    throw new NonRetryableError(
      `${where}: the prompt is ${n(promptTokens)} tokens and max_tokens is ${n(maxTokens)}, which exceeds the model's ${n(info.context_window)}-token context window: shorten the prompt or lower max_tokens`,
      { kind: "template" },
    );
  }
  // The call must fit what is left of the run's budget (estimate: the prompt plus max_tokens),
  // and its estimate is held against it at once (concurrent calls, here or on other workers,
  // cannot overshoot it).
  const estimate = promptTokens + maxTokens;
  const estimateUsd = costOf(info, { input: promptTokens, output: maxTokens });
  const held = await args.hold(estimate, estimateUsd ?? 0);
  if (!held.ok) {
    const budget = plan.budget!;
    if (held.over === "tokens") {
      throw new NonRetryableError(`${where} was not started: it could use up to ${n(estimate)} tokens and the run has ${n(Math.max(0, budget.tokens! - held.used.tokens))} of its ${n(budget.tokens!)}-token budget left; raise budget.tokens or lower max_tokens`, { kind: "budget" });
    }
    throw new NonRetryableError(`${where} was not started: it could cost up to $${(estimateUsd ?? 0).toFixed(4)} and the run has $${Math.max(0, budget.usd! - held.used.usd).toFixed(4)} of its $${budget.usd} budget left; raise budget.usd`, { kind: "budget" });
  }

  const report = (usage: { inputTokens?: number | undefined; outputTokens?: number | undefined } | undefined): number => {
    const tokens = { input: usage?.inputTokens ?? promptTokens, output: usage?.outputTokens ?? 0 };
    const cost = costOf(info, tokens);
    args.report({ model: modelName, tokens, ...(cost !== undefined ? { cost_usd: cost } : {}) });
    return tokens.input + tokens.output;
  };

  // Wait for the agent's pool (rpm/tpm/concurrency, shared by every run in the process or cluster).
  const lease = await args.acquire(estimate);

  let text: string;
  try {
    const r = await generateText({
      model, maxRetries: 0, abortSignal: ctx.signal, maxOutputTokens: maxTokens,
      // The system prompt goes as `system` (the SDK warns about system messages in `messages`).
      ...(system ? { system, messages: messages.filter((m) => m.role !== "system") as never } : { messages }),
      ...(agent.temperature !== undefined ? { temperature: agent.temperature } : {}),
    });
    const used = report(r.usage); // (not inside lease?.release(…): with no lease the arguments are never evaluated)
    lease?.release({ tokens: used });
    text = r.text;
  } catch (err) {
    const usage = (err as { usage?: { inputTokens?: number; outputTokens?: number } }).usage;
    const used = usage ? report(usage) : undefined;
    const failure = classifyProviderError(err, where);
    const kind = (failure as { kind?: string }).kind;
    const rejected = kind === "rate_limited" || kind === "overloaded";
    const retryAfterMs = (failure as { retryAfterMs?: number }).retryAfterMs;
    // A refused call used nothing; a failed one used what it reported (or its estimate).
    lease?.release({ tokens: rejected ? 0 : (used ?? estimate), rejected, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
    throw failure;
  }
  ctx.log(`${modelName}: ${n(promptTokens)} prompt tokens counted before the call`);
  if (!schema) return text;

  const reply = text.length > REPLY_KEEP ? text.slice(0, REPLY_KEEP) : text;
  const parsed = parseReply(text);
  if (!parsed.ok) throw malformed(`${where}: the reply ${parsed.why}`, reply);
  const validate = validatorFor(schema);
  if (!validate(parsed.value)) throw malformed(`${where}: the reply does not match the output schema: ${describeErrors(validate.errors)}`, reply);
  return parsed.value;
}

function malformed(message: string, reply: string): StageFailure {
  const e = new StageFailure(message, { kind: "malformed_output", retryable: true });
  (e as StageFailure & { reply?: string }).reply = reply;
  return e;
}
