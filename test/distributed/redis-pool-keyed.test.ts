/**
 * Keyed Redis pools (`limit: { pool, key }`, issue 12 item 7) against a private redis-server
 * (never the machine's Redis on 6379): an instance of the pool per key, held across workers
 * (two RedisPools instances). Counts and orders only; fails — never skips — without redis-server.
 */
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_POOL_PREFIX, RedisPools, type RedisPoolsOptions } from "../../src/distributed/redis-pool.js";
import type { PoolLease } from "../../src/runtime/pools.js";
import { startRedis, type OwnRedis } from "../helpers/redis.js";

let server: OwnRedis;
let admin: Redis;
const open: RedisPools[] = [];
let n = 0;
let P = "";
let startError: unknown;

beforeAll(async () => {
  try {
    server = await startRedis();
    admin = new Redis(server.port, "127.0.0.1");
  } catch (err) {
    startError = err;
  }
}, 20_000);

afterAll(async () => {
  await admin?.quit().catch(() => undefined);
  await server?.stop();
});

beforeEach(() => {
  if (startError !== undefined) throw startError;
  P = `kp${n++}`;
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close()));
});

function worker(options: RedisPoolsOptions = {}): RedisPools {
  const p = new RedisPools({ host: "127.0.0.1", port: server.port }, options);
  open.push(p);
  return p;
}

/** Whether an acquire is still waiting after `ms` (it is then aborted). */
async function blocked(acquire: (signal: AbortSignal) => Promise<PoolLease>, ms = 300): Promise<boolean> {
  const ac = new AbortController();
  const why = new Error("probe over");
  const t = setTimeout(() => ac.abort(why), ms);
  try {
    const lease = await acquire(ac.signal);
    lease.release();
    return false;
  } catch (err) {
    if (err !== why) throw err;
    return true;
  } finally {
    clearTimeout(t);
  }
}

describe("RedisPools with keys", () => {
  it("a key's concurrency holds across two workers; another key is not held back by it", async () => {
    const limits = { [P]: { concurrency: 1 } };
    const a = worker({ limits });
    const b = worker({ limits });
    const held = await a.acquire(P, 0, undefined, undefined, "tenantA");
    expect(held.key).toBe("tenantA");
    // The other worker: tenant A's instance is full, tenant B's is not, nor is the unkeyed pool.
    expect(await blocked((s) => b.acquire(P, 0, s, undefined, "tenantA"))).toBe(true);
    const other = await b.acquire(P, 0, undefined, undefined, "tenantB");
    const plain = await b.acquire(P, 0);
    expect(await admin.zcard(`${DEFAULT_POOL_PREFIX}:${P}:key:k.tenantA:inflight`)).toBe(1);
    expect(await admin.zcard(`${DEFAULT_POOL_PREFIX}:${P}:key:k.tenantB:inflight`)).toBe(1);
    expect(await admin.zcard(`${DEFAULT_POOL_PREFIX}:${P}:inflight`)).toBe(1);
    // Tenant A's queued calls (10 of them, on both workers) do not stop tenant B's next call.
    let granted = 0;
    const queued = Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).acquire(P, 0, undefined, undefined, "tenantA").then((l) => (granted++, l.release())));
    other.release();
    const next = await a.acquire(P, 0, undefined, undefined, "tenantB");
    expect(granted).toBe(0); // tenant B's second call went first: none of A's queued calls had started
    next.release();
    held.release();
    await Promise.all(queued);
    expect(granted).toBe(10);
    plain.release();
  });

  it("per-key rpm: each key has its own window, across workers", async () => {
    const limits = { [P]: { rpm: 2 } };
    const a = worker({ limits });
    const b = worker({ limits });
    (await a.acquire(P, 0, undefined, undefined, "x")).release();
    (await b.acquire(P, 0, undefined, undefined, "x")).release();
    expect(await blocked((s) => a.acquire(P, 0, s, undefined, "x"))).toBe(true);
    expect(await blocked((s) => b.acquire(P, 0, s, undefined, "x"))).toBe(true);
    (await b.acquire(P, 0, undefined, undefined, "y")).release();
    (await a.acquire(P, 0, undefined, undefined, "y")).release();
  });

  it("keys that are long or not plain become a digest; every pool key expires after its last use (a window + TTL)", async () => {
    const limits = { [P]: { concurrency: 5 } };
    const a = worker({ limits, leaseTtlMs: 1000 });
    const long = "tenant/with:separators and spaces ".repeat(5);
    const lease = await a.acquire(P, 10, undefined, undefined, long);
    const keys = await admin.keys(`${DEFAULT_POOL_PREFIX}:${P}:key:*`);
    expect(keys).toHaveLength(2);
    for (const k of keys) {
      expect(k).toMatch(new RegExp(`^${DEFAULT_POOL_PREFIX}:${P}:key:h\\.[0-9a-f]{40}:(inflight|sent)$`));
      const ttl = await admin.pttl(k);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(61_000 + 1000);
    }
    lease.release();
    await a.renew();
    // The same key from another worker maps to the same instance.
    const b = worker({ limits });
    const again = await b.acquire(P, 0, undefined, undefined, long);
    expect(await admin.zcard(keys.find((k) => k.endsWith(":inflight"))!)).toBe(1);
    again.release();
  });

  it("a wait reason names the pool and the key", async () => {
    const limits = { [P]: { concurrency: 1 } };
    const a = worker({ limits });
    const first = await a.acquire(P, 0, undefined, undefined, "t1");
    const second = a.acquire(P, 0, undefined, undefined, "t1");
    setTimeout(() => first.release(), 50);
    const l = await second;
    expect(l.reason).toBe(`pool '${P}' (key 't1') at its concurrency of 1`);
    l.release();
  });
});
