/**
 * Redis-side pools (src/distributed/redis-pool.ts) against a private redis-server (never the
 * machine's Redis on 6379). Each RedisPools instance stands for one worker. No wall-clock upper
 * bound is a pass/fail condition: "frees within a few TTLs" is checked as "acquired at all before
 * the test's timeout", with the measured time only logged. Fails — never skips — without redis-server.
 */
import { spawn } from "node:child_process";
import { getEventListeners } from "node:events";
import { resolve } from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { DEFAULT_POOL_PREFIX, RedisPools, type RedisPoolsOptions } from "../../src/distributed/redis-pool.js";
import type { PoolLease } from "../../src/runtime/pools.js";
import { startRedis, type OwnRedis } from "../helpers/redis.js";

let server: OwnRedis;
let admin: Redis;
const open: RedisPools[] = [];
let n = 0;
/** A pool name no other test touches (tests share the server, not pools). */
let P = "";

/** Why the private Redis did not start: every test then fails with it (none is skipped). */
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
  P = `p${n++}`;
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close()));
});

function worker(options: RedisPoolsOptions = {}): RedisPools {
  const p = new RedisPools({ host: "127.0.0.1", port: server.port }, options);
  open.push(p);
  return p;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether an acquire is still waiting after `ms` (it is then aborted and must reject with the abort reason). */
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

const inflight = (name: string, prefix = DEFAULT_POOL_PREFIX): Promise<number> => admin.zcard(`${prefix}:${name}:inflight`);

describe("RedisPools", () => {
  it("concurrency holds across two workers", async () => {
    const a = worker({ limits: { [P]: { concurrency: 2 } } });
    const b = worker({ limits: { [P]: { concurrency: 2 } } });
    let now = 0;
    let max = 0;
    const call = async (w: RedisPools): Promise<void> => {
      const lease = await w.acquire(P, 0);
      now++;
      max = Math.max(max, now);
      await sleep(40);
      now--;
      lease.release();
    };
    await Promise.all(Array.from({ length: 8 }, (_, i) => call(i % 2 ? a : b)));
    expect(max).toBeLessThanOrEqual(2);
    expect(max).toBeGreaterThanOrEqual(1);
    // Both workers' leases are gone once released.
    await vi.waitFor(async () => expect(await inflight(P)).toBe(0));
  });

  it("a holder that stops without releasing (heartbeat stopped) frees its slot within a few TTLs", async () => {
    const ttl = 300;
    const dead = worker({ leaseTtlMs: ttl, limits: { [P]: { concurrency: 1 } } });
    const live = worker({ leaseTtlMs: ttl, limits: { [P]: { concurrency: 1 } } });
    await dead.acquire(P, 0);
    await dead.close(); // no release: as a SIGKILLed worker's process, the lease just stops being renewed
    expect(await inflight(P)).toBe(1);
    const t0 = Date.now();
    const lease = await live.acquire(P, 0); // the test's timeout is the only bound
    console.log(`slot of a stopped holder (TTL ${ttl} ms) taken over after ${Date.now() - t0} ms`);
    lease.release();
  }, 20_000);

  it("a SIGKILLed worker process frees its slot within a few TTLs", async () => {
    const ttl = 300;
    const mod = resolve("src/distributed/redis-pool.ts");
    const script = `
      const { RedisPools } = await import(${JSON.stringify(mod)});
      const p = new RedisPools({ host: "127.0.0.1", port: ${server.port} }, { leaseTtlMs: ${ttl}, limits: { ${JSON.stringify(P)}: { concurrency: 1 } } });
      await p.acquire(${JSON.stringify(P)}, 0);
      process.stdout.write("held\\n");
      setInterval(() => undefined, 1000);`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr!.on("data", (d) => (err += d));
    try {
      await new Promise<void>((res, rej) => {
        child.stdout!.on("data", (d: Buffer) => d.toString().includes("held") && res());
        child.once("exit", (code) => rej(new Error(`holder exited (${code}) before taking the slot: ${err}`)));
      });
      const live = worker({ leaseTtlMs: ttl, limits: { [P]: { concurrency: 1 } } });
      expect(await inflight(P)).toBe(1);
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
      const t0 = Date.now();
      const lease = await live.acquire(P, 0);
      console.log(`slot of a SIGKILLed holder (TTL ${ttl} ms) taken over after ${Date.now() - t0} ms`);
      lease.release();
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  }, 20_000);

  it("the heartbeat keeps a live holder's lease well past its TTL", async () => {
    const ttl = 2000;
    const a = worker({ leaseTtlMs: ttl, limits: { [P]: { concurrency: 1 } } });
    const b = worker({ leaseTtlMs: ttl, limits: { [P]: { concurrency: 1 } } });
    const lease = await a.acquire(P, 0);
    expect(await blocked((s) => b.acquire(P, 0, s), ttl * 2.5)).toBe(true);
    lease.release();
    const next = await b.acquire(P, 0);
    next.release();
  }, 20_000);

  it("renews every lease of the process in one round trip, and never brings back a released one", async () => {
    const Q = `${P}q`;
    const a = worker({ leaseTtlMs: 60_000, limits: { [P]: { concurrency: 5 }, [Q]: { concurrency: 5 } } });
    const l1 = await a.acquire(P, 0);
    const l2 = await a.acquire(P, 0);
    const l3 = await a.acquire(Q, 0);
    const gone = await a.acquire(Q, 0);
    expect(await a.renew()).toBe(4); // also loads the script
    const before = await admin.zrange(`${DEFAULT_POOL_PREFIX}:${P}:inflight`, 0, "-1", "WITHSCORES");
    gone.release();
    await vi.waitFor(async () => expect(await inflight(Q)).toBe(1));
    const stats = async (): Promise<number> => {
      const info = await admin.info("commandstats");
      return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0) + Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0);
    };
    const c0 = await stats();
    await sleep(5); // so the new expiry is later than the one from the grant
    expect(await a.renew()).toBe(3);
    expect((await stats()) - c0).toBe(1);
    const after = await admin.zrange(`${DEFAULT_POOL_PREFIX}:${P}:inflight`, 0, "-1", "WITHSCORES");
    expect(Number(after[1])).toBeGreaterThan(Number(before[1]));
    expect(await inflight(P)).toBe(2);
    expect(await inflight(Q)).toBe(1);
    // A release racing a renewal: the renewal is sent first, the release wins.
    const racing = a.renew();
    l1.release();
    await racing;
    await a.renew();
    expect(await inflight(P)).toBe(1);
    // A lease whose entry is gone (lapsed and swept by another worker's acquire while this
    // process stalled) is not brought back: that worker may hold the slot now.
    await admin.zrem(`${DEFAULT_POOL_PREFIX}:${Q}:inflight`, (await admin.zrange(`${DEFAULT_POOL_PREFIX}:${Q}:inflight`, 0, "-1"))[0]!);
    expect(await a.renew()).toBe(1);
    expect(await inflight(Q)).toBe(0);
    l2.release();
    l3.release();
    await a.renew();
    expect(await inflight(P)).toBe(0);
    expect(await inflight(Q)).toBe(0);
  });

  it("config limits override template limits", async () => {
    const a = worker();
    a.configure({ [P]: { concurrency: 1 } });
    const template = { [P]: { concurrency: 5 } };
    expect(a.spec(P, template)).toEqual({ concurrency: 1 });
    const first = await a.acquire(P, 0, undefined, template);
    expect(await blocked((s) => a.acquire(P, 0, s, template))).toBe(true);
    // Another worker with the same config holds the same line.
    const b = worker({ limits: { [P]: { concurrency: 1 } } });
    expect(await blocked((s) => b.acquire(P, 0, s, template))).toBe(true);
    first.release();
    const next = await b.acquire(P, 0, undefined, template);
    next.release();
    // A later configure() replaces the name's config.
    a.configure({ [P]: { concurrency: 3 } });
    expect(a.spec(P, template)).toEqual({ concurrency: 3 });
    // Config wins over define() too.
    a.define({ [P]: { concurrency: 9 } });
    expect(a.spec(P)).toEqual({ concurrency: 3 });
  });

  it("a pool redefined by a different plan takes effect for that plan's acquires, on every worker", async () => {
    const plan1 = { [P]: { concurrency: 1 } };
    const plan2 = { [P]: { concurrency: 3 } };
    const a = worker();
    const b = worker();
    // a sees plan1 first, b sees plan2 first: the order must not matter.
    const x = await a.acquire(P, 0, undefined, plan1);
    expect(await blocked((s) => a.acquire(P, 0, s, plan1))).toBe(true);
    expect(await blocked((s) => b.acquire(P, 0, s, plan1))).toBe(true);
    const y = await b.acquire(P, 0, undefined, plan2);
    const z = await a.acquire(P, 0, undefined, plan2);
    expect(await inflight(P)).toBe(3);
    expect(await blocked((s) => b.acquire(P, 0, s, plan2))).toBe(true);
    for (const l of [x, y, z]) l.release();
    expect(a.has(P)).toBe(false);
    expect(a.has(P, plan1)).toBe(true);
    await expect(a.acquire(P, 0)).rejects.toThrow(/pool '.*' is not defined/);
  });

  it("define() (deprecated, for callers that pass no plan limits): the latest definition wins", async () => {
    const a = worker();
    a.define({ [P]: { concurrency: 1 } });
    a.define({ [P]: { concurrency: 2 } });
    const l1 = await a.acquire(P, 0);
    const l2 = await a.acquire(P, 0);
    expect(await blocked((s) => a.acquire(P, 0, s))).toBe(true);
    // A plan's own limits win over define()'s.
    const l3 = await a.acquire(P, 0, undefined, { [P]: { concurrency: 3 } });
    for (const l of [l1, l2, l3]) l.release();
  });

  it("two prefixes (two deployments on one Redis) do not share slots", async () => {
    const limits = { [P]: { concurrency: 1 } };
    const one = worker({ prefix: "dep1:pool", limits });
    const two = worker({ prefix: "dep2:pool", limits });
    const onePeer = worker({ prefix: "dep1:pool", limits });
    const a = await one.acquire(P, 0);
    const b = await two.acquire(P, 0);
    expect(await inflight(P, "dep1:pool")).toBe(1);
    expect(await inflight(P, "dep2:pool")).toBe(1);
    expect(await inflight(P)).toBe(0);
    expect(await blocked((s) => onePeer.acquire(P, 0, s))).toBe(true);
    a.release();
    b.release();
    (await onePeer.acquire(P, 0)).release();
  });

  it("rpm: a full window blocks until a slot leaves it", async () => {
    const a = worker({ limits: { [P]: { rpm: 2 } } });
    const b = worker({ limits: { [P]: { rpm: 2 } } });
    (await a.acquire(P, 0)).release();
    (await b.acquire(P, 0)).release();
    expect(await blocked((s) => a.acquire(P, 0, s))).toBe(true);
    expect(await blocked((s) => b.acquire(P, 0, s))).toBe(true);
  });

  it("tpm: estimates count until real usage replaces them", async () => {
    const a = worker({ limits: { [P]: { tpm: 100 } } });
    const b = worker({ limits: { [P]: { tpm: 100 } } });
    const first = await a.acquire(P, 60);
    expect(await blocked((s) => b.acquire(P, 50, s))).toBe(true);
    const small = await b.acquire(P, 40);
    small.release({ tokens: 40 });
    first.release({ tokens: 10 }); // really used 10: 50 in the window
    (await b.acquire(P, 50)).release({ tokens: 50 });
    expect(await blocked((s) => a.acquire(P, 1, s))).toBe(true);
  });

  it("a 429 with Retry-After on one worker pauses the pool on all", async () => {
    const a = worker({ limits: { [P]: { concurrency: 10 } } });
    const b = worker({ limits: { [P]: { concurrency: 10 } } });
    const lease = await a.acquire(P, 0);
    lease.release({ rejected: true, retryAfterMs: 2000 });
    await vi.waitFor(async () => expect(Number(await admin.get(`${DEFAULT_POOL_PREFIX}:${P}:paused`))).toBeGreaterThan(0));
    const next = await b.acquire(P, 0);
    expect(next.reason).toMatch(/paused by the provider/);
    expect(next.waitedMs).toBeGreaterThan(0);
    next.release();
  }, 20_000);

  it("abort while waiting removes the waiter and leaks no listener", async () => {
    const a = worker({ limits: { [P]: { concurrency: 1 } } });
    const held = await a.acquire(P, 0);
    const ac = new AbortController();
    const waiting = a.acquire(P, 0, ac.signal);
    await sleep(250); // several polls
    expect(getEventListeners(ac.signal, "abort").length).toBeLessThanOrEqual(1);
    ac.abort(new Error("cancelled"));
    await expect(waiting).rejects.toThrow("cancelled");
    expect(getEventListeners(ac.signal, "abort")).toHaveLength(0);
    held.release();
    // A waiter that gets its slot leaves no listener either.
    const ac2 = new AbortController();
    const blocker = await a.acquire(P, 0);
    const w2 = a.acquire(P, 0, ac2.signal);
    await sleep(150);
    blocker.release();
    const got = await w2;
    expect(getEventListeners(ac2.signal, "abort")).toHaveLength(0);
    got.release();
    await vi.waitFor(async () => expect(await inflight(P)).toBe(0));
  });

  it("validates its options", () => {
    if (startError !== undefined) throw startError;
    expect(() => new RedisPools({ port: server.port, lazyConnect: true }, { leaseTtlMs: 0 })).toThrow(/leaseTtlMs/);
    expect(() => new RedisPools({ port: server.port, lazyConnect: true }, { prefix: "" })).toThrow(/prefix/);
  });
});
