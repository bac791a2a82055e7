/**
 * Issue 15 item 2: waiting for a pool never counts against a stage's per-attempt `timeout:` — on
 * every path that waits (an agent's turns, a stage's own lease, `ctx.agent` in a `run:` stage, a
 * for_each item), and the wait shows in the trace (pool, key, waited ms, reason) and to live views.
 *
 * On vitest's fake timers (the pools' real clock, the attempt timers and Date all run on them):
 * an rpm-1 pool makes the second call wait a whole (simulated) 61-second window, twelve times the
 * 5 s timeout. Assertions are on outcomes and trace fields, never on how long anything took.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { MemoryStore, Runtime } from "../../src/index.js";
import { Pools } from "../../src/runtime/pools.js";
import type { PoolWait } from "../../src/runtime/attempt.js";
import { compileSource } from "../../src/template/index.js";
import { buildTrace, renderTrace } from "../../src/trace/index.js";
import type { RunResult } from "../../src/runtime/runtime.js";

const dir = mkdtempSync(join(tmpdir(), "baton-pool-timeout-"));
writeFileSync(
  join(dir, "handlers.mjs"),
  `export async function viaAgent(ctx) { return ctx.agent("bot", { prompt: "item " + ctx.item }); }
export async function plain(ctx) { return "done " + ctx.item; }
export async function twoAgents(ctx) { return [await ctx.agent("bot", { prompt: "one" }), await ctx.agent("slowbot", { prompt: "two" })]; }
export async function agentsAndWork(ctx) {
  const nap = () => new Promise((r) => setTimeout(r, 3000));
  await ctx.agent("bot", { prompt: "one" }); await nap();
  await ctx.agent("bot", { prompt: "two" }); await nap();
  return "never: 6 s of work against a 5 s timeout";
}
export function hang(ctx) { return new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))); }
`,
);

const head = (limits: string) => `
baton: 1
name: pool-timeout
limits: { ${limits} }
agents:
  bot: { model: "mock:echo", max_tokens: 50, limit: llm }
stages:
`;

const plan = (text: string) => compileSource(text, { format: "yaml", baseDir: dir });

// Everything a run loads lazily (the agent loop, the model client, the handler module) is loaded
// once on real timers first: on fake timers only the clock moves, and nothing but it is awaited.
beforeAll(async () => {
  const rt = new Runtime({ store: new MemoryStore(), pools: new Pools() });
  const h = await rt.start(plan(head("llm: { rpm: 100 }") + `
  a: { agent: bot, prompt: "warm up" }
  b: { run: ./handlers.mjs#viaAgent }
  c: { run: ./handlers.mjs#plain, limit: { pool: llm, key: "k" } }
`), {});
  expect((await h.done).status).toBe("succeeded");
  await rt.close();
}, 60_000);

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "setImmediate", "clearImmediate", "Date"] });
});
afterEach(async () => {
  // Fire what is still due (the driver's end-of-slice setImmediate among it: left unfired, its
  // module-level flag would defer every later step of the process forever).
  await vi.advanceTimersByTimeAsync(10);
  vi.useRealTimers();
});

/** Drive a run on the fake clock until it stops (at most `capMs` of simulated time). */
async function runToEnd(rt: Runtime, text: string, capMs = 10 * 60_000): Promise<RunResult & { events: unknown[] }> {
  const p = plan(text);
  // (start itself may yield to the event loop through a timer: it is awaited on the fake clock too)
  let id: string | undefined;
  let result: RunResult | undefined;
  void rt.start(p, {}).then((h) => {
    id = h.id;
    return h.done.then((r) => (result = r));
  });
  for (let t = 0; result === undefined && t < capMs; t += 1000) await vi.advanceTimersByTimeAsync(1000);
  expect(result, "the run stopped within the simulated cap").toBeDefined();
  const { events } = await rt.store.load(id!);
  return { ...result!, events };
}

function traceOf(events: unknown[]) {
  return buildTrace(events as never, { now: Date.now() } as never);
}

describe("a pool's wait does not count against the attempt timeout (issue 15.2)", () => {
  it("agent stage, for_each of 2 through an rpm-1 pool, timeout 5s: both items succeed at their first attempt; the trace shows the wait", async () => {
    const waits: { key: string; w: PoolWait }[] = [];
    const rt = new Runtime({ store: new MemoryStore(), pools: new Pools(), onPoolWait: (_id, key, w) => waits.push({ key, w }) });
    const r = await runToEnd(rt, head("llm: { rpm: 1 }") + `
  fan:
    for_each: "[1, 2]"
    agent: bot
    prompt: "item {{ item }}"
    timeout: 5s
    retry: { attempts: 1 }
`);
    expect(r.error?.message).toBeUndefined();
    expect(r.status).toBe("succeeded");
    const t = traceOf(r.events);
    const items = t.stages.filter((s) => s.stage === "fan" && s.item !== undefined);
    expect(items).toHaveLength(2);
    expect(items.every((s) => s.status === "succeeded" && s.attempts.length === 1)).toBe(true);
    // One of them waited for the window: the trace names the pool, the wait and why.
    const waited = items.find((s) => s.waited_for !== undefined);
    expect(waited).toBeDefined();
    expect(waited).toMatchObject({ pool: "llm", waited_for: "pool 'llm' at its 1 requests per minute" });
    expect(waited!.pool_wait_ms!).toBeGreaterThan(5000); // longer than the timeout, and it still succeeded
    const text = renderTrace(t, { color: false } as never);
    expect(text).toMatch(/\n {4}waited [^\n]+ for pool llm: pool 'llm' at its 1 requests per minute\n/);
    expect(text.match(/waited .* for pool/g)).toHaveLength(1); // the item granted at once has no such line
    // Live views were told while it waited, and when the pool granted.
    expect(waits.map((x) => x.w.state)).toEqual(["waiting", "granted"]);
    expect(waits[0]!.w).toMatchObject({ pool: "llm", limit: "rpm", reason: "pool 'llm' at its 1 requests per minute" });
    expect(waits[0]!.key).toMatch(/^fan#1\[[01]\]$/);
    expect(waits[1]!.w.waitedMs).toBe(waited!.pool_wait_ms);
    await rt.close();
  });

  it("a run: stage's ctx.agent waits for its agent's pool without timing out (and the trace names that pool)", async () => {
    const rt = new Runtime({ store: new MemoryStore(), pools: new Pools() });
    const r = await runToEnd(rt, head("llm: { rpm: 1 }") + `
  fan:
    for_each: "[1, 2]"
    run: ./handlers.mjs#viaAgent
    timeout: 5s
    retry: { attempts: 1 }
`);
    expect(r.error?.message).toBeUndefined();
    expect(r.status).toBe("succeeded");
    const items = traceOf(r.events).stages.filter((s) => s.stage === "fan" && s.item !== undefined);
    expect(items.every((s) => s.status === "succeeded" && s.attempts.length === 1)).toBe(true);
    expect(items.find((s) => s.waited_for !== undefined)).toMatchObject({ pool: "llm", waited_for: "pool 'llm' at its 1 requests per minute" });
    await rt.close();
  });

  it("a stage that holds its own lease (limit: on a run: stage, as http stages do) starts its timeout at the grant; a keyed pool shows its key", async () => {
    const rt = new Runtime({ store: new MemoryStore(), pools: new Pools() });
    const r = await runToEnd(rt, head("llm: { rpm: 1 }") + `
  fan:
    for_each: "[1, 2]"
    run: ./handlers.mjs#plain
    limit: { pool: llm, key: "acme" }
    timeout: 5s
    retry: { attempts: 1 }
`);
    expect(r.error?.message).toBeUndefined();
    expect(r.status).toBe("succeeded");
    const items = traceOf(r.events).stages.filter((s) => s.stage === "fan" && s.item !== undefined);
    expect(items.every((s) => s.status === "succeeded" && s.attempts.length === 1)).toBe(true);
    expect(items.find((s) => s.waited_for !== undefined)).toMatchObject({ pool: "llm", pool_key: "acme", waited_for: "pool 'llm' (key 'acme') at its 1 requests per minute" });
    await rt.close();
  });

  it("an attempt that draws from two pools: the trace names the one that held it back, with the waits added up", async () => {
    const rt = new Runtime({ store: new MemoryStore(), pools: new Pools() });
    const r = await runToEnd(rt, `
baton: 1
name: two-pools
limits: { llm: { rpm: 100 }, slow: { rpm: 1 } }
agents:
  bot: { model: "mock:echo", max_tokens: 50, limit: llm }
  slowbot: { model: "mock:echo", max_tokens: 50, limit: slow }
stages:
  warm: { agent: slowbot, prompt: "uses slow's one request of the minute" }
  two: { needs: [warm], run: ./handlers.mjs#twoAgents, timeout: 5s, retry: { attempts: 1 } }
`);
    expect(r.error?.message).toBeUndefined();
    expect(r.status).toBe("succeeded");
    const two = traceOf(r.events).stages.find((s) => s.stage === "two")!;
    expect(two.attempts).toHaveLength(1);
    expect(two).toMatchObject({ pool: "slow", waited_for: "pool 'slow' at its 1 requests per minute" });
    expect(two.pool_wait_ms!).toBeGreaterThan(5000);
    await rt.close();
  });

  it("a pool that grants at once does not restart the timeout: it still bounds all of an attempt's calls", async () => {
    const rt = new Runtime({ store: new MemoryStore(), pools: new Pools() });
    const r = await runToEnd(rt, head("llm: { rpm: 100 }") + `
  work: { run: ./handlers.mjs#agentsAndWork, timeout: 5s, retry: { attempts: 1 } }
`);
    expect(r.status).toBe("failed");
    expect(r.error?.message).toContain("timed out after 5000 ms");
    await rt.close();
  });

  it("the timeout still bounds the call itself after the grant", async () => {
    const rt = new Runtime({ store: new MemoryStore(), pools: new Pools() });
    const r = await runToEnd(rt, head("llm: { rpm: 1 }") + `
  first: { run: ./handlers.mjs#plain, limit: llm }
  slow: { needs: [first], run: ./handlers.mjs#hang, limit: llm, timeout: 5s, retry: { attempts: 1 } }
`);
    expect(r.status).toBe("failed");
    expect(r.error?.message).toContain("timed out after 5000 ms");
    const slow = traceOf(r.events).stages.find((s) => s.stage === "slow")!;
    expect(slow.attempts).toHaveLength(1);
    expect(slow.pool_wait_ms!).toBeGreaterThan(5000); // it waited for the window, then timed out in its call
    await rt.close();
  });
});
