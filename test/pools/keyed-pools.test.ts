/**
 * Keyed limits (`limit: { pool, key }`, issue 12 item 7): an instance of the pool per key, so one
 * tenant's queue never delays another's calls. Orders of starts and counts only (no wall clock).
 */
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { MemoryStore, Runtime } from "../../src/index.js";
import { Pools } from "../../src/runtime/pools.js";
import { compileSource, validateFile } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI } from "../../src/testing/index.js";
import { buildTrace } from "../../src/trace/index.js";
import { SimClock } from "./sim-clock.js";

const g = globalThis as unknown as { __keyedPools: { starts: string[]; gate: Promise<void> } };
let open: () => void = () => undefined;
function resetGate(): void {
  g.__keyedPools = { starts: [], gate: new Promise<void>((r) => (open = r)) };
}

const work = (limit: string): string => `
baton: 1
name: keyed
inputs: { tenant: { type: string }, n: { type: integer } }
limits: { llm: { concurrency: 1 } }
stages:
  work:
    for_each: "[1..inputs.n]"
    input: "{{ inputs.tenant & '-' & $string(item) }}"
    run: ./keyed-work.mjs#work
    limit: ${limit}
`;

const plan = (text: string) => compileSource(text, { format: "yaml", baseDir: resolve("test/fixtures/pools") });

describe("keyed pools (embedded)", () => {
  it("a pool instance per key: each has the pool's limits, and keyed instances are apart from the pool itself", async () => {
    const pools = new Pools();
    pools.define({ llm: { concurrency: 1 } });
    const a = pools.get("llm", "a")!;
    expect(pools.get("llm", "a")).toBe(a);
    expect(pools.get("llm", "b")).not.toBe(a);
    expect(pools.get("llm")).not.toBe(a);
    expect(a.spec).toEqual({ concurrency: 1 });
    const starts: string[] = [];
    const leases = [...Array.from({ length: 11 }, (_, i) => a.acquire({ priority: 0, tokens: 0 }).then((l) => (starts.push(`a${i}`), l)))];
    await vi.waitFor(() => expect(starts).toEqual(["a0"]));
    const b = await pools.get("llm", "b")!.acquire({ priority: 0, tokens: 0 });
    starts.push("b0");
    expect(starts).toEqual(["a0", "b0"]); // b did not wait behind a's ten queued calls
    expect(b.key).toBe("b");
    expect(pools.get("llm", "a")!.stats()).toMatchObject({ inflight: 1, waiting: 10 });
    for (let i = 0; i < 11; i++) (await leases[i]!).release();
    b.release();
    expect(starts).toHaveLength(12);
    expect([...pools.keys("llm")].sort()).toEqual(["a", "b"]);
  });

  it("tenant A's 10 queued calls do not delay tenant B's first call (order of starts); the trace names pool and key", async () => {
    resetGate();
    const rt = new Runtime({ store: new MemoryStore(), pools: new Pools() });
    const p = plan(work(`{ pool: llm, key: "{{ inputs.tenant }}" }`));
    const a = await rt.start(p, { tenant: "A", n: 10 });
    await vi.waitFor(() => expect(g.__keyedPools.starts).toHaveLength(1));
    const b = await rt.start(p, { tenant: "B", n: 1 });
    await vi.waitFor(() => expect(g.__keyedPools.starts).toHaveLength(2));
    expect(g.__keyedPools.starts[1]).toBe("B-1");
    open();
    const [ra, rb] = await Promise.all([a.done, b.done]);
    expect(ra.status).toBe("succeeded");
    expect(rb.status).toBe("succeeded");
    expect(g.__keyedPools.starts).toHaveLength(11);
    // A's items ran one at a time (its own instance has concurrency 1), in their own order after B's.
    expect(g.__keyedPools.starts.filter((s) => s.startsWith("A-"))).toHaveLength(10);
    const trace = buildTrace((await rt.store.load(ra.id)).events);
    const items = trace.stages.filter((x) => x.stage === "work" && x.item !== undefined);
    expect(items).toHaveLength(10);
    expect(items.every((x) => x.pool === "llm" && x.pool_key === "A")).toBe(true);
    expect(items.some((x) => /pool 'llm' \(key 'A'\) at its concurrency of 1/.test(x.waited_for ?? ""))).toBe(true);
    await rt.close();
  });

  it("control: with the plain form one instance serves both tenants, and B's call waits behind A's queue", async () => {
    resetGate();
    const rt = new Runtime({ store: new MemoryStore(), pools: new Pools() });
    const p = plan(work("llm"));
    const a = await rt.start(p, { tenant: "A", n: 10 });
    await vi.waitFor(() => expect(g.__keyedPools.starts).toHaveLength(1));
    const b = await rt.start(p, { tenant: "B", n: 1 });
    open();
    await Promise.all([a.done, b.done]);
    expect(g.__keyedPools.starts).toHaveLength(11);
    expect(g.__keyedPools.starts.indexOf("B-1")).toBeGreaterThan(1);
    await rt.close();
  });

  it("per-key rpm: each key has the pool's requests per minute (simulated minute)", async () => {
    const clock = new SimClock();
    const pools = new Pools(clock);
    pools.define({ llm: { rpm: 2 } });
    const granted: string[] = [];
    const ask = (key: string, i: number) => pools.get("llm", key)!.acquire({ priority: 0, tokens: 0 }).then((l) => (granted.push(`${key}${i}`), l.release()));
    const all = [ask("a", 0), ask("a", 1), ask("a", 2), ask("b", 0), ask("b", 1)];
    await clock.advance(1);
    expect(granted.sort()).toEqual(["a0", "a1", "b0", "b1"]); // b's two are not counted against a's window
    await clock.advance(61_000);
    await Promise.all(all);
    expect(granted).toContain("a2");
  });

  it("a pool keeps at most maxKeys instances: idle ones are forgotten, busy ones are not", async () => {
    const clock = new SimClock();
    const pools = new Pools(clock, {}, "critical-path", 2);
    pools.define({ llm: { concurrency: 1 } });
    const x = await pools.get("llm", "x")!.acquire({ priority: 0, tokens: 0 });
    const y = await pools.get("llm", "y")!.acquire({ priority: 0, tokens: 0 });
    expect(() => pools.get("llm", "z")).toThrow(/pool 'llm': 2 keys are in use at once/);
    y.release();
    // y's request stays in its sliding window (a provider still counts it): not idle yet
    expect(() => pools.get("llm", "z")).toThrow(/2 keys are in use at once/);
    await clock.advance(61_001);
    expect(pools.get("llm", "z")).toBeDefined();
    expect([...pools.keys("llm")].sort()).toEqual(["x", "z"]); // x is still in flight: kept
    x.release();
  });
});

let fake: FakeOpenAI;
const clock = new SimClock();
beforeAll(async () => {
  fake = await startFakeOpenAI({ limits: { rpm: 100 }, now: () => clock.now() });
  process.env.OPENAI_API_KEY = "sk-test-keyed-pools-0000000000";
});
afterAll(async () => {
  await fake.close();
});

describe("keyed pools for agents and tools (fake OpenAI)", () => {
  it("an agent's keyed limit: tenant a at its 2 requests per minute does not hold tenant b back", async () => {
    fake.reset();
    const p = plan(`
baton: 1
name: keyed-agents
inputs: { tenant: { type: string } }
limits: { llm: { rpm: 2 } }
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 20, limit: { pool: llm, key: "{{ inputs.tenant }}" } }
stages:
  call: { agent: bot, prompt: "{{ inputs.tenant }}", retry: { attempts: 1 } }
`);
    const rt = new Runtime({ store: new MemoryStore(), pools: new Pools(clock) });
    const as = await Promise.all(Array.from({ length: 3 }, () => rt.start(p, { tenant: "a" })));
    await vi.waitFor(() => expect(fake.requests.length).toBe(2), { timeout: 10_000, interval: 10 });
    const bs = await Promise.all(Array.from({ length: 2 }, () => rt.start(p, { tenant: "b" })));
    await Promise.all(bs.map((h) => h.done));
    // b's two calls went out while a's third still waits for its window
    expect(fake.requests.map((r) => r.prompt).sort()).toEqual(["a", "a", "b", "b"]);
    await clock.advance(61_000);
    const results = await Promise.all(as.map((h) => h.done));
    expect(results.every((r) => r.status === "succeeded")).toBe(true);
    expect(fake.requests).toHaveLength(5);
    const trace = buildTrace((await rt.store.load(results[0]!.id)).events);
    expect(trace.stages[0]).toMatchObject({ pool: "llm", pool_key: "a" });
    await rt.close();
  });

  it("a tool's keyed limit is evaluated per call from its args: calls for another key do not wait", async () => {
    fake.reset();
    resetGate();
    fake.addRule({ match: (r) => r.messages.at(-1)?.role === "user", reply: { toolCalls: [
      { id: "c1", name: "lookup", arguments: { who: "x" } }, { id: "c2", name: "lookup", arguments: { who: "x" } }, { id: "c3", name: "lookup", arguments: { who: "y" } },
    ] } });
    fake.addRule({ match: (r) => r.messages.at(-1)?.role === "tool", reply: { content: "done" } });
    const p = plan(`
baton: 1
name: keyed-tools
limits: { llm: { concurrency: 1 } }
tools:
  lookup:
    description: look a thing up
    input: { type: object, properties: { who: { type: string } }, required: [who] }
    run: ./keyed-work.mjs#tool
    limit: { pool: llm, key: "{{ args.who }}" }
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 20, tools: [lookup] }
stages:
  ask: { agent: bot, prompt: "look them up" }
`);
    expect(p.tools.lookup!.limit).toBe("llm");
    const rt = new Runtime({ store: new MemoryStore(), pools: new Pools() });
    const h = await rt.start(p, {});
    await vi.waitFor(() => expect(g.__keyedPools.starts).toHaveLength(2), { timeout: 10_000, interval: 10 });
    // x's second call waits for x's instance; y's call did not wait behind it
    expect([...g.__keyedPools.starts].sort()).toEqual(["x", "y"]);
    open();
    const r = await h.done;
    expect(r.status).toBe("succeeded");
    expect([...g.__keyedPools.starts].sort()).toEqual(["x", "x", "y"]);
    await rt.close();
  });
});

describe("keyed limits in templates", () => {
  it("validation: unknown pool, a key that is not a string template, bad references in the key — each at file:line:col", () => {
    const file = resolve("test/fixtures/pools/bad-keyed.yaml");
    const lines = validateFile(file).map((d) => `${d.line}:${d.col}: ${d.message}`);
    expect(lines).toEqual([
      "6:54: unknown limit 'lm' (did you mean 'llm'?)",
      "12:41: unknown input 'tenantx' (did you mean 'tenant'?)",
      `14:45: limit key must be a string template, such as "{{ inputs.tenant }}" (got number)`,
      "15:35: unknown limit 'llmm' (did you mean 'llm'?)",
      "16:49: unknown stage or input 'nope' in expression (did you mean 'route'?)",
      "17:27: stage 'd': 'limit' must be a pool name or { pool, key }, got a mapping",
    ]);
  });

  it("compiles the keyed form on stages, agents and tools; the string form compiles (and hashes) as before", () => {
    const keyed = plan(`
baton: 1
name: k
inputs: { tenant: { type: string } }
limits: { llm: { concurrency: 1 } }
agents:
  bot: { model: "openai:gpt-4o-mini", limit: { pool: llm, key: "{{ inputs.tenant }}" } }
stages:
  first: { value: "inputs.tenant" }
  s: { value: "1", limit: { pool: llm, key: "{{ first }}-x" } }
  a: { agent: bot, prompt: "hi" }
`);
    const s = keyed.stages[keyed.stageIndex.get("s")!]!;
    expect(s.limit).toBe("llm");
    expect(s.limitKey?.evaluate({ first: "t1" })).toBe("t1-x");
    expect(s.deps).toContain(keyed.stageIndex.get("first")); // the key reads a stage: it waits for it
    const a = keyed.stages[keyed.stageIndex.get("a")!]!;
    expect(a.limit).toBe("llm");
    expect(a.limitKey?.evaluate({ inputs: { tenant: "t2" } })).toBe("t2");
    const plain = plan(`
baton: 1
name: k
limits: { llm: { concurrency: 1 } }
stages:
  s: { value: "1", limit: llm }
`);
    expect(plain.stages[0]!.limit).toBe("llm");
    expect("limitKey" in plain.stages[0]!).toBe(false);
  });
});

describe("keyed limits in the TypeScript API", () => {
  it("definePipeline takes limit: { pool, key } on a stage, and each key has its own instance", async () => {
    const { definePipeline } = await import("../../src/index.js");
    const { z } = await import("zod");
    resetGate();
    const starts: string[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const p = definePipeline({ name: "keyed-api", inputs: z.object({ tenant: z.string() }), limits: { llm: { concurrency: 1 } } })
      .stage("call", {
        limit: { pool: "llm", key: "{{ inputs.tenant }}" },
        run: async (ctx) => {
          starts.push(ctx.inputs.tenant);
          await gate;
          return ctx.inputs.tenant;
        },
      })
      .returns("call");
    const st = p.plan.stages[0]!;
    expect(st.limit).toBe("llm");
    expect(st.limitKey).toBeDefined();
    const rt = new Runtime({ store: new MemoryStore(), pools: new Pools() });
    const hs = [await rt.start(p.plan, { tenant: "a" }), await rt.start(p.plan, { tenant: "a" }), await rt.start(p.plan, { tenant: "b" })];
    await vi.waitFor(() => expect([...starts].sort()).toEqual(["a", "b"])); // the second 'a' waits for a's instance
    release();
    const rs = await Promise.all(hs.map((h) => h.done));
    expect(rs.every((r) => r.status === "succeeded")).toBe(true);
    expect(starts).toHaveLength(3);
    await rt.close();
  });
});
