/**
 * The pools' grant policy (src/runtime/pools.ts header, issue 14.4), on a simulated clock:
 * order (older runs first, the critical path within a run, first come first served), the aging
 * bound (nothing starves), and pacing (a window's capacity spread, not spent in one burst).
 */
import fc from "fast-check";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AGING_MS, BURST, Pool, Pools, type PoolLease } from "../../src/runtime/pools.js";
import { MemoryStore, Runtime } from "../../src/index.js";
import { newRunId } from "../../src/runtime/runtime.js";
import { compileSource } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI } from "../../src/testing/index.js";
import { flush, SimClock } from "./sim-clock.js";

describe("grant order", () => {
  it("older runs first (a child run right after its parent), the longest remaining path within a run, ties first come, first served", async () => {
    const clock = new SimClock();
    const pool = new Pool("llm", { concurrency: 1 }, clock);
    const hold = await pool.acquire({ priority: 0, tokens: 0 });
    const older = newRunId(1_700_000_000_000);
    const younger = newRunId(1_700_000_000_001);
    const order: string[] = [];
    const ask = (label: string, run: string, priority: number) =>
      void pool.acquire({ priority, tokens: 0, label, run }).then((l) => { order.push(label); l.release(); });
    ask("young-long", younger, 50_000);
    ask("old-short", older, 100);
    ask("old-child", `${older}~fan~0`, 90_000);
    ask("old-long-a", older, 3_000);
    ask("old-long-b", older, 3_000);
    ask("young-short", younger, 10);
    await flush();
    hold.release();
    await flush();
    expect(order).toEqual(["old-long-a", "old-long-b", "old-short", "old-child", "young-long", "young-short"]);
  });

  it('order "fifo" serves arrival order whatever the run and the path', async () => {
    const clock = new SimClock();
    const pool = new Pool("llm", { concurrency: 1 }, clock, "fifo");
    const hold = await pool.acquire({ priority: 0, tokens: 0 });
    const order: string[] = [];
    for (const [label, run, priority] of [["x", "b", 1], ["y", "a", 9], ["z", "a", 5]] as const) {
      void pool.acquire({ priority, tokens: 0, label, run }).then((l) => { order.push(label); l.release(); });
    }
    await flush();
    hold.release();
    await flush();
    expect(order).toEqual(["x", "y", "z"]);
  });
});

describe("aging", () => {
  it("a young run's call is passed by a stream of older runs' calls only until it has waited AGING_MS", async () => {
    const clock = new SimClock();
    const pool = new Pool("llm", { concurrency: 1 }, clock);
    let held = await pool.acquire({ priority: 0, tokens: 0, run: "a" });
    const since = clock.now();
    let grantedAt: number | undefined;
    void pool.acquire({ priority: 1_000_000, tokens: 0, run: "z" }).then((l) => { grantedAt = clock.now(); l.release(); });
    // An older run's call every second, each holding the pool for a second.
    for (let i = 0; grantedAt === undefined && i < AGING_MS / 1000 + 10; i++) {
      const next = pool.acquire({ priority: 0, tokens: 0, run: "a" });
      await clock.advance(1_000);
      held.release();
      await flush();
      if (grantedAt !== undefined) break;
      held = await next;
    }
    expect(grantedAt).toBeDefined();
    expect(grantedAt! - since).toBeGreaterThanOrEqual(AGING_MS); // passed until then (older runs first)…
    expect(grantedAt! - since).toBeLessThanOrEqual(AGING_MS + 1_000); // …and not after
  });

  it("property: a waiter that has waited AGING_MS is passed by no later arrival, and every wait is bounded", async () => {
    const arrival = fc.record({
      gap: fc.integer({ min: 0, max: 120_000 }),
      run: fc.constantFrom("r0", "r1", "r2", "r3"),
      priority: fc.integer({ min: 0, max: 10_000 }),
      hold: fc.integer({ min: 1, max: 200_000 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(arrival, { minLength: 2, maxLength: 30 }), async (arrivals) => {
        const clock = new SimClock();
        const pool = new Pool("llm", { concurrency: 1 }, clock);
        const waiting = new Map<number, number>(); // index → arrival time
        const grantedAt = new Map<number, number>();
        const violations: string[] = [];
        const arrivedAt: number[] = [];
        for (let i = 0; i < arrivals.length; i++) {
          const a = arrivals[i]!;
          await clock.advance(a.gap);
          const at = clock.now();
          arrivedAt.push(at);
          waiting.set(i, at);
          void pool.acquire({ priority: a.priority, tokens: 0, run: a.run }).then((l: PoolLease) => {
            const t = clock.now();
            waiting.delete(i);
            grantedAt.set(i, t);
            for (const [j, since] of waiting) if (since < at && t - since >= AGING_MS) violations.push(`#${i} (arrived ${at}) passed #${j}, waiting since ${since}, at ${t}`);
            clock.setTimeout(() => l.release(), a.hold);
          });
          await flush();
        }
        await clock.advance(arrivals.reduce((s, a) => s + a.hold, 0) + AGING_MS);
        expect(violations).toEqual([]);
        expect(grantedAt.size).toBe(arrivals.length);
        const maxHold = Math.max(...arrivals.map((a) => a.hold));
        for (let i = 0; i < arrivals.length; i++) {
          const before = arrivals.reduce((s, a, j) => (j !== i && arrivedAt[j]! <= arrivedAt[i]! ? s + a.hold : s), 0);
          expect(grantedAt.get(i)! - arrivedAt[i]!).toBeLessThanOrEqual(AGING_MS + maxHold + before);
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe("pacing", () => {
  it("rpm: after a burst of a tenth of the window, grants are spaced window ÷ rpm apart", async () => {
    const clock = new SimClock();
    const pool = new Pool("llm", { rpm: 500 }, clock); // 61 s ÷ 500 = 122 ms per request
    const t0 = clock.now();
    const at: number[] = [];
    for (let i = 0; i < 300; i++) void pool.acquire({ priority: 0, tokens: 0 }).then((l) => { at.push(clock.now() - t0); l.release(); });
    await flush();
    expect(at).toHaveLength(500 * BURST + 1); // the burst; the window alone would let all 300 go now
    await clock.advance(10_000);
    expect(at).toHaveLength(51 + Math.floor(10_000 / 122));
    const gaps = at.slice(51).map((t, k) => t - at[50 + k]!);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(122);
    await clock.advance(30_000);
    expect(at).toHaveLength(300); // all within the first window, spread over it
    expect(at[299]!).toBeLessThan(61_000);
  });

  it("when a full window frees its oldest slots together, waiting calls resume one per window ÷ rpm, not in a burst", async () => {
    const clock = new SimClock();
    const pool = new Pool("llm", { rpm: 500 }, clock);
    const t0 = clock.now();
    const at: number[] = [];
    for (let i = 0; i < 600; i++) void pool.acquire({ priority: 0, tokens: 0 }).then((l) => { at.push(clock.now() - t0); l.release(); });
    await clock.advance(60_000);
    expect(at).toHaveLength(500); // the burst, then paced until the window is full
    await clock.advance(1_000); // t0 + 61 s: the burst's 51 slots leave the window at once
    await clock.advance(500);
    const resumed = at.filter((t) => t >= 61_000);
    expect(resumed.length).toBeGreaterThan(0);
    expect(resumed.length).toBeLessThanOrEqual(1 + Math.floor(500 / 122));
  });

  it("a small pool is not paced below its window (at least MIN_BURST calls at once)", async () => {
    const clock = new SimClock();
    const pool = new Pool("llm", { rpm: 8 }, clock);
    const got: number[] = [];
    for (let i = 0; i < 10; i++) void pool.acquire({ priority: 0, tokens: 0 }).then((l) => { got.push(clock.now()); l.release(); });
    await flush();
    expect(got).toHaveLength(8);
  });

  it("tpm: the token clock runs on estimates and is corrected by real usage", async () => {
    for (const real of [500, 100]) {
      const clock = new SimClock();
      const pool = new Pool("llm", { tpm: 61_000 }, clock); // 1 ms of the token clock per token
      const first: PoolLease[] = [];
      for (let i = 0; i < 20; i++) void pool.acquire({ priority: 0, tokens: 500 }).then((l) => first.push(l));
      await flush();
      expect(first).toHaveLength(13); // 12 × 500 ≤ 6.1 s of burst, the 13th starts on it
      expect(pool.stats().waiting).toBe(7);
      const more: PoolLease[] = [];
      for (let i = 0; i < 20; i++) void pool.acquire({ priority: 0, tokens: 500 }).then((l) => more.push(l));
      for (const l of first) l.release({ tokens: real });
      await flush();
      const now = first.length + more.length; // granted without the clock moving
      if (real === 500) expect(now).toBe(13); // estimates were right: nothing more until the clock catches up
      else expect(now).toBeGreaterThan(13 + 7); // 13 × 400 ms of the token clock came back
      expect(pool.stats().tokensInWindow).toBeLessThanOrEqual(61_000);
    }
  });
});

let fake: FakeOpenAI;
beforeAll(async () => {
  fake = await startFakeOpenAI({ latencyMs: 5 });
  process.env.OPENAI_API_KEY = "sk-test-grant-policy-000000";
});
afterAll(async () => {
  await fake.close();
});

describe("in the runtime", () => {
  it("runs finish in the order they started: the older run's next stage goes before a younger run's first (rpm 1, simulated minutes)", async () => {
    fake.reset();
    const clock = new SimClock();
    const chain = (who: string) => compileSource(`
baton: 1
name: chain-${who}
limits: { llm: { rpm: 1 } }
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 20, limit: llm }
stages:
  s1: { agent: bot, prompt: "${who}1" }
  s2: { agent: bot, prompt: "${who}2 {{ s1 }}" }
  s3: { agent: bot, prompt: "${who}3 {{ s2 }}" }
`, { format: "yaml", baseDir: resolve("test/fixtures/pipeline") });
    const rt = new Runtime({ store: new MemoryStore(), pools: new Pools(clock) });
    const a = await rt.start(chain("A"), {});
    await new Promise((r) => setTimeout(r, 5)); // a later millisecond: a younger run id
    const b = await rt.start(chain("B"), {});
    const pool = rt.pools.get("llm")!;
    for (let n = 1; n < 6; n++) {
      await vi.waitFor(() => expect(fake.requests.length).toBe(n), { timeout: 10_000, interval: 5 });
      // The next call of the run just answered is waiting too (while runs remain), then a window passes.
      await vi.waitFor(() => expect(pool.stats().waiting).toBe(n <= 2 ? 2 : 1), { timeout: 10_000, interval: 5 });
      await clock.advance(61_000);
    }
    const results = await Promise.all([a.done, b.done]);
    expect(results.map((r) => r.status)).toEqual(["succeeded", "succeeded"]);
    expect(fake.requests.map((q) => q.prompt.match(/[AB]\d/g)!.at(-1))).toEqual(["A1", "A2", "A3", "B1", "B2", "B3"]);
    await rt.close();
  });
});
