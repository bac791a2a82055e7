/**
 * Pools that hold across every worker (SPEC §3, §6): concurrency, requests per minute and
 * tokens per minute kept in Redis and changed by one Lua script at a time, so N workers admit
 * no more than one process would. A 429 with Retry-After on any worker pauses the pool on all.
 *
 * Keys (per pool): `baton:pool:NAME:inflight` (sorted set of lease ids scored by expiry, so a
 * dead worker's leases lapse), `…:sent` (the sliding window: members `id|tokens` scored by time),
 * `…:paused` (ms until which the provider said no). Workers poll while they wait (every ≤ 100
 * ms); priority between waiters holds within a worker, not across workers.
 */
import { randomUUID } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import type { PoolLease, PoolOutcome, PoolSpec } from "../runtime/pools.js";

const WINDOW_MS = 61_000;
const LEASE_TTL_MS = 10 * 60_000;

const ACQUIRE = `
local now = tonumber(ARGV[1]); local id = ARGV[2]; local tokens = tonumber(ARGV[3])
local conc = tonumber(ARGV[4]); local rpm = tonumber(ARGV[5]); local tpm = tonumber(ARGV[6])
local window = tonumber(ARGV[7]); local ttl = tonumber(ARGV[8])
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if now < paused then return {paused - now, 'paused by the provider'} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if conc > 0 and redis.call('ZCARD', KEYS[1]) >= conc then return {25, 'at its concurrency of ' .. conc} end
local sent = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local n = #sent / 2
if rpm > 0 and n >= rpm then
  return {math.max(1, tonumber(sent[(n - rpm) * 2 + 2]) + window - now), 'at its ' .. rpm .. ' requests per minute'}
end
if tpm > 0 and n > 0 then
  local used = 0
  for i = 1, #sent, 2 do used = used + tonumber(string.match(sent[i], '|(%d+)$') or '0') end
  if used + tokens > tpm then
    local free = tpm - used
    for i = 1, #sent, 2 do
      free = free + tonumber(string.match(sent[i], '|(%d+)$') or '0')
      if free >= tokens then return {math.max(1, tonumber(sent[i + 1]) + window - now), 'at its ' .. tpm .. ' tokens per minute'} end
    end
    return {math.max(1, tonumber(sent[#sent]) + window - now), 'at its ' .. tpm .. ' tokens per minute'}
  end
end
redis.call('ZADD', KEYS[1], now + ttl, id)
redis.call('ZADD', KEYS[2], now, id .. '|' .. tokens)
return {0, ''}
`;

const RELEASE = `
local now = tonumber(ARGV[1]); local id = ARGV[2]; local tokens = ARGV[3]; local pauseUntil = tonumber(ARGV[4])
redis.call('ZREM', KEYS[1], id)
if tokens ~= '' then
  local members = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  for i = 1, #members, 2 do
    if string.sub(members[i], 1, #id + 1) == id .. '|' then
      redis.call('ZREM', KEYS[2], members[i])
      redis.call('ZADD', KEYS[2], now, id .. '|' .. tokens)
      break
    end
  end
end
if pauseUntil > 0 then
  local cur = tonumber(redis.call('GET', KEYS[3]) or '0')
  if pauseUntil > cur then redis.call('SET', KEYS[3], pauseUntil, 'PX', math.max(1, pauseUntil - now)) end
end
return 0
`;

/** Pools shared through Redis by every worker. */
export class RedisPools {
  private readonly redis: Redis;
  private readonly specs = new Map<string, PoolSpec>();

  constructor(options: RedisOptions, private readonly prefix = "baton:pool") {
    this.redis = new Redis({ ...options, maxRetriesPerRequest: null, lazyConnect: false } as RedisOptions & Record<string, unknown> as never);
    this.redis.on("error", () => undefined); // reconnects on its own; callers see failed commands
    this.redis.defineCommand("batonAcquire", { numberOfKeys: 3, lua: ACQUIRE });
    this.redis.defineCommand("batonRelease", { numberOfKeys: 3, lua: RELEASE });
  }

  /** Pools a plan declares (the first definition of a name wins). */
  define(limits: Readonly<Record<string, PoolSpec>>): void {
    for (const [name, spec] of Object.entries(limits)) if (!this.specs.has(name)) this.specs.set(name, spec);
  }

  has(name: string): boolean {
    return this.specs.has(name);
  }

  private keys(name: string): [string, string, string] {
    return [`${this.prefix}:${name}:inflight`, `${this.prefix}:${name}:sent`, `${this.prefix}:${name}:paused`];
  }

  /** Wait for capacity in pool `name`; rejects with the signal's reason if it aborts first. */
  async acquire(name: string, tokens: number, signal?: AbortSignal): Promise<PoolLease> {
    const spec = this.specs.get(name);
    if (!spec) throw new Error(`pool '${name}' is not defined`);
    const id = randomUUID();
    const since = Date.now();
    let reason: string | undefined;
    const r = this.redis as Redis & { batonAcquire(...args: (string | number)[]): Promise<[number, string]> };
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const [wait, why] = await r.batonAcquire(...this.keys(name), Date.now(), id, Math.round(tokens), spec.concurrency ?? 0, spec.rpm ?? 0, spec.tpm ?? 0, WINDOW_MS, LEASE_TTL_MS);
      if (Number(wait) === 0) break;
      reason ??= `pool '${name}' ${why}`;
      await new Promise<void>((res, rej) => {
        const onAbort = (): void => {
          clearTimeout(t);
          rej(signal!.reason);
        };
        const t = setTimeout(() => {
          signal?.removeEventListener("abort", onAbort);
          res();
        }, Math.min(100, Number(wait)));
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
    let done = false;
    return {
      pool: name,
      waitedMs: Date.now() - since,
      reason,
      release: (outcome: PoolOutcome = {}) => {
        if (done) return;
        done = true;
        const pauseUntil = outcome.rejected ? Date.now() + (outcome.retryAfterMs ?? 1000) : 0;
        const rr = this.redis as Redis & { batonRelease(...args: (string | number)[]): Promise<number> };
        void rr.batonRelease(...this.keys(name), Date.now(), id, outcome.tokens === undefined ? "" : Math.round(outcome.tokens), pauseUntil).catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => undefined);
  }
}
