/** Agent stages through the real AI SDK clients against the fake OpenAI server. */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { execute } from "../../src/index.js";
import { compileSource } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI } from "../../src/testing/index.js";
import type { Pipeline } from "../../src/api/pipeline.js";

let fake: FakeOpenAI;
beforeAll(async () => {
  fake = await startFakeOpenAI();
  process.env.OPENAI_API_KEY = "sk-test-not-a-real-key";
});
afterAll(async () => {
  await fake.close();
});

function pipeline(body: string, agents = ""): Pipeline<Record<string, unknown>, unknown> {
  const text = `
baton: 1
name: agents-test
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", system: "You are terse.", temperature: 0, max_tokens: 200 }
${agents}
${body}`;
  const plan = compileSource(text, { format: "yaml", baseDir: process.cwd() });
  return { name: plan.name, plan, parseInputs: (r) => r as Record<string, unknown> };
}

async function runLog(p: Pipeline<Record<string, unknown>, unknown>, inputs: Record<string, unknown> = {}) {
  const log: BatonEvent[] = [];
  const result = await execute(p, inputs, { onEvents: (_id, es) => log.push(...es), seed: 1 });
  return { result, log };
}

describe("agent stages", () => {
  it("send the system and interpolated prompt; the reply text is the output; usage and cost are recorded", async () => {
    fake.reset();
    fake.addRule({ match: "Summarise tides", reply: { content: "Tides follow the moon.", usage: { prompt_tokens: 30, completion_tokens: 6 } } });
    const { result, log } = await runLog(pipeline(`
inputs: { topic: { type: string } }
stages:
  summary: { agent: bot, prompt: "Summarise {{ inputs.topic }} in one line." }
output: summary
`), { topic: "tides" });
    expect(result).toMatchObject({ status: "succeeded", output: "Tides follow the moon." });
    const req = fake.requests[0]!;
    expect(req.model).toBe("gpt-4o-mini");
    expect(req.messages).toEqual([{ role: "system", content: "You are terse." }, { role: "user", content: "Summarise tides in one line." }]);
    expect((req.body as { temperature?: number }).temperature).toBe(0);
    expect(req.headers.authorization).toBe("Bearer sk-test-not-a-real-key");
    const ok = log.find((e) => e.type === "stage_succeeded")!;
    expect(ok).toMatchObject({ model: "openai:gpt-4o-mini", tokens: { input: 30, output: 6 } });
    expect((ok as { cost_usd: number }).cost_usd).toBeCloseTo((30 * 0.15 + 6 * 0.6) / 1e6, 12);
  });

  it("structured output: a malformed reply is a retryable error, and the next attempt shows the model what was wrong", async () => {
    fake.reset();
    fake.addRule({ match: "List sources", reply: [{ content: "Sure! Here are sources: tides.org" }, { content: { sources: "tides.org" } }, { content: { sources: [{ url: "https://tides.org" }] } }] });
    const { result, log } = await runLog(pipeline(`
stages:
  research:
    agent: bot
    prompt: "List sources"
    retry: { attempts: 3, delay: 1ms }
    output: { type: object, required: [sources], properties: { sources: { type: array, items: { type: object, required: [url] } } } }
output: research
`));
    expect(result).toMatchObject({ status: "succeeded", output: { sources: [{ url: "https://tides.org" }] } });
    const failures = log.filter((e) => e.type === "stage_failed") as Extract<BatonEvent, { type: "stage_failed" }>[];
    expect(failures.map((f) => f.error.kind)).toEqual(["malformed_output", "malformed_output"]);
    expect(failures[0]!.error.message).toMatch(/: the reply is not valid JSON \(/);
    expect(failures[1]!.error.message).toMatch(/does not match the output schema: \/sources must be array/);
    // The second request carries the first reply and the repair request.
    const second = fake.requests[1]!.messages;
    expect(second.at(-2)).toEqual({ role: "assistant", content: "Sure! Here are sources: tides.org" });
    expect(second.at(-1)!.content).toMatch(/not valid JSON.*Reply again with only the corrected JSON/);
    expect(fake.requests[0]!.messages[0]!.content).toContain("JSON Schema");
    // Tokens of the failed attempts count too.
    expect(failures.every((f) => f.tokens !== undefined)).toBe(true);
  });

  it("a 429 with Retry-After is retryable and its delay is honoured; 401 is not retried", async () => {
    fake.reset();
    fake.addRule({ match: "rate", reply: [{ status: 429, retryAfter: 1, content: "slow down" }, { content: "done" }] });
    fake.addRule({ match: "auth", reply: { status: 401, content: "bad key" } });
    const { result, log } = await runLog(pipeline(`
stages:
  a: { agent: bot, prompt: "rate", retry: { attempts: 3, delay: 1ms } }
output: a
`));
    expect(result.output).toBe("done");
    const f = log.find((e) => e.type === "stage_failed") as Extract<BatonEvent, { type: "stage_failed" }>;
    expect(f.error).toMatchObject({ kind: "rate_limited", retryable: true, retry_after_ms: 1000 });
    expect((log.find((e) => e.type === "retry_scheduled") as { delay_ms: number }).delay_ms).toBeGreaterThanOrEqual(1000);

    const auth = await runLog(pipeline(`
stages:
  a: { agent: bot, prompt: "auth", retry: { attempts: 3, delay: 1ms } }
`));
    expect(auth.result.status).toBe("failed");
    expect(auth.result.error).toMatchObject({ kind: "auth" });
    expect(auth.log.filter((e) => e.type === "stage_started")).toHaveLength(1);
  });

  it("malformed JSON bodies and 500s are retried; a hanging call is aborted by the attempt timeout", async () => {
    fake.reset();
    fake.addRule({ match: "flaky", reply: [{ malformed: true }, { status: 500, content: "boom" }, { content: "fine" }] });
    fake.addRule({ match: "hang", reply: [{ hang: true }, { content: "woke" }] });
    const { result, log } = await runLog(pipeline(`
stages:
  a: { agent: bot, prompt: "flaky", retry: { attempts: 3, delay: 1ms } }
  b: { agent: bot, prompt: "hang", timeout: 150ms, retry: { attempts: 2, delay: 1ms } }
output: "[a, b]"
`));
    expect(result.output).toEqual(["fine", "woke"]);
    const kinds = log.flatMap((e) => (e.type === "stage_failed" ? [`${e.stage}:${e.error.kind}`] : []));
    expect(kinds.sort()).toEqual(["a:http", "a:malformed_output", "b:timeout"]);
    await vi.waitFor(() => expect(fake.stats.aborted).toBe(1), { timeout: 10_000, interval: 5 });
  });

  it("a prompt that cannot fit the context window fails at once, naming the stage, sizes and model", async () => {
    fake.reset();
    const { result } = await runLog(pipeline(`
inputs: { doc: { type: string } }
stages:
  a: { agent: small, prompt: "{{ inputs.doc }}", retry: { attempts: 3, delay: 1ms } }
`, `  small: { model: "openai:gpt-3.5-turbo", base_url: "${fake.url}", max_tokens: 1000 }`), { doc: "word ".repeat(20000) });
    expect(result.status).toBe("failed");
    expect(result.error?.message).toMatch(/^stage 'a' \(openai:gpt-3\.5-turbo\): the prompt is 20,0\d\d tokens and max_tokens is 1,000, which exceeds the model's 16,385-token context window/);
    expect(fake.requests).toHaveLength(0);
  });

  it("a run budget stops the stage that would exceed it before the call", async () => {
    fake.reset();
    fake.addRule({ reply: { content: "x", usage: { prompt_tokens: 300, completion_tokens: 100 } } });
    const { result, log } = await runLog(pipeline(`
budget: { tokens: 550 }
stages:
  a: { agent: bot, prompt: "first" }
  b: { agent: bot, prompt: "second {{ a }}" }
`));
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({ stage: "b", kind: "budget" });
    expect(result.error?.message).toMatch(/was not started: it could use up to [\d,]+ tokens and the run has 150 of its 550-token budget left/);
    expect(fake.requests).toHaveLength(1);
    expect(log.filter((e) => e.type === "stage_started" && e.stage === "b")).toHaveLength(1);
  });

  it("missing API keys and unknown providers are clear, non-retryable errors", async () => {
    const saved = process.env.OPENAI_API_KEY;
    delete process.env.OPENAI_API_KEY;
    try {
      const { result } = await runLog(pipeline(`
stages:
  a: { agent: bot, prompt: "hi", retry: { attempts: 3, delay: 1ms } }
`));
      expect(result.error?.message).toBe("agent 'bot' (openai:gpt-4o-mini) needs an API key: set OPENAI_API_KEY in the environment (or name another variable with api_key_env)");
    } finally {
      process.env.OPENAI_API_KEY = saved;
    }
  });

  it("the mock provider answers offline, shaped by the output schema", async () => {
    const { result } = await runLog(pipeline(`
stages:
  a:
    agent: m
    prompt: "anything"
    output: { type: object, properties: { score: { type: number, minimum: 0, maximum: 1 }, tags: { type: array, items: { type: string } } } }
output: a
`, `  m: { model: "mock:demo" }`));
    expect(result.status).toBe("succeeded");
    expect(result.output).toMatchObject({ score: expect.any(Number), tags: expect.any(Array) });
  });
});
