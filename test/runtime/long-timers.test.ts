/**
 * Issue 13.9: durations longer than one Node timer holds (2^31-1 ms, ~24.9 days). Node turns a
 * longer setTimeout into 1 ms, so `timeout: 25d` fired at once and a 30-day retry woke its
 * driver every millisecond. vitest's fake timers reproduce Node's overflow (a delay above
 * 2^31-1 becomes 1 ms), so nothing here waits for real time.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { MAX_TIMER_MS, setLongTimeout, timeoutSignal } from "../../src/base/timers.js";
import type { BatonEvent } from "../../src/engine/events.js";
import { definePipeline, execute, StageFailure } from "../../src/index.js";

const DAY = 86_400_000;

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe("setLongTimeout / timeoutSignal", () => {
  it("a 25-day timer fires after 25 days, not after 1 ms; clear() cancels it at any hop", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const fired: number[] = [];
    setLongTimeout(() => fired.push(1), 25 * DAY);
    const cancelled = setLongTimeout(() => fired.push(2), 60 * DAY);
    vi.advanceTimersByTime(10);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(MAX_TIMER_MS); // past the first hop of both
    expect(fired).toEqual([]);
    cancelled.clear();
    vi.advanceTimersByTime(25 * DAY - MAX_TIMER_MS - 10 - 1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([1]);
    vi.advanceTimersByTime(60 * DAY);
    expect(fired).toEqual([1]);
  });

  it("short, zero, negative and NaN delays behave as setTimeout; Infinity never fires", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const fired: string[] = [];
    setLongTimeout(() => fired.push("5"), 5);
    setLongTimeout(() => fired.push("neg"), -5);
    setLongTimeout(() => fired.push("nan"), Number.NaN);
    setLongTimeout(() => fired.push("inf"), Infinity);
    vi.advanceTimersByTime(0);
    expect(fired.sort()).toEqual(["nan", "neg"]);
    vi.advanceTimersByTime(5);
    expect(fired).toContain("5");
    vi.advanceTimersByTime(1000 * DAY);
    expect(fired).not.toContain("inf");
  });

  it("a 30-day timeoutSignal is not aborted after a millisecond, and aborts with a TimeoutError after 30 days", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const s = timeoutSignal(30 * DAY);
    vi.advanceTimersByTime(5);
    expect(s.aborted).toBe(false);
    vi.advanceTimersByTime(30 * DAY);
    expect(s.aborted).toBe(true);
    expect((s.reason as DOMException).name).toBe("TimeoutError");
  });
});

describe("through the runtime", () => {
  it("a stage with `timeout: 25d` is not timed out after a few milliseconds", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const p = definePipeline({ name: "long-timeout" })
      .stage("a", {
        timeout: "25d",
        run: async () => {
          started();
          await gate;
          return 1;
        },
      })
      .returns("a");
    const log: BatonEvent[] = [];
    const done = execute(p, {}, { onEvents: (_id, es) => log.push(...es), telemetry: false });
    await running;
    await vi.advanceTimersByTimeAsync(50); // before the fix: the timer overflowed to 1 ms and fired here
    expect(log.filter((e) => e.type === "stage_failed")).toEqual([]);
    release();
    const result = await done;
    expect(result.status).toBe("succeeded");
    expect(result.output).toBe(1);
  });

  it("a 30-day retry delay arms one long timer instead of waking the driver every millisecond, and the retry runs 30 days later", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    let calls = 0;
    const p = definePipeline({ name: "long-retry" })
      .stage("a", {
        retry: { attempts: 2, backoff: "fixed", delay: "30d", max_delay: "30d", jitter: "none" },
        run: () => {
          calls++;
          if (calls === 1) throw new StageFailure("flaky", { kind: "network", retryable: true });
          return "second";
        },
      })
      .returns("a");
    const log: BatonEvent[] = [];
    const done = execute(p, {}, { onEvents: (_id, es) => log.push(...es), telemetry: false, seed: 1 });
    await vi.waitFor(() => expect(log.some((e) => e.type === "retry_scheduled")).toBe(true), { interval: 1 });
    const arms = vi.spyOn(globalThis, "setTimeout");
    await vi.advanceTimersByTimeAsync(200); // before the fix: ~200 wake-ups (each re-arming a 1 ms timer)
    expect(arms.mock.calls.length).toBeLessThan(5);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(30 * DAY);
    const result = await done;
    expect(calls).toBe(2);
    expect(result.status).toBe("succeeded");
    expect(result.output).toBe("second");
  });
});
