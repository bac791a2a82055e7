import { describe, expect, it } from "vitest";
import type { Plan } from "../../src/plan/types.js";
import { buildTrace, renderTrace } from "../../src/trace/index.js";
import { dummyExpr, makePlan } from "../engine/sim.js";
import { err, LogBuilder } from "./logs.js";

const plan: Plan = {
  ...makePlan([
    { id: "research" }, { id: "fact_check", deps: ["research"], items: 3 },
    { id: "verify", deps: ["fact_check"], routes: [{ goto: "research", max: 1 }] },
    { id: "publish", deps: ["verify"], if: true }, { id: "s7", deps: ["verify"], onError: { fallback: "fb" } }, { id: "fb", isFallback: true },
  ]),
  hash: "h1",
  output: dummyExpr("{ 'report': verify }"),
};

/** research → fact_check (25 items, one retried) → verify routes back → visit 2 → publish skipped, s7 falls back. */
function story(): LogBuilder {
  const fc = (item: number, visit = 1) => ({ stage: "fact_check", item, visit });
  const n = 25;
  const b = new LogBuilder({ runId: "r-7f3a", pipeline: "research-report" })
    .ok("research", 0, 120, { sources: ["x", "y", "z"] })
    .at(121).decision({ stage: "fact_check", kind: "for_each", expression: "research.sources", read: { research: { sources: ["x"] } }, result: n, items: Array.from({ length: n }, (_, i) => i) });
  for (let i = 0; i < n; i++) b.at(122).started(fc(i));
  b.at(130).failed(fc(1), 1, err("network", "ECONNRESET", true)).retry(fc(1), 2, 1000);
  for (let i = 0; i < n; i++) if (i !== 1) b.at(140 + i).succeeded(fc(i), 1, i % 3 !== 0);
  return b.at(1130).started(fc(1), 2).at(1200).succeeded(fc(1), 2, true).completed("fact_check")
    .ok("verify", 1201, 1300, { score: 0.5 })
    .at(1301).decision({ stage: "verify", kind: "route", expression: "$count(fact_check[$ = false]) / $count(fact_check) > 0.2", read: { fact_check: [true, false] }, result: true, route: 0, taken: true, with: { strict: true } })
    .ok("research", 1302, 1400, { sources: ["x"] }, 2)
    .at(1401).decision({ stage: "fact_check", visit: 2, kind: "for_each", expression: "research.sources", read: {}, result: 1, items: ["x"] })
    .at(1402).started(fc(0, 2)).at(1410).succeeded(fc(0, 2), 1, true).completed("fact_check", 2)
    .ok("verify", 1411, 1500, { score: 0.9 }, 2)
    .at(1501).decision({ stage: "verify", visit: 2, kind: "route", expression: "$count(fact_check[$ = false]) / $count(fact_check) > 0.2", read: { fact_check: [true] }, result: false, route: 0, taken: false })
    .at(1502).decision({ stage: "publish", visit: 2, kind: "if", expression: "inputs.publish", read: { inputs: { publish: false } }, result: false })
    .skipped("publish", "`if` was false", 2)
    .at(1503).started({ stage: "s7", visit: 2 }).at(1600).failed({ stage: "s7", visit: 2 }, 1, err("handler", "boom", false), { logs: ["calling api"] })
    .decision({ stage: "s7", visit: 2, kind: "fallback", expression: "on_error.fallback: fb", read: { error: { kind: "handler", message: "boom" } }, result: "fb" })
    .at(1601).started({ stage: "fb", visit: 2, fallback_for: "s7" }).at(1650).succeeded({ stage: "fb", visit: 2, fallback_for: "s7" }, 1, "stand-in")
    .at(1700).finished("succeeded", { output: { report: { score: 0.9, list: Array.from({ length: 300 }, (_, i) => ({ i })) } }, read: ["verify"] });
}

describe("renderTrace", () => {
  const text = renderTrace(buildTrace(story().events, plan), { color: false });
  const lines = text.split("\n");

  it("starts with a header: run id, pipeline, status, duration, start", () => {
    expect(lines[0]).toBe("run r-7f3a  research-report  ✓ succeeded in 1.70s");
    expect(lines[1]).toBe("started 2025-01-02T03:04:05.000Z  ended 2025-01-02T03:04:06.700Z  plan h1");
  });

  it("lists stage visits in start order with symbols, visits and durations", () => {
    const top = lines.filter((l) => /^[✓✗↻⊘⊗↷⇢…] /.test(l)).map((l) => l.replace(/\s+/g, " "));
    expect(top).toEqual([
      "✓ research 120ms", "✓ fact_check 1.08s 25 items", "✓ verify 99ms", "✓ research #2 98ms", "✓ fact_check #2 9ms 1 item",
      "✓ verify #2 89ms", "⊘ publish #2 skipped: `if` was false", "⇢ s7 #2 fallback 147ms",
    ]);
  });

  it("groups items under their stage, unusual ones first, and summarises the rest", () => {
    expect(text).toContain("  ✓ [1]  1.08s  2 attempts");
    expect(text).toContain("    ✗ attempt 1  8ms  network: ECONNRESET  → retry in 1.00s");
    expect(text).toContain("    ✓ attempt 2  70ms");
    expect(text).toContain("  ✓ [9]  27ms");
    expect(text).not.toContain("[10]");
    expect(text).toContain("  … 15 more: 15 succeeded");
  });

  it("shows decisions where they happened", () => {
    expect(text).toContain("  ◇ for_each → 25 items (research.sources read research={\"sources\":[\"x\"]})");
    expect(text).toContain('  ◇ route → research with {"strict":true} (when: $count(fact_check[$ … read fact_check=[true,false])');
    expect(text).toContain("  ◇ route → research not taken (when:");
    expect(text).toContain('  ◇ if false → skipped (if: inputs.publish read inputs={"publish":false})');
    expect(text).toContain("  ◇ fallback → fb (after handler: boom)");
    expect(text).toContain("  ✓ fb #2 (fallback for s7)  49ms");
    expect(text).toContain("  log: calling api");
  });

  it("lists errors with recovered, then the output cut to about 20 lines", () => {
    expect(text).toContain("errors (2)");
    expect(text).toContain("  ✗ fact_check#1[1]  attempt 1  network: ECONNRESET  retryable · recovered");
    expect(text).toContain("  ✗ s7#2  attempt 1  handler: boom  not retryable · recovered");
    expect(text).toContain("output from verify ({ 'report': verify })");
    const out = lines.slice(lines.findIndex((l) => l.startsWith("output")) + 1);
    expect(out.length).toBeLessThanOrEqual(21);
    expect(out.at(-1)).toContain("baton trace RUN --json");
  });

  it("has no colour codes without color, and keeps to the width", () => {
    expect(text).not.toContain("\u001b[");
    for (const l of lines) expect([...l].length).toBeLessThanOrEqual(100);
    for (const l of renderTrace(buildTrace(story().events, plan), { color: false, width: 60 }).split("\n")) expect([...l].length).toBeLessThanOrEqual(60);
    const colored = renderTrace(buildTrace(story().events, plan), { color: true });
    expect(colored).toContain("\u001b[32m✓\u001b[0m");
    expect(colored.replace(/\u001b\[\d+m/g, "")).toBe(text);
  });

  it("shows a failed run: its error, cut stages and unrecovered errors", () => {
    const b = new LogBuilder()
      .at(0).started({ stage: "a" }).started({ stage: "b" })
      .at(5).failed({ stage: "a" }, 1, err("auth", "401 from api", false)).settled({ stage: "a" }, "failed")
      .cancelled({ stage: "b" }, 1, "run failed")
      .finished("failed", { error: { stage: "a", kind: "auth", message: "401 from api" } });
    const t = renderTrace(buildTrace(b.events), { color: false });
    expect(t).toContain("run r1  demo  ✗ failed in 5ms");
    expect(t).toContain("error stage 'a': auth: 401 from api");
    expect(t).toContain("✗ a  failed  5ms");
    expect(t).toContain("\n  ✗ attempt 1  5ms  auth: 401 from api");
    expect(t).toContain("⊗ b  cancelled: run failed  5ms");
    expect(t).toContain("  ✗ a#1  attempt 1  auth: 401 from api  not retryable · not recovered");
    expect(t).not.toContain("output");
  });

  it("summarises a 10,000-item for_each", () => {
    const n = 10_000;
    const b = new LogBuilder().at(0).decision({ stage: "each", kind: "for_each", expression: "inputs.list", result: n, items: [] });
    for (let i = 0; i < n; i++) b.at(1).started({ stage: "each", item: i }).at(2).succeeded({ stage: "each", item: i }, 1, i);
    const t = renderTrace(buildTrace(b.completed("each").events), { color: false });
    expect(t).toContain("… 9,990 more: 9,990 succeeded");
    expect(t).toContain("… running");
    expect(t.split("\n").length).toBeLessThan(30);
  });
});
