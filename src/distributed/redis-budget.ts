/**
 * A run's budget held in Redis, so concurrent agent calls of one run on different workers cannot
 * overshoot `budget.tokens` / `budget.usd` (SPEC §3). Per run: `PREFIX:budget:RUN` (a hash of
 * what its ended attempts used, seeded from the run's log the first time) and
 * `PREFIX:budget:RUN:holds` (estimates of calls in flight, a sorted set scored by expiry, so a
 * dead worker's holds lapse). `hold` checks and holds in one script; `settle` drops the hold and
 * adds what the call used.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { Plan } from "../plan/types.js";
import type { BudgetHold, BudgetPort, Usage } from "../runtime/budget.js";

const HOLD = `
local now = tonumber(ARGV[1]); local id = ARGV[2]; local t = tonumber(ARGV[3]); local u = tonumber(ARGV[4])
local lt = tonumber(ARGV[5]); local lu = tonumber(ARGV[6]); local ttl = tonumber(ARGV[9])
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], 't', ARGV[7], 'u', ARGV[8]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local usedT = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
local usedU = tonumber(redis.call('HGET', KEYS[1], 'u') or '0')
local holds = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #holds do
  local ht, hu = string.match(holds[i], '|([%d%.eE+-]+)|([%d%.eE+-]+)$')
  usedT = usedT + tonumber(ht); usedU = usedU + tonumber(hu)
end
if lt >= 0 and usedT + t > lt then return {0, 'tokens', tostring(usedT), tostring(usedU)} end
if lu >= 0 and u > 0 and usedU + u > lu then return {0, 'usd', tostring(usedT), tostring(usedU)} end
redis.call('ZADD', KEYS[2], now + ttl, id .. '|' .. ARGV[3] .. '|' .. ARGV[4])
redis.call('PEXPIRE', KEYS[1], 604800000); redis.call('PEXPIRE', KEYS[2], 604800000)
return {1, '', tostring(usedT), tostring(usedU)}
`;

const SETTLE = `
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[2], ARGV[1]) end
if tonumber(ARGV[2]) ~= 0 then redis.call('HINCRBYFLOAT', KEYS[1], 't', ARGV[2]) end
if tonumber(ARGV[3]) ~= 0 then redis.call('HINCRBYFLOAT', KEYS[1], 'u', ARGV[3]) end
return 0
`;

type Scripted = Redis & {
  batonBudgetHold(k1: string, k2: string, ...args: (string | number)[]): Promise<[number, string, string, string]>;
  batonBudgetSettle(k1: string, k2: string, ...args: (string | number)[]): Promise<number>;
};

/** Define the scripts on a connection (once). */
export function defineBudgetScripts(redis: Redis): void {
  redis.defineCommand("batonBudgetHold", { numberOfKeys: 2, lua: HOLD });
  redis.defineCommand("batonBudgetSettle", { numberOfKeys: 2, lua: SETTLE });
}

/** How long a hold lives without its worker settling it (a dead worker's estimate lapses). */
const HOLD_TTL_MS = 15 * 60_000;

/** The budget of one run, shared through Redis by every worker. */
export class RedisBudget implements BudgetPort {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly plan: Plan,
    private readonly runId: string,
    /** Usage recorded in the run's log (seeds the shared counter the first time). */
    private readonly recorded: () => Usage,
  ) {
    this.key = `${prefix}:budget:${runId}`;
  }

  async hold(tokens: number, usd: number): Promise<BudgetHold> {
    const b = this.plan.budget;
    if (!b) return { ok: true, used: { tokens: 0, usd: 0 }, tokens, usd };
    const ref = `${randomUUID()}`;
    const seed = this.recorded();
    const [ok, over, t, u] = await (this.redis as Scripted).batonBudgetHold(
      this.key, `${this.key}:holds`, Date.now(), ref, tokens, usd, b.tokens ?? -1, b.usd ?? -1, seed.tokens, seed.usd, HOLD_TTL_MS,
    );
    const used = { tokens: Number(t), usd: Number(u) };
    return ok === 1 ? { ok: true, used, tokens, usd, ref: `${ref}|${tokens}|${usd}` } : { ok: false, over: over === "usd" ? "usd" : "tokens", used, tokens, usd };
  }

  settle(h: BudgetHold | undefined, spent: Usage | undefined, _recorded: boolean): void {
    if (!this.plan.budget) return;
    // What a call used counts whether or not its event is stored (a cancelled call still spent it).
    void (this.redis as Scripted)
      .batonBudgetSettle(this.key, `${this.key}:holds`, h?.ok && h.ref ? h.ref : "", spent?.tokens ?? 0, spent?.usd ?? 0)
      .catch(() => undefined);
  }
}

/** A budget for runs without one: every hold fits, nothing is stored. */
export const NO_BUDGET: BudgetPort = {
  hold: (tokens, usd) => ({ ok: true, used: { tokens: 0, usd: 0 }, tokens, usd }),
  settle: () => undefined,
};
