/**
 * Pools that hold across every worker (SPEC §3, §6): concurrency, requests per minute and
 * tokens per minute kept in Redis and changed by one Lua script at a time, so N workers admit
 * no more than one process would. A 429 with Retry-After on any worker pauses the pool on all.
 *
 * Keys (per pool, `PREFIX` = the `prefix` option, default `baton:pool`; the worker passes
 * `${queuePrefix}:pool` so deployments sharing one Redis never share pools):
 * - `PREFIX:NAME:inflight` — sorted set of lease ids scored by expiry. A lease lives `leaseTtlMs`
 *   (default 10 s) unless renewed: one heartbeat per RedisPools (every TTL/3, one round trip for
 *   every lease the process holds) pushes the expiry of the leases still present, so a SIGKILLed
 *   or partitioned holder's slots lapse within one TTL, and a lease released meanwhile never
 *   comes back. Releasing removes the lease at once.
 * - `PREFIX:NAME:sent` — the sliding window: members `id|tokens` scored by time.
 * - `PREFIX:NAME:paused` — ms until which the provider said no.
 * Keyed pools (`limit: { pool, key }`): each key has its own three keys,
 * `PREFIX:NAME:key:K:…` (K the key when it is short and plain, else a digest of it), with the
 * pool's limits. Every pool key expires a window + TTL after its last use (each acquire, release
 * and renewal pushes it), so a key no run uses any more leaves nothing behind: the live keys are
 * bounded by the keys used in the last ~71 s.
 * Every time in the scripts is the Redis server's clock (TIME), so workers on machines whose
 * clocks disagree still agree on expiries, windows and pauses.
 *
 * Workers poll while they wait (every ≤ 100 ms); priority between waiters holds within a worker,
 * not across workers. A holder whose heartbeat stalls longer than the TTL (a blocked event loop,
 * Redis unreachable) loses its slot to another worker: the pool may then briefly admit one call
 * more than its concurrency.
 *
 * Which limits an acquire uses (keep in line with runtime/pools.ts, the embedded rule):
 * 1. Config first. `configure(limits)` — the worker's baton.config `limits:` — wins over every
 *    template's definition of the same name, for every plan (as `Pools.configure` does in one
 *    process). Calling it again replaces those names.
 * 2. Else the plan's own definition: `acquire(name, tokens, signal, plan.limits)`. The spec is
 *    resolved per acquire, never cached by name, so every worker uses the same limits for the
 *    same plan's calls whatever it saw before, and a template that redefines a pool takes
 *    effect for its own plan's calls at once. All plans' calls share the pool's counts
 *    (inflight, windows, pause): a name is one pool, each call is admitted against its
 *    plan's limits. (In one process a name is one `Pool` object, so there the first template
 *    definition serves every plan until config replaces it; across workers that order differs
 *    per worker, which is why the plan's definition is used here.)
 * 3. Else a definition registered with the deprecated `define(limits)` (the latest one wins), for
 *    callers that do not pass their plan's limits.
 */
import { createHash, randomUUID } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import type { PoolLease, PoolOutcome, PoolSpec } from "../runtime/pools.js";
import { showPoolKey } from "../plan/limit.js";

/** A key as part of a Redis key: as written when short and plain, else a digest (no separators, bounded length). */
function redisKeyPart(key: string): string {
  return /^[A-Za-z0-9_.@-]{1,64}$/.test(key) ? `k.${key}` : `h.${createHash("sha256").update(key).digest("hex").slice(0, 40)}`;
}

const WINDOW_MS = 61_000;
/** Lease lifetime without a renewal. */
export const DEFAULT_LEASE_TTL_MS = 10_000;
export const DEFAULT_POOL_PREFIX = "baton:pool";

/** Pools' limits by name (a template's or baton.config's `limits:`). */
export type PoolLimits = Readonly<Record<string, PoolSpec>>;

export interface RedisPoolsOptions {
  /** Key prefix: a pool's keys are `PREFIX:NAME:…`. @default "baton:pool" */
  readonly prefix?: string;
  /** How long a lease outlives its holder's last heartbeat, in ms (renewed every TTL/3). @default 10000 */
  readonly leaseTtlMs?: number;
  /** Config limits (baton.config `limits:`), as `configure(limits)`. */
  readonly limits?: PoolLimits;
}

/** The server's clock in ms (scripts write after calling TIME: effects replication on Redis 5–6). */
const NOW = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

const ACQUIRE = `${NOW}
local id = ARGV[1]; local tokens = tonumber(ARGV[2])
local conc = tonumber(ARGV[3]); local rpm = tonumber(ARGV[4]); local tpm = tonumber(ARGV[5])
local window = tonumber(ARGV[6]); local ttl = tonumber(ARGV[7])
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
redis.call('PEXPIRE', KEYS[1], window + ttl)
redis.call('PEXPIRE', KEYS[2], window + ttl)
return {0, ''}
`;

const RELEASE = `${NOW}
local id = ARGV[1]; local tokens = ARGV[2]; local pauseMs = tonumber(ARGV[3]); local keep = tonumber(ARGV[4] or '0')
redis.call('ZREM', KEYS[1], id)
if keep > 0 and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], keep) end
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
if pauseMs > 0 then
  local pauseUntil = now + pauseMs
  local cur = tonumber(redis.call('GET', KEYS[3]) or '0')
  if pauseUntil > cur then redis.call('SET', KEYS[3], pauseUntil, 'PX', pauseMs) end
end
return 0
`;

/**
 * Renew leases: KEYS are inflight sets; ARGV = ttl, then for each key a count and that many ids.
 * Only members still present get the new expiry (ZADD XX): a lease released meanwhile stays gone.
 */
const RENEW = `${NOW}
local exp = now + tonumber(ARGV[1]); local i = 2; local renewed = 0
for k = 1, #KEYS do
  local n = tonumber(ARGV[i]); i = i + 1
  for j = 1, n do
    if redis.call('ZSCORE', KEYS[k], ARGV[i]) then
      redis.call('ZADD', KEYS[k], 'XX', exp, ARGV[i]); renewed = renewed + 1
      if redis.call('PTTL', KEYS[k]) >= 0 and redis.call('PTTL', KEYS[k]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[k], tonumber(ARGV[1])) end
    end
    i = i + 1
  end
end
return renewed
`;

type Scripts = Redis & {
  batonPoolAcquire(...args: (string | number)[]): Promise<[number, string]>;
  batonPoolRelease(...args: (string | number)[]): Promise<number>;
  batonPoolRenew(numKeys: number, ...args: (string | number)[]): Promise<number>;
};

/** Pools shared through Redis by every worker. */
export class RedisPools {
  private readonly redis: Scripts;
  private readonly prefix: string;
  private readonly ttl: number;
  /** From baton.config: wins over every template. */
  private readonly config = new Map<string, PoolSpec>();
  /** From the deprecated define(): used only by acquires that pass no plan limits. */
  private readonly defined = new Map<string, PoolSpec>();
  /** Leases this process holds: id → its pool's inflight key. */
  private readonly held = new Map<string, string>();
  private readonly heartbeat: NodeJS.Timeout;
  private renewing: Promise<number> | undefined;
  private closed = false;

  constructor(connection: RedisOptions, options: RedisPoolsOptions = {}) {
    this.prefix = options.prefix ?? DEFAULT_POOL_PREFIX;
    this.ttl = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    if (!(Number.isFinite(this.ttl) && this.ttl >= 30)) throw new Error(`RedisPools: leaseTtlMs must be a number of ms ≥ 30, got ${String(options.leaseTtlMs)}`);
    if (!this.prefix) throw new Error("RedisPools: prefix must not be empty");
    this.redis = new Redis({ ...connection, maxRetriesPerRequest: null, lazyConnect: false } as RedisOptions & Record<string, unknown> as never) as Scripts;
    this.redis.on("error", () => undefined); // reconnects on its own; callers see failed commands
    this.redis.defineCommand("batonPoolAcquire", { numberOfKeys: 3, lua: ACQUIRE });
    this.redis.defineCommand("batonPoolRelease", { numberOfKeys: 3, lua: RELEASE });
    this.redis.defineCommand("batonPoolRenew", { lua: RENEW });
    if (options.limits) this.configure(options.limits);
    this.heartbeat = setInterval(() => void this.renew().catch(() => undefined), Math.max(10, Math.floor(this.ttl / 3)));
    this.heartbeat.unref();
  }

  /** Config limits (baton.config `limits:`): they win over any template's definition of the same names. */
  configure(limits: PoolLimits): void {
    for (const [name, spec] of Object.entries(limits)) this.config.set(name, spec);
  }

  /**
   * @deprecated Pass the plan's limits to {@link acquire} instead. Registers template limits
   * used only by acquires that pass none; the latest definition of a name wins.
   */
  define(limits: PoolLimits): void {
    for (const [name, spec] of Object.entries(limits)) this.defined.set(name, spec);
  }

  /** The limits an acquire of `name` by a plan with `planLimits` uses (config, else the plan's, else define()'s). */
  spec(name: string, planLimits?: PoolLimits): PoolSpec | undefined {
    return this.config.get(name) ?? (planLimits && Object.hasOwn(planLimits, name) ? planLimits[name] : undefined) ?? this.defined.get(name);
  }

  /** Whether `name` is defined for a plan with `planLimits`. */
  has(name: string, planLimits?: PoolLimits): boolean {
    return this.spec(name, planLimits) !== undefined;
  }

  private keys(name: string, key?: string): [string, string, string] {
    const base = key === undefined ? `${this.prefix}:${name}` : `${this.prefix}:${name}:key:${redisKeyPart(key)}`;
    return [`${base}:inflight`, `${base}:sent`, `${base}:paused`];
  }

  /**
   * Wait for capacity in pool `name`, admitted against {@link spec}(name, planLimits); rejects
   * with the signal's reason if it aborts first, and if `name` is defined nowhere.
   */
  async acquire(name: string, tokens: number, signal?: AbortSignal, planLimits?: PoolLimits, key?: string): Promise<PoolLease> {
    const spec = this.spec(name, planLimits);
    if (!spec) throw new Error(`pool '${name}' is not defined: declare it under limits: in the template or in baton.config`);
    if (this.closed) throw new Error("RedisPools is closed");
    const keys = this.keys(name, key);
    const label = key === undefined ? `pool '${name}'` : `pool '${name}' (key '${showPoolKey(key)}')`;
    const id = randomUUID();
    const since = Date.now();
    let reason: string | undefined;
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const [wait, why] = await this.redis.batonPoolAcquire(...keys, id, Math.round(tokens), spec.concurrency ?? 0, spec.rpm ?? 0, spec.tpm ?? 0, WINDOW_MS, this.ttl);
      if (Number(wait) === 0) break;
      reason ??= `${label} ${why}`;
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
    this.held.set(id, keys[0]);
    let done = false;
    const lease: PoolLease = {
      pool: name,
      ...(key !== undefined ? { key } : {}),
      waitedMs: Date.now() - since,
      reason,
      release: (outcome: PoolOutcome = {}) => {
        if (done) return;
        done = true;
        this.held.delete(id);
        const pauseMs = outcome.rejected ? Math.max(1, Math.round(outcome.retryAfterMs ?? 1000)) : 0;
        void this.redis.batonPoolRelease(...keys, id, outcome.tokens === undefined ? "" : Math.round(outcome.tokens), pauseMs, WINDOW_MS + this.ttl).catch(() => undefined);
      },
    };
    // Aborted while the grant was on its way: give the slot back rather than hand it out.
    if (signal?.aborted) {
      lease.release();
      throw signal.reason;
    }
    return lease;
  }

  /**
   * Push the expiry of every lease this process holds to now + TTL, in one round trip (the
   * heartbeat calls it every TTL/3; a renewal still in flight is joined, not repeated).
   * Resolves to how many leases were renewed.
   */
  renew(): Promise<number> {
    if (this.renewing) return this.renewing;
    if (this.closed || this.held.size === 0) return Promise.resolve(0);
    const byKey = new Map<string, string[]>();
    for (const [id, key] of this.held) {
      const ids = byKey.get(key);
      if (ids) ids.push(id);
      else byKey.set(key, [id]);
    }
    const args: (string | number)[] = [this.ttl];
    for (const ids of byKey.values()) args.push(ids.length, ...ids);
    const p = this.redis.batonPoolRenew(byKey.size, ...byKey.keys(), ...args).then(Number);
    this.renewing = p;
    const clear = (): void => {
      if (this.renewing === p) this.renewing = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  /**
   * Stop the heartbeat and disconnect. Leases still held are not released (their calls may
   * still be running): they lapse within one TTL, as a dead worker's do.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    this.held.clear();
    await this.redis.quit().catch(() => undefined);
  }
}
