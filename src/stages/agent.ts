/**
 * `agent:` stages (SPEC §8): an agent's loop — model turn → tool calls → model turn … — until
 * the model answers without calling a tool, through the Vercel AI SDK (its own retries off:
 * Baton's retry policy decides; the attempt's AbortSignal cancels the request).
 *
 * Every turn goes through the agent's pool, is counted against the model's context window and
 * held against the run's budget before the call, exactly as a single call. Every completed
 * turn and tool call is a durable step of the execution (SPEC §9, runtime/journal.ts): a retry,
 * a resume after a crash, or the re-run after a tool approval reads them back instead of
 * calling the provider or the tool again.
 *
 * With an `output:` JSON Schema the final answer must be JSON matching it (asked for natively
 * where the provider supports structured output, by instruction otherwise); a reply that is not
 * is a retryable `malformed_output` error, and the next attempt shows the model its reply and
 * what was wrong so it can repair it. A reply cut at max_tokens is a retryable `truncated` error.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { generateText, jsonSchema, NoObjectGeneratedError, Output, streamText, type ModelMessage } from "ai";
import { classifyProviderError } from "../agents/errors.js";
import { costOf } from "../agents/models.js";
import { resolveModel, type AgentSpec } from "../agents/providers.js";
import { countPromptTokens } from "../agents/tokens.js";
import { NonRetryableError, StageFailure } from "../base/errors.js";
import type { ToolPlan } from "../plan/types.js";
import { evaluatePoolKey, poolRefOf } from "../plan/limit.js";
import { compileValueTemplate } from "../expr/value-template.js";
import type { ValueTemplate } from "../expr/types.js";
import { AwaitHuman, Detached } from "./approval.js";
import type { ExecuteArgs, ToolOutcome } from "./types.js";

(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

/** max_tokens when an agent does not say. */
export const DEFAULT_MAX_TOKENS = 4096;
/** Model turns per execution when an agent does not say. */
export const DEFAULT_MAX_STEPS = 10;
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
    return { ok: false, why: `is not valid JSON (${(err as Error).message})` };
  }
}

const n = (x: number): string => x.toLocaleString("en-US");

/** A tool call as a turn records it. */
export interface TurnCall {
  readonly id: string;
  readonly tool: string;
  readonly args: unknown;
  /** The call could not be parsed (malformed JSON, unknown tool): why. */
  readonly invalid?: string;
}

/** What a turn records (its step output): enough to rebuild the conversation without the provider. */
export interface TurnRecord {
  readonly n: number;
  readonly text: string;
  readonly calls: readonly TurnCall[];
  readonly finish_reason: string;
  readonly model: string;
  readonly tokens: { readonly input: number; readonly output: number; readonly cached?: number };
  readonly cost_usd?: number;
  readonly started_at: number;
  readonly ended_at: number;
}

/** A tool the agent may call, as the loop sees it. */
interface LoopTool {
  /** The name the model sees. */
  readonly name: string;
  readonly description: string;
  readonly input: Record<string, unknown>;
  /** A declared tool (`tools:`), or an MCP server's. */
  readonly plan?: ToolPlan;
  readonly mcp?: { readonly server: string; readonly tool: string };
}

/** Providers that take a JSON Schema for the reply natively (structured output). */
const NATIVE_STRUCTURED = new Set(["openai", "anthropic"]);

/** Execute an agent stage. */
export async function executeAgent(args: ExecuteArgs): Promise<unknown> {
  const { stage, scope } = args;
  const spec = stage.spec;
  if (spec.kind !== "agent") throw new Error("executeAgent on a non-agent stage");
  let prompt = spec.prompt.evaluate(scope);
  if (prompt instanceof Promise) prompt = await prompt;
  const promptText = typeof prompt === "string" ? prompt : JSON.stringify(prompt, null, 2);
  return runAgent(args, { agent: spec.agent, prompt: promptText, ...(spec.output !== undefined ? { output: spec.output as object } : {}), namespace: "" });
}

/** The agent's tools: declared ones by name, MCP ones as the servers listed them at run start. */
function toolsOf(args: ExecuteArgs, agentName: string, agent: Record<string, unknown>, where: string): LoopTool[] {
  const names = Array.isArray(agent.tools) ? (agent.tools as string[]) : [];
  const out: LoopTool[] = [];
  const taken = new Set<string>();
  const mcpTools: { server: string; info: { name: string; description: string; inputSchema: Record<string, unknown> } }[] = [];
  for (const t of names) {
    if (!t.startsWith("mcp.")) {
      const plan = args.plan.tools[t];
      if (!plan) throw new NonRetryableError(`${where}: agent '${agentName}' lists tool '${t}', which is not declared under tools:`, { kind: "template" });
      out.push({ name: t, description: plan.description, input: plan.input as Record<string, unknown>, plan });
      taken.add(t);
      continue;
    }
    const m = /^mcp\.([^.]+)\.(.+)$/.exec(t)!;
    const server = m[1]!;
    const mcp = args.services.mcp;
    if (!mcp) throw new NonRetryableError(`${where}: MCP server '${server}' is not available in this host`, { kind: "template" });
    const listed = mcp.tools(server);
    if (m[2] === "*") for (const info of listed) mcpTools.push({ server, info });
    else {
      const info = listed.find((x) => x.name === m[2]);
      if (!info) throw new NonRetryableError(`${where}: MCP server '${server}' has no tool '${m[2]}' (it offers: ${listed.map((x) => x.name).join(", ") || "none"})`, { kind: "template" });
      mcpTools.push({ server, info });
    }
  }
  // MCP tools keep their own names unless two would clash: then SERVER__TOOL.
  const count = new Map<string, number>();
  for (const { info } of mcpTools) count.set(info.name, (count.get(info.name) ?? 0) + 1);
  for (const { server, info } of mcpTools) {
    let name = info.name;
    if ((count.get(name) ?? 0) > 1 || taken.has(name)) name = `${server}__${info.name}`;
    if (taken.has(name)) continue;
    taken.add(name);
    out.push({ name, description: info.description, input: info.inputSchema, mcp: { server, tool: info.name } });
  }
  return out;
}

/** The conversation of a turn record: the assistant's message, then its calls' results. */
function turnMessages(turn: TurnRecord, results: ReadonlyMap<string, ToolOutcome>): ModelMessage[] {
  const content: unknown[] = [];
  if (turn.text) content.push({ type: "text", text: turn.text });
  for (const c of turn.calls) content.push({ type: "tool-call", toolCallId: c.id, toolName: c.tool, input: c.args ?? {} });
  const msgs: ModelMessage[] = [{ role: "assistant", content } as ModelMessage];
  if (turn.calls.length > 0) {
    msgs.push({
      role: "tool",
      content: turn.calls.map((c) => {
        const r = results.get(c.id);
        const output = r === undefined ? { type: "error-text", value: "the call did not run" }
          : r.status === "succeeded" ? { type: "json", value: r.output ?? null }
          : r.status === "declined" ? { type: "error-text", value: r.error?.message ?? "the user declined this call" }
          : { type: "error-text", value: r.error?.message ?? "the call failed" };
        return { type: "tool-result", toolCallId: c.id, toolName: c.tool, output };
      }),
    } as ModelMessage);
  }
  return msgs;
}

/** Tokens of each message already counted (the conversation grows by a few messages a turn). */
const counted = new WeakMap<object, number>();

/**
 * Prompt tokens of a turn: the system prompt and every message, each counted once per loop
 * (countPromptTokens sums per message, so the cached counts add up to the same number).
 */
function promptTokensOf(system: string, messages: readonly ModelMessage[], tokenizer: "o200k_base" | "cl100k_base" | undefined): number {
  const none = countPromptTokens([], tokenizer);
  let n = system ? countPromptTokens([{ role: "system", content: system }], tokenizer) : none;
  for (const m of messages) {
    let t = counted.get(m);
    if (t === undefined) {
      t = countPromptTokens([{ role: m.role, content: typeof m.content === "string" ? m.content : JSON.stringify(m.content) }], tokenizer) - none;
      counted.set(m, t);
    }
    n += t;
  }
  return n;
}

const keyTemplates = new Map<string, ValueTemplate>();
/** An agent's limit key, compiled once (the template check reported its errors). */
function keyTemplate(source: string): ValueTemplate {
  let t = keyTemplates.get(source);
  if (!t) keyTemplates.set(source, (t = compileValueTemplate(source)));
  return t;
}

/**
 * Run an agent's loop inside an attempt: the `agent:` stage itself, or `ctx.agent(name, { prompt })`
 * from a handler (then `namespace` keeps its steps apart from the handler's own).
 */
export async function runAgent(args: ExecuteArgs, req: { agent: string; prompt: string; output?: object; namespace: string }): Promise<unknown> {
  const { plan, stage, ctx, previous, services, journal } = args;
  const agent = plan.agents[req.agent] as (AgentSpec & Record<string, unknown>) | undefined;
  if (!agent) throw new NonRetryableError(`stage '${stage.id}': unknown agent '${req.agent}'${Object.keys(plan.agents).length ? ` (agents: ${Object.keys(plan.agents).join(", ")})` : ""}`, { kind: "template" });
  const { model, provider, modelId, info } = resolveModel(req.agent, agent, services.config);
  const modelName = `${provider}:${modelId}`;
  const where = `stage '${stage.id}' (${modelName})`;
  const ns = req.namespace ? `${req.namespace}/` : "";
  const schema = (req.output ?? agent.output) as object | undefined;
  const native = schema !== undefined && NATIVE_STRUCTURED.has(provider);
  const tools = toolsOf(args, req.agent, agent, where);
  const byName = new Map(tools.map((t) => [t.name, t]));
  const maxSteps = typeof agent.max_steps === "number" ? agent.max_steps : DEFAULT_MAX_STEPS;
  const parallel = agent.parallel_tools !== false;
  const stream = agent.stream !== false;
  const maxTokens = agent.max_tokens ?? DEFAULT_MAX_TOKENS;
  // An agent: stage's turns draw from the stage's pool (its limit:, else its agent's): `undefined`
  // asks for the stage's own. ctx.agent from a run: stage uses its agent's pool — unless the
  // stage holds that very pool for its whole attempt: then the turns run under that lease
  // (waiting for the pool again could wait for ourselves).
  const agentLimit = poolRefOf(agent.limit);
  const pool = stage.spec.kind === "agent" || agentLimit?.pool === stage.limit ? undefined : agentLimit?.pool;
  // Its keyed limit (`{ pool, key }`): the key is evaluated in the calling stage's scope, once per execution.
  const poolKey = pool !== undefined && typeof agentLimit?.key === "string" ? await evaluatePoolKey(keyTemplate(agentLimit.key), args.scope, where) : undefined;

  // The instruction stays with native structured output too (it costs little and helps models that
  // honour the schema loosely); the schema is then also sent natively.
  const system = [agent.system ?? "", schema ? `Reply with only a JSON value (no prose, no code fences) that matches this JSON Schema:\n${JSON.stringify(schema)}` : ""]
    .filter(Boolean).join("\n\n");
  const messages: ModelMessage[] = [{ role: "user", content: req.prompt }];
  const sdkTools = tools.length === 0 ? undefined : Object.fromEntries(tools.map((t) => [t.name, {
    description: t.description,
    // Baton validates arguments itself (an invalid call goes back to the model as an error result).
    inputSchema: jsonSchema(t.input as never, { validate: (value: unknown) => ({ success: true as const, value }) }),
  }]));
  const toolsTokens = tools.length === 0 ? 0 : countPromptTokens([{ role: "system", content: JSON.stringify(tools.map((t) => [t.name, t.description, t.input])) }], info.tokenizer);

  for (let turnNo = 1; ; turnNo++) {
    if (turnNo > maxSteps) {
      throw new NonRetryableError(`${where}: ${maxSteps} model turns without a final answer; raise agents.${req.agent}.max_steps`, { kind: "max_steps" });
    }
    const turnName = `${ns}turn:${turnNo}`;
    journal.claim(turnName);
    const replay = journal.lookup(turnName);
    let turn: TurnRecord;
    if (replay.found) turn = replay.value as TurnRecord;
    else {
      // A repair of a malformed final answer (the previous attempt's reply and what was wrong).
      const sent: ModelMessage[] = [...messages];
      if (previous?.kind === "malformed_output" && previous.reply !== undefined && !journal.has(`${ns}turn:${turnNo + 1}`)) {
        sent.push({ role: "assistant", content: previous.reply });
        sent.push({ role: "user", content: `That reply cannot be used: ${previous.message.replace(/^.*?: the reply /, "")}. Reply again with only the corrected JSON.` });
      }
      const called = await callModel(args, {
        model, modelName, info, where, system, messages: sent, sdkTools, toolsTokens, maxTokens, pool, poolKey, turnNo, schema, native,
        temperature: agent.temperature, agentName: req.agent, stream,
      });
      const { messages: sentMessages, ...record } = called;
      turn = record;
      const final = turn.calls.length === 0;
      // A final answer is recorded only once it is accepted (a malformed one is repaired by the retry).
      if (final && schema) {
        try {
          accept(turn.text, schema, where);
        } catch (err) {
          args.report({ model: modelName, tokens: { input: turn.tokens.input, output: turn.tokens.output }, ...(turn.cost_usd !== undefined ? { cost_usd: turn.cost_usd } : {}) });
          throw err;
        }
      }
      await journal.record(turnName, record, record.started_at, {
        kind: "turn", model: modelName, messages: sentMessages, tokens: turn.tokens, ...(turn.cost_usd !== undefined ? { cost_usd: turn.cost_usd } : {}),
      });
      // The attempt's usage includes the turn; the run's totals counted it with the step already.
      const t = { input: turn.tokens.input, output: turn.tokens.output };
      args.report({ model: modelName, tokens: t, recorded_tokens: t, ...(turn.cost_usd !== undefined ? { cost_usd: turn.cost_usd, recorded_cost_usd: turn.cost_usd } : {}) });
    }
    if (turn.calls.length === 0) {
      args.report({ model: modelName });
      return schema ? accept(turn.text, schema, where) : turn.text;
    }
    const results = await runCalls(args, turn, byName, ns, parallel, where);
    for (const m of turnMessages(turn, results)) messages.push(m);
  }
}

/** Parse and validate a final answer against the output schema (throws malformed_output). */
function accept(text: string, schema: object, where: string): unknown {
  const reply = text.length > REPLY_KEEP ? text.slice(0, REPLY_KEEP) : text;
  const parsed = parseReply(text);
  if (!parsed.ok) throw malformed(`${where}: the reply ${parsed.why}`, reply);
  const validate = validatorFor(schema);
  if (!validate(parsed.value)) throw malformed(`${where}: the reply does not match the output schema: ${describeErrors(validate.errors)}`, reply);
  return parsed.value;
}

interface CallOpts {
  readonly model: ReturnType<typeof resolveModel>["model"];
  readonly modelName: string;
  readonly info: ReturnType<typeof resolveModel>["info"];
  readonly where: string;
  readonly system: string;
  readonly messages: readonly ModelMessage[];
  readonly sdkTools: Record<string, unknown> | undefined;
  readonly toolsTokens: number;
  readonly maxTokens: number;
  readonly pool: string | undefined;
  readonly poolKey: string | undefined;
  readonly turnNo: number;
  readonly schema: object | undefined;
  readonly native: boolean;
  readonly temperature: number | undefined;
  readonly agentName: string;
  /** Stream the turn (when a live view listens: args.delta). */
  readonly stream: boolean;
}

type SdkUsage = { inputTokens?: number | undefined; outputTokens?: number | undefined; inputTokenDetails?: { cacheReadTokens?: number | undefined }; cachedInputTokens?: number | undefined } | undefined;

/** One model turn: context check, budget hold, pool, the call (streamed when someone watches). */
async function callModel(args: ExecuteArgs, o: CallOpts): Promise<TurnRecord & { messages: unknown }> {
  const { ctx, plan } = args;
  const startedAt = Date.now();
  const promptTokens = promptTokensOf(o.system, o.messages, o.info.tokenizer) + o.toolsTokens;
  const cw = o.info.context_window;
  if (cw !== undefined && promptTokens + o.maxTokens > cw) {
    throw new NonRetryableError(
      `${o.where}: the prompt${o.turnNo > 1 ? ` of turn ${o.turnNo}` : ""} is ${n(promptTokens)} tokens and max_tokens is ${n(o.maxTokens)}, which exceeds the model's ${n(cw)}-token context window: shorten the prompt or lower max_tokens`,
      { kind: "template" },
    );
  }
  // The turn must fit what is left of the run's budget (estimate: the prompt plus max_tokens),
  // held at once (concurrent calls, here or on other workers, cannot overshoot it).
  const estimate = promptTokens + o.maxTokens;
  const estimateUsd = costOf(o.info, { input: promptTokens, output: o.maxTokens });
  const held = await args.hold(estimate, estimateUsd ?? 0);
  if (!held.ok) {
    const budget = plan.budget!;
    if (held.over === "tokens") {
      throw new NonRetryableError(`${o.where} was not started: it could use up to ${n(estimate)} tokens and the run has ${n(Math.max(0, budget.tokens! - held.used.tokens))} of its ${n(budget.tokens!)}-token budget left; raise budget.tokens or lower max_tokens`, { kind: "budget" });
    }
    throw new NonRetryableError(`${o.where} was not started: it could cost up to $${(estimateUsd ?? 0).toFixed(4)} and the run has $${Math.max(0, budget.usd! - held.used.usd).toFixed(4)} of its $${budget.usd} budget left; raise budget.usd`, { kind: "budget" });
  }
  const usageOf = (u: SdkUsage): { input: number; output: number; cached?: number } => {
    const cached = u?.inputTokenDetails?.cacheReadTokens ?? u?.cachedInputTokens;
    return { input: u?.inputTokens ?? promptTokens, output: u?.outputTokens ?? 0, ...(cached ? { cached } : {}) };
  };
  const lease = await args.acquire(estimate, o.pool, o.poolKey);
  const call = {
    model: o.model, maxRetries: 0, abortSignal: ctx.signal, maxOutputTokens: o.maxTokens,
    ...(o.system ? { system: o.system } : {}),
    messages: o.messages as ModelMessage[],
    ...(o.sdkTools ? { tools: o.sdkTools as never } : {}),
    ...(o.temperature !== undefined ? { temperature: o.temperature } : {}),
    ...(o.native && o.schema ? { output: Output.object({ schema: jsonSchema(o.schema as never) }) } : {}),
  };
  let text = "";
  let calls: TurnCall[] = [];
  let finish = "stop";
  let usage: { input: number; output: number; cached?: number };
  try {
    if (args.delta && o.stream) {
      const delta = args.delta;
      let failure: unknown;
      const r = streamText({ ...call, onError: ({ error }) => void (failure ??= error) });
      let u: SdkUsage;
      for await (const part of r.fullStream) {
        if (part.type === "text-delta") {
          text += part.text;
          delta(part.text, o.turnNo);
        } else if (part.type === "tool-call") calls.push(callOf(part as never));
        else if (part.type === "finish-step") {
          finish = part.finishReason;
          u = part.usage as SdkUsage;
        } else if (part.type === "error") failure ??= part.error;
        else if (part.type === "abort") failure ??= ctx.signal.reason ?? new DOMException("aborted", "AbortError");
      }
      if (failure !== undefined) throw failure;
      usage = usageOf(u);
    } else {
      try {
        const r = await generateText(call);
        text = r.text;
        calls = r.toolCalls.map((c) => callOf(c as never));
        finish = r.finishReason;
        usage = usageOf(r.usage as SdkUsage);
      } catch (err) {
        // Native structured output that did not parse: Baton checks the reply itself (and repairs it).
        if (!NoObjectGeneratedError.isInstance(err)) throw err;
        text = err.text ?? "";
        finish = err.finishReason ?? "stop";
        usage = usageOf(err.usage as SdkUsage);
      }
    }
  } catch (err) {
    const u = (err as { usage?: SdkUsage }).usage;
    const spent = u ? usageOf(u) : undefined;
    if (spent) report(args, o, spent);
    const failure = classifyProviderError(err, o.where);
    const kind = (failure as { kind?: string }).kind;
    const rejected = kind === "rate_limited" || kind === "overloaded";
    const retryAfterMs = (failure as { retryAfterMs?: number }).retryAfterMs;
    // A refused call used nothing; a failed one used what it reported (or its estimate).
    lease?.release({ tokens: rejected ? 0 : spent ? spent.input + spent.output : estimate, rejected, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
    throw failure;
  }
  lease?.release({ tokens: usage.input + usage.output });
  const cost = costOf(o.info, usage);
  args.settle(held, { tokens: usage.input + usage.output, usd: cost ?? 0 });
  if (finish === "length") {
    // The reply was cut: its usage is the attempt's (not recorded as a turn), and the turn is retried.
    report(args, o, usage);
    throw new StageFailure(`${o.where}: the reply was cut off at max_tokens (${n(o.maxTokens)}) before it was complete; raise agents.${o.agentName}.max_tokens or ask for a shorter answer`, { kind: "truncated", retryable: true });
  }
  ctx.log(`${o.modelName} turn ${o.turnNo}: ${promptTokens} prompt tokens counted before the call`);
  return {
    n: o.turnNo, text, calls, finish_reason: finish === "tool-calls" ? "tool_calls" : finish, model: o.modelName, tokens: usage,
    ...(cost !== undefined ? { cost_usd: cost } : {}), started_at: startedAt, ended_at: Date.now(),
    messages: [...(o.system ? [{ role: "system", content: o.system }] : []), ...o.messages],
  };
}

/** Usage that no turn records (a failed or cut turn): reported with the attempt's outcome. */
function report(args: ExecuteArgs, o: CallOpts, u: { input: number; output: number; cached?: number }): void {
  const cost = costOf(o.info, u);
  args.report({ model: o.modelName, tokens: { input: u.input, output: u.output }, ...(cost !== undefined ? { cost_usd: cost } : {}) });
}

function callOf(c: { toolCallId: string; toolName: string; input: unknown; invalid?: boolean; error?: unknown }): TurnCall {
  if (c.invalid) {
    const why = c.error instanceof Error ? c.error.message.split("\n")[0]! : "the call could not be parsed";
    return { id: c.toolCallId, tool: c.toolName, args: typeof c.input === "string" ? c.input : (c.input ?? null), invalid: why };
  }
  return { id: c.toolCallId, tool: c.toolName, args: c.input ?? {} };
}

/** Run a turn's tool calls (concurrently unless parallel_tools is false); completed calls are recorded. */
async function runCalls(args: ExecuteArgs, turn: TurnRecord, tools: ReadonlyMap<string, LoopTool>, ns: string, parallel: boolean, where: string): Promise<Map<string, ToolOutcome>> {
  const { journal, stage } = args;
  const results = new Map<string, ToolOutcome>();
  const waiting: { id: string; tool: string; args: unknown; message: string }[] = [];
  const one = async (c: TurnCall): Promise<void> => {
    const name = `${ns}call:${c.id}`;
    journal.claim(name);
    const replay = journal.lookup(name);
    if (replay.found) {
      results.set(c.id, { ...(replay.value as ToolOutcome), replayed: true });
      return;
    }
    const startedAt = Date.now();
    const tool = tools.get(c.tool);
    let outcome: ToolOutcome;
    if (c.invalid !== undefined || !tool) {
      const known = [...tools.keys()].join(", ") || "none";
      const message = !tool ? `unknown tool '${c.tool}' (the tools are: ${known})` : `the arguments of '${c.tool}' are not valid JSON: ${c.invalid}`;
      outcome = { status: "failed", error: { kind: "tool", message }, attempts: 0, started_at: startedAt, ended_at: Date.now() };
    } else {
      const invalid = checkArgs(tool, c.args);
      if (invalid !== undefined) {
        outcome = { status: "failed", error: { kind: "tool", message: `the arguments of '${c.tool}' do not match its input schema: ${invalid}` }, attempts: 0, started_at: startedAt, ended_at: Date.now() };
      } else {
        if (tool.plan?.approval) {
          const answer = journal.lookup(`approval:${c.id}`);
          if (!answer.found) {
            let message = tool.plan.approval.evaluate({ inputs: args.scope.inputs, args: c.args });
            if (message instanceof Promise) message = await message;
            waiting.push({ id: c.id, tool: c.tool, args: c.args, message: typeof message === "string" ? message : JSON.stringify(message) });
            return;
          }
          const a = answer.value as { approved: boolean; by?: string; comment?: string };
          if (!a.approved) {
            outcome = { status: "declined", error: { kind: "tool", message: `the user declined this call${a.comment ? `: ${a.comment}` : ""}` }, attempts: 0, started_at: startedAt, ended_at: Date.now() };
            await journal.record(name, outcome, startedAt, { kind: "tool_call" });
            results.set(c.id, outcome);
            return;
          }
        }
        outcome = await args.callTool({
          id: c.id, tool: c.tool, args: c.args as Record<string, unknown>, journalPrefix: `${name}/`, startedAt,
          ...(tool.plan ? { plan: tool.plan } : {}), ...(tool.mcp ? { mcp: tool.mcp } : {}),
        });
        if (outcome.status === "failed" && tool.plan?.onError === "fail") {
          // Not recorded: a retry of the stage runs the call again.
          throw new StageFailure(`${where}: tool '${c.tool}' failed: ${outcome.error?.message ?? "error"}`, { kind: "tool", retryable: outcome.error?.retryable ?? true });
        }
      }
    }
    await journal.record(name, outcome, startedAt, { kind: "tool_call" });
    results.set(c.id, outcome);
  };
  if (parallel) {
    const settled = await Promise.allSettled(turn.calls.map(one));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected" && !(s.reason instanceof Detached));
    if (failed) throw failed.reason;
    const detached = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (detached) throw detached.reason;
  } else {
    for (const c of turn.calls) await one(c);
  }
  if (waiting.length > 0) {
    const first = waiting[0]!;
    const msg = waiting.length === 1 ? `${first.message} (tool call ${first.id}: ${first.tool})` : `${waiting.length} tool calls wait for approval: ${waiting.map((w) => `${w.id} (${w.tool})`).join(", ")} — answer each by its call id`;
    throw new AwaitHuman(`stage '${stage.id}': ${msg}`, waiting);
  }
  return results;
}

/** Why `value` does not match the tool's input schema (undefined when it does). */
function checkArgs(tool: LoopTool, value: unknown): string | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return "the arguments must be a JSON object";
  let v: ValidateFunction;
  try {
    v = validatorFor(tool.input);
  } catch {
    return undefined; // an MCP server's schema Ajv cannot compile: the server checks its arguments
  }
  return v(value) ? undefined : describeErrors(v.errors);
}

function malformed(message: string, reply: string): StageFailure {
  const e = new StageFailure(message, { kind: "malformed_output", retryable: true });
  (e as StageFailure & { reply?: string }).reply = reply;
  return e;
}
