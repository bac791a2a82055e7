/**
 * Fault injection: 20% of agent calls fail at random — 429 with and without Retry-After, 500,
 * timeouts (hung requests), malformed JSON, reset connections — across 100 runs. Every run
 * completes within its retry budget, and the error log accounts for every injected failure.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { MemoryStore, Runtime } from "../../src/index.js";
import { compileSource } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI, type FakeReply } from "../../src/testing/index.js";
import { buildTrace } from "../../src/trace/index.js";

let fake: FakeOpenAI;
let injected = 0;
const kinds: Record<string, number> = {};
// Deterministic pseudo-random faults (mulberry32).
let seed = 0x5eed;
const rand = (): number => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const FAULTS: [string, FakeReply][] = [
  ["429+retry-after", { status: 429, retryAfter: 1, content: "rate limited" }],
  ["429", { status: 429, content: "rate limited" }],
  ["500", { status: 500, content: "boom" }],
  ["hang", { hang: true }],
  ["malformed", { malformed: true }],
  ["reset", { resetConnection: true }],
];

beforeAll(async () => {
  fake = await startFakeOpenAI({
    defaultReply: () => {
      if (rand() < 0.2) {
        const [name, reply] = FAULTS[Math.floor(rand() * FAULTS.length)]!;
        // Retry-After pauses are real seconds: keep them rare so the test stays short.
        if (name === "429+retry-after" && kinds[name]! >= 3) return { content: { ok: true } };
        injected++;
        kinds[name] = (kinds[name] ?? 0) + 1;
        return reply;
      }
      return { content: { ok: true } };
    },
  });
  process.env.OPENAI_API_KEY = "sk-test-faults-0000000000";
});
afterAll(async () => {
  await fake.close();
});

describe("fault injection", () => {
  it("100 runs with 20% of agent calls failing all complete, and every failure is in the error log", async () => {
    const plan = compileSource(`
baton: 1
name: faulty
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 20 }
defaults:
  retry: { attempts: 8, delay: 5ms, max_delay: 50ms }
  # Generous: only the injected hangs may time out, even on a loaded CI machine (a slower answer
  # timing out would be a failure nobody injected).
  timeout: 5s
stages:
  a: { agent: bot, prompt: "a", output: { type: object } }
  b: { agent: bot, prompt: "b {{ a.ok }}", output: { type: object } }
  c: { agent: bot, prompt: "c {{ a.ok }}", output: { type: object } }
  d: { agent: bot, prompt: "d {{ b.ok }} {{ c.ok }}", output: { type: object } }
output: "d.ok"
`, { format: "yaml", baseDir: "." });
    const store = new MemoryStore();
    const logs = new Map<string, BatonEvent[]>();
    const rt = new Runtime({ store, onEvents: (id, es) => logs.set(id, [...(logs.get(id) ?? []), ...es]) });
    // Warm up (the AI SDK loads on the first agent call) without injecting faults.
    const saved = seed;
    const warm = injected;
    await (await rt.start(plan, {})).done;
    logs.clear();
    injected = warm;
    seed = saved;
    const handles = await Promise.all(Array.from({ length: 100 }, () => rt.start(plan, {})));
    const results = await Promise.all(handles.map((h) => h.done));
    await rt.close();
    expect(results.filter((r) => r.status !== "succeeded").map((r) => r.error)).toEqual([]);
    let logged = 0;
    const byKind: Record<string, number> = {};
    for (const r of results) {
      const trace = buildTrace(logs.get(r.id)!);
      logged += trace.errors.filter((e) => e.attempt !== null).length;
      for (const e of trace.errors) byKind[`${e.kind}:${e.message.slice(0, 60)}`] = (byKind[`${e.kind}:${e.message.slice(0, 60)}`] ?? 0) + 1;
      expect(trace.errors.every((e) => e.recovered)).toBe(true);
    }
    // Every injected fault became exactly one failed attempt in some run's error log.
    expect(injected).toBeGreaterThan(60);
    expect(logged).toBe(injected);
    console.log(`fault injection: ${injected} faults injected (${JSON.stringify(kinds)}), ${logged} logged, all recovered, 100/100 runs succeeded`);
  }, 60_000);
});
