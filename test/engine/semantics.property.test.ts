/**
 * Property tests that pin the engine's control-flow semantics directly (SPEC §1 "Control flow"
 * and "Errors"), with exact values: retry counts, backoff and Retry-After, non-retryable errors,
 * on_error (fail / continue / fallback, for_each items), route `max`, run concurrency and slots.
 * A one-line change to any of these rules in src/engine must fail one of them.
 *
 * The driver (pin-helpers.ts) answers every execution as the test chooses and decides at a
 * simulated clock; nothing here reads the wall clock.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { apply, decide, fold, type BatonEvent, type StageError } from "../../src/engine/index.js";
import type { RetryPolicy } from "../../src/plan/types.js";
import { makePlan, type SimStage } from "./sim.js";
import { Driver, keyStr, rng, type Attempt, type Action } from "./pin-helpers.js";

/** `PIN_RUNS_SCALE=20 npx vitest run …` multiplies every property's runs (for a soak, not CI). */
const runs = (n: number): number => Math.max(1, Math.round(n * Number(process.env.PIN_RUNS_SCALE ?? "1")));

const RETRYABLE_KINDS = ["timeout", "network", "http", "rate_limited", "overloaded", "malformed_output", "handler"] as const;
const FATAL_KINDS = ["auth", "template", "expression", "budget", "handler"] as const;

const arbPolicy: fc.Arbitrary<RetryPolicy> = fc.record({
  attempts: fc.integer({ min: 1, max: 6 }),
  backoff: fc.constantFrom("exponential" as const, "fixed" as const),
  delayMs: fc.integer({ min: 0, max: 5000 }),
  maxDelayMs: fc.integer({ min: 0, max: 40000 }),
  jitter: fc.constantFrom("full" as const, "none" as const),
});

type OnErr = "fail" | "continue" | "fallback";

interface RetryCase {
  policy: RetryPolicy;
  onError: OnErr;
  seed: number;
  /** For the m-th start of stage `a`: interrupt it (cancel from outside, or crash) instead of failing it. */
  interrupts: ("none" | "cancel" | "crash")[];
  /** Error kind index per failure. */
  kinds: number[];
  /** Retry-After per failure. */
  retryAfter: (number | undefined)[];
  /** Crash while a retry is waiting. */
  crashWait: boolean[];
  /** The failure (0-based) that is not retryable, if any. */
  fatalAt: number | undefined;
  fbAttempts: number;
  fbFails: boolean;
}

const arbRetryCase = (o: { interrupts?: boolean; retryAfter?: boolean; fatal?: boolean } = {}): fc.Arbitrary<RetryCase> =>
  fc.record({
    policy: arbPolicy,
    onError: fc.constantFrom("fail" as const, "continue" as const, "fallback" as const),
    seed: fc.integer({ min: 0, max: 0x7fffffff }),
    interrupts: o.interrupts ? fc.array(fc.constantFrom("none" as const, "none" as const, "cancel" as const, "crash" as const), { maxLength: 12 }) : fc.constant([]),
    kinds: fc.array(fc.nat({ max: 6 }), { minLength: 8, maxLength: 8 }),
    retryAfter: o.retryAfter
      ? fc.array(fc.option(fc.integer({ min: 0, max: 60000 }), { nil: undefined }), { minLength: 8, maxLength: 8 })
      : fc.constant([]),
    crashWait: fc.array(fc.boolean(), { maxLength: 6 }),
    fatalAt: o.fatal ? fc.nat({ max: 5 }) : fc.constant(undefined),
    fbAttempts: fc.integer({ min: 1, max: 3 }),
    fbFails: fc.boolean(),
  });

interface RetryRun {
  d: Driver;
  interruptions: number;
  failures: StageError[];
}

/** Stage `a` (every attempt fails, or is interrupted), `b` reads `a`; `fb` is a's fallback when on_error is fallback. */
function runRetryCase(c: RetryCase): RetryRun {
  const stages: SimStage[] = [
    { id: "a", retry: c.policy, onError: c.onError === "fallback" ? { fallback: "fb" } : c.onError },
    { id: "b", deps: ["a"] },
  ];
  if (c.onError === "fallback") stages.push({ id: "fb", isFallback: true, retry: { attempts: c.fbAttempts, delayMs: 0 } });
  const plan = makePlan(stages);
  const crashWait = [...c.crashWait];
  const d = new Driver(plan, { seed: c.seed, crashWhileWaiting: () => crashWait.shift() ?? false });
  let starts = 0;
  let interruptions = 0;
  const failures: StageError[] = [];
  d.run((a): Action => {
    if (a.stage === "a") {
      const intr = c.interrupts[starts++];
      if (intr !== undefined && intr !== "none") {
        interruptions++;
        return { interrupt: intr };
      }
      const f = failures.length;
      const fatal = c.fatalAt !== undefined && f >= c.fatalAt;
      const ra = c.retryAfter[f];
      const error: StageError = {
        kind: fatal ? FATAL_KINDS[c.kinds[f]! % FATAL_KINDS.length]! : RETRYABLE_KINDS[c.kinds[f]!]!,
        message: `a failed (${f + 1})`,
        retryable: !fatal,
        ...(ra !== undefined ? { retry_after_ms: ra } : {}),
      };
      failures.push(error);
      return { fail: error };
    }
    if (a.stage === "fb") return c.fbFails ? { fail: { kind: "template", message: "fb failed", retryable: false } } : { ok: { from: "fb", item: a.item ?? null } };
    return { ok: { from: a.stage } };
  });
  return { d, interruptions, failures };
}

/** How a stage that failed for good settled, per its on_error. */
function checkSettlement(r: RetryRun, c: RetryCase): void {
  const { d } = r;
  const last = r.failures[r.failures.length - 1]!;
  const fin = d.finished();
  const bStarts = d.events("stage_started", "b");
  const a = d.state.nodes[d.idx("a")]!;
  if (c.onError === "fail") {
    expect(fin?.status).toBe("failed");
    expect(fin?.error).toEqual({ stage: "a", kind: last.kind, message: last.message });
    expect(d.events("stage_settled", "a").map((e) => e.outcome)).toEqual(["failed"]);
    expect(bStarts).toHaveLength(0);
  } else if (c.onError === "continue") {
    const settled = d.events("stage_settled", "a");
    expect(settled.map((e) => [e.outcome, e.output])).toEqual([["continued", null]]);
    expect([a.outcome, a.output]).toEqual(["continued", null]);
    expect(bStarts).toHaveLength(1);
    const bRun = d.log.filter((e) => e.type === "stage_succeeded" && e.stage === "b");
    expect(bRun).toHaveLength(1);
    expect(fin?.status).toBe("succeeded");
    expect(scopeSeen(d, "b")).toEqual([{ a: null }]);
  } else {
    expect(d.events("decision", "a").filter((e) => e.kind === "fallback")).toHaveLength(1);
    const fbStarts = d.events("stage_started", "fb", "a");
    expect(fbStarts.map((e) => [e.visit, e.attempt])).toEqual([[1, 1]]);
    if (c.fbFails) {
      expect(fin?.status).toBe("failed");
      expect(fin?.error).toEqual({ stage: "a", kind: "template", message: "fb failed" });
      expect(bStarts).toHaveLength(0);
    } else {
      expect([a.outcome, a.output]).toEqual(["fallback", { from: "fb", item: null }]);
      expect(bStarts).toHaveLength(1);
      expect(scopeSeen(d, "b")).toEqual([{ a: { from: "fb", item: null } }]);
      expect(fin?.status).toBe("succeeded");
    }
  }
}

/** What a stage read from its dependencies each time it started. */
const scopeSeen = (d: Driver, stage: string): Record<string, unknown>[] => d.scopes.get(stage) ?? [];

/**
 * Every retry_scheduled against the policy: delay = backoff(policy, n) (exponential
 * `delay * 2^(n-1)` or fixed, capped by max_delay; full jitter within [0, capped)), at least the
 * failure's Retry-After capped by max_delay; due_at = at + delay_ms; the retry starts exactly
 * at due_at.
 */
function scheduleViolations(d: Driver, policyOf: (stage: string) => RetryPolicy): string[] {
  const out: string[] = [];
  const fails = new Map<string, Extract<BatonEvent, { type: "stage_failed" }>[]>();
  d.log.forEach((e, i) => {
    if (e.type === "stage_failed") fails.set(keyStr(e), [...(fails.get(keyStr(e)) ?? []), e]);
    if (e.type !== "retry_scheduled") return;
    const k = keyStr(e);
    const fs = fails.get(k) ?? [];
    const f = fs[fs.length - 1];
    if (!f) return void out.push(`retry_scheduled without a failure: ${JSON.stringify(e)}`);
    const n = fs.length; // this is retry number n
    const p = policyOf(e.fallback_for === undefined ? e.stage : e.stage);
    const base = p.backoff === "fixed" ? p.delayMs : p.delayMs * 2 ** (n - 1);
    const cap = Math.min(base, p.maxDelayMs);
    // Retry-After is honoured up to max_delay, never beyond it.
    const ra = f.error.retry_after_ms === undefined ? undefined : Math.min(f.error.retry_after_ms, p.maxDelayMs);
    if (e.at !== f.at) out.push(`retry ${n} of ${k} scheduled at ${e.at}, failure at ${f.at}`);
    if (e.due_at !== e.at + e.delay_ms) out.push(`retry ${n} of ${k}: due_at ${e.due_at} != at ${e.at} + delay_ms ${e.delay_ms}`);
    if (p.jitter === "none") {
      const want = ra === undefined ? cap : Math.max(cap, ra);
      if (e.delay_ms !== want) out.push(`retry ${n} of ${k}: delay_ms ${e.delay_ms}, want ${want} (cap ${cap}, retry-after ${ra})`);
    } else {
      const jittered = e.delay_ms < cap || (cap === 0 && e.delay_ms === 0);
      const ok = ra === undefined ? jittered && e.delay_ms >= 0 : e.delay_ms === ra || (e.delay_ms > ra && jittered);
      if (!ok || !Number.isInteger(e.delay_ms)) out.push(`retry ${n} of ${k}: delay_ms ${e.delay_ms} not in full jitter [0, ${cap}) (retry-after ${ra})`);
    }
    const next = d.log.slice(i + 1).find((x): x is Extract<BatonEvent, { type: "stage_started" }> => x.type === "stage_started" && keyStr(x) === k);
    if (!next) out.push(`retry ${n} of ${k} never started`);
    else {
      if (next.attempt !== e.attempt) out.push(`retry ${n} of ${k} scheduled attempt ${e.attempt}, started ${next.attempt}`);
      if (next.at !== e.due_at) out.push(`retry ${n} of ${k} due at ${e.due_at}, started at ${next.at}`);
      if (ra !== undefined && next.at - f.at < ra) out.push(`retry ${n} of ${k} started ${next.at - f.at} ms after a Retry-After of ${ra}`);
    }
  });
  return out;
}

describe("retries", () => {
  it("a stage whose attempts all fail retryably starts exactly `attempts` times (interruptions do not count), then settles per on_error", () => {
    fc.assert(
      fc.property(arbRetryCase({ interrupts: true }), (c) => {
        const r = runRetryCase(c);
        const { d } = r;
        expect(d.violations).toEqual([]);
        const N = c.policy.attempts;
        expect(r.failures).toHaveLength(N);
        const starts = d.events("stage_started", "a");
        expect(starts).toHaveLength(N + r.interruptions);
        expect(starts.map((e) => e.attempt)).toEqual(Array.from({ length: N + r.interruptions }, (_, i) => i + 1));
        expect(d.events("stage_failed", "a")).toHaveLength(N);
        expect(d.events("retry_scheduled", "a").map((e) => e.attempt)).toHaveLength(N - 1);
        checkSettlement(r, c);
      }),
      { numRuns: runs(250) },
    );
  });

  it("the retry delay is the policy's backoff (exponential / fixed, capped, full jitter), due_at = at + delay_ms, and the retry starts at due_at, not before", () => {
    fc.assert(
      fc.property(arbRetryCase({ interrupts: true }), (c) => {
        const r = runRetryCase(c);
        expect(r.d.violations).toEqual([]);
        expect(scheduleViolations(r.d, () => c.policy)).toEqual([]);
        // One wake-up per retry: the clock only ever jumped to a retry's due time.
        const dues = r.d.events("retry_scheduled", "a").filter((e) => e.delay_ms > 0).map((e) => e.due_at);
        expect(r.d.wakes.map((w) => w.to)).toEqual(dues);
      }),
      { numRuns: runs(250) },
    );
  });

  it("exact backoff without jitter: exponential delay·2^(n-1) capped by max_delay, fixed delay", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4000 }), fc.integer({ min: 1, max: 50000 }), fc.constantFrom("exponential" as const, "fixed" as const), fc.integer({ min: 2, max: 7 }),
        (delayMs, maxDelayMs, backoff, attempts) => {
          const c: RetryCase = {
            policy: { attempts, backoff, delayMs, maxDelayMs, jitter: "none" }, onError: "fail", seed: 7, interrupts: [],
            kinds: [0, 0, 0, 0, 0, 0, 0, 0], retryAfter: [], crashWait: [], fatalAt: undefined, fbAttempts: 1, fbFails: false,
          };
          const { d } = runRetryCase(c);
          const want = Array.from({ length: attempts - 1 }, (_, i) => Math.min(backoff === "fixed" ? delayMs : delayMs * 2 ** i, maxDelayMs));
          expect(d.events("retry_scheduled", "a").map((e) => e.delay_ms)).toEqual(want);
        },
      ),
      { numRuns: runs(200) },
    );
  });

  it("full jitter is uniform over [0, capped) and a pure function of the run's seed (replay decides the same delay)", () => {
    const fractions: number[] = [];
    for (let seed = 1; seed <= 300; seed++) {
      const plan = makePlan([{ id: "a", retry: { attempts: 2, backoff: "exponential", delayMs: 10000, maxDelayMs: 60000, jitter: "full" } }]);
      const d = new Driver(plan, { seed });
      d.run((a) => (a.attempt === 1 ? { fail: { kind: "network", message: "x", retryable: true } } : { ok: 1 }));
      const [rs] = d.events("retry_scheduled", "a");
      expect(rs).toBeDefined();
      fractions.push(rs!.delay_ms / 10000);
      // Replay: fold the log up to the failure and decide at the same time: the same delay.
      const cut = d.log.findIndex((e) => e.type === "stage_failed");
      const again = decide(fold(plan, d.log.slice(0, cut + 1)), rs!.at);
      expect(again.events.find((e) => e.type === "retry_scheduled")).toEqual(rs);
    }
    expect(Math.min(...fractions)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...fractions)).toBeLessThan(1);
    const mean = fractions.reduce((s, x) => s + x, 0) / fractions.length;
    expect(mean).toBeGreaterThan(0.42);
    expect(mean).toBeLessThan(0.58);
    expect(fractions.filter((x) => x < 0.25).length).toBeGreaterThan(45);
    expect(fractions.filter((x) => x >= 0.75).length).toBeGreaterThan(45);
  });

  it("Retry-After: a retry waits max(backoff, min(retry_after_ms, max_delay))", () => {
    fc.assert(
      fc.property(arbRetryCase({ retryAfter: true, interrupts: true }), (c) => {
        const r = runRetryCase(c);
        expect(r.d.violations).toEqual([]);
        expect(scheduleViolations(r.d, () => c.policy)).toEqual([]);
        expect(r.failures).toHaveLength(c.policy.attempts);
      }),
      { numRuns: runs(250) },
    );
  });

  it("a 30-day Retry-After is capped by max_delay: the retry is due max_delay later, not in a month (issue 13.9)", () => {
    const plan = makePlan([{ id: "a", retry: { attempts: 2, backoff: "fixed", delayMs: 1000, maxDelayMs: 30_000, jitter: "none" } }]);
    const d = new Driver(plan, { seed: 1 });
    d.run((a) => (a.attempt === 1 ? { fail: { kind: "rate_limited", message: "429", retryable: true, retry_after_ms: 30 * 86_400_000 } } : { ok: 1 }));
    const [rs] = d.events("retry_scheduled", "a");
    expect(rs).toMatchObject({ delay_ms: 30_000, due_at: rs!.at + 30_000 });
    expect(d.events("stage_started", "a").map((e) => e.attempt)).toEqual([1, 2]);
  });

  it("a non-retryable error stops at once: no retry after it, whatever attempts are left", () => {
    fc.assert(
      fc.property(arbRetryCase({ fatal: true, interrupts: true }), (c) => {
        const r = runRetryCase(c);
        const { d } = r;
        expect(d.violations).toEqual([]);
        const N = c.policy.attempts;
        const want = Math.min(N, c.fatalAt! + 1); // retryable failures before the fatal one, then the fatal one
        expect(r.failures).toHaveLength(want);
        expect(d.events("stage_started", "a")).toHaveLength(want + r.interruptions);
        expect(d.events("retry_scheduled", "a")).toHaveLength(want - 1);
        if (c.fatalAt === 0 && r.interruptions === 0) expect(d.events("stage_started", "a")).toHaveLength(1);
        checkSettlement(r, c);
      }),
      { numRuns: runs(250) },
    );
  });

  it("a fallback that fails retryably is retried per its own policy, then fails the run with its error", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), (aAttempts, fbAttempts) => {
        const plan = makePlan([
          { id: "a", retry: { attempts: aAttempts, delayMs: 0 }, onError: { fallback: "fb" } },
          { id: "b", deps: ["a"] },
          { id: "fb", isFallback: true, retry: { attempts: fbAttempts, delayMs: 0 } },
        ]);
        const d = new Driver(plan);
        d.run((a) => ({ fail: { kind: "network", message: `${a.stage} failed ${a.attempt}`, retryable: true } }));
        expect(d.violations).toEqual([]);
        expect(d.events("stage_started", "a")).toHaveLength(aAttempts);
        expect(d.events("stage_started", "fb", "a").map((e) => e.attempt)).toEqual(Array.from({ length: fbAttempts }, (_, i) => i + 1));
        expect(d.finished()?.error).toEqual({ stage: "a", kind: "network", message: `fb failed ${fbAttempts}` });
        expect(d.events("stage_started", "b")).toHaveLength(0);
      }),
      { numRuns: runs(60) },
    );
  });
});

describe("for_each and on_error", () => {
  it("for_each + on_error: continue nulls exactly the failed items; fallback stands in per failed item; fail fails the run", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }).chain((k) => fc.record({
          k: fc.constant(k),
          failed: fc.subarray(Array.from({ length: k }, (_, i) => i)),
          attempts: fc.integer({ min: 1, max: 3 }),
          itemConcurrency: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
          onError: fc.constantFrom("continue" as const, "fallback" as const, "fail" as const),
          pick: fc.integer(),
          interrupts: fc.array(fc.constantFrom("none" as const, "none" as const, "none" as const, "cancel" as const, "crash" as const), { maxLength: 10 }),
        })),
        (c) => {
          const stages: SimStage[] = [
            { id: "m", items: c.k, retry: { attempts: c.attempts, delayMs: 0 }, onError: c.onError === "fallback" ? { fallback: "fb" } : c.onError, ...(c.itemConcurrency ? { itemConcurrency: c.itemConcurrency } : {}) },
            { id: "after", deps: ["m"] },
          ];
          if (c.onError === "fallback") stages.push({ id: "fb", isFallback: true });
          const d = new Driver(makePlan(stages), { items: { m: c.k }, pick: rng(c.pick) });
          const failed = new Set(c.failed);
          const interrupts = [...c.interrupts];
          const interrupted = new Map<number, number>(); // item → attempts of it cut short
          let fbInterrupted = 0; // fallback calls cut short by a crash
          const cutShort = (x: Attempt): void => {
            if (x.stage === "m") interrupted.set(x.item!, (interrupted.get(x.item!) ?? 0) + 1);
            else if (x.stage === "fb") fbInterrupted++;
          };
          d.run((a: Attempt, dr) => {
            const intr = a.stage === "m" ? interrupts.shift() : undefined;
            if (intr === "cancel" || intr === "crash") {
              cutShort(a);
              if (intr === "crash") dr.running.forEach(cutShort); // a crash loses every attempt in flight
              return { interrupt: intr };
            }
            if (a.stage === "m") return failed.has(a.item!) ? { fail: { kind: "handler", message: `item ${a.item} failed`, retryable: true } } : { ok: { item: a.item } };
            if (a.stage === "fb") return { ok: { from: "fb", item: a.item } };
            return { ok: "done" };
          });
          expect(d.violations).toEqual([]);
          const startsOf = (i: number): number => d.log.filter((e) => e.type === "stage_started" && e.stage === "m" && e.item === i && e.fallback_for === undefined).length;
          const fin = d.finished();
          if (c.onError === "fail" && failed.size > 0) {
            // The first item to fail for good fails the run with its error, after all its attempts.
            expect(fin?.status).toBe("failed");
            const i = Number(/^item (\d+) failed$/.exec(fin?.error?.message ?? "")?.[1]);
            expect(failed.has(i)).toBe(true);
            expect(fin?.error).toEqual({ stage: "m", kind: "handler", message: `item ${i} failed` });
            expect(startsOf(i)).toBe(c.attempts + (interrupted.get(i) ?? 0));
            expect(d.events("stage_started", "after")).toHaveLength(0);
            return;
          }
          for (let i = 0; i < c.k; i++) expect(startsOf(i)).toBe((failed.has(i) ? c.attempts : 1) + (interrupted.get(i) ?? 0));
          const want = Array.from({ length: c.k }, (_, i) => (!failed.has(i) ? { item: i } : c.onError === "continue" ? null : { from: "fb", item: i }));
          expect(d.state.nodes[d.idx("m")]!.output).toEqual(want);
          expect(d.state.nodes[d.idx("m")]!.outcome).toBe("succeeded");
          expect(scopeSeen(d, "after")).toEqual([{ m: want }]);
          expect(fin?.status).toBe("succeeded");
          expect(d.events("stage_completed", "m")).toHaveLength(1);
          const settled = d.events("stage_settled", "m").map((e) => [e.item, e.outcome, e.output ?? null]).sort((x, y) => (x[0] as number) - (y[0] as number));
          if (c.onError === "continue") expect(settled).toEqual(c.failed.map((i) => [i, "continued", null]));
          else {
            expect(settled).toEqual([]);
            // One fallback call per failed item (a call cut short by a crash runs again).
            const fbStarts = d.events("stage_started", "fb", "m");
            expect([...new Set(fbStarts.map((e) => e.item))].sort((x, y) => x! - y!)).toEqual(c.failed);
            expect(fbStarts).toHaveLength(c.failed.length + fbInterrupted);
          }
        },
      ),
      { numRuns: runs(200) },
    );
  });
});

describe("routes", () => {
  interface RouteCase {
    len: number;
    router: number;
    routes: { target: number; max: number }[];
    /** After the goto routes: a `fail:` route. */
    failAfter: boolean;
    /** Outcomes of `when`, consumed in evaluation order (then false); undefined: always true. */
    when: boolean[] | undefined;
  }
  const arbRouteCase: fc.Arbitrary<RouteCase> = fc.integer({ min: 1, max: 5 }).chain((len) =>
    fc.integer({ min: 0, max: len - 1 }).chain((router) =>
      fc.record({
        len: fc.constant(len),
        router: fc.constant(router),
        routes: fc.array(fc.record({ target: fc.integer({ min: 0, max: router }), max: fc.integer({ min: 0, max: 4 }) }), { minLength: 1, maxLength: 3 }),
        failAfter: fc.boolean(),
        when: fc.option(fc.array(fc.boolean(), { maxLength: 20 }), { nil: undefined }),
      }),
    ),
  );

  /** The spec's route semantics on a chain s0 → s1 → … (expected visits, executions, takes). */
  function model(c: RouteCase): { visits: number[][]; taken: number[]; failed: boolean } {
    const visit = Array.from({ length: c.len }, () => 1);
    const runs: number[][] = Array.from({ length: c.len }, () => []);
    const taken = c.routes.map(() => 0);
    const when = c.when ? [...c.when] : undefined;
    const holds = (): boolean => (when ? when.shift() ?? false : true);
    let lo = 0;
    for (;;) {
      for (let x = lo; x <= c.router; x++) runs[x]!.push(visit[x]!);
      let took = -1;
      for (let i = 0; i < c.routes.length; i++) {
        if (taken[i]! >= c.routes[i]!.max) continue;
        if (holds()) { took = i; break; }
      }
      if (took < 0) {
        if (c.failAfter && holds()) return { visits: runs, taken, failed: true };
        break;
      }
      taken[took]!++;
      const t = c.routes[took]!.target;
      for (let x = t; x < c.len; x++) visit[x]!++;
      lo = t;
    }
    for (let x = c.router + 1; x < c.len; x++) runs[x]!.push(visit[x]!);
    return { visits: runs, taken, failed: false };
  }

  it("a backward route with max k is taken exactly k times, then the next route (or completion); target and descendants get visit k+1", () => {
    fc.assert(
      fc.property(arbRouteCase, (c) => {
        const stages: SimStage[] = Array.from({ length: c.len }, (_, i) => ({ id: `s${i}`, ...(i > 0 ? { deps: [`s${i - 1}`] } : {}) }));
        stages[c.router]!.routes = [
          ...c.routes.map((r) => ({ goto: `s${r.target}`, max: r.max })),
          ...(c.failAfter ? [{ fail: "gave up" }] : []),
        ];
        const when = c.when ? [...c.when] : undefined;
        const d = new Driver(makePlan(stages), { when: () => (when ? when.shift() ?? false : true) });
        d.run((a) => ({ ok: { stage: a.stage, visit: a.visit } }));
        const m = model(c);
        expect(d.violations).toEqual([]);
        // decide only ever asks to evaluate routes from one still available.
        expect(d.routeAsks.filter((q) => !q.available)).toEqual([]);
        const takes = d.events("decision", `s${c.router}`).filter((e) => e.kind === "route" && e.taken);
        expect(c.routes.map((_, i) => takes.filter((e) => e.route === i).length)).toEqual(m.taken);
        for (let x = 0; x < c.len; x++) {
          expect(d.events("stage_started", `s${x}`).map((e) => e.visit)).toEqual(m.visits[x]);
        }
        const fin = d.finished();
        if (m.failed) {
          expect(fin?.status).toBe("failed");
          expect(fin?.error).toEqual({ stage: `s${c.router}`, kind: "route", message: "gave up" });
        } else {
          expect(fin?.status).toBe("succeeded");
          for (let x = 0; x < c.len; x++) expect(d.state.nodes[x]!.visit).toBe(m.visits[x]!.at(-1));
        }
        if (!c.when && !c.failAfter) {
          // Always-true `when`: every route used up exactly, and the visit numbers follow.
          expect(m.taken).toEqual(c.routes.map((r) => r.max));
        }
      }),
      { numRuns: runs(300) },
    );
  });

  it("once a route is used up the stage settles without asking to evaluate it", () => {
    // a → r, r: goto a (max 1). After one take, r's visit 2 settles without a routes effect.
    const plan = makePlan([{ id: "a" }, { id: "r", deps: ["a"], routes: [{ goto: "a", max: 1 }] }]);
    const d = new Driver(plan);
    d.run((a) => ({ ok: a.visit }));
    expect(d.violations).toEqual([]);
    expect(d.finished()?.status).toBe("succeeded");
    expect(d.routeAsks).toEqual([{ stage: "r", visit: 1, from: 0, available: true }]);
    expect(d.events("decision", "r").map((e) => [e.visit, e.route, e.taken])).toEqual([[1, 0, true]]);
    expect(d.state.nodes[1]!).toMatchObject({ visit: 2, done: true, outcome: "succeeded", output: 2 });
  });

  it("a taken route decision for a used-up route is not placed (max cannot be exceeded by a recorded decision)", () => {
    // r: [goto a (max 1), goto a (max 1)]. Visit 1 takes route 0; visit 2 asks from route 1.
    const plan = makePlan([{ id: "a" }, { id: "r", deps: ["a"], routes: [{ goto: "a", max: 1 }, { goto: "a", max: 1 }] }]);
    const d = new Driver(plan);
    d.run((a) => ({ ok: a.visit }));
    expect(d.routeAsks.map((q) => [q.visit, q.from, q.available])).toEqual([[1, 0, true], [2, 1, true]]);
    const r = plan.stageIndex.get("r")!;
    const forged = (visit: number, route: number): BatonEvent => ({ type: "decision", at: d.now, stage: "r", visit, kind: "route", expression: `route ${route}`, read: {}, result: true, route, taken: true, goto: "a" });
    // Just before visit 2's route decision: r has completed and waits for routes, route 0 is used up.
    const cut = d.log.findIndex((e) => e.type === "decision" && e.stage === "r" && e.visit === 2);
    const s = fold(plan, d.log.slice(0, cut));
    expect(apply(s, forged(2, 0))).toBe(false);
    expect({ taken: s.routeTaken.get(r * 1024), visit: s.nodes[0]!.visit }).toEqual({ taken: 1, visit: 2 });
    expect(apply(s, forged(2, 1))).toBe(true); // the available one is placed
    // After the run: r's visit 3 settled (both used up): nothing more is placed.
    const end = fold(plan, d.log.filter((e) => e.type !== "run_finished"));
    expect([apply(end, forged(3, 0)), apply(end, forged(3, 1))]).toEqual([false, false]);
    expect([end.routeTaken.get(r * 1024), end.routeTaken.get(r * 1024 + 1), end.nodes[0]!.visit]).toEqual([1, 1, 3]);
  });

  // KNOWN BUG (reported, not fixed here: src/ belongs to others): `apply` places a taken route
  // decision for a stage that has not finished executing (here: not even started), resetting
  // its target and cancelling the target's running attempt; strict replay cannot refuse it.
  // Enable once applyRoute requires the node's executions to have settled.
  it("a route decision for a stage still executing is not placed", () => {
    const plan = makePlan([{ id: "a" }, { id: "r", deps: ["a"], routes: [{ goto: "a", max: 1 }] }]);
    const early = new Driver(plan);
    early.decide(); // a is running, r has not started
    const placed = apply(early.state, { type: "decision", at: early.now, stage: "r", visit: 1, kind: "route", expression: "route 0", read: {}, result: true, route: 0, taken: true, goto: "a" });
    expect({ placed, visit: early.state.nodes[0]!.visit }).toEqual({ placed: false, visit: 1 });
  });
});

describe("interrupted attempts", () => {
  // KNOWN BUG (reported, not fixed here): StageStarted.rerun is documented as "this attempt re-runs
  // one interrupted by a crash, cancel or timeout", but decide sets it on every attempt after the
  // first interruption (`exec.interruptions > 0`), including ordinary retries after a failure.
  it("stage_started.rerun marks only the attempt that re-runs an interrupted one", () => {
    const plan = makePlan([{ id: "a", retry: { attempts: 3, delayMs: 0 } }]);
    let n = 0;
    const d = new Driver(plan);
    d.run((a) => (n++ === 0 ? { interrupt: "cancel" } : a.attempt < 4 ? { fail: { kind: "network", message: "x", retryable: true } } : { ok: 1 }));
    expect(d.events("stage_started", "a").map((e) => [e.attempt, e.rerun ?? false])).toEqual([[1, false], [2, true], [3, false], [4, false]]);
  });
});

describe("concurrency and slots", () => {
  it("never more executions in flight than min(plan concurrency, slots), per-stage item concurrency holds", () => {
    fc.assert(
      fc.property(
        fc.record({
          stages: fc.array(fc.record({ items: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }), ic: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }), dep: fc.boolean(), fallback: fc.boolean() }), { minLength: 1, maxLength: 7 }),
          concurrency: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
          slots: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
          failRate: fc.constantFrom(0, 0.3, 0.6),
          seed: fc.integer(),
        }),
        (c) => {
          const stages: SimStage[] = c.stages.map((s, i) => ({
            id: `s${i}`, retry: { attempts: 2, delayMs: 5 }, onError: s.fallback ? { fallback: `fb${i}` } : "continue",
            ...(s.dep && i > 0 ? { deps: [`s${i - 1}`] } : {}),
            ...(s.items !== undefined ? { items: s.items } : {}),
            ...(s.ic !== undefined ? { itemConcurrency: s.ic } : {}),
          }));
          c.stages.forEach((s, i) => { if (s.fallback) stages.push({ id: `fb${i}`, isFallback: true, retry: { attempts: 2, delayMs: 3 } }); });
          const cap = Math.min(c.concurrency ?? Infinity, c.slots ?? Infinity);
          const rand = rng(c.seed);
          let peak = 0;
          let firstStarted = -1;
          const d = new Driver(makePlan(stages, c.concurrency !== undefined ? { concurrency: c.concurrency } : {}), {
            ...(c.slots !== undefined ? { slots: c.slots } : {}),
            items: Object.fromEntries(c.stages.flatMap((s, i) => (s.items !== undefined ? [[`s${i}`, s.items]] : []))),
            pick: rand,
            onDecide: (dr, events) => {
              if (firstStarted < 0) firstStarted = events.filter((e) => e.type === "stage_started").length;
              peak = Math.max(peak, dr.running.length);
              if (dr.running.length > cap) dr.violations.push(`${dr.running.length} in flight, cap ${cap}`);
              if (dr.state.inflight !== dr.running.length) dr.violations.push(`engine counts ${dr.state.inflight} in flight, ${dr.running.length} are`);
              c.stages.forEach((s, i) => {
                const n = dr.running.filter((a) => a.stage === `s${i}`).length;
                if (s.ic !== undefined && n > s.ic) dr.violations.push(`s${i}: ${n} items in flight, item concurrency ${s.ic}`);
              });
            },
          });
          d.run(() => (rand() < c.failRate ? { fail: { kind: "network", message: "x", retryable: true } } : { ok: 1 }));
          expect(d.violations).toEqual([]);
          // Only a fallback that fails for good can fail this run (everything else continues).
          const fin = d.finished();
          if (fin?.status !== "succeeded") expect(fin?.error?.message === "x" && c.stages.some((s) => s.fallback)).toBe(true);
          // The first decide starts every root plain stage the cap allows.
          const roots = c.stages.filter((s, i) => s.items === undefined && !(s.dep && i > 0)).length;
          expect(firstStarted).toBe(Math.min(cap, roots));
          expect(peak).toBeLessThanOrEqual(cap);
        },
      ),
      { numRuns: runs(200) },
    );
  });

  it("independent stages: after every decide exactly min(cap, stages left) are in flight", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }), fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }), fc.integer(), (n, concurrency, slots, seed) => {
        const cap = Math.min(concurrency ?? Infinity, slots ?? Infinity);
        const plan = makePlan(Array.from({ length: n }, (_, i) => ({ id: `s${i}` })), concurrency !== undefined ? { concurrency } : {});
        let done = 0;
        const d = new Driver(plan, {
          ...(slots !== undefined ? { slots } : {}),
          pick: rng(seed),
          onDecide: (dr) => {
            if (dr.state.status === "running" && dr.running.length !== Math.min(cap, n - done)) dr.violations.push(`after ${done} done: ${dr.running.length} in flight, want ${Math.min(cap, n - done)}`);
          },
        });
        d.run(() => { done++; return { ok: 1 }; });
        expect(d.violations).toEqual([]);
        expect(d.finished()?.status).toBe("succeeded");
      }),
      { numRuns: runs(150) },
    );
  });
});
