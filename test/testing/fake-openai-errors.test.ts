/**
 * `baton/testing`'s fake OpenAI server: how each provoked failure reaches a caller of the
 * real AI SDK (error class and fields), provider-style rate limits, aborts and shutdown.
 */
import { createOpenAI } from "@ai-sdk/openai";
import { APICallError, generateText, streamText, type LanguageModel } from "ai";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { startFakeOpenAI, type FakeOpenAI, type FakeOpenAIOptions } from "../../src/testing/index.js";

globalThis.AI_SDK_LOG_WARNINGS = false;

let fake: FakeOpenAI;
let model: LanguageModel;

async function start(opts: FakeOpenAIOptions = {}): Promise<void> {
  fake = await startFakeOpenAI(opts);
  model = createOpenAI({ baseURL: fake.url, apiKey: "test" }).chat("gpt-4o-mini");
}
beforeEach(() => start());
afterEach(() => fake.close());

/** The error a generateText call rejects with. */
const failure = (prompt: string, extra: { abortSignal?: AbortSignal } = {}): Promise<unknown> =>
  generateText({ model, prompt, maxRetries: 0, ...extra }).then(
    () => expect.fail("expected the call to fail"),
    (e: unknown) => e,
  );

function apiError(e: unknown): APICallError {
  expect(APICallError.isInstance(e)).toBe(true);
  return e as APICallError;
}

describe("HTTP errors", () => {
  it("429 with Retry-After → APICallError 429, retryable, retry-after header, parsed body", async () => {
    fake.addRule({ reply: { status: 429, retryAfter: 7, content: "Slow down" } });
    const e = apiError(await failure("x"));
    expect(e.statusCode).toBe(429);
    expect(e.isRetryable).toBe(true);
    expect(e.responseHeaders?.["retry-after"]).toBe("7");
    expect(e.message).toBe("Slow down");
    expect(e.data).toEqual({ error: { message: "Slow down", type: "requests", code: "rate_limit_exceeded" } });
    expect(fake.stats).toMatchObject({ served: 0, errors: 1 });
    expect(fake.requests).toHaveLength(1);
  });

  it("500 and 503 are retryable APICallErrors; 400 and 401 are not", async () => {
    fake.addRule({ match: "five", reply: { status: 500 } });
    fake.addRule({ match: "overload", reply: { status: 503, retryAfter: 2 } });
    fake.addRule({ match: "bad", reply: { status: 400, content: "Invalid 'messages'" } });
    fake.addRule({ match: "auth", reply: { status: 401 } });
    const five = apiError(await failure("five"));
    expect([five.statusCode, five.isRetryable]).toEqual([500, true]);
    expect((five.data as { error: { type: string } }).error.type).toBe("server_error");
    const overload = apiError(await failure("overload"));
    expect([overload.statusCode, overload.isRetryable, overload.responseHeaders?.["retry-after"]]).toEqual([503, true, "2"]);
    const bad = apiError(await failure("bad"));
    expect([bad.statusCode, bad.isRetryable, bad.message]).toEqual([400, false, "Invalid 'messages'"]);
    const auth = apiError(await failure("auth"));
    expect([auth.statusCode, auth.isRetryable]).toEqual([401, false]);
  });

  it("an object content with an error status is sent as the whole body", async () => {
    fake.addRule({ reply: { status: 422, content: { error: { message: "custom", type: "x", code: "y" } } } });
    const e = apiError(await failure("x"));
    expect(e.statusCode).toBe(422);
    expect(e.responseBody).toBe('{"error":{"message":"custom","type":"x","code":"y"}}');
  });

  it("malformed JSON → APICallError 'Invalid JSON response', status 200, not retryable by the SDK", async () => {
    fake.addRule({ reply: { malformed: true } });
    const e = apiError(await failure("x"));
    expect(e.message).toBe("Invalid JSON response");
    expect(e.statusCode).toBe(200);
    expect(e.isRetryable).toBe(false);
    expect(e.responseBody).toBe('{"id": "chatcmpl-1", "choices": [');
    expect(fake.stats.errors).toBe(1);
  });

  it("a malformed stream reaches onError as a JSON parse error", async () => {
    fake.addRule({ reply: { malformed: true } });
    const errors: unknown[] = [];
    const s = streamText({ model, prompt: "x", maxRetries: 0, onError: ({ error }) => void errors.push(error) });
    expect(await s.text).toBe("");
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).name).toBe("AI_JSONParseError");
  });

  it("an unknown path → 404 APICallError; a body that is not JSON or has no messages → 400", async () => {
    const wrong = createOpenAI({ baseURL: fake.url.replace(/\/v1$/, "/v2"), apiKey: "test" }).chat("gpt-4o-mini");
    const e404 = apiError(await generateText({ model: wrong, prompt: "x", maxRetries: 0 }).catch((e: unknown) => e));
    expect(e404.statusCode).toBe(404);
    const corrupt = createOpenAI({
      baseURL: fake.url,
      apiKey: "test",
      fetch: (url, init) => fetch(url, { ...init, body: "{not json" }),
    }).chat("gpt-4o-mini");
    const e400 = apiError(await generateText({ model: corrupt, prompt: "x", maxRetries: 0 }).catch((e: unknown) => e));
    expect([e400.statusCode, e400.isRetryable]).toEqual([400, false]);
    expect(fake.requests[0]?.body).toBe("{not json");
    const noMessages = createOpenAI({
      baseURL: fake.url,
      apiKey: "test",
      fetch: (url, init) => fetch(url, { ...init, body: '{"model":"m"}' }),
    }).chat("gpt-4o-mini");
    const e400b = apiError(await generateText({ model: noMessages, prompt: "x", maxRetries: 0 }).catch((e: unknown) => e));
    expect([e400b.statusCode, e400b.message]).toEqual([400, "'messages' is a required property (an array)."]);
    expect(fake.stats.errors).toBe(2);
  });
});

describe("network failures and aborts", () => {
  it("a reset connection → retryable APICallError 'Cannot connect to API' without statusCode", async () => {
    fake.addRule({ reply: { resetConnection: true } });
    const e = apiError(await failure("x"));
    expect(e.message).toMatch(/^Cannot connect to API/);
    expect(e.statusCode).toBeUndefined();
    expect(e.isRetryable).toBe(true);
    expect(fake.stats.errors).toBe(1);
  });

  it("a hanging request is ended by the client's abortSignal; stats.aborted counts it", async () => {
    fake.addRule({ reply: { hang: true } });
    const timedOut = await failure("x", { abortSignal: AbortSignal.timeout(50) });
    expect(timedOut).toBeInstanceOf(DOMException);
    expect((timedOut as DOMException).name).toBe("TimeoutError");
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    expect((await failure("y", { abortSignal: ac.signal }) as DOMException).name).toBe("AbortError");
    await vi.waitFor(() => expect(fake.stats.aborted).toBe(2), { timeout: 10_000, interval: 5 });
    expect(fake.stats.served).toBe(0);
  });

  it("latency stops waiting when the client aborts", async () => {
    fake.addRule({ reply: { content: "too late", latencyMs: 10_000 } });
    // The call ends by the client's abort (not by an answer 10 s later), and the fake counts
    // the request as aborted, never served.
    const e = await failure("x", { abortSignal: AbortSignal.timeout(50) });
    expect(e).toBeInstanceOf(DOMException);
    expect((e as DOMException).name).toBe("TimeoutError");
    await vi.waitFor(() => expect(fake.stats.aborted).toBe(1), { timeout: 10_000, interval: 5 });
    expect(fake.stats.served).toBe(0);
  });

  it("close() ends hanging requests (the client sees a network error) and is idempotent", async () => {
    fake.addRule({ reply: { hang: true } });
    const pending = failure("x");
    await vi.waitFor(() => expect(fake.requests).toHaveLength(1), { timeout: 10_000, interval: 5 });
    await fake.close();
    const e = apiError(await pending);
    expect(e.message).toMatch(/^Cannot connect to API/);
    expect(fake.stats.aborted).toBe(0);
    await fake.close();
  });
});

describe("rate limits", () => {
  it("rpm: the request over the limit gets 429 with Retry-After and x-ratelimit headers", async () => {
    let now = 1_000_000;
    await fake.close();
    await start({ limits: { rpm: 2 }, now: () => now });
    await generateText({ model, prompt: "a", maxRetries: 0 });
    now += 10_000;
    await generateText({ model, prompt: "b", maxRetries: 0 });
    now += 5_000;
    const e = apiError(await failure("c"));
    expect(e.statusCode).toBe(429);
    expect(e.isRetryable).toBe(true);
    // The first request leaves the 60 s window 45 s from now.
    expect(e.responseHeaders?.["retry-after"]).toBe("45");
    expect(e.responseHeaders?.["x-ratelimit-remaining-requests"]).toBe("0");
    expect(e.responseHeaders?.["x-ratelimit-limit-requests"]).toBe("2");
    expect(fake.stats).toMatchObject({ served: 2, rateLimited: 1, errors: 0 });
    expect(fake.requests).toHaveLength(3);
    now += 45_000;
    expect((await generateText({ model, prompt: "d", maxRetries: 0 })).text).toBe("ok");
  });

  it("rate-limited requests do not use up rules", async () => {
    let now = 0;
    await fake.close();
    await start({ limits: { rpm: 1 }, now: () => now, rules: [{ reply: [{ content: "first" }, { content: "second" }] }] });
    expect((await generateText({ model, prompt: "a", maxRetries: 0 })).text).toBe("first");
    apiError(await failure("b"));
    now += 60_000;
    expect((await generateText({ model, prompt: "c", maxRetries: 0 })).text).toBe("second");
  });

  it("tpm: counts prompt + completion tokens and says when enough of the window frees up", async () => {
    let now = 0;
    await fake.close();
    await start({ limits: { tpm: 100 }, now: () => now });
    const prompt = "p".repeat(160); // 40 prompt tokens
    fake.addRule({ reply: { content: "c".repeat(80) } }); // 20 completion tokens
    await generateText({ model, prompt, maxRetries: 0 }); // 60 tokens at t=0
    now += 20_000;
    await generateText({ model, prompt, maxRetries: 0 }); // admitted: 60 + 40 prompt ≤ 100; then 120 used
    now += 10_000;
    const e = apiError(await failure(prompt));
    expect(e.statusCode).toBe(429);
    // 40 more fit once the first request's 60 tokens leave the window, at t=60 s: 30 s from now.
    expect(e.responseHeaders?.["retry-after"]).toBe("30");
    expect(e.responseHeaders?.["x-ratelimit-remaining-tokens"]).toBe("0");
    expect((e.data as { error: { type: string } }).error.type).toBe("tokens");
    now += 29_000;
    expect(apiError(await failure(prompt)).responseHeaders?.["retry-after"]).toBe("1");
    now += 1_000;
    expect((await generateText({ model, prompt, maxRetries: 0 })).text).toBe("c".repeat(80));
    expect(fake.stats).toMatchObject({ served: 3, rateLimited: 2 });
  });

  it("tpm: a prompt larger than the whole limit gets 429 with Retry-After 60", async () => {
    await fake.close();
    await start({ limits: { tpm: 10, rpm: 100 } });
    const e = apiError(await failure("x".repeat(100)));
    expect([e.statusCode, e.responseHeaders?.["retry-after"]]).toEqual([429, "60"]);
    expect(e.responseHeaders?.["x-ratelimit-remaining-requests"]).toBe("100");
  });

  it("successful replies carry x-ratelimit headers too", async () => {
    await fake.close();
    await start({ limits: { rpm: 5, tpm: 1000 } });
    const r = await generateText({ model, prompt: "abcd", maxRetries: 0 });
    expect(r.response.headers?.["x-ratelimit-remaining-requests"]).toBe("4");
    expect(r.response.headers?.["x-ratelimit-remaining-tokens"]).toBe("998");
  });
});
