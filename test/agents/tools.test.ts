/**
 * Agents that use tools (SPEC §8–9), embedded host, through the real AI SDK client against the
 * fake OpenAI server: the loop, concurrent calls, invalid/unknown calls returned to the model,
 * durable turns and calls reused by a retry, ctx.step, ctx.agent, max_steps, truncation,
 * per-call approval, budgets across turns.
 */
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { execute } from "../../src/index.js";
import { compileSource } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI, type FakeRequest } from "../../src/testing/index.js";
import type { Pipeline } from "../../src/api/pipeline.js";
import { MemoryStore } from "../../src/store/memory.js";
import { Runtime } from "../../src/runtime/runtime.js";

const FIX = resolve(import.meta.dirname, "../fixtures/tools");
let fake: FakeOpenAI;
let counters: string;
beforeAll(async () => {
  fake = await startFakeOpenAI();
  process.env.OPENAI_API_KEY = "sk-test-not-a-real-key";
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
  counters = mkdtempSync(join(tmpdir(), "baton-tools-"));
  process.env.COUNTER_DIR = counters;
});

const calls = (name: string): string[] => (existsSync(join(counters, `${name}.log`)) ? readFileSync(join(counters, `${name}.log`), "utf8").trim().split("\n") : []);
const lastRole = (r: FakeRequest): string | undefined => r.messages.at(-1)?.role;

const TOOLS = `
tools:
  search:
    description: Search the web.
    input: { type: object, required: [query], properties: { query: { type: string } }, additionalProperties: false }
    run: ./tools.mjs#search
  flaky:
    description: A flaky search.
    input: { type: object, required: [query], properties: { query: { type: string } } }
    run: ./tools.mjs#flakySearch
    retry: { attempts: 2, delay: 1ms }
  broken:
    description: Always fails.
    input: { type: object, properties: {} }
    run: ./tools.mjs#broken
    retry: { attempts: 2, delay: 1ms }
  double:
    description: Doubles a number.
    input: { type: object, required: [x], properties: { x: { type: number } } }
    value: "args.x * 2"
  publish:
    description: Publish a report.
    input: { type: object, required: [title], properties: { title: { type: string } } }
    value: "{ 'published': args.title }"
    approval: "Publish '{{ args.title }}'?"
`;

function pipeline(body: string, agentExtra = ""): Pipeline<Record<string, unknown>, unknown> {
  const text = `
baton: 1
name: tools-test
${TOOLS}
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 200, tools: [search, flaky, broken, double, publish]${agentExtra} }
  helper: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 100, tools: [double] }
${body}`;
  const plan = compileSource(text, { format: "yaml", baseDir: FIX });
  return { name: plan.name, plan, parseInputs: (r) => r as Record<string, unknown> };
}

async function runLog(p: Pipeline<Record<string, unknown>, unknown>, store = new MemoryStore()) {
  const log: BatonEvent[] = [];
  const result = await execute(p, {}, { onEvents: (_id, es) => log.push(...es), seed: 1, store });
  return { result, log, store };
}

const steps = (log: BatonEvent[]) => log.filter((e): e is Extract<BatonEvent, { type: "step_recorded" }> => e.type === "step_recorded");

describe("agents with tools", () => {
  it("loop: a turn calls two tools concurrently, their results go back, the final answer is the output", async () => {
    fake.addRule({
      match: (r) => lastRole(r) === "user",
      reply: { toolCalls: [{ id: "c1", name: "search", arguments: { query: "tides" } }, { id: "c2", name: "double", arguments: { x: 21 } }] },
    });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "Tides: 2 results; 42." } });
    const { result, log } = await runLog(pipeline(`
stages:
  research: { agent: bot, prompt: "Research tides" }
output: research
`));
    expect(result).toMatchObject({ status: "succeeded", output: "Tides: 2 results; 42." });
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[0]!.tools.map((t) => t.name).sort()).toEqual(["broken", "double", "flaky", "publish", "search"]);
    // The second turn carries both results, by call id.
    const toolMsgs = fake.requests[1]!.messages.filter((m) => m.role === "tool");
    expect(toolMsgs.map((m) => m.toolCallId).sort()).toEqual(["c1", "c2"]);
    expect(toolMsgs.find((m) => m.toolCallId === "c2")!.content).toBe("42");
    expect(JSON.parse(toolMsgs.find((m) => m.toolCallId === "c1")!.content)).toEqual({ results: ["tides — result 1", "tides — result 2"] });
    const s = steps(log);
    expect(s.map((e) => e.name).sort()).toEqual(["call:c1", "call:c2", "turn:1", "turn:2"]);
    expect(s.find((e) => e.name === "turn:1")!.tokens).toBeDefined();
    expect(Array.isArray(s.find((e) => e.name === "turn:1")!.messages)).toBe(true);
    expect(calls("search")).toHaveLength(1);
    // Usage: the outcome's tokens cover both turns and say they were recorded already.
    const ok = log.find((e) => e.type === "stage_succeeded") as Extract<BatonEvent, { type: "stage_succeeded" }>;
    const turnTokens = s.filter((e) => e.kind === "turn").reduce((a, e) => a + e.tokens!.input + e.tokens!.output, 0);
    expect(ok.tokens!.input + ok.tokens!.output).toBe(turnTokens);
    expect(ok.recorded_tokens!.input + ok.recorded_tokens!.output).toBe(turnTokens);
  });

  it("bad calls go back to the model as error results: unknown tool, malformed JSON, schema violation, a failing tool", async () => {
    fake.addRule({
      match: (r) => lastRole(r) === "user",
      reply: { toolCalls: [
        { id: "u1", name: "nope", arguments: {} },
        { id: "m1", name: "search", arguments: '{"query": ' },
        { id: "s1", name: "search", arguments: { query: 7 } },
        { id: "b1", name: "broken", arguments: {} },
        { id: "f1", name: "flaky", arguments: { query: "x" } },
      ] },
    });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "coped" } });
    const { result, log } = await runLog(pipeline(`
stages:
  research: { agent: bot, prompt: "Research" }
`));
    expect(result.status).toBe("succeeded");
    const tool = new Map(fake.requests[1]!.messages.filter((m) => m.role === "tool").map((m) => [m.toolCallId, m.content]));
    expect(tool.get("u1")).toMatch(/unknown tool 'nope' \(the tools are: search, flaky, broken, double, publish\)/);
    expect(tool.get("m1")).toMatch(/not valid JSON/);
    expect(tool.get("s1")).toMatch(/do not match its input schema: \/query must be string/);
    expect(tool.get("b1")).toMatch(/the index is offline/);
    expect(JSON.parse(tool.get("f1")!)).toEqual({ results: ["x (second try)"] });
    expect(calls("broken")).toHaveLength(2); // its retry policy
    expect(calls("flaky")).toHaveLength(2);
    const b1 = steps(log).find((e) => e.name === "call:b1")!.output as { status: string; attempts: number };
    expect(b1).toMatchObject({ status: "failed", attempts: 2 });
  });

  it("durable: a retry of the stage reuses completed turns and calls (the provider is not asked again)", async () => {
    // Turn 1 calls search; turn 2 fails (500) once, then answers.
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "c1", name: "search", arguments: { query: "q" } }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: [{ status: 500, content: "boom" }, { content: "final" }] });
    const { result, log } = await runLog(pipeline(`
stages:
  research: { agent: bot, prompt: "Research", retry: { attempts: 3, delay: 1ms } }
`));
    expect(result.status).toBe("succeeded");
    expect(fake.requests.map((r) => lastRole(r))).toEqual(["user", "tool", "tool"]); // turn 1 once
    expect(calls("search")).toHaveLength(1);
    const ok = log.find((e) => e.type === "stage_succeeded") as unknown as { replayed?: string[]; attempt: number };
    expect(ok.attempt).toBe(2);
    expect(ok.replayed).toEqual(["turn:1", "call:c1"]);
  });

  it("max_steps: a loop that never answers fails with kind max_steps, not retried", async () => {
    fake.addRule({ reply: { toolCalls: [{ name: "double", arguments: { x: 1 } }] } });
    const { result, log } = await runLog(pipeline(`
stages:
  research: { agent: bot, prompt: "Loop", retry: { attempts: 3, delay: 1ms } }
`, ", max_steps: 3"));
    expect(result.status).toBe("failed");
    expect(result.error?.message).toBe("stage 'research' (openai:gpt-4o-mini): 3 model turns without a final answer; raise agents.bot.max_steps");
    expect(fake.requests).toHaveLength(3);
    expect(log.filter((e) => e.type === "stage_failed").map((e) => (e as { error: { kind: string } }).error.kind)).toEqual(["max_steps"]);
  });

  it("finish_reason length is a retryable truncated error", async () => {
    fake.addRule({ reply: [{ content: "half an ans", finishReason: "length" }, { content: "whole answer" }] });
    const { result, log } = await runLog(pipeline(`
stages:
  research: { agent: bot, prompt: "Write", retry: { attempts: 2, delay: 1ms } }
`));
    expect(result).toMatchObject({ status: "succeeded", output: { research: "whole answer" } });
    const f = log.find((e) => e.type === "stage_failed") as Extract<BatonEvent, { type: "stage_failed" }>;
    expect(f.error).toMatchObject({ kind: "truncated", retryable: true });
    expect(f.error.message).toMatch(/cut off at max_tokens \(200\).*raise agents\.bot\.max_tokens/);
  });

  it("native structured output: the schema goes as response_format; the final answer is validated", async () => {
    fake.addRule({ reply: { content: { score: 0.9 } } });
    const { result } = await runLog(pipeline(`
stages:
  verify: { agent: bot, prompt: "Score", output: { type: object, required: [score], properties: { score: { type: number } } } }
`));
    expect(result).toMatchObject({ status: "succeeded", output: { verify: { score: 0.9 } } });
    expect(fake.requests[0]!.responseFormat).toMatchObject({ type: "json_schema" });
  });

  it("ctx.step: completed steps are not run again on a retry; a repeated name is an error", async () => {
    process.env.FAIL_AFTER_STEPS = "1";
    try {
      const { result, log } = await runLog(pipeline(`
stages:
  enrich: { run: ./tools.mjs#stepper, input: { url: "https://x" }, retry: { attempts: 2, delay: 1ms } }
`));
      expect(calls("step-fetch")).toHaveLength(1);
      expect(calls("step-extract")).toHaveLength(1);
      const enrich = log.find((e) => e.type === "stage_succeeded" && e.stage === "enrich") as unknown as { output: unknown; replayed?: string[] };
      expect(enrich.output).toEqual({ facts: "PAGE OF HTTPS://X" });
      expect(enrich.replayed).toEqual(["fetch", "extract"]);
      expect(result.status).toBe("succeeded");
      const dup = await runLog(pipeline(`
stages:
  dup: { run: ./tools.mjs#dupStep, retry: { attempts: 3, delay: 1ms } }
`));
      expect(dup.result.status).toBe("failed");
      expect(dup.result.error?.message).toBe("stage 'dup': step name 'x' is used twice in one execution; give every ctx.step a unique name");
      expect(dup.log.filter((e) => e.type === "stage_failed")).toHaveLength(1); // not retried
    } finally {
      delete process.env.FAIL_AFTER_STEPS;
    }
  });

  it("ctx.agent runs a declared agent's loop from a handler, its turns recorded under the handler's step name", async () => {
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "d1", name: "double", arguments: { x: 5 } }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "ten" } });
    const { result, log } = await runLog(pipeline(`
stages:
  handler: { run: ./tools.mjs#withAgent, input: { topic: "tides" } }
`));
    expect(result).toMatchObject({ status: "succeeded", output: { handler: { answer: "ten" } } });
    expect(steps(log).map((e) => e.name)).toEqual(["agent:helper:1/turn:1", "agent:helper:1/call:d1", "agent:helper:1/turn:2"]);
    expect(fake.requests[0]!.tools.map((t) => t.name)).toEqual(["double"]);
  });

  it("approval: a call waits for a human; approve --call runs it, and the loop goes on from its recorded turn", async () => {
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "p1", name: "publish", arguments: { title: "Tides" } }, { id: "s1", name: "search", arguments: { query: "q" } }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "done" } });
    const store = new MemoryStore();
    const p = pipeline(`
stages:
  report: { agent: bot, prompt: "Publish it" }
`);
    const first = await runLog(p, store);
    expect(first.result.status).toBe("waiting");
    const waiting = first.log.find((e) => e.type === "stage_waiting") as Extract<BatonEvent, { type: "stage_waiting" }>;
    expect(waiting.calls).toEqual([{ id: "p1", tool: "publish", args: { title: "Tides" }, message: "Publish 'Tides'?" }]);
    expect(calls("search")).toHaveLength(1); // the other call of the turn ran
    const rt = new Runtime({ store, planFor: () => p.plan } as never);
    try {
      const r = await rt.answer(first.result.id, "report", { approved: true, call: "p1", by: "ana" }, { plan: p.plan });
      const done = await r.handle!.done;
      expect(done).toMatchObject({ status: "succeeded", output: { report: "done" } });
    } finally {
      await rt.close();
    }
    expect(fake.requests.map((r) => lastRole(r))).toEqual(["user", "tool"]); // turn 1 was not sent again
    expect(calls("search")).toHaveLength(1);
    const tool = new Map(fake.requests[1]!.messages.filter((m) => m.role === "tool").map((m) => [m.toolCallId, m.content]));
    expect(JSON.parse(tool.get("p1")!)).toEqual({ published: "Tides" });
  });

  it("approval rejected: the model is told the user declined the call", async () => {
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "p1", name: "publish", arguments: { title: "X" } }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "ok, not published" } });
    const store = new MemoryStore();
    const p = pipeline(`
stages:
  report: { agent: bot, prompt: "Publish it" }
`);
    const first = await runLog(p, store);
    expect(first.result.status).toBe("waiting");
    const rt = new Runtime({ store } as never);
    try {
      const r = await rt.answer(first.result.id, "report", { approved: false, comment: "not yet" }, { plan: p.plan });
      expect(await r.handle!.done).toMatchObject({ status: "succeeded", output: { report: "ok, not published" } });
    } finally {
      await rt.close();
    }
    const tool = fake.requests[1]!.messages.find((m) => m.role === "tool")!;
    expect(tool.content).toBe("the user declined this call: not yet");
  });

  it("budget: every turn is held against the run's budget before the call", async () => {
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "c1", name: "double", arguments: { x: 1 } }], usage: { prompt_tokens: 300, completion_tokens: 50 } } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "never" } });
    const { result, log } = await runLog(pipeline(`
budget: { tokens: 700 }
stages:
  research: { agent: bot, prompt: "Research" }
`));
    // Turn 1 fits (estimate ≈ prompt + 200); turn 2 would need more than the 350 left.
    expect(result.status).toBe("failed");
    expect(result.error?.kind).toBe("budget");
    expect(result.error?.message).toMatch(/was not started: it could use up to [\d,]+ tokens and the run has 350 of its 700-token budget left/);
    expect(fake.requests).toHaveLength(1);
    expect(steps(log).map((e) => e.name)).toEqual(["turn:1", "call:c1"]);
  });

  it("streaming: with a live view the turn streams (fake server and the offline mock: provider), and the output is the same", async () => {
    fake.addRule({ reply: { content: "a streamed answer in pieces" } });
    const deltas: string[] = [];
    const plan = compileSource(`
baton: 1
name: stream-test
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 200 }
  offline: { model: "mock:demo" }
stages:
  real: { agent: bot, prompt: "Stream it" }
  mock: { agent: offline, prompt: "Say something" }
`, { format: "yaml", baseDir: FIX });
    const p = { name: plan.name, plan, parseInputs: (x: unknown) => x as Record<string, unknown> };
    const r = await execute(p, {}, { store: new MemoryStore(), onDelta: (_run, _key, text) => deltas.push(text) });
    expect(r.status).toBe("succeeded");
    expect((r.output as { real: string }).real).toBe("a streamed answer in pieces");
    expect(fake.requests[0]!.stream).toBe(true);
    expect(deltas).toContain("a streamed answer in pieces");
    expect(deltas.length).toBeGreaterThan(2); // it arrived in pieces
    expect(typeof (r.output as { mock: string }).mock).toBe("string");
  });
});
