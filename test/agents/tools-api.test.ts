/**
 * Tools from the TypeScript API (SPEC §8 "The TS API offers the same"), and pools and budgets
 * across a fan-out of tool-using agents: every turn draws from the agent's pool, every call from
 * its tool's pool, and the run budget holds across concurrent loops.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import type { BatonEvent } from "../../src/engine/events.js";
import { definePipeline, execute, tool } from "../../src/index.js";
import { startFakeOpenAI, type FakeOpenAI, type FakeRequest } from "../../src/testing/index.js";
import { MemoryStore } from "../../src/store/memory.js";

let fake: FakeOpenAI;
beforeAll(async () => {
  fake = await startFakeOpenAI({ latencyMs: 5 });
  process.env.OPENAI_API_KEY = "sk-test";
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => fake.reset());

const lastRole = (r: FakeRequest): string | undefined => r.messages.at(-1)?.role;

describe("tools from the TypeScript API", () => {
  it("tool({ input: z.object, run(args, ctx) }) is offered with its JSON Schema and called with validated args", async () => {
    const seen: { args: unknown; key: string }[] = [];
    const lookup = tool({
      description: "Look a word up",
      input: z.object({ word: z.string() }),
      run: async (args, ctx) => {
        seen.push({ args, key: ctx.idempotencyKey });
        return { definition: `${args.word}: the rise and fall of the sea` };
      },
    });
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "w1", name: "lookup", arguments: { word: "tide" } }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "defined" } });
    const p = definePipeline({
      name: "ts-tools",
      tools: { lookup },
      agents: { bot: { model: "openai:gpt-4o-mini", base_url: fake.url, tools: ["lookup"] } },
      stages: { ask: { agent: "bot", prompt: "Define tide" } },
      output: "ask",
    });
    const r = await execute(p, {}, { store: new MemoryStore() });
    expect(r).toMatchObject({ status: "succeeded", output: "defined" });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.args).toEqual({ word: "tide" });
    expect(seen[0]!.key).toMatch(/:call:w1$/);
    expect(fake.requests[0]!.tools[0]).toMatchObject({ name: "lookup", description: "Look a word up", parameters: { type: "object", properties: { word: { type: "string" } }, required: ["word"] } });
  });
});

describe("pools and budgets across a fan-out of tool-using agents", () => {
  it("turns go through the agent's pool (concurrency 2) and calls through the tool's pool (concurrency 1)", async () => {
    let inTool = 0;
    let maxInTool = 0;
    const slowTool = tool({
      description: "A slow lookup",
      input: z.object({ n: z.number() }),
      limit: "web",
      run: async ({ n }) => {
        inTool++;
        maxInTool = Math.max(maxInTool, inTool);
        await new Promise((r) => setTimeout(r, 10));
        inTool--;
        return n * 10;
      },
    });
    let inFlight = 0;
    let maxInFlight = 0;
    fake.addRule({
      match: (r) => lastRole(r) === "user",
      reply: (r) => ({ toolCalls: [{ name: "slow", arguments: { n: Number(/item (\d+)/.exec(r.prompt)![1]) } }], latencyMs: 15 }),
    });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: (r) => ({ content: `got ${r.messages.at(-1)!.content}`, latencyMs: 15 }) });
    const events: BatonEvent[] = [];
    const p = definePipeline({
      name: "fanout-tools",
      limits: { llm: { concurrency: 2 }, web: { concurrency: 1 } },
      tools: { slow: slowTool },
      agents: { bot: { model: "openai:gpt-4o-mini", base_url: fake.url, tools: ["slow"], limit: "llm" } },
      stages: {
        items: { value: "[1, 2, 3, 4, 5, 6]" },
        each: { for_each: "items", agent: "bot", prompt: "Handle item {{ item }}" },
      },
      output: "each",
    });
    // Count concurrent provider requests from the server's side.
    const poll = setInterval(() => {
      // requests that arrived but whose turn has not been recorded yet are in flight
      const started = fake.requests.length;
      const done = events.filter((e) => e.type === "step_recorded" && e.kind === "turn").length;
      inFlight = started - done;
      maxInFlight = Math.max(maxInFlight, inFlight);
    }, 1);
    try {
      const r = await execute(p, {}, { store: new MemoryStore(), onEvents: (_id, es) => events.push(...es) });
      expect(r).toMatchObject({ status: "succeeded", output: ["got 10", "got 20", "got 30", "got 40", "got 50", "got 60"] });
    } finally {
      clearInterval(poll);
    }
    expect(fake.requests).toHaveLength(12);
    expect(maxInFlight).toBeLessThanOrEqual(2);
    expect(maxInTool).toBe(1);
    // Each turn waited for the pool when it had to: the outcome records the pool the stage drew from.
    const turns = events.filter((e) => e.type === "step_recorded" && e.kind === "turn");
    expect(turns).toHaveLength(12);
  });

  it("the run budget holds across concurrent loops: later turns are refused before the call once it is used up", async () => {
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ name: "noop", arguments: {} }], usage: { prompt_tokens: 10, completion_tokens: 100 } } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "done", usage: { prompt_tokens: 10, completion_tokens: 100 } } });
    const noop = tool({ description: "Nothing", input: z.object({}), run: async () => "ok" });
    const p = definePipeline({
      name: "budget-tools",
      budget: { tokens: 700 },
      tools: { noop },
      agents: { bot: { model: "openai:gpt-4o-mini", base_url: fake.url, tools: ["noop"], max_tokens: 100 } },
      stages: {
        items: { value: "[1, 2, 3, 4, 5, 6, 7, 8]" },
        each: { for_each: "items", agent: "bot", prompt: "Item {{ item }}", on_error: "continue" },
      },
      output: "each",
    });
    const events: BatonEvent[] = [];
    const r = await execute(p, {}, { store: new MemoryStore(), onEvents: (_id, es) => events.push(...es) });
    expect(r.status).toBe("succeeded");
    const used = events.filter((e) => e.type === "step_recorded" && e.kind === "turn").reduce((a, e) => a + (e as { tokens: { input: number; output: number } }).tokens.input + (e as { tokens: { input: number; output: number } }).tokens.output, 0);
    expect(used).toBeLessThanOrEqual(700); // never overshot, though 8 loops ran at once (estimates ≥ reported use)
    const refused = events.filter((e) => e.type === "stage_failed" && (e as { error: { kind: string } }).error.kind === "budget");
    expect(refused.length).toBeGreaterThan(0);
    expect(fake.requests.length).toBe(events.filter((e) => e.type === "step_recorded" && e.kind === "turn").length);
  });
});
