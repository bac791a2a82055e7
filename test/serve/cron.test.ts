/**
 * Cron triggers on a simulated clock: every time is a literal instant, nothing waits and
 * nothing reads the wall clock.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dueFires, fireKey, GRACE_MS, MAX_CATCH_UP, nextFire, type CronTrigger } from "../../src/serve/cron.js";

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());
const isos = (ms: readonly number[]): string[] => ms.map((m) => new Date(m).toISOString());
const utc = (cron: string, catchUp?: CronTrigger["catchUp"]): CronTrigger => ({ cron, timezone: "UTC", ...(catchUp ? { catchUp } : {}) });

/** Every fire after `from`, up to and including `to`, by stepping nextFire (the reference for dueFires). */
function forward(t: CronTrigger, from: number, to: number, max = 10_000): number[] {
  const out: number[] = [];
  for (let n = nextFire(t, from); n !== undefined && n <= to && out.length < max; n = nextFire(t, n)) out.push(n);
  return out;
}

describe("nextFire", () => {
  it("gives the first fire strictly after the reference", () => {
    const hourly = utc("0 * * * *");
    expect(iso(nextFire(hourly, at("2026-01-01T00:10:00Z")))).toBe("2026-01-01T01:00:00.000Z");
    expect(iso(nextFire(hourly, at("2026-01-01T01:00:00Z")))).toBe("2026-01-01T02:00:00.000Z");
    expect(iso(nextFire(hourly, at("2026-01-01T00:59:59.999Z")))).toBe("2026-01-01T01:00:00.000Z");
    expect(iso(nextFire(hourly, at("2026-01-01T01:00:00.500Z")))).toBe("2026-01-01T02:00:00.000Z");
  });

  it("reads nicknames, ranges and names", () => {
    expect(iso(nextFire(utc("@daily"), at("2026-01-01T00:10:00Z")))).toBe("2026-01-02T00:00:00.000Z");
    // 2026-01-03 is a Saturday: the next weekday 09:30 is Monday the 5th.
    expect(iso(nextFire(utc("30 9 * * MON-FRI"), at("2026-01-02T10:00:00Z")))).toBe("2026-01-05T09:30:00.000Z");
  });

  it("is undefined for a schedule that never fires", () => {
    expect(nextFire(utc("0 0 31 2 *"), at("2026-01-01T00:00:00Z"))).toBeUndefined();
  });

  it("reads the expression in the trigger's time zone", () => {
    const nine = (timezone: string): CronTrigger => ({ cron: "0 9 * * *", timezone });
    expect(iso(nextFire(nine("Europe/Berlin"), at("2026-01-10T00:00:00Z")))).toBe("2026-01-10T08:00:00.000Z"); // CET, +1
    expect(iso(nextFire(nine("Europe/Berlin"), at("2026-07-10T00:00:00Z")))).toBe("2026-07-10T07:00:00.000Z"); // CEST, +2
    expect(iso(nextFire(nine("America/New_York"), at("2026-01-10T00:00:00Z")))).toBe("2026-01-10T14:00:00.000Z"); // EST, -5
    expect(iso(nextFire(nine("Asia/Kolkata"), at("2026-01-10T00:00:00Z")))).toBe("2026-01-10T03:30:00.000Z"); // +5:30
  });
});

describe("DST", () => {
  it("Europe/Berlin spring forward: a fixed time in the gap fires at the first valid time after it", () => {
    // 2026-03-29 02:00 CET → 03:00 CEST: 02:30 does not exist that day.
    const t: CronTrigger = { cron: "30 2 * * *", timezone: "Europe/Berlin" };
    expect(isos(forward(t, at("2026-03-27T12:00:00Z"), at("2026-03-30T12:00:00Z")))).toEqual([
      "2026-03-28T01:30:00.000Z", // 02:30 CET
      "2026-03-29T01:00:00.000Z", // 03:00 CEST, right after the gap
      "2026-03-30T00:30:00.000Z", // 02:30 CEST
    ]);
  });

  it("Europe/Berlin fall back: a fixed time that occurs twice fires once; an interval fires on both", () => {
    // 2026-10-25 03:00 CEST → 02:00 CET: 02:00–02:59 occurs twice.
    const fixed: CronTrigger = { cron: "30 2 * * *", timezone: "Europe/Berlin" };
    expect(isos(forward(fixed, at("2026-10-24T12:00:00Z"), at("2026-10-25T12:00:00Z")))).toEqual(["2026-10-25T00:30:00.000Z"]);
    const interval: CronTrigger = { cron: "*/30 * * * *", timezone: "Europe/Berlin" };
    expect(isos(forward(interval, at("2026-10-24T23:45:00Z"), at("2026-10-25T01:45:00Z")))).toEqual([
      "2026-10-25T00:00:00.000Z", // 02:00 CEST
      "2026-10-25T00:30:00.000Z", // 02:30 CEST
      "2026-10-25T01:00:00.000Z", // 02:00 CET
      "2026-10-25T01:30:00.000Z", // 02:30 CET
    ]);
  });

  it("America/New_York: a daily 09:00 stays 09:00 local across the change", () => {
    const t: CronTrigger = { cron: "0 9 * * *", timezone: "America/New_York" };
    // 2026-03-08 02:00 EST → 03:00 EDT.
    expect(isos(forward(t, at("2026-03-07T00:00:00Z"), at("2026-03-09T00:00:00Z")))).toEqual(["2026-03-07T14:00:00.000Z", "2026-03-08T13:00:00.000Z"]);
  });

  it("dueFires catches up across a DST change the same way nextFire steps", () => {
    const t: CronTrigger = { cron: "*/30 * * * *", timezone: "Europe/Berlin", catchUp: "all" };
    const window = { lastMs: at("2026-10-24T23:45:00Z"), nowMs: at("2026-10-25T01:45:00Z") };
    expect(dueFires(t, window)).toEqual(forward(t, window.lastMs, window.nowMs));
    const spring: CronTrigger = { cron: "30 2 * * *", timezone: "Europe/Berlin", catchUp: "all" };
    const w2 = { lastMs: at("2026-03-27T12:00:00Z"), nowMs: at("2026-03-30T12:00:00Z") };
    expect(isos(dueFires(spring, w2))).toEqual(["2026-03-28T01:30:00.000Z", "2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z"]);
  });
});

describe("dueFires after a simulated downtime", () => {
  // An hourly trigger; the server handled fires up to 00:30 and comes back at 03:10.
  const window = { lastMs: at("2026-01-01T00:30:00Z"), nowMs: at("2026-01-01T03:10:00Z") };

  it("latest (the default): only the most recent missed fire", () => {
    expect(isos(dueFires(utc("0 * * * *"), window))).toEqual(["2026-01-01T03:00:00.000Z"]);
    expect(isos(dueFires(utc("0 * * * *", "latest"), window))).toEqual(["2026-01-01T03:00:00.000Z"]);
  });

  it("all: every missed fire, oldest first", () => {
    expect(isos(dueFires(utc("0 * * * *", "all"), window))).toEqual(["2026-01-01T01:00:00.000Z", "2026-01-01T02:00:00.000Z", "2026-01-01T03:00:00.000Z"]);
  });

  it("all: at most 100, the oldest dropped", () => {
    const every = utc("* * * * *", "all");
    const fires = dueFires(every, { lastMs: at("2026-01-01T00:00:00Z"), nowMs: at("2026-01-01T05:00:30Z") });
    expect(fires).toHaveLength(MAX_CATCH_UP);
    expect(iso(fires[fires.length - 1])).toBe("2026-01-01T05:00:00.000Z");
    expect(iso(fires[0])).toBe("2026-01-01T03:21:00.000Z");
    // A year of downtime costs no more.
    expect(dueFires(every, { lastMs: at("2025-01-01T00:00:00Z"), nowMs: at("2026-01-01T00:00:00Z") })).toHaveLength(MAX_CATCH_UP);
  });

  it("none: nothing after a real downtime, the fire of a late tick within the grace", () => {
    expect(dueFires(utc("0 * * * *", "none"), window)).toEqual([]);
    const late = { lastMs: at("2026-01-01T02:59:00Z"), nowMs: at("2026-01-01T03:00:00Z") + 30_000 };
    expect(isos(dueFires(utc("0 * * * *", "none"), late))).toEqual(["2026-01-01T03:00:00.000Z"]);
    const edge = { lastMs: at("2026-01-01T02:59:00Z"), nowMs: at("2026-01-01T03:00:00Z") + GRACE_MS };
    expect(dueFires(utc("0 * * * *", "none"), edge)).toHaveLength(1);
    const tooLate = { ...edge, nowMs: edge.nowMs + 1 };
    expect(dueFires(utc("0 * * * *", "none"), tooLate)).toEqual([]);
  });

  it("the window is (lastMs, nowMs]: a fire at lastMs was handled, a fire at nowMs is due", () => {
    const t = utc("0 * * * *", "all");
    expect(isos(dueFires(t, { lastMs: at("2026-01-01T01:00:00Z"), nowMs: at("2026-01-01T02:00:00Z") }))).toEqual(["2026-01-01T02:00:00.000Z"]);
    expect(dueFires(t, { lastMs: at("2026-01-01T01:00:00Z"), nowMs: at("2026-01-01T01:59:59.999Z") })).toEqual([]);
  });

  it("is empty when no time has passed or the clock went back", () => {
    const t = utc("* * * * *", "all");
    expect(dueFires(t, { lastMs: at("2026-01-01T01:00:00Z"), nowMs: at("2026-01-01T01:00:00Z") })).toEqual([]);
    expect(dueFires(t, { lastMs: at("2026-01-01T02:00:00Z"), nowMs: at("2026-01-01T01:00:00Z") })).toEqual([]);
  });

  it("a server ticking every 10 s starts each fire exactly once", () => {
    const t = utc("*/5 * * * *", "latest");
    const start = at("2026-01-01T00:00:03Z");
    const started: number[] = [];
    for (let now = start + 10_000, last = start; now <= start + 3_600_000; last = now, now += 10_000) started.push(...dueFires(t, { lastMs: last, nowMs: now }));
    expect(started).toEqual(forward(t, start, start + 3_600_000));
    expect(started).toHaveLength(12);
  });
});

describe("dueFires properties", () => {
  const crons = ["* * * * *", "*/7 * * * *", "0 * * * *", "15,45 */2 * * *", "30 2 * * *", "0 9 * * 1-5", "*/30 * * * *"];
  const zones = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"];
  const arb = fc.record({
    cron: fc.constantFrom(...crons),
    timezone: fc.constantFrom(...zones),
    // 2025-2027, so windows cross DST changes in both directions.
    lastMs: fc.integer({ min: Date.UTC(2025, 0, 1), max: Date.UTC(2027, 0, 1) }),
    spanMs: fc.integer({ min: 0, max: 4 * 86_400_000 }),
  });

  it("fires increase, lie in (lastMs, nowMs], number at most 100; latest ⊆ all and is its last; none ⊆ latest", () => {
    fc.assert(
      fc.property(arb, ({ cron, timezone, lastMs, spanMs }) => {
        const window = { lastMs, nowMs: lastMs + spanMs };
        const all = dueFires({ cron, timezone, catchUp: "all" }, window);
        const latest = dueFires({ cron, timezone, catchUp: "latest" }, window);
        const none = dueFires({ cron, timezone, catchUp: "none" }, window);
        expect(all.length).toBeLessThanOrEqual(MAX_CATCH_UP);
        for (let i = 0; i < all.length; i++) {
          const f = all[i] as number;
          expect(f).toBeGreaterThan(window.lastMs);
          expect(f).toBeLessThanOrEqual(window.nowMs);
          if (i > 0) expect(f).toBeGreaterThan(all[i - 1] as number);
        }
        expect(latest.length).toBeLessThanOrEqual(1);
        expect(latest).toEqual(all.slice(-1));
        expect(none.length).toBeLessThanOrEqual(latest.length);
        for (const f of none) expect(latest).toContain(f);
        for (const f of none) expect(window.nowMs - f).toBeLessThanOrEqual(GRACE_MS);
      }),
      { numRuns: 80 },
    );
  });

  it("all equals the newest 100 of the fires found by stepping nextFire", () => {
    fc.assert(
      fc.property(arb, ({ cron, timezone, lastMs, spanMs }) => {
        const window = { lastMs, nowMs: lastMs + Math.min(spanMs, 6 * 3_600_000) };
        expect(dueFires({ cron, timezone, catchUp: "all" }, window)).toEqual(forward({ cron, timezone }, window.lastMs, window.nowMs).slice(-MAX_CATCH_UP));
      }),
      { numRuns: 50 },
    );
  });
});

describe("fireKey", () => {
  const fire = at("2026-01-01T03:00:00Z");

  it("is stable and names the pipeline, the trigger and the fire time", () => {
    expect(fireKey("nightly", { index: 0 }, fire)).toBe("cron:nightly:#0:2026-01-01T03:00:00.000Z");
    expect(fireKey("nightly", { index: 2, name: "hourly" }, fire)).toBe("cron:nightly:hourly:2026-01-01T03:00:00.000Z");
    expect(fireKey("nightly", { index: 0 }, fire)).toBe(fireKey("nightly", { index: 0 }, fire));
  });

  it("differs between pipelines, triggers and fires, and cannot be forged with ':' or '#'", () => {
    const keys = [
      fireKey("a", { index: 0 }, fire),
      fireKey("b", { index: 0 }, fire),
      fireKey("a", { index: 1 }, fire),
      fireKey("a", { index: 0, name: "#0" }, fire),
      fireKey("a", { index: 0 }, fire + 60_000),
      fireKey("a:#0", { index: 0 }, fire),
      fireKey("a", { index: 0, name: "x:y" }, fire),
      fireKey("a:x", { index: 0, name: "y" }, fire),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });
});
