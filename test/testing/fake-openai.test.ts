/**
 * `baton/testing`'s fake OpenAI server, exercised through the real AI SDK clients:
 * plain and streamed replies with usage, structured output, and rule scripting.
 * (Error cases, rate limits and shutdown are in fake-openai-errors.test.ts.)
 */
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, jsonSchema, NoObjectGeneratedError, Output, streamText, type LanguageModel } from "ai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startFakeOpenAI, type FakeOpenAI } from "../../src/testing/index.js";

globalThis.AI_SDK_LOG_WARNINGS = false;

let fake: FakeOpenAI;
let openai: LanguageModel;
let local: LanguageModel;

beforeEach(async () => {
  fake = await startFakeOpenAI();
  openai = createOpenAI({ baseURL: fake.url, apiKey: "test" }).chat("gpt-4o-mini");
  local = createOpenAICompatible({ name: "local", baseURL: fake.url, apiKey: "x", includeUsage: true })("llama3");
});
afterEach(() => fake.close());

const ask = async (prompt: string, model: LanguageModel = openai): Promise<string> =>
  (await generateText({ model, prompt, maxRetries: 0 })).text;

describe("plain and streamed replies", () => {
  it("answers generateText with content, default usage and a recorded request", async () => {
    fake.addRule({ reply: { content: "The tide turns twice a day." } });
    const r = await generateText({ model: openai, system: "Be brief.", prompt: "Explain tides", maxRetries: 0 });
    expect(r.text).toBe("The tide turns twice a day.");
    expect(r.finishReason).toBe("stop");
    // ceil(chars / 4): messages "Be brief." + "Explain tides" = 22 chars; content 27 chars.
    expect(r.usage.inputTokens).toBe(6);
    expect(r.usage.outputTokens).toBe(7);
    expect(r.usage.totalTokens).toBe(13);
    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0]!;
    expect(req).toMatchObject({ n: 1, model: "gpt-4o-mini", stream: false, prompt: "Be brief.\nExplain tides" });
    expect(req.messages).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Explain tides" },
    ]);
    expect(req.headers["authorization"]).toBe("Bearer test");
    expect(fake.stats).toEqual({ served: 1, errors: 0, rateLimited: 0, aborted: 0 });
  });

  it("says 'ok' by default and reports a reply's explicit usage", async () => {
    expect(await ask("anything")).toBe("ok");
    fake.addRule({ reply: { content: "x", usage: { prompt_tokens: 120, completion_tokens: 30 } } });
    const r = await generateText({ model: local, prompt: "hi", maxRetries: 0 });
    expect(r.usage).toMatchObject({ inputTokens: 120, outputTokens: 30, totalTokens: 150 });
    expect(fake.requests[1]?.model).toBe("llama3");
  });

  it("streams through @ai-sdk/openai in several chunks, with usage", async () => {
    fake.addRule({ reply: { content: "Streaming works across chunks.", usage: { prompt_tokens: 11, completion_tokens: 5 } } });
    const s = streamText({ model: openai, prompt: "stream please", maxRetries: 0 });
    const parts: string[] = [];
    for await (const t of s.textStream) parts.push(t);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.join("")).toBe("Streaming works across chunks.");
    expect(await s.usage).toMatchObject({ inputTokens: 11, outputTokens: 5, totalTokens: 16 });
    expect(await s.finishReason).toBe("stop");
    expect(fake.requests[0]?.stream).toBe(true);
  });

  it("streams through openai-compatible with includeUsage, and omits usage without it", async () => {
    fake.addRule({ reply: { content: "local model says hi" } });
    const s = streamText({ model: local, prompt: "hello", maxRetries: 0 });
    expect(await s.text).toBe("local model says hi");
    expect(await s.usage).toMatchObject({ inputTokens: 2, outputTokens: 5 });
    expect(fake.requests[0]?.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });

    const bare = createOpenAICompatible({ name: "local", baseURL: fake.url, apiKey: "x" })("llama3");
    const s2 = streamText({ model: bare, prompt: "hello", maxRetries: 0 });
    expect(await s2.text).toBe("local model says hi");
    expect((await s2.usage).inputTokens).toBeUndefined();
  });

  it("serves object content as JSON for Output.object", async () => {
    fake.addRule({ match: "sources", reply: { content: { sources: [{ url: "https://a.example" }], count: 1 } } });
    const schema = jsonSchema<{ sources: { url: string }[]; count: number }>({
      type: "object",
      required: ["sources", "count"],
      properties: { sources: { type: "array", items: { type: "object", properties: { url: { type: "string" } } } }, count: { type: "integer" } },
    });
    const r = await generateText({ model: openai, prompt: "Find sources", maxRetries: 0, output: Output.object({ schema }) });
    expect(r.output).toEqual({ sources: [{ url: "https://a.example" }], count: 1 });
    const body = fake.requests[0]?.body as { response_format?: { type: string } };
    expect(body.response_format?.type).toBe("json_schema");
  });

  it("text that is not JSON surfaces as NoObjectGeneratedError with text and usage", async () => {
    fake.addRule({ reply: { content: "Sure! Here are the sources." } });
    const schema = jsonSchema<{ a: string }>({ type: "object", properties: { a: { type: "string" } } });
    const err = await generateText({ model: local, prompt: "json please", maxRetries: 0, output: Output.object({ schema }) }).catch((e: unknown) => e);
    expect(NoObjectGeneratedError.isInstance(err)).toBe(true);
    const e = err as NoObjectGeneratedError;
    expect(e.text).toBe("Sure! Here are the sources.");
    expect(e.usage?.outputTokens).toBe(7);
  });
});

describe("rules", () => {
  it("match by substring, regex and function, else the default reply", async () => {
    fake.addRule({ match: "tides", reply: { content: "substring" } });
    fake.addRule({ match: /^score:\s*\d+$/m, reply: { content: "regex" } });
    fake.addRule({ match: (req) => req.messages.some((m) => m.role === "system" && m.content === "judge"), reply: { content: "function" } });
    expect(await ask("all about tides")).toBe("substring");
    expect(await ask("draft\nscore: 7")).toBe("regex");
    expect((await generateText({ model: openai, system: "judge", prompt: "x", maxRetries: 0 })).text).toBe("function");
    expect(await ask("nothing matches")).toBe("ok");
  });

  it("the first matching rule wins; prependRule goes first", async () => {
    fake.addRule({ match: "a", reply: { content: "first" } });
    fake.addRule({ match: "a", reply: { content: "second" } });
    expect(await ask("a")).toBe("first");
    fake.prependRule({ match: "a", reply: { content: "prepended" } });
    expect(await ask("a")).toBe("prepended");
  });

  it("`times` limits a rule, then later rules apply", async () => {
    fake.addRule({ match: "flaky", times: 2, reply: { content: "limited" } });
    fake.addRule({ match: "flaky", reply: { content: "after" } });
    const answers = [await ask("flaky"), await ask("flaky"), await ask("flaky")];
    expect(answers).toEqual(["limited", "limited", "after"]);
  });

  it("an array is served in order, its last element repeating", async () => {
    fake.addRule({ reply: [{ content: "one" }, { content: "two" }, { content: "three" }] });
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) answers.push(await ask(`q${i}`));
    expect(answers).toEqual(["one", "two", "three", "three", "three"]);
  });

  it("a function reply gets the request and how often the rule matched before", async () => {
    fake.addRule({ match: "echo", reply: (req, nth) => ({ content: `${nth}:${req.messages.at(-1)?.content ?? ""}` }) });
    expect(await ask("echo A")).toBe("0:echo A");
    expect(await ask("echo B")).toBe("1:echo B");
  });

  it("defaultReply may be a function; reset() clears rules, requests and stats", async () => {
    await fake.close();
    fake = await startFakeOpenAI({
      rules: [{ match: "special", reply: { content: "rule" } }],
      defaultReply: (req) => ({ content: `default for ${req.model}` }),
    });
    openai = createOpenAI({ baseURL: fake.url, apiKey: "test" }).chat("gpt-4o-mini");
    expect(await ask("special")).toBe("rule");
    expect(await ask("plain")).toBe("default for gpt-4o-mini");
    fake.reset();
    expect(fake.requests).toEqual([]);
    expect(fake.stats).toEqual({ served: 0, errors: 0, rateLimited: 0, aborted: 0 });
    expect(await ask("special")).toBe("default for gpt-4o-mini");
    expect(fake.requests[0]?.n).toBe(1);
  });

  it("latencyMs delays the answer", async () => {
    fake.addRule({ reply: { content: "slow", latencyMs: 80 } });
    const t0 = performance.now();
    expect(await ask("x")).toBe("slow");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(70); // a lower bound: a loaded machine only makes it later
  });

  it("answers concurrent requests in parallel, each to its own prompt", async () => {
    await fake.close();
    // Sent a, b, c, d, e at once, with latencies falling from 800 ms to 0: served in parallel
    // the answers come back in the reverse order; served one after another, in sending order.
    const latency: Record<string, number> = { a: 800, b: 600, c: 400, d: 200, e: 0 };
    fake = await startFakeOpenAI({ defaultReply: (req) => ({ content: req.prompt.toUpperCase(), latencyMs: latency[req.prompt] ?? 0 }) });
    openai = createOpenAI({ baseURL: fake.url, apiKey: "test" }).chat("gpt-4o-mini");
    const arrived: string[] = [];
    const answers = await Promise.all(["a", "b", "c", "d", "e"].map(async (p) => {
      const a = await ask(p);
      arrived.push(a);
      return a;
    }));
    expect(answers).toEqual(["A", "B", "C", "D", "E"]);
    expect(arrived).toEqual(["E", "D", "C", "B", "A"]);
    expect(fake.requests.map((r) => r.n).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(fake.stats.served).toBe(5);
  });
});

describe("other endpoints", () => {
  it("GET /v1/models lists models (the SDK never calls it, so plain fetch)", async () => {
    await ask("hi", local);
    const res = await fetch(`${fake.url}/models`);
    const body = (await res.json()) as { object: string; data: { id: string }[] };
    expect(body.object).toBe("list");
    expect(body.data.map((m) => m.id)).toContain("llama3");
  });
});
