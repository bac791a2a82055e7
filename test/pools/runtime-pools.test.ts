/** Pools through the runtime and the real provider client, against the fake server. */
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { execute, Runtime, MemoryStore } from "../../src/index.js";
import { Pools } from "../../src/runtime/pools.js";
import { compileSource } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI } from "../../src/testing/index.js";
import type { Pipeline } from "../../src/api/pipeline.js";
import type { BatonEvent } from "../../src/engine/events.js";
import { SimClock } from "./sim-clock.js";
import { buildTrace } from "../../src/trace/index.js";

let fake: FakeOpenAI;
beforeAll(async () => {
  fake = await startFakeOpenAI({ latencyMs: 30 });
  process.env.OPENAI_API_KEY = "sk-test-pools-0000000000";
  process.env.FAKE_URL = fake.url;
});
afterAll(async () => {
  await fake.close();
});

function pipe(text: string): Pipeline<Record<string, unknown>, unknown> {
  const plan = compileSource(text, { format: "yaml", baseDir: resolve("test/fixtures/pipeline") });
  return { name: plan.name, plan, parseInputs: (r) => r as Record<string, unknown> };
}

/** Most requests in flight at the fake at once (each answers after its latency). */
function maxOverlap(latency: number): number {
  const times = fake.requests.map((r) => r.at).sort((a, b) => a - b);
  let best = 0;
  for (let i = 0; i < times.length; i++) best = Math.max(best, times.filter((t) => t >= times[i]! && t < times[i]! + latency - 2).length);
  return best;
}

const agents = (limits: string, limit = "llm") => `
baton: 1
name: pooled
limits: { ${limits} }
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${process.env.FAKE_URL}", max_tokens: 50, limit: ${limit} }
`;

describe("pools in the runtime", () => {
  it("a pool's concurrency holds across concurrent runs and nested sub-pipelines", async () => {
    fake.reset();
    const p = pipe(agents("llm: { concurrency: 2 }") + `
stages:
  a: { agent: bot, prompt: "a" }
  b: { agent: bot, prompt: "b" }
  c: { agent: bot, prompt: "c" }
  nested:
    for_each: "[1, 2]"
    pipeline: ./fanout-child.yaml
    inputs: { n: "{{ item }}" }
`);
    const pools = new Pools();
    const runs = await Promise.all(Array.from({ length: 4 }, () => execute(p, {}, { store: new MemoryStore() })));
    void pools;
    expect(runs.every((r) => r.status === "succeeded")).toBe(true);
    expect(fake.requests).toHaveLength(4 * (3 + 2 * 3));
    expect(maxOverlap(30)).toBeLessThanOrEqual(2);
  });

  it("rpm: calls wait for the window instead of hitting the provider's limit (simulated minute)", async () => {
    fake.reset();
    const clock = new SimClock();
    const limited = await startFakeOpenAI({ limits: { rpm: 5 }, now: () => clock.now() });
    try {
      const text = agents("llm: { rpm: 5 }").replace(process.env.FAKE_URL!, limited.url) + `
stages:
  call: { agent: bot, prompt: "hello", retry: { attempts: 1 } }
`;
      const p = pipe(text);
      const rt = new Runtime({ store: new MemoryStore(), pools: new Pools(clock) });
      const handles = await Promise.all(Array.from({ length: 8 }, () => rt.start(p.plan, {})));
      await vi.waitFor(() => expect(limited.requests.length).toBeGreaterThanOrEqual(5), { timeout: 10_000, interval: 10 });
      await new Promise((r) => setTimeout(r, 50)); // …and no sixth within the simulated minute
      expect(limited.requests).toHaveLength(5);
      await clock.advance(61_000);
      const results = await Promise.all(handles.map((h) => h.done));
      expect(results.every((r) => r.status === "succeeded")).toBe(true);
      expect(limited.requests).toHaveLength(8);
      expect(limited.stats.rateLimited).toBe(0);
      await rt.close();
    } finally {
      await limited.close();
    }
  });

  it("a 429 with Retry-After pauses the whole pool, so parallel branches stop calling", async () => {
    fake.reset();
    fake.addRule({ match: "first", times: 1, reply: { status: 429, retryAfter: 1, content: "slow down" } });
    const p = pipe(agents("llm: { concurrency: 4 }") + `
defaults: { retry: { attempts: 3, delay: 10ms } }
stages:
  first: { agent: bot, prompt: "first" }
  later1: { agent: bot, prompt: "later", needs: [gate] }
  later2: { agent: bot, prompt: "later", needs: [gate] }
  gate: { run: ../cli/slow.mjs#slow, input: { ms: 100 } }
`);
    const log: BatonEvent[] = [];
    const r = await execute(p, {}, { store: new MemoryStore(), onEvents: (_i, es) => log.push(...es) });
    expect(r.status).toBe("succeeded");
    const rejectedAt = fake.requests[0]!.at;
    // Nothing else reached the provider until the Retry-After had passed.
    for (const q of fake.requests.slice(1)) expect(q.at - rejectedAt).toBeGreaterThanOrEqual(990);
    // (how long each waited depends on when `gate` ended, which a loaded machine delays: only that they did, and why)
    const waited = log.filter((e) => e.type === "stage_succeeded" && e.stage.startsWith("later")) as { pool_wait_ms?: number; pool_wait_reason?: string }[];
    expect(waited.some((e) => (e.pool_wait_ms ?? 0) > 0 && /paused by the provider/.test(e.pool_wait_reason ?? ""))).toBe(true);
    // The trace shows the wait: queued_ms includes it, waited_for says why.
    const trace = buildTrace(log);
    const later = trace.stages.filter((x) => x.stage.startsWith("later"));
    expect(later.every((x) => x.pool === "llm")).toBe(true);
    expect(later.some((x) => (x.queued_ms ?? 0) > 0 && /paused by the provider/.test(x.waited_for ?? ""))).toBe(true);
  });

  it("the stage on the longest remaining path goes first when stages wait on one pool", async () => {
    fake.reset();
    const p = pipe(agents("llm: { concurrency: 1 }") + `
stages:
  short: { agent: bot, prompt: "short" }
  a1: { agent: bot, prompt: "a1" }
  a2: { agent: bot, prompt: "a2 {{ a1 }}" }
  a3: { agent: bot, prompt: "a3 {{ a2 }}" }
`);
    const r = await execute(p, {}, { store: new MemoryStore() });
    expect(r.status).toBe("succeeded");
    expect(fake.requests.map((q) => q.prompt.split(" ")[0])).toEqual(["a1", "short", "a2", "a3"]);
  });

  it("run budgets hold under concurrency: reservations keep parallel calls within the budget", async () => {
    fake.reset();
    // The provider counts the prompt as we do (10 tokens) and the reply uses all of max_tokens.
    fake.addRule({ reply: { content: "ok", usage: { prompt_tokens: 10, completion_tokens: 50 } } });
    const stages = Array.from({ length: 10 }, (_, i) => `  s${i}: { agent: bot, prompt: "call ${i}", on_error: continue }`).join("\n");
    const p = pipe(agents("llm: { concurrency: 10 }") + `budget: { tokens: 300 }\nstages:\n${stages}\n`);
    const log: BatonEvent[] = [];
    const r = await execute(p, {}, { store: new MemoryStore(), onEvents: (_i, es) => log.push(...es) });
    expect(r.status).toBe("succeeded");
    const used = log.reduce((a, e) => a + (e.type === "stage_succeeded" && e.tokens ? e.tokens.input + e.tokens.output : 0), 0);
    expect(used).toBeLessThanOrEqual(300);
    expect(fake.requests.length).toBeGreaterThan(0);
    expect(fake.requests.length).toBeLessThan(10);
    expect(log.some((e) => e.type === "stage_failed" && e.error.kind === "budget")).toBe(true);
  });
});
