/**
 * The live view's rules (src/cli/progress.ts, issue 15 item 4), fed events directly: it ticks
 * while nothing happens, a continued run shows its finished stages as finished, an approval waits,
 * sub-pipeline runs never take over the table, offsets count from the start of what this process
 * follows, nothing is left shown running once the run has finished, and a pool wait shows as
 * "waiting for pool llm (rpm) 12s". test/cli/progress-tty.test.ts checks the same on a real TTY.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { Progress } from "../../src/cli/progress.js";
import type { BatonEvent } from "../../src/engine/events.js";
import { compileSource } from "../../src/template/index.js";

const T0 = Date.UTC(2026, 11, 1);
const plan = compileSource(
  `baton: 1
name: view
stages:
  a: { value: "1" }
  fan: { needs: [a], for_each: "[1, 2]", value: "item" }
  sub: { needs: [a], value: "2" }
  review: { needs: [fan, sub], approval: { message: "Ship it?" } }
output: review
`,
  { format: "yaml", baseDir: process.cwd() },
);

function term(columns = 100) {
  const chunks: string[] = [];
  return { chunks, columns, isTTY: true, write: (s: string) => (chunks.push(s), true) };
}
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
const frame = (t: ReturnType<typeof term>): string[] => t.chunks.at(-1)!.replace(ANSI, "").split("\n").filter((l) => l !== "");
const rowOf = (f: string[], id: string): string => f.find((l) => new RegExp(`^  \\S ${id} `).test(l)) ?? "";

const R = "0mx000000r00000001";
const ev = (e: Record<string, unknown>): BatonEvent => e as unknown as BatonEvent;
const started = ev({ type: "run_started", at: T0, run_id: R, pipeline: "view", plan_hash: plan.hash, source: { format: "yaml", text: "" }, inputs: {}, seed: 1 });
/** A run interrupted while fan's item 1 ran (a finished, fan fanned out, item 0 done). */
const before: BatonEvent[] = [
  started,
  ev({ type: "stage_started", at: T0 + 1, stage: "a", visit: 1, attempt: 1, queued_ms: 0 }),
  ev({ type: "stage_succeeded", at: T0 + 5, stage: "a", visit: 1, attempt: 1, output: 1 }),
  ev({ type: "decision", at: T0 + 6, stage: "fan", visit: 1, kind: "for_each", expression: "[1, 2]", read: {}, result: 2, items: [1, 2] }),
  ev({ type: "stage_started", at: T0 + 6, stage: "fan", visit: 1, item: 0, attempt: 1, queued_ms: 0 }),
  ev({ type: "stage_started", at: T0 + 6, stage: "fan", visit: 1, item: 1, attempt: 1, queued_ms: 0 }),
  ev({ type: "stage_succeeded", at: T0 + 8, stage: "fan", visit: 1, item: 0, attempt: 1, output: 1 }),
  ev({ type: "stage_started", at: T0 + 6, stage: "sub", visit: 1, attempt: 1, queued_ms: 0 }),
  ev({ type: "stage_succeeded", at: T0 + 9, stage: "sub", visit: 1, attempt: 1, output: 2 }),
];
const LATER = T0 + 3 * 86_400_000; // resumed three days later
const resumeBatch: BatonEvent[] = [
  ev({ type: "stage_cancelled", at: LATER, stage: "fan", visit: 1, item: 1, attempt: 1, reason: "interrupted: the process running it stopped" }),
  ev({ type: "run_resumed", at: LATER }),
];
const after: BatonEvent[] = [
  ev({ type: "stage_started", at: LATER + 10, stage: "fan", visit: 1, item: 1, attempt: 2, queued_ms: 0 }),
  ev({ type: "stage_succeeded", at: LATER + 20, stage: "fan", visit: 1, item: 1, attempt: 2, output: 2 }),
  ev({ type: "stage_completed", at: LATER + 21, stage: "fan", visit: 1, output: [1, 2] }),
  ev({ type: "stage_started", at: LATER + 22, stage: "review", visit: 1, attempt: 1, queued_ms: 0 }),
  ev({ type: "stage_waiting", at: LATER + 23, stage: "review", visit: 1, attempt: 1, message: "Ship it?" }),
  ev({ type: "run_waiting", at: LATER + 23, stage: "review", message: "Ship it?" }),
];

afterEach(() => {
  vi.useRealTimers();
});

describe("the live view (issue 15.4)", () => {
  it("ticks: with no event for seconds the table is redrawn and its elapsed times move", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"], now: T0 + 10 });
    const t = term();
    const p = new Progress(t as never, true);
    p.onEvents(R, before.slice(0, 3), plan);
    vi.advanceTimersByTime(100);
    const writes = t.chunks.length;
    const one = frame(t)[0];
    vi.advanceTimersByTime(3000); // nothing happens for 3 s
    expect(t.chunks.length).toBeGreaterThan(writes);
    expect(frame(t)[0]).not.toBe(one);
    expect(frame(t)[0]).toBe(`run ${R}  3.0s`); // drawn by the ticker at 3.01 s
    p.end();
    const n = t.chunks.length;
    vi.advanceTimersByTime(5000);
    expect(t.chunks.length).toBe(n); // nothing is drawn after end()
  });

  it("a resumed run: finished stages show as finished, the for_each its items, the approval waiting; the header is the run's", () => {
    const t = term();
    const p = new Progress(t as never, true);
    p.history(R, before);
    p.onEvents(R, resumeBatch, plan);
    p.onEvents(R, after, plan);
    p.end();
    const f = frame(t);
    expect(f[0]).toMatch(new RegExp(`^run ${R}  resumed `));
    expect(rowOf(f, "a")).toMatch(/✓ a +succeeded/);
    expect(rowOf(f, "sub")).toMatch(/✓ sub +succeeded/);
    expect(rowOf(f, "fan")).toMatch(/✓ fan +succeeded .*2\/2 items/);
    expect(rowOf(f, "review")).toMatch(/⏸ review +waiting .*Ship it\?/);
  });

  it("off a TTY, a resume prints offsets from the resume and the fan's real item count", () => {
    const t = term();
    const p = new Progress(t as never, false);
    p.history(R, before);
    p.onEvents(R, resumeBatch, plan);
    p.onEvents(R, after, plan);
    p.end();
    const text = t.chunks.join("");
    expect(text).toContain(`run ${R} resumed (2 of 4 stages done before)`);
    expect(text).toContain("+21ms fan completed (2 items)");
    expect(text).toContain("+23ms review waits: Ship it?");
    expect(text).not.toMatch(/\+\d{4,}/);
    expect(text).not.toContain("a succeeded"); // the earlier events are not printed again
  });

  it("without the history, offsets still count from the first event it sees (never from the epoch)", () => {
    const t = term();
    const p = new Progress(t as never, false);
    p.onEvents(R, resumeBatch, plan);
    p.onEvents(R, after, plan);
    const text = t.chunks.join("");
    expect(text).toContain("+0ms fan[1] cancelled");
    expect(text).not.toMatch(/\+\d{4,}/);
  });

  it("a sub-pipeline run never takes over the header or the rows (its lines are labelled off a TTY)", () => {
    const t = term();
    const p = new Progress(t as never, true);
    p.onEvents(R, before.slice(0, 3), plan);
    const child = `${R}~sub`;
    p.onEvents(child, [ev({ ...started, run_id: child, pipeline: "kid" }), ev({ type: "stage_started", at: T0 + 7, stage: "a", visit: 1, attempt: 1, queued_ms: 0 })], plan);
    p.end();
    const f = frame(t);
    expect(f[0]).toMatch(new RegExp(`^run ${R}  `));
    expect(rowOf(f, "a")).toMatch(/✓ a +succeeded/); // the child's own stage 'a' did not touch the parent's row

    const plain = term();
    const q = new Progress(plain as never, false);
    q.onEvents(R, before.slice(0, 3), plan);
    q.onEvents(child, [ev({ ...started, at: T0 + 7, run_id: child, pipeline: "kid" })], plan);
    expect(plain.chunks.at(-1)).toBe(`+7ms ~sub: run ${child} of 'kid' started\n`);
  });

  it("Ctrl-C: once the run has finished cancelled, no stage is shown running, and the notice sits above the redrawn table", () => {
    const t = term();
    const p = new Progress(t as never, true);
    p.onEvents(R, before, plan);
    p.draw();
    expect(rowOf(frame(t), "fan")).toMatch(/▶ fan +running/);
    p.message("interrupt: cancelling the run");
    const last = t.chunks.at(-1)!;
    expect(t.chunks.at(-2)!.startsWith("\x1b[5F\x1b[J")).toBe(true); // up over the whole table first
    expect(t.chunks.at(-2)).toContain("interrupt: cancelling the run\n");
    expect(last.replace(ANSI, "").startsWith(`run ${R}`)).toBe(true);
    p.onEvents(R, [
      ev({ type: "run_cancel_requested", at: T0 + 20, reason: "cancelled by user (interrupt)" }),
      ev({ type: "stage_cancelled", at: T0 + 21, stage: "fan", visit: 1, item: 1, attempt: 1, reason: "run cancelled" }),
      ev({ type: "run_finished", at: T0 + 22, status: "cancelled", error: { kind: "cancelled", message: "run cancelled" } }),
    ], plan);
    p.end();
    const f = frame(t);
    expect(f.join("\n")).not.toMatch(/▶|running/);
    expect(rowOf(f, "fan")).toMatch(/■ fan +cancelled/);
    expect(rowOf(f, "review")).toMatch(/· review +pending/);
  });

  it("a pool wait shows on the stage's row and ticks, until the pool grants; off a TTY as two lines", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"], now: T0 + 10 });
    const t = term();
    const p = new Progress(t as never, true);
    p.onEvents(R, before.slice(0, 6), plan);
    p.onPoolWait(R, "fan#1[1]", { state: "waiting", pool: "llm", limit: "rpm", reason: "pool 'llm' at its 1 requests per minute" });
    vi.advanceTimersByTime(12_000);
    expect(rowOf(frame(t), "fan")).toMatch(/▶ fan +running .*waiting for pool llm \(rpm\) 12\.0s$/);
    p.onPoolWait(R, "fan#1[1]", { state: "granted", pool: "llm", limit: "rpm", reason: "pool 'llm' at its 1 requests per minute", waitedMs: 12_000 });
    vi.advanceTimersByTime(1000);
    expect(rowOf(frame(t), "fan")).not.toContain("waiting for pool");
    p.end();

    const plain = term();
    const q = new Progress(plain as never, false);
    q.onEvents(R, before.slice(0, 6), plan);
    q.onPoolWait(R, "fan#1[1]", { state: "waiting", pool: "llm", key: "acme", limit: "rpm", reason: "pool 'llm' (key 'acme') at its 1 requests per minute" });
    vi.advanceTimersByTime(61_000);
    q.onPoolWait(R, "fan#1[1]", { state: "granted", pool: "llm", key: "acme", limit: "rpm", reason: "", waitedMs: 61_000 });
    const lines = plain.chunks.join("").split("\n");
    // (13 s after the run's start on the fake clock: the first half of this test ran for 13 s)
    expect(lines).toContain("+13.0s fan[1] waits for pool llm (key acme): pool 'llm' (key 'acme') at its 1 requests per minute");
    expect(lines).toContain("+74.0s fan[1] got pool llm (key acme) after 61.0s");
  });
});
