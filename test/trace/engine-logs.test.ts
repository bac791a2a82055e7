/**
 * Traces of logs the real engine wrote (through the simulated runtime): retries, routes,
 * fallbacks, skips, crashes and resumes in random combinations must give consistent traces.
 */
import { describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { buildTrace, renderTrace } from "../../src/trace/index.js";
import { makePlan, simulate, type SimStage } from "../engine/sim.js";

const pipelines: Record<string, SimStage[]> = {
  chain: [{ id: "a", retry: { attempts: 3 } }, { id: "b", deps: ["a"], retry: { attempts: 2 } }, { id: "c", deps: ["b"], onError: "continue" }],
  fanout: [
    { id: "src" }, { id: "each", deps: ["src"], items: 6, itemConcurrency: 2, retry: { attempts: 3 }, onError: "continue" },
    { id: "gate", deps: ["each"], if: true }, { id: "after", deps: ["gate"] },
  ],
  routes: [
    { id: "r", retry: { attempts: 2 } }, { id: "check", deps: ["r"], routes: [{ goto: "r", max: 2 }] },
    { id: "side", deps: ["r"], onError: { fallback: "fb" } }, { id: "fb", isFallback: true, retry: { attempts: 2 } },
    { id: "end", deps: ["check", "side"] },
  ],
  items_fallback: [{ id: "each", items: 4, onError: { fallback: "fb" }, retry: { attempts: 2 } }, { id: "fb", isFallback: true }],
};

function check(log: readonly BatonEvent[]): void {
  const t = buildTrace(log);
  expect(JSON.parse(JSON.stringify(t))).toEqual(t);
  const ids = t.stages.map((s) => s.id);
  expect(new Set(ids).size).toBe(ids.length);
  const failures = log.filter((e) => e.type === "stage_failed").length;
  expect(t.errors.filter((e) => e.execution !== null)).toHaveLength(failures);
  expect(t.decisions).toHaveLength(log.filter((e) => e.type === "decision").length);
  const done = t.run.status !== "running" && t.run.status !== "waiting";
  for (const s of t.stages) {
    if (done) expect(["running", "retrying"]).not.toContain(s.status);
    if (s.item_count !== undefined && s.status === "succeeded") expect(s.output).toHaveLength(s.item_count);
    for (const a of s.attempts) if (a.retry_in_ms !== undefined) expect(a.status).toBe("failed");
  }
  if (t.run.status === "succeeded") {
    for (const e of t.errors) {
      const entry = t.stages.find((s) => s.id === e.execution);
      if (entry && entry.status !== "cancelled") expect(e.recovered).toBe(true);
    }
  }
  if (t.run.status === "failed") expect(t.errors.some((e) => !e.recovered)).toBe(true);
  const text = renderTrace(t, { color: false });
  expect(text).not.toContain("\u001b[");
  for (const line of text.split("\n")) expect([...line].length).toBeLessThanOrEqual(100);
}

describe("buildTrace over engine-written logs", () => {
  for (const [name, stages] of Object.entries(pipelines)) {
    it(`is consistent for '${name}' across 60 seeds with failures and crashes`, () => {
      const plan = makePlan(stages);
      for (let seed = 1; seed <= 60; seed++) {
        const r = simulate(plan, { seed, failRate: 0.35, retryableRate: 0.7, routeRate: 0.4, crashAt: seed % 3 === 0 ? [3, 9] : [] });
        check(r.log);
        // Every prefix is a valid live trace too.
        if (seed % 10 === 0) for (let i = 1; i <= r.log.length; i += 3) check(r.log.slice(0, i));
      }
    });
  }
});
