/**
 * `baton/testing`'s fake OpenAI server for tool-calling agents, through the real AI SDK clients:
 * scripted tool calls (plain and streamed), tool traffic in recorded requests, malformed
 * arguments, finish reasons, cached-token usage, native structured output, and the script
 * file's object matchers.
 */
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import {
  generateText,
  InvalidToolInputError,
  jsonSchema,
  Output,
  stepCountIs,
  streamText,
  tool,
  type JSONSchema7,
  type LanguageModel,
  type ModelMessage,
  type Tool,
  type ToolSet,
} from "ai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { lastMessage, startFakeOpenAI, type FakeOpenAI } from "../../src/testing/index.js";
import { optionsFromScript } from "../../src/testing/serve.js";

globalThis.AI_SDK_LOG_WARNINGS = false;

let fake: FakeOpenAI;
let openai: LanguageModel;

beforeEach(async () => {
  fake = await startFakeOpenAI();
  openai = createOpenAI({ baseURL: fake.url, apiKey: "test" }).chat("gpt-4o-mini");
});
afterEach(() => fake.close());

const searchSchema: JSONSchema7 = {
  type: "object",
  properties: { query: { type: "string" } },
  required: ["query"],
  additionalProperties: false,
};
/**
 * A tool without `execute` typed for a `ToolSet`: `tool()` gives it `execute?: undefined`, which
 * `ToolSet` (`Pick<Tool<any, any>, "execute">`) rejects under `exactOptionalPropertyTypes`.
 */
const declared = (t: Tool<never, never> | Tool<any, never>): ToolSet[string] => t as ToolSet[string];
/** Tools without `execute`: the SDK returns the calls and stops. */
const tools = {
  search: declared(tool({ description: "Search the web", inputSchema: jsonSchema<{ query: string }>(searchSchema) })),
  clock: declared(tool({ description: "The time now", inputSchema: jsonSchema<Record<string, never>>({ type: "object", properties: {} }) })),
};

const afterTool = (r: Parameters<typeof lastMessage>[0]): boolean => lastMessage(r)?.role === "tool";

describe("scripted tool calls through generateText", () => {
  it("a tool call comes back in r.toolCalls with parsed input and finishReason 'tool-calls'; the request lists the tools", async () => {
    fake.addRule({ reply: { toolCalls: [{ name: "search", arguments: { query: "tides" } }] } });
    const r = await generateText({ model: openai, prompt: "Find tides", tools, maxRetries: 0 });
    expect(r.finishReason).toBe("tool-calls");
    expect(r.toolCalls).toEqual([{ type: "tool-call", toolCallId: "call_1", toolName: "search", input: { query: "tides" } }]);
    expect(r.text).toBe(""); // content is null without `content`
    const req = fake.requests[0]!;
    expect(req.tools.map((t) => t.name)).toEqual(["search", "clock"]);
    expect(req.tools[0]).toEqual({ name: "search", description: "Search the web", parameters: searchSchema });
    expect(req.toolChoice).toBe("auto");
    expect(req.responseFormat).toBeUndefined();
  });

  it("text and several tool calls in one reply; explicit ids are kept, default ids stay unique per server", async () => {
    fake.addRule({
      reply: {
        content: "Checking two things.",
        toolCalls: [{ name: "search", arguments: { query: "a" } }, { id: "mine", name: "clock" }, { name: "search", arguments: '{"query":"b"}' }],
      },
    });
    const r1 = await generateText({ model: openai, prompt: "go", tools, maxRetries: 0 });
    expect(r1.text).toBe("Checking two things.");
    expect(r1.toolCalls.map((c) => [c.toolCallId, c.toolName, c.input])).toEqual([
      ["call_1", "search", { query: "a" }],
      ["mine", "clock", {}],
      ["call_2", "search", { query: "b" }],
    ]);
    fake.reset(); // ids keep counting: a conversation never sees the same id twice
    fake.addRule({ reply: { toolCalls: [{ name: "clock" }] } });
    const r2 = await generateText({ model: openai, prompt: "go", tools, maxRetries: 0 });
    expect(r2.toolCalls[0]?.toolCallId).toBe("call_3");
  });

  it("the request carrying the tool result has the tool traffic and is matched by a last-role rule", async () => {
    fake.addRule({ match: afterTool, reply: { content: "Tides turn twice a day." } });
    fake.addRule({ match: "leaked secret", reply: { content: "never: the tool rule comes first" } });
    fake.addRule({ reply: { content: "Let me look.", toolCalls: [{ name: "search", arguments: { query: "tides" } }] } });
    const first = await generateText({ model: openai, prompt: "Explain tides", tools, maxRetries: 0 });
    const call = first.toolCalls[0]!;
    const messages: ModelMessage[] = [
      { role: "user", content: "Explain tides" },
      ...first.response.messages,
      { role: "tool", content: [{ type: "tool-result", toolCallId: call.toolCallId, toolName: call.toolName, output: { type: "json", value: { hits: ["moon.example"] } } }] },
    ];
    const second = await generateText({ model: openai, messages, tools, maxRetries: 0 });
    expect(second.text).toBe("Tides turn twice a day.");
    expect(second.finishReason).toBe("stop");

    const req = fake.requests[1]!;
    expect(req.messages).toEqual([
      { role: "user", content: "Explain tides" },
      { role: "assistant", content: "Let me look.", toolCalls: [{ id: "call_1", name: "search", arguments: '{"query":"tides"}' }] },
      { role: "tool", content: '{"hits":["moon.example"]}', toolCallId: "call_1" },
    ]);
    expect(lastMessage(req)?.role).toBe("tool");
    expect(lastMessage(fake.requests[0]!)?.role).toBe("user");
    // The prompt includes the tool result, so a string `match` can match it.
    expect(req.prompt).toBe('Explain tides\nLet me look.\n{"hits":["moon.example"]}');
    fake.prependRule({ match: "moon.example", reply: { content: "matched the tool result" } });
    expect((await generateText({ model: openai, messages, tools, maxRetries: 0 })).text).toBe("matched the tool result");
  });

  it("drives a whole tool loop with executing tools (stopWhen): the SDK sends each result back", async () => {
    fake.addRule({ match: afterTool, reply: (req) => ({ content: `Found: ${lastMessage(req)?.content ?? ""}` }) });
    fake.addRule({ reply: { toolCalls: [{ name: "search", arguments: { query: "tides" } }] } });
    const run = await generateText({
      model: openai,
      prompt: "Explain tides",
      tools: { search: tool({ inputSchema: jsonSchema<{ query: string }>(searchSchema), execute: async ({ query }) => ({ query, hits: 2 }) }) },
      stopWhen: stepCountIs(5),
      maxRetries: 0,
    });
    expect(run.steps.map((s) => s.finishReason)).toEqual(["tool-calls", "stop"]);
    expect(run.text).toBe('Found: {"query":"tides","hits":2}');
    expect(fake.requests[1]?.messages.at(-1)).toEqual({ role: "tool", content: '{"query":"tides","hits":2}', toolCallId: "call_1" });
  });

  it("openai-compatible clients get the same tool calls, plain and streamed", async () => {
    const local = createOpenAICompatible({ name: "local", baseURL: fake.url, apiKey: "x", includeUsage: true })("llama3");
    fake.addRule({ reply: { toolCalls: [{ name: "search", arguments: { query: "q" } }] } });
    const r = await generateText({ model: local, prompt: "go", tools, maxRetries: 0 });
    expect(r.finishReason).toBe("tool-calls");
    expect(r.toolCalls).toMatchObject([{ toolName: "search", input: { query: "q" } }]);
    const s = streamText({ model: local, prompt: "go", tools, maxRetries: 0 });
    await s.consumeStream();
    expect(await s.finishReason).toBe("tool-calls");
    expect(await s.toolCalls).toMatchObject([{ toolName: "search", input: { query: "q" } }]);
  });
});

describe("streamed tool calls", () => {
  it("text deltas arrive in several pieces, the tool call's arguments in pieces, assembled into one call", async () => {
    fake.addRule({
      reply: { content: "Let me search for that.", toolCalls: [{ name: "search", arguments: { query: "spring tides and neap tides" } }], chunkDelayMs: 2 },
    });
    const s = streamText({ model: openai, prompt: "Explain tides", tools, maxRetries: 0 });
    const text: string[] = [];
    const inputDeltas: string[] = [];
    const kinds: string[] = [];
    for await (const p of s.fullStream) {
      kinds.push(p.type);
      if (p.type === "text-delta") text.push(p.text);
      if (p.type === "tool-input-delta") inputDeltas.push(p.delta);
    }
    expect(text.length).toBeGreaterThan(1);
    expect(text.join("")).toBe("Let me search for that.");
    expect(inputDeltas.length).toBeGreaterThan(1);
    expect(inputDeltas.join("")).toBe('{"query":"spring tides and neap tides"}');
    expect(kinds.filter((k) => k === "tool-input-start")).toHaveLength(1);
    expect(kinds.indexOf("tool-call")).toBeGreaterThan(kinds.lastIndexOf("tool-input-delta"));
    expect(await s.toolCalls).toEqual([{ type: "tool-call", toolCallId: "call_1", toolName: "search", input: { query: "spring tides and neap tides" } }]);
    expect(await s.finishReason).toBe("tool-calls");
    expect(fake.requests[0]?.stream).toBe(true);
  });

  it("a tool-call-only stream has no text part; several calls stream under their own index", async () => {
    fake.addRule({ reply: { toolCalls: [{ name: "search", arguments: { query: "a" } }, { name: "search", arguments: { query: "b" } }] } });
    const s = streamText({ model: openai, prompt: "go", tools, maxRetries: 0 });
    const kinds: string[] = [];
    for await (const p of s.fullStream) kinds.push(p.type);
    expect(kinds).not.toContain("text-start");
    expect(kinds.filter((k) => k === "tool-call")).toHaveLength(2);
    expect((await s.toolCalls).map((c) => c.input)).toEqual([{ query: "a" }, { query: "b" }]);
  });

  it("on the wire: OpenAI's chunk shapes, and chunkDelayMs holds later chunks back", async () => {
    fake.addRule({ match: "slow", reply: { content: "abc", chunkDelayMs: 60_000 } });
    fake.addRule({ reply: { toolCalls: [{ id: "c1", name: "search", arguments: '{"query":"tides"}' }], usage: { prompt_tokens: 9, completion_tokens: 4, cached_tokens: 8 } } });
    const post = (content: string): Promise<Response> =>
      fetch(`${fake.url}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o-mini", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content }] }),
      });
    const events = (await (await post("go")).text())
      .split("\n\n")
      .filter((e) => e.startsWith("data: "))
      .map((e) => e.slice("data: ".length));
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { choices: { delta: Record<string, unknown>; finish_reason: string | null }[]; usage?: unknown });
    expect(chunks[0]?.choices[0]?.delta).toEqual({ role: "assistant", content: null });
    expect(chunks[1]?.choices[0]?.delta).toEqual({ tool_calls: [{ index: 0, id: "c1", type: "function", function: { name: "search", arguments: "" } }] });
    const pieces = chunks.slice(2, -2).map((c) => (c.choices[0]?.delta["tool_calls"] as { index: number; function: { arguments: string } }[])[0]);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.every((p) => p?.index === 0 && Object.keys(p).join() === "index,function")).toBe(true);
    expect(pieces.map((p) => p?.function.arguments).join("")).toBe('{"query":"tides"}');
    expect(chunks.at(-2)?.choices[0]).toMatchObject({ delta: {}, finish_reason: "tool_calls" });
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13, prompt_tokens_details: { cached_tokens: 8 } } });

    // With a (long) chunk delay only the first chunk has been sent when the client first reads.
    const slow = await post("slow");
    const reader = slow.body!.getReader();
    let received = "";
    while (!received.includes("\n\n")) received += new TextDecoder().decode((await reader.read()).value);
    expect(received.split("\n\n").filter((e) => e.startsWith("data: "))).toHaveLength(1);
    expect(received).toContain('"role":"assistant"');
    await reader.cancel();
  });
});

describe("malformed arguments, finish reasons, usage", () => {
  it("a malformed argument string reaches the client verbatim: an invalid (dynamic) tool call with InvalidToolInputError", async () => {
    fake.addRule({ reply: { toolCalls: [{ name: "search", arguments: '{"query": ' }] } });
    const r = await generateText({ model: openai, prompt: "go", tools, maxRetries: 0 });
    expect(r.finishReason).toBe("tool-calls");
    const call = r.toolCalls[0]!;
    expect(call).toMatchObject({ toolCallId: "call_1", toolName: "search", input: '{"query": ', dynamic: true, invalid: true });
    expect(InvalidToolInputError.isInstance((call as { error?: unknown }).error)).toBe(true);
    // The SDK also records a tool-error part for it (nothing was executed).
    expect(r.content.map((c) => c.type)).toEqual(["tool-call", "tool-error"]);

    // Streamed: the same invalid call, plus a tool-error part.
    const s = streamText({ model: openai, prompt: "go", tools, maxRetries: 0 });
    const kinds: string[] = [];
    for await (const p of s.fullStream) kinds.push(p.type);
    expect(kinds).toContain("tool-error");
    expect(await s.toolCalls).toMatchObject([{ input: '{"query": ', invalid: true }]);
  });

  it("in a loop the SDK sends the error back as the tool result (and the call's arguments as '{}')", async () => {
    fake.addRule({ match: afterTool, reply: { content: "sorry" } });
    fake.addRule({ reply: { toolCalls: [{ name: "search", arguments: '{"query": ' }] } });
    const run = await generateText({
      model: openai,
      prompt: "go",
      tools: { search: tool({ inputSchema: jsonSchema<{ query: string }>(searchSchema), execute: async () => "never" }) },
      stopWhen: stepCountIs(3),
      maxRetries: 0,
    });
    expect(run.text).toBe("sorry");
    const [assistant, result] = fake.requests[1]!.messages.slice(-2);
    expect(assistant).toEqual({ role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "search", arguments: "{}" }] });
    expect(result).toMatchObject({ role: "tool", toolCallId: "call_1" });
    expect(result?.content).toMatch(/^Invalid input for tool search: JSON parsing failed/);
  });

  it("finishReason 'length' surfaces as 'length' (plain and streamed)", async () => {
    fake.addRule({ reply: { content: "The tide turns tw", finishReason: "length" } });
    const r = await generateText({ model: openai, prompt: "go", maxRetries: 0 });
    expect(r.finishReason).toBe("length");
    expect(r.text).toBe("The tide turns tw");
    const s = streamText({ model: openai, prompt: "go", maxRetries: 0 });
    await s.consumeStream();
    expect(await s.finishReason).toBe("length");
    fake.reset();
    fake.addRule({ reply: { content: "blocked", finishReason: "content_filter" } });
    expect((await generateText({ model: openai, prompt: "go", maxRetries: 0 })).finishReason).toBe("content-filter");
  });

  it("cached_tokens surfaces as usage.inputTokenDetails.cacheReadTokens (and the deprecated cachedInputTokens)", async () => {
    fake.addRule({ reply: { content: "x", usage: { prompt_tokens: 100, completion_tokens: 5, cached_tokens: 64 } } });
    const r = await generateText({ model: openai, prompt: "go", maxRetries: 0 });
    expect(r.usage).toMatchObject({
      inputTokens: 100,
      inputTokenDetails: { cacheReadTokens: 64, noCacheTokens: 36 },
      outputTokens: 5,
      totalTokens: 105,
      cachedInputTokens: 64,
    });
    const s = streamText({ model: openai, prompt: "go", maxRetries: 0 });
    await s.consumeStream();
    expect((await s.usage).inputTokenDetails.cacheReadTokens).toBe(64);
    // Without cached_tokens the details say 0 cached.
    fake.reset();
    fake.addRule({ reply: { content: "x", usage: { prompt_tokens: 10, completion_tokens: 1 } } });
    expect((await generateText({ model: openai, prompt: "go", maxRetries: 0 })).usage.inputTokenDetails).toMatchObject({ cacheReadTokens: 0, noCacheTokens: 10 });
  });

  it("records response_format when generateText asks for Output.object", async () => {
    const schema: JSONSchema7 = { type: "object", properties: { answer: { type: "string" } }, required: ["answer"], additionalProperties: false };
    fake.addRule({ reply: { content: { answer: "twice a day" } } });
    const r = await generateText({ model: openai, prompt: "How often?", output: Output.object({ schema: jsonSchema<{ answer: string }>(schema) }), maxRetries: 0 });
    expect(r.output).toEqual({ answer: "twice a day" });
    expect(fake.requests[0]?.responseFormat).toEqual({ type: "json_schema", json_schema: { name: "response", strict: true, schema } });
    expect(fake.requests[0]?.tools).toEqual([]);
  });
});

describe("script file object matchers", () => {
  const script = [
    { match: { last_role: "tool", prompt: "/urgent/i" }, reply: { content: "urgent answer" } },
    { match: { last_role: "tool" }, reply: { content: "answer after the tool" } },
    { match: { has_tool: "clock" }, reply: { toolCalls: [{ name: "clock" }] } },
    { match: { last_role: "user", has_tool: "search" }, reply: { toolCalls: [{ name: "search", arguments: { query: "tides" } }], usage: { prompt_tokens: 7, completion_tokens: 3, cached_tokens: 2 } } },
    { match: { last_role: "user" }, reply: { content: "plain", finishReason: "length" } },
  ];

  it("last_role, has_tool and prompt (all keys must hold) drive a tool loop through the SDK", async () => {
    await fake.close();
    fake = await startFakeOpenAI(optionsFromScript(script));
    openai = createOpenAI({ baseURL: fake.url, apiKey: "test" }).chat("gpt-4o-mini");

    const first = await generateText({ model: openai, prompt: "Explain tides", tools: { search: tools.search }, maxRetries: 0 });
    expect(first.toolCalls).toMatchObject([{ toolName: "search", input: { query: "tides" } }]);
    expect(first.usage.inputTokenDetails.cacheReadTokens).toBe(2);
    const call = first.toolCalls[0]!;
    const withResult = (value: string): ModelMessage[] => [
      { role: "user", content: "Explain tides" },
      ...first.response.messages,
      { role: "tool", content: [{ type: "tool-result", toolCallId: call.toolCallId, toolName: call.toolName, output: { type: "text", value } }] },
    ];
    expect((await generateText({ model: openai, messages: withResult("2 hits"), tools, maxRetries: 0 })).text).toBe("answer after the tool");
    expect((await generateText({ model: openai, messages: withResult("URGENT: 2 hits"), tools, maxRetries: 0 })).text).toBe("urgent answer");

    const clock = await generateText({ model: openai, prompt: "What time is it?", tools, maxRetries: 0 });
    expect(clock.toolCalls).toMatchObject([{ toolName: "clock", input: {} }]);
    const plain = await generateText({ model: openai, prompt: "Hello", maxRetries: 0 });
    expect([plain.text, plain.finishReason]).toEqual(["plain", "length"]);
  });

  it("rejects unknown keys, non-string values and empty matchers with a message saying what was expected", () => {
    expect(optionsFromScript([{ match: { last_role: "tool" }, reply: {} }]).rules?.[0]?.match).toBeTypeOf("function");
    expect(() => optionsFromScript([{ match: { lastRole: "tool" }, reply: {} }])).toThrow(/rule 0: unknown matcher key "lastRole"; expected one of last_role, has_tool, prompt/);
    expect(() => optionsFromScript([{ match: { has_tool: 3 }, reply: {} }])).toThrow(/"has_tool" must be a string, got 3/);
    expect(() => optionsFromScript([{ match: {}, reply: {} }])).toThrow(/needs at least one of/);
    expect(() => optionsFromScript([{ match: ["tool"], reply: {} }])).toThrow(/must be a string or an object/);
  });
});
