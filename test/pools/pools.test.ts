/** Pools on a simulated clock: limits, windows, backpressure, priority and fairness. */
import { describe, expect, it } from "vitest";
import { Pool, type PoolLease } from "../../src/runtime/pools.js";
import { flush, SimClock } from "./sim-clock.js";

function track(p: Promise<PoolLease>): { lease?: PoolLease; error?: unknown } {
  const r: { lease?: PoolLease; error?: unknown } = {};
  p.then((l) => (r.lease = l), (e) => (r.error = e));
  return r;
}

describe("pools", () => {
  it("concurrency: at most N leases at once; a release admits the next", async () => {
    const clock = new SimClock();
    const pool = new Pool("llm", { concurrency: 2 }, clock);
    const a = track(pool.acquire({ priority: 0, tokens: 0 }));
    const b = track(pool.acquire({ priority: 0, tokens: 0 }));
    const c = track(pool.acquire({ priority: 0, tokens: 0 }));
    await flush();
    expect([!!a.lease, !!b.lease, !!c.lease]).toEqual([true, true, false]);
    await clock.advance(500);
    a.lease!.release();
    await flush();
    expect(c.lease?.waitedMs).toBe(500);
    expect(c.lease?.reason).toBe("pool 'llm' at its concurrency of 2");
  });

  it("rpm: a sliding window of requests; the next request waits for the oldest to leave it", async () => {
    const clock = new SimClock();
    const pool = new Pool("api", { rpm: 3 }, clock);
    const got: number[] = [];
    for (let i = 0; i < 5; i++) void pool.acquire({ priority: 0, tokens: 0 }).then((l) => { got.push(clock.now()); l.release(); });
    await flush();
    expect(got).toHaveLength(3);
    await clock.advance(60_000);
    expect(got).toHaveLength(3);
    await clock.advance(1_000);
    expect(got).toHaveLength(5);
    expect(got[3]! - got[0]!).toBe(61_000);
  });

  it("tpm: counts each call's estimate until it reports real usage, then the real figure", async () => {
    const clock = new SimClock();
    const pool = new Pool("llm", { tpm: 1000 }, clock);
    const a = track(pool.acquire({ priority: 0, tokens: 700 }));
    const b = track(pool.acquire({ priority: 0, tokens: 400 }));
    await flush();
    expect(!!a.lease && !b.lease).toBe(true);
    expect(pool.stats().tokensInWindow).toBe(700);
    a.lease!.release({ tokens: 500 }); // reconciled: 500 used, 500 free → b (400) fits
    await flush();
    expect(b.lease?.reason).toBe("pool 'llm' at its 1000 tokens per minute");
    expect(pool.stats().tokensInWindow).toBe(900);
  });

  it("a 429 with Retry-After pauses the whole pool until then; other pools go on", async () => {
    const clock = new SimClock();
    const pool = new Pool("llm", { concurrency: 10 }, clock);
    const other = new Pool("other", { concurrency: 10 }, clock);
    const first = track(pool.acquire({ priority: 0, tokens: 0 }));
    await flush();
    first.lease!.release({ rejected: true, retryAfterMs: 5_000 });
    const next = track(pool.acquire({ priority: 0, tokens: 0 }));
    const elsewhere = track(other.acquire({ priority: 0, tokens: 0 }));
    await clock.advance(4_999);
    expect(next.lease).toBeUndefined();
    expect(elsewhere.lease).toBeDefined();
    await clock.advance(1);
    expect(next.lease?.waitedMs).toBe(5_000);
    expect(next.lease?.reason).toMatch(/^pool 'llm' paused by the provider until /);
  });

  it("without Retry-After the pool backs off adaptively (halving its rates) and recovers on success", async () => {
    const clock = new SimClock();
    const pool = new Pool("llm", { concurrency: 8 }, clock);
    const l = track(pool.acquire({ priority: 0, tokens: 0 }));
    await flush();
    l.lease!.release({ rejected: true });
    expect(pool.stats().factor).toBe(0.5);
    await clock.advance(1_000);
    const leases: PoolLease[] = [];
    for (let i = 0; i < 8; i++) void pool.acquire({ priority: 0, tokens: 0 }).then((x) => leases.push(x));
    await flush();
    expect(leases).toHaveLength(4); // 8 × 0.5
    for (const x of leases.splice(0)) x.release();
    await flush();
    expect(pool.stats().factor).toBeGreaterThan(0.5);
    for (let i = 0; i < 40; i++) {
      const y = track(pool.acquire({ priority: 0, tokens: 0 }));
      await flush();
      y.lease?.release();
    }
    expect(pool.stats().factor).toBe(1);
  });

  it("the waiter with the longest remaining critical path goes first; ties first come, first served", async () => {
    const clock = new SimClock();
    const pool = new Pool("llm", { concurrency: 1 }, clock);
    const hold = track(pool.acquire({ priority: 0, tokens: 0 }));
    await flush();
    const order: string[] = [];
    const ask = (label: string, priority: number) => void pool.acquire({ priority, tokens: 0, label }).then((l) => { order.push(label); l.release(); });
    ask("short", 100);
    ask("long", 5_000);
    ask("mid-a", 1_000);
    ask("mid-b", 1_000);
    await flush();
    hold.lease!.release();
    await flush();
    expect(order).toEqual(["long", "mid-a", "mid-b", "short"]);
  });

  it("an aborted waiter leaves the queue with the abort reason", async () => {
    const clock = new SimClock();
    const pool = new Pool("llm", { concurrency: 1 }, clock);
    await pool.acquire({ priority: 0, tokens: 0 });
    const ctl = new AbortController();
    const w = track(pool.acquire({ priority: 0, tokens: 0, signal: ctl.signal }));
    ctl.abort(new Error("cancelled"));
    await flush();
    expect((w.error as Error).message).toBe("cancelled");
    expect(pool.stats().waiting).toBe(0);
  });
});
