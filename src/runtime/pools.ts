/**
 * Resource pools (SPEC §3): named limits on concurrency, requests per minute and tokens per
 * minute, shared by every run in the process. A call acquires a lease before it goes out and
 * releases it with what it really used.
 *
 * - Windows are sliding (61 s, a little longer than a provider's 60 s, so capacity frees here
 *   only after it has freed there). A call counts its estimate (prompt + max output) until it
 *   reports its real usage, so the pool never admits more than the provider will accept.
 * - Backpressure: a 429/overload with Retry-After pauses the whole pool until then; without
 *   one, the pool halves its rates (down to 1/8) and recovers gradually as calls succeed.
 *
 * The grant policy (which waiter goes next, and when):
 * - Pacing. The windows are the hard limit; within them grants are spread evenly: requests at
 *   most one per (window + the mean call) ÷ rpm, tokens likewise at tpm (each call advances a token clock
 *   by its estimate, corrected by its real usage on release), after a burst of a tenth of the
 *   window ({@link BURST}; at least {@link MIN_BURST} calls, so a small pool is not slowed) when
 *   the pool has been idle. A sliding window alone lets a whole window's worth go at once and
 *   then nothing for a minute: under load the capacity is spent in a burst at each window's
 *   start on whatever is ready at that instant, and a call that becomes ready a second later
 *   (the next stage of a run) waits for the next window. Paced, capacity frees continuously and
 *   a run's next call finds room within ~window ÷ rpm. No burst either when a hard limit (a
 *   window full, the concurrency, a pause) lifts while calls wait: what it held back frees at the
 *   rate it was used. The cost: a lone burst larger than a tenth of the window is spread over it
 *   instead of going at once.
 * - Order: finish runs first. Waiters of the run that started first go first (`run`: run ids are
 *   time-sortable and a child run's id begins with its parent's, so sub-pipelines rank with
 *   their parent); within one run, the stage with the longest remaining critical path goes
 *   first (`priority`, SPEC §3); ties first come, first served. Critical path across runs would
 *   advance every run in lockstep (all first stages, then all second ones…): the mix of calls
 *   in a window swings between token-heavy and request-heavy stages, so one limit idles while
 *   the other binds, and every run is still half done when the last window starts. Finishing
 *   runs in order keeps a steady mix of every stage kind in flight and a short tail.
 * - Aging: a waiter that has waited {@link AGING_MS} goes before every waiter that arrived after
 *   it (first come, first served among such waiters), so nothing starves: a call is passed only
 *   by calls of older runs or of its own run (finite work), and after AGING_MS by nobody who came
 *   later — even while a long-lived older run keeps the pool busy.
 * - `order: "fifo"` (for measurement): arrival order only, paced the same way.
 * Distributed workers (../distributed/redis-pool.ts) share the windows and pauses through Redis
 * but neither the order nor the pacing: there a waiter polls, and the first poll to find room wins.
 */
import type { PoolLease, PoolOutcome } from "../stages/types.js";
import { showPoolKey } from "../plan/limit.js";
import { setLongTimeout } from "../base/timers.js";

/** A pool's limits. */
export interface PoolSpec {
  readonly concurrency?: number;
  readonly rpm?: number;
  readonly tpm?: number;
}

/** Time source and timers (a simulated clock in tests). */
export interface PoolClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { clear(): void };
  /**
   * Run `fn` after the current burst of work, so every request made in one step competes for
   * capacity by priority instead of the first asker winning. @default queueMicrotask
   */
  defer?(fn: () => void): void;
}

export const realClock: PoolClock = {
  now: () => Date.now(),
  defer: (fn) => void setImmediate(fn),
  // A Retry-After may pause a pool for longer than one Node timer holds (~24.9 days).
  setTimeout: (fn, ms) => setLongTimeout(fn, ms),
};

/** How waiters are ordered. */
export type PoolOrder = "critical-path" | "fifo";

/** A request for capacity. */
export interface PoolRequest {
  /** Remaining critical-path length of the stage, in ms (higher goes first). */
  readonly priority: number;
  /** Estimated tokens of the call (0 for calls that are not metered by tokens). */
  readonly tokens: number;
  readonly signal?: AbortSignal | undefined;
  /** For diagnostics. */
  readonly label?: string;
  /**
   * The run the call belongs to (its id): calls of runs whose id sorts first go first. Run ids
   * are time-sortable and a child run's begins with its parent's. Calls without one rank first.
   */
  readonly run?: string;
  /** Called once, when the request first has to wait (live views): why, and which limit holds it. */
  readonly onWait?: (reason: string, limit: PoolLimitKind) => void;
}

/** Which of a pool's limits holds a waiter back. */
export type PoolLimitKind = "concurrency" | "rpm" | "tpm" | "paused";

// A lease and what a finished call reports back are what stage kinds see of a pool, so they are
// declared with the stage contract (../stages/types.ts) and implemented here.
export type { PoolLease, PoolOutcome };

const WINDOW_MS = 61_000;
const MIN_FACTOR = 0.125;
/** Share of a window a pool may grant at once after being idle; beyond it grants are paced. */
export const BURST = 0.1;
/** …but at least this many calls (requests, or calls of the pool's mean token estimate), so a small pool is not paced below its window. */
export const MIN_BURST = 10;
/** A waiter that has waited this long (ms) goes before every waiter that arrived after it. */
export const AGING_MS = 600_000;

interface Waiter {
  readonly req: PoolRequest;
  readonly seq: number;
  readonly since: number;
  reason: string | undefined;
  resolve(l: PoolLease): void;
  reject(e: unknown): void;
  onAbort?: () => void;
}

interface Sent {
  readonly at: number;
  readonly tokens: number;
}

/** Live numbers of a pool (for traces, the UI and tests). */
export interface PoolStats {
  readonly name: string;
  readonly inflight: number;
  readonly waiting: number;
  readonly requestsInWindow: number;
  readonly tokensInWindow: number;
  readonly pausedUntil: number;
  readonly factor: number;
  readonly granted: number;
  readonly rejected: number;
}

export class Pool {
  private inflight = 0;
  /** Requests in the window (grant times), for rpm. */
  private readonly sent: Sent[] = [];
  /** Tokens in the window, for tpm: an estimate from its grant, then the real usage from its release. */
  private tokens: Sent[] = [];
  private waiters: Waiter[] = [];
  private pausedUntil = 0;
  private factor = 1;
  private seq = 0;
  private wake: { clear(): void; at: number } | undefined;
  private granted = 0;
  private rejected = 0;
  /** Pacing: when the request and token clocks catch up (a grant is due once now ≥ clock − burst). */
  private reqClock = -Infinity;
  private tokClock = -Infinity;
  /** Mean token estimate of a call (for the token clock's burst). */
  private meanTokens = 0;
  /** Mean time from a grant to its release (ms): a slot stays in a window that much longer. */
  private meanCallMs = 0;
  /** Waiters were held back by a hard limit (window, concurrency, pause): no burst when it lifts. */
  private held = false;

  constructor(
    readonly name: string,
    readonly spec: PoolSpec,
    private readonly clock: PoolClock = realClock,
    /** "critical-path" (default): older runs first, then the longest remaining path, aged (see the header); "fifo": arrival order. */
    private readonly order: PoolOrder = "critical-path",
    /** The key of a keyed instance (`limit: { pool, key }`): one instance per key, each with the pool's limits. */
    readonly key?: string,
  ) {
    this.label = key === undefined ? `pool '${name}'` : `pool '${name}' (key '${showPoolKey(key)}')`;
  }

  /** How the pool shows in wait reasons. */
  private readonly label: string;

  /** Nothing in flight, waiting, in its windows or paused: forgetting it loses nothing. */
  idle(): boolean {
    const now = this.clock.now();
    this.expire(now);
    return this.inflight === 0 && this.waiters.length === 0 && this.sent.length === 0 && this.tokens.length === 0 && now >= this.pausedUntil;
  }

  /** Wait for capacity; rejects with the signal's reason if it aborts first. */
  acquire(req: PoolRequest): Promise<PoolLease> {
    if (req.signal?.aborted) return Promise.reject(req.signal.reason);
    return new Promise<PoolLease>((resolve, reject) => {
      const w: Waiter = { req, seq: this.seq++, since: this.clock.now(), reason: undefined, resolve, reject };
      if (req.signal) {
        w.onAbort = () => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(req.signal!.reason);
        };
        req.signal.addEventListener("abort", w.onAbort, { once: true });
      }
      if (this.waiters.length === 0) this.held = false;
      this.waiters.push(w);
      this.schedulePump();
    });
  }

  private pumpQueued = false;

  /** Pump once the current burst of requests has arrived. */
  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    const run = (): void => {
      this.pumpQueued = false;
      this.pump();
    };
    if (this.clock.defer) this.clock.defer(run);
    else queueMicrotask(run);
  }

  stats(): PoolStats {
    this.expire(this.clock.now());
    return {
      name: this.name, inflight: this.inflight, waiting: this.waiters.length, requestsInWindow: this.sent.length,
      tokensInWindow: this.tokens.reduce((a, s) => a + s.tokens, 0), pausedUntil: this.pausedUntil, factor: this.factor,
      granted: this.granted, rejected: this.rejected,
    };
  }

  private expire(now: number): void {
    let i = 0;
    while (i < this.sent.length && this.sent[i]!.at <= now - WINDOW_MS) i++;
    if (i > 0) this.sent.splice(0, i);
    if (this.tokens.length && this.tokens[0]!.at <= now - WINDOW_MS) this.tokens = this.tokens.filter((t) => t.at > now - WINDOW_MS);
  }

  /** Why `w` cannot start now (undefined: it can), and when to look again. */
  private blocked(w: Waiter, now: number): { reason: string; retryAt: number | undefined; limit: PoolLimitKind; pace?: true } | undefined {
    const { concurrency, rpm, tpm } = this.spec;
    if (now < this.pausedUntil) return { reason: `${this.label} paused by the provider until ${new Date(this.pausedUntil).toISOString()}`, retryAt: this.pausedUntil, limit: "paused" };
    if (concurrency !== undefined && this.inflight >= Math.max(1, Math.floor(concurrency * this.factor))) {
      return { reason: `${this.label} at its concurrency of ${Math.max(1, Math.floor(concurrency * this.factor))}`, retryAt: undefined, limit: "concurrency" };
    }
    if (rpm !== undefined) {
      const cap = Math.max(1, Math.floor(rpm * this.factor));
      if (this.sent.length >= cap) return { reason: `${this.label} at its ${cap} requests per minute`, retryAt: this.sent[this.sent.length - cap]!.at + WINDOW_MS, limit: "rpm" };
    }
    if (tpm !== undefined && this.tokens.length > 0) {
      const cap = Math.max(1, Math.floor(tpm * this.factor));
      let used = 0;
      for (const t of this.tokens) used += t.tokens;
      if (used + w.req.tokens > cap) {
        // The oldest tokens must leave the window until this call fits.
        const byAge = [...this.tokens].sort((a, b) => a.at - b.at);
        let free = cap - used;
        let at: number | undefined;
        for (const t of byAge) {
          free += t.tokens;
          if (free >= w.req.tokens) {
            at = t.at + WINDOW_MS;
            break;
          }
        }
        return { reason: `${this.label} at its ${cap} tokens per minute`, retryAt: at ?? byAge[byAge.length - 1]!.at + WINDOW_MS, limit: "tpm" };
      }
    }
    return this.paced(now);
  }

  /** Pacing (see the header): whether the next grant must wait for the request or token clock. */
  private paced(now: number): { reason: string; retryAt: number; limit: PoolLimitKind; pace: true } | undefined {
    const { rpm, tpm } = this.spec;
    if (rpm !== undefined && now < this.reqClock - this.reqSlack()) {
      return { reason: `${this.label} at its ${Math.max(1, Math.floor(rpm * this.factor))} requests per minute`, retryAt: Math.ceil(this.reqClock - this.reqSlack()), limit: "rpm", pace: true };
    }
    if (tpm !== undefined && now < this.tokClock - this.tokSlack()) {
      return { reason: `${this.label} at its ${Math.max(1, Math.floor(tpm * this.factor))} tokens per minute`, retryAt: Math.ceil(this.tokClock - this.tokSlack()), limit: "tpm", pace: true };
    }
    return undefined;
  }

  /** How far ahead of now the request clock may run (the burst after idle), in ms. */
  private reqSlack(): number {
    return this.spec.rpm === undefined ? 0 : WINDOW_MS * Math.max(BURST, MIN_BURST / Math.max(1, Math.floor(this.spec.rpm * this.factor)));
  }

  private tokSlack(): number {
    return this.spec.tpm === undefined ? 0 : WINDOW_MS * Math.max(BURST, (MIN_BURST * this.meanTokens) / Math.max(1, Math.floor(this.spec.tpm * this.factor)));
  }

  /**
   * How long the clocks take to free a window's capacity: the window, plus the mean call (a
   * slot leaves the window a window after its call *ended*). Pacing any faster fills the window
   * before its oldest slots leave it: then grants stall, and the slots that leave together let
   * a burst through — the pattern pacing is there to avoid.
   */
  private paceSpan(): number {
    return WINDOW_MS + this.meanCallMs;
  }

  /** ms of the token clock one token takes (0 without tpm). */
  private msPerToken(): number {
    return this.spec.tpm === undefined ? 0 : this.paceSpan() / Math.max(1, Math.floor(this.spec.tpm * this.factor));
  }

  /** Negative when `a` goes before `b` (see the header: aging, then run, then critical path, then arrival). */
  private rank(a: Waiter, b: Waiter, now: number): number {
    if (this.order === "fifo") return a.seq - b.seq;
    const agedA = now - a.since >= AGING_MS;
    if (agedA !== now - b.since >= AGING_MS) return agedA ? -1 : 1;
    if (!agedA) {
      const ra = a.req.run ?? "";
      const rb = b.req.run ?? "";
      if (ra !== rb) return ra < rb ? -1 : 1;
      if (a.req.priority !== b.req.priority) return b.req.priority - a.req.priority;
    }
    return a.seq - b.seq;
  }

  private best(now: number): Waiter | undefined {
    let best: Waiter | undefined;
    for (const w of this.waiters) if (best === undefined || this.rank(w, best, now) < 0) best = w;
    return best;
  }

  /** Grant capacity to waiters, best first, while it lasts; set a timer for when it frees up. */
  private pump(): void {
    const now = this.clock.now();
    this.expire(now);
    for (;;) {
      const w = this.best(now);
      if (!w) break;
      const b = this.blocked(w, now);
      if (b) {
        if (!b.pace) this.held = true;
        for (const o of this.waiters) {
          if (o.reason !== undefined) continue;
          o.reason = b.reason;
          o.req.onWait?.(b.reason, b.limit);
        }
        this.schedule(b.retryAt, now);
        return;
      }
      this.waiters = this.waiters.filter((x) => x !== w);
      if (w.onAbort) w.req.signal?.removeEventListener("abort", w.onAbort);
      w.resolve(this.grant(w, now));
    }
  }

  private schedule(at: number | undefined, now: number): void {
    if (at === undefined) return; // a release will pump
    if (this.wake && this.wake.at <= at && this.wake.at > now) return;
    this.wake?.clear();
    const t = this.clock.setTimeout(() => {
      this.wake = undefined;
      this.pump();
    }, Math.max(1, at - now));
    this.wake = { clear: () => t.clear(), at };
  }

  private grant(w: Waiter, now: number): PoolLease {
    this.inflight++;
    this.granted++;
    const slot: Sent = { at: now, tokens: 0 };
    this.sent.push(slot);
    // Counted from the grant with its estimate; on release, from then with its real usage (a
    // provider may count a call's tokens when it answers, so they stay in its window longer).
    const entry: Sent = { at: now, tokens: w.req.tokens };
    if (w.req.tokens > 0) this.tokens.push(entry);
    if (this.held) {
      // Capacity that a hard limit held back frees at the rate it was used: no burst on top of it.
      // (A pool whose burst is a whole window or more is not paced: nothing to hold.)
      this.held = false;
      if (this.reqSlack() < WINDOW_MS) this.reqClock = Math.max(this.reqClock, now + this.reqSlack());
      if (this.tokSlack() < WINDOW_MS) this.tokClock = Math.max(this.tokClock, now + this.tokSlack());
    }
    if (this.spec.rpm !== undefined) this.reqClock = Math.max(this.reqClock, now) + this.paceSpan() / Math.max(1, Math.floor(this.spec.rpm * this.factor));
    const perToken = this.msPerToken();
    if (perToken > 0 && w.req.tokens > 0) {
      this.tokClock = Math.max(this.tokClock, now) + w.req.tokens * perToken;
      this.meanTokens = this.meanTokens === 0 ? w.req.tokens : this.meanTokens * 0.9 + w.req.tokens * 0.1;
    }
    let done = false;
    return {
      pool: this.name,
      ...(this.key !== undefined ? { key: this.key } : {}),
      waitedMs: now - w.since,
      reason: w.reason,
      release: (outcome = {}) => {
        if (done) return;
        done = true;
        this.inflight--;
        const t = this.clock.now();
        this.meanCallMs = this.meanCallMs * 0.9 + (t - now) * 0.1;
        // A provider dates a request when it arrives, which may be well after the grant on a busy
        // machine: keep the slot until a window after the call ended (conservative, stays ordered).
        const i = this.sent.indexOf(slot);
        if (i >= 0) {
          this.sent.splice(i, 1);
          this.sent.push({ at: t, tokens: 0 });
        }
        if (outcome.tokens !== undefined) {
          // The token clock ran on the estimate: move it by what the call really used.
          this.tokClock += (outcome.tokens - w.req.tokens) * perToken;
          this.tokens = this.tokens.filter((x) => x !== entry);
          if (outcome.tokens > 0) this.tokens.push({ at: t, tokens: outcome.tokens });
        }
        if (outcome.rejected) {
          this.rejected++;
          if (outcome.retryAfterMs !== undefined) {
            this.pausedUntil = Math.max(this.pausedUntil, t + outcome.retryAfterMs);
          } else {
            this.factor = Math.max(MIN_FACTOR, this.factor / 2);
            this.pausedUntil = Math.max(this.pausedUntil, t + 1000);
          }
        } else if (this.factor < 1) {
          this.factor = Math.min(1, this.factor + 0.05 + (1 - this.factor) * 0.1);
        }
        this.pump();
      },
    };
  }
}

/** Keyed instances a pool keeps at most by default (idle ones are forgotten first). */
export const DEFAULT_MAX_POOL_KEYS = 10_000;

/** The process's pools, by name. */
export class Pools {
  private readonly pools = new Map<string, Pool>();
  /** Keyed instances (`limit: { pool, key }`) by pool name, then key; each has its pool's spec. */
  private readonly keyed = new Map<string, Map<string, Pool>>();
  constructor(
    private readonly clock: PoolClock = realClock,
    /** Definitions that win over templates' (from baton.config `limits:`). */
    private readonly fixed: Record<string, PoolSpec> = {},
    /** Waiter order for every pool (FIFO exists to measure what critical-path priority buys). */
    private readonly order: PoolOrder = "critical-path",
    /** Keyed instances per pool at most: when full, idle ones are forgotten; if none is, acquiring a new key fails (retryably). */
    private readonly maxKeys: number = DEFAULT_MAX_POOL_KEYS,
  ) {
    for (const [name, spec] of Object.entries(fixed)) this.pools.set(name, new Pool(name, spec, clock, order));
  }

  /** Define pools a plan declares (the first definition of a name wins; config wins over templates). */
  define(limits: Readonly<Record<string, PoolSpec>>): void {
    for (const [name, spec] of Object.entries(limits)) if (!this.pools.has(name)) this.pools.set(name, new Pool(name, spec, this.clock, this.order));
  }

  /** Definitions from baton.config `limits:`: they replace a template's definition of the same name. */
  configure(limits: Readonly<Record<string, PoolSpec>>): void {
    for (const [name, spec] of Object.entries(limits)) {
      const cur = this.pools.get(name);
      if (!cur || JSON.stringify(cur.spec) !== JSON.stringify(spec)) {
        this.pools.set(name, new Pool(name, spec, this.clock, this.order));
        this.keyed.delete(name);
      }
      (this.fixed as Record<string, PoolSpec>)[name] = spec;
    }
  }

  /** Pool `name`, or with `key` its instance for that key (made on first use, with the pool's limits). */
  get(name: string, key?: string): Pool | undefined {
    const base = this.pools.get(name);
    if (base === undefined || key === undefined) return base;
    let byKey = this.keyed.get(name);
    if (!byKey) this.keyed.set(name, (byKey = new Map()));
    let p = byKey.get(key);
    if (p) return p;
    if (byKey.size >= this.maxKeys) {
      for (const [k, q] of byKey) if (q.idle()) byKey.delete(k);
      if (byKey.size >= this.maxKeys) {
        throw new Error(`pool '${name}': ${byKey.size} keys are in use at once (the most a pool keeps); key '${showPoolKey(key)}' waits for one to go idle`);
      }
    }
    p = new Pool(name, base.spec, this.clock, this.order, key);
    byKey.set(key, p);
    return p;
  }

  /** The live keyed instances of pool `name` (for tests and diagnostics). */
  keys(name: string): readonly string[] {
    return [...(this.keyed.get(name)?.keys() ?? [])];
  }

  stats(): PoolStats[] {
    return [...this.pools.values()].map((p) => p.stats());
  }

  /** Names defined by config. */
  get configured(): readonly string[] {
    return Object.keys(this.fixed);
  }
}
