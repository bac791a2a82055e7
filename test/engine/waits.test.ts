/** The engine decides waits with deadlines from the log alone: due_at, signals, sleeps (pure: fold + decide at a given now). */
import { describe, expect, it } from "vitest";
import { decide, fold, nextWakeAt, type BatonEvent } from "../../src/engine/index.js";
import { compileSource } from "../../src/template/index.js";

const plan = compileSource(`
baton: 1
name: pure
stages:
  review: { approval: { message: "ok?", timeout: 1m, on_timeout: fail } }
  sig: { wait: { signal: go } }
  nap: { sleep: 5s }
`, { format: "yaml", baseDir: process.cwd() });

const started: BatonEvent = { type: "run_started", at: 0, run_id: "r", pipeline: "pure", plan_hash: plan.hash, source: { format: "yaml" }, inputs: {}, seed: 1, engine: 2 };
const st = (stage: string): BatonEvent => ({ type: "stage_started", at: 1, stage, visit: 1, attempt: 1, queued_ms: 0 });

describe("waits in the engine", () => {
  it("a paused run's next wake-up is its earliest deadline; at it, decide resumes the run and records on_timeout", () => {
    const log: BatonEvent[] = [
      started, st("review"), st("sig"),
      { type: "stage_waiting", at: 2, stage: "review", visit: 1, attempt: 1, message: "ok?", due_at: 60_002 },
      { type: "stage_waiting", at: 2, stage: "sig", visit: 1, attempt: 1, message: "waits", signal: "go" },
      { type: "run_waiting", at: 2, stage: "review", message: "ok?" },
    ];
    const state = fold(plan, log); // (nap has not started: a paused run starts nothing until it resumes)
    expect(state.status).toBe("waiting");
    expect(nextWakeAt(state)).toBe(60_002);
    const early = decide(state, 60_001);
    expect(early.events.some((e) => e.type === "approval")).toBe(false);
    const step = decide(state, 60_002);
    expect(step.events.map((e) => e.type).slice(0, 2)).toEqual(["run_resumed", "approval"]);
    expect(step.events[1]).toMatchObject({ stage: "review", approved: false, by: "timeout", error: { kind: "timeout" } });
  });

  it("a signal sent before the wait is kept; the wait takes it when it starts waiting", () => {
    const state = fold(plan, [started, { type: "signal", at: 1, name: "go", data: { n: 1 } }, st("sig"), { type: "stage_waiting", at: 2, stage: "sig", visit: 1, attempt: 1, message: "waits", signal: "go" }]);
    const step = decide(state, 3);
    expect(step.events.find((e) => e.type === "approval")).toMatchObject({ stage: "sig", approved: true, by: "signal", data: { n: 1 } });
    expect(state.signals.size).toBe(0);
  });

  it("a sleep keeps the run running (no run_waiting) and wakes at due_at", () => {
    const state = fold(plan, [started, st("nap"), { type: "stage_waiting", at: 2, stage: "nap", visit: 1, attempt: 1, message: "sleeps", sleep: true, due_at: 5002 }]);
    const step = decide(state, 3);
    expect(step.events.some((e) => e.type === "run_waiting")).toBe(false);
    expect(nextWakeAt(state)).toBe(5002);
    expect(decide(state, 5002).events.find((e) => e.type === "approval")).toMatchObject({ stage: "nap", by: "timer", data: { woke_at: new Date(5002).toISOString() } });
  });
});
