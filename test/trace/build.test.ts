import { describe, expect, it } from "vitest";
import type { Plan } from "../../src/plan/types.js";
import { buildTrace, SINK_OUTPUTS } from "../../src/trace/index.js";
import { dummyExpr, makePlan } from "../engine/sim.js";
import { err, iso, LogBuilder } from "./logs.js";

const net = err("network", "ECONNRESET", true);

function planOf(p: Plan, hash = "h1", output?: string): Plan {
  return { ...p, hash, ...(output !== undefined ? { output: dummyExpr(output) } : {}) };
}

describe("buildTrace: a chain", () => {
  const log = new LogBuilder()
    .at(5).started({ stage: "research" }, 1, { queued_ms: 3 })
    .at(120).succeeded({ stage: "research" }, 1, { sources: ["a", "b"] }, { input: { q: "tides" }, logs: ["searching", "found 2"] })
    .ok("draft", 121, 300, { text: "Tides…" })
    .at(301).finished("succeeded", { output: { report: "Tides…" }, read: ["draft"] });
  const plan = planOf(makePlan([{ id: "research" }, { id: "draft", deps: ["research"] }]), "h1", "{ 'report': draft.text }");
  const t = buildTrace(log.events, plan);

  it("fills run with SPEC §5 names, ISO times and durations", () => {
    expect(t.run).toEqual({
      id: "r1", pipeline: "demo", plan_hash: "h1", status: "succeeded", inputs: { topic: "tides" }, output: { report: "Tides…" },
      started_at: "2025-01-02T03:04:05.000Z", ended_at: "2025-01-02T03:04:05.301Z", duration_ms: 301,
      tokens: { input: 0, output: 0 }, cost_usd: 0,
    });
  });

  it("has one entry per execution with attempts, input, output and logs", () => {
    expect(t.stages.map((s) => s.id)).toEqual(["research#1", "draft#1"]);
    expect(t.stages[0]).toEqual({
      id: "research#1", stage: "research", visit: 1, status: "succeeded",
      started_at: iso(5), ended_at: iso(120), duration_ms: 115, queued_ms: 3,
      input: { q: "tides" }, output: { sources: ["a", "b"] },
      attempts: [{ n: 1, started_at: iso(5), ended_at: iso(120), status: "succeeded", logs: ["searching", "found 2"] }],
      logs: ["searching", "found 2"],
    });
    expect(t.stages[1]).toMatchObject({ input: null, output: { text: "Tides…" }, duration_ms: 179 });
  });

  it("records the assembly expression and what it read", () => {
    expect(t.assembly).toEqual({ expression: "{ 'report': draft.text }", read: ["draft"] });
    expect(buildTrace(log.events, planOf(plan, "h1")).assembly.expression).toBe("{ 'report': draft.text }");
    expect(buildTrace(log.events, planOf(makePlan([{ id: "draft" }]))).assembly.expression).toBe(SINK_OUTPUTS);
    expect(buildTrace(log.events).assembly).toEqual({ expression: null, read: ["draft"] });
    expect(buildTrace(log.events, planOf(plan, "other-hash")).assembly.expression).toBeNull();
    expect(t.errors).toEqual([]);
    expect(JSON.parse(JSON.stringify(t))).toEqual(t);
  });

  it("shows a running run with null ended_at and duration_ms", () => {
    const live = buildTrace(log.events.slice(0, 2));
    expect(live.run).toMatchObject({ status: "running", ended_at: null, duration_ms: null, output: null });
    expect(live.stages[0]).toMatchObject({ status: "running", ended_at: null, duration_ms: null, output: null });
    expect(live.stages[0]!.attempts[0]).toEqual({ n: 1, started_at: iso(5), ended_at: null, status: "running" });
  });

  it("refuses a log without run_started", () => {
    expect(() => buildTrace([])).toThrow(/start with run_started, got no events/);
    expect(() => buildTrace(log.events.slice(1))).toThrow(/'stage_started' first/);
  });
});

describe("buildTrace: for_each with a retried item", () => {
  const fc = (item: number) => ({ stage: "fact_check", item });
  const b = new LogBuilder()
    .ok("research", 0, 10, { sources: ["x", "y", "z"] })
    .at(11).decision({ stage: "fact_check", kind: "for_each", expression: "research.sources", read: { research: { sources: ["x", "y", "z"] } }, result: 3, items: ["x", "y", "z"] })
    .at(12).started(fc(0)).started(fc(1)).started(fc(2), 1, { queued_ms: 1 })
    .at(20).succeeded(fc(0), 1, true).failed(fc(1), 1, net, { input: "y" }).retry(fc(1), 2, 1000)
    .at(25).succeeded(fc(2), 1, false)
    .at(1020).started(fc(1), 2)
    .at(1030).succeeded(fc(1), 2, true, { input: "y" })
    .completed("fact_check")
    .at(1031).finished("succeeded", { output: [true, true, false], read: ["fact_check"] });
  const t = buildTrace(b.events);

  it("has an entry for the whole stage plus one per item", () => {
    expect(t.stages.map((s) => s.id)).toEqual(["research#1", "fact_check#1", "fact_check#1[0]", "fact_check#1[1]", "fact_check#1[2]"]);
    expect(t.stages[1]).toEqual({
      id: "fact_check#1", stage: "fact_check", visit: 1, status: "succeeded", started_at: iso(11), ended_at: iso(1030),
      duration_ms: 1019, queued_ms: null, input: null, output: [true, true, false], attempts: [], item_count: 3,
    });
  });

  it("shows the retry on the failed attempt and recovers the error", () => {
    const item = t.stages[3]!;
    expect(item).toMatchObject({ item: 1, status: "succeeded", input: "y", output: true, duration_ms: 1018, queued_ms: 0 });
    expect(item.attempts).toEqual([
      { n: 1, started_at: iso(12), ended_at: iso(20), status: "failed", error: { kind: "network", message: "ECONNRESET", retryable: true }, retry_in_ms: 1000 },
      { n: 2, started_at: iso(1020), ended_at: iso(1030), status: "succeeded" },
    ]);
    expect(t.errors).toEqual([
      { at: iso(20), stage: "fact_check", visit: 1, item: 1, execution: "fact_check#1[1]", attempt: 1, kind: "network", message: "ECONNRESET", retryable: true, recovered: true },
    ]);
  });

  it("shows retrying while the retry waits", () => {
    const mid = buildTrace(b.events.slice(0, 11));
    const item = mid.stages.find((s) => s.id === "fact_check#1[1]")!;
    expect(item).toMatchObject({ status: "retrying", ended_at: null });
    expect(mid.stages.find((s) => s.id === "fact_check#1")).toMatchObject({ status: "running", output: null });
    expect(mid.errors[0]!.recovered).toBe(false);
  });

  it("lists the for_each decision with what it read", () => {
    expect(t.decisions).toEqual([
      { at: iso(11), stage: "fact_check", visit: 1, kind: "for_each", expression: "research.sources", read: { research: { sources: ["x", "y", "z"] } }, result: 3 },
    ]);
  });
});

describe("buildTrace: a backward route creating visit 2", () => {
  const plan = planOf(makePlan([{ id: "research" }, { id: "verify", deps: ["research"], routes: [{ goto: "research", max: 1 }] }, { id: "notify", deps: ["research"] }]));
  const b = new LogBuilder()
    .ok("research", 0, 10, 1)
    .at(11).started({ stage: "verify" }).started({ stage: "notify" })
    .at(20).succeeded({ stage: "verify" }, 1, { score: 0.5 })
    .at(21).decision({ stage: "verify", kind: "route", expression: "verify.score < 0.8", read: { verify: { score: 0.5 } }, result: true, route: 0, taken: true, with: { strict: true } })
    .cancelled({ stage: "notify" }, 1, "route back")
    .ok("research", 22, 30, 2, 2)
    .ok("verify", 31, 40, { score: 0.9 }, 2)
    .at(41).decision({ stage: "verify", visit: 2, kind: "route", expression: "verify.score < 0.8", read: { verify: { score: 0.9 } }, result: false, route: 0, taken: false })
    .ok("notify", 42, 50, "sent", 2)
    .at(51).finished("succeeded", { output: { notify: "sent", verify: { score: 0.9 } }, read: ["notify", "verify"] });
  const t = buildTrace(b.events, plan);

  it("keys entries by visit and cancels what the route cut off", () => {
    expect(t.stages.map((s) => `${s.id}:${s.status}`)).toEqual([
      "research#1:succeeded", "verify#1:succeeded", "notify#1:cancelled", "research#2:succeeded", "verify#2:succeeded", "notify#2:succeeded",
    ]);
    const cut = t.stages[2]!;
    expect(cut).toMatchObject({ reason: "route back", ended_at: iso(21), duration_ms: 10 });
    expect(cut.attempts).toEqual([{ n: 1, started_at: iso(11), ended_at: iso(21), status: "cancelled", reason: "route back" }]);
  });

  it("names the route target from the plan and keeps with:", () => {
    expect(t.decisions[0]).toEqual({
      at: iso(21), stage: "verify", visit: 1, kind: "route", expression: "verify.score < 0.8", read: { verify: { score: 0.5 } },
      result: true, taken: true, route: 0, goto: "research", with: { strict: true },
    });
    expect(t.decisions[1]).toMatchObject({ visit: 2, taken: false, goto: "research" });
    expect(buildTrace(b.events).decisions[0]).not.toHaveProperty("goto");
  });
});

describe("buildTrace: skipped stages", () => {
  const t = buildTrace(
    new LogBuilder()
      .ok("a", 0, 10, 1)
      .at(11).decision({ stage: "publish", kind: "if", expression: "inputs.publish", read: { inputs: { publish: false } }, result: false })
      .skipped("publish", "`if` was false")
      .at(12).skipped("announce", "needs 'publish', which was skipped")
      .at(13).finished("succeeded", { output: { a: 1 }, read: ["a"] }).events,
  );

  it("gives each skipped stage an entry with its reason", () => {
    expect(t.stages[1]).toEqual({
      id: "publish#1", stage: "publish", visit: 1, status: "skipped", reason: "`if` was false", started_at: iso(11), ended_at: iso(11),
      duration_ms: 0, queued_ms: null, input: null, output: null, attempts: [],
    });
    expect(t.stages[2]).toMatchObject({ id: "announce#1", status: "skipped", reason: "needs 'publish', which was skipped" });
    expect(t.decisions[0]).toMatchObject({ kind: "if", result: false, read: { inputs: { publish: false } } });
  });
});

describe("buildTrace: on_error continue and fallbacks", () => {
  const bad = err("handler", "boom", false);
  const b = new LogBuilder()
    .at(0).started({ stage: "flaky" }).started({ stage: "s7", item: 0 })
    .at(5).failed({ stage: "flaky" }, 1, bad).settled({ stage: "flaky" }, "continued", null)
    .at(6).failed({ stage: "s7", item: 0 }, 1, bad, { input: "in0" })
    .decision({ stage: "s7", item: 0, kind: "fallback", expression: "on_error.fallback: fb", read: { error: { kind: "handler", message: "boom" } }, result: "fb" })
    .at(7).started({ stage: "fb", item: 0, fallback_for: "s7" })
    .at(9).succeeded({ stage: "fb", item: 0, fallback_for: "s7" }, 1, "stand-in");
  const t = buildTrace(b.events);

  it("marks on_error continue as continued with a null output and a recovered error", () => {
    expect(t.stages[0]).toMatchObject({ id: "flaky#1", status: "continued", output: null, ended_at: iso(5) });
    expect(t.errors[0]).toMatchObject({ execution: "flaky#1", kind: "handler", retryable: false, recovered: true });
  });

  it("gives the fallback call its own entry and settles the owner by it", () => {
    expect(t.stages.find((s) => s.id === "s7#1[0]")).toMatchObject({ status: "fallback", output: "stand-in", input: "in0", ended_at: iso(9) });
    expect(t.stages.find((s) => s.id === "fb#1[0]<-s7")).toMatchObject({ stage: "fb", item: 0, fallback_for: "s7", status: "succeeded", output: "stand-in" });
    expect(t.errors[1]).toMatchObject({ execution: "s7#1[0]", recovered: true });
    expect(t.decisions[0]).toMatchObject({ kind: "fallback", item: 0, result: "fb" });
  });

  it("does not recover when the fallback fails too", () => {
    const f = new LogBuilder();
    f.events.push(...b.events.slice(1, 8));
    f.at(9).failed({ stage: "fb", item: 0, fallback_for: "s7" }, 1, err("timeout", "slow", false))
      .settled({ stage: "s7", item: 0 }, "failed")
      .finished("failed", { error: { stage: "s7", kind: "timeout", message: "slow" } });
    const ft = buildTrace(f.events);
    expect(ft.stages.find((s) => s.id === "s7#1[0]")).toMatchObject({ status: "failed" });
    expect(ft.errors.map((e) => [e.execution, e.recovered])).toEqual([["flaky#1", true], ["s7#1[0]", false], ["fb#1[0]<-s7", false]]);
    expect(ft.errors[2]).toMatchObject({ stage: "fb", fallback_for: "s7", item: 0 });
  });

  it("shows a pending fallback as fallback with no end yet", () => {
    const mid = buildTrace(b.events.slice(0, 8));
    expect(mid.stages.find((s) => s.id === "s7#1[0]")).toMatchObject({ status: "fallback", ended_at: null, output: null });
    expect(mid.errors[1]!.recovered).toBe(false);
  });
});

describe("buildTrace: a failed run", () => {
  const b = new LogBuilder()
    .at(0).started({ stage: "a" }).started({ stage: "b" }).started({ stage: "c" })
    .at(4).failed({ stage: "c" }, 1, net).retry({ stage: "c" }, 2, 500)
    .at(5).failed({ stage: "a" }, 1, err("auth", "401 from api", false)).settled({ stage: "a" }, "failed")
    .cancelled({ stage: "b" }, 1, "run failed")
    .finished("failed", { error: { stage: "a", kind: "auth", message: "401 from api" } });
  const t = buildTrace(b.events);

  it("reports the run error once, from the stage that failed", () => {
    expect(t.run).toMatchObject({ status: "failed", output: null, ended_at: iso(5), duration_ms: 5, error: { stage: "a", kind: "auth", message: "401 from api" } });
    expect(t.errors).toEqual([
      { at: iso(4), stage: "c", visit: 1, execution: "c#1", attempt: 1, kind: "network", message: "ECONNRESET", retryable: true, recovered: false },
      { at: iso(5), stage: "a", visit: 1, execution: "a#1", attempt: 1, kind: "auth", message: "401 from api", retryable: false, recovered: false },
    ]);
  });

  it("cancels what was running or waiting to retry", () => {
    expect(t.stages.map((s) => [s.id, s.status, s.reason])).toEqual([
      ["a#1", "failed", undefined], ["b#1", "cancelled", "run failed"], ["c#1", "cancelled", "run failed"],
    ]);
    expect(t.stages[2]!.attempts[0]).toMatchObject({ status: "failed", retry_in_ms: 500 });
  });

  it("adds a run-level error when no stage error explains it", () => {
    const timeout = new LogBuilder().at(0).started({ stage: "a" }).at(60_000).cancelled({ stage: "a" }, 1, "run failed")
      .finished("failed", { error: { kind: "timeout", message: "run exceeded its timeout of 60000 ms" } });
    expect(buildTrace(timeout.events).errors).toEqual([
      { at: iso(60_000), stage: null, visit: null, execution: null, attempt: null, kind: "timeout", message: "run exceeded its timeout of 60000 ms", retryable: false, recovered: false },
    ]);
    const expr = new LogBuilder().at(1).decision({ stage: "x", kind: "if", expression: "$boom()", result: null, error: "stage 'x': if boom" })
      .finished("failed", { error: { stage: "x", kind: "expression", message: "stage 'x': if boom" } });
    expect(buildTrace(expr.events).errors).toMatchObject([{ stage: "x", kind: "expression", attempt: null, recovered: false }]);
    expect(buildTrace(expr.events).stages).toEqual([]);
  });
});

describe("buildTrace: cancelled, then resumed", () => {
  const b = new LogBuilder()
    .at(0).started({ stage: "a" })
    .at(10).cancelRequested().cancelled({ stage: "a" }, 1, "run cancelled")
    .finished("cancelled", { error: { kind: "cancelled", message: "run cancelled" } });
  const atCancel = b.events.length;
  b.at(5000).resumed().started({ stage: "a" }, 2, { rerun: true, queued_ms: 0 })
    .at(5010).succeeded({ stage: "a" }, 2, "done")
    .finished("succeeded", { output: { a: "done" }, read: ["a"] });

  it("shows the cancelled run as it stood", () => {
    const t = buildTrace(b.events.slice(0, atCancel));
    expect(t.run).toMatchObject({ status: "cancelled", ended_at: iso(10), duration_ms: 10, error: { kind: "cancelled", message: "run cancelled" } });
    expect(t.stages[0]).toMatchObject({ status: "cancelled", reason: "run cancelled" });
    expect(t.errors).toMatchObject([{ stage: null, kind: "cancelled", recovered: false }]);
  });

  it("re-runs the cut attempt after resume and recovers the cancel", () => {
    const t = buildTrace(b.events);
    expect(t.run).toMatchObject({ status: "succeeded", ended_at: iso(5010), duration_ms: 5010, output: { a: "done" } });
    expect(t.run).not.toHaveProperty("error");
    expect(t.stages[0]).toMatchObject({ status: "succeeded", started_at: iso(0), duration_ms: 5010, queued_ms: 0 });
    expect(t.stages[0]!.attempts).toEqual([
      { n: 1, started_at: iso(0), ended_at: iso(10), status: "cancelled", reason: "run cancelled" },
      { n: 2, started_at: iso(5000), ended_at: iso(5010), status: "succeeded", rerun: true },
    ]);
    expect(t.errors).toMatchObject([{ kind: "cancelled", recovered: true }]);
  });

  it("marks attempts a crash cut short as interrupted", () => {
    const crash = new LogBuilder().at(0).started({ stage: "a" }).at(900).resumed()
      .started({ stage: "a" }, 2, { rerun: true }).at(950).succeeded({ stage: "a" }, 2, 1);
    const a = buildTrace(crash.events).stages[0]!;
    expect(a.attempts[0]).toEqual({
      n: 1, started_at: iso(0), ended_at: null, status: "cancelled",
      error: { kind: "interrupted", message: "its process stopped or lost the lease; it ran again after resume", retryable: true },
    });
    expect(a).toMatchObject({ status: "succeeded", attempts: [{}, { rerun: true }] });
  });

  it("reports waiting runs", () => {
    const w = new LogBuilder().ok("a", 0, 5, 1).at(6).waiting("approve", "ok to publish?");
    expect(buildTrace(w.events).run).toMatchObject({ status: "waiting", ended_at: null, waiting: { at: iso(6), stage: "approve", message: "ok to publish?" } });
    expect(buildTrace(w.at(99).resumed().events).run).not.toHaveProperty("waiting");
  });
});

describe("buildTrace: usage and scale", () => {
  it("sums tokens and cost when events carry them", () => {
    const b = new LogBuilder().at(0).started({ stage: "ask" });
    b.events.push({ ...b.events[0]!, type: "stage_succeeded", at: b.events[0]!.at + 30, stage: "ask", visit: 1, attempt: 1, output: "hi", tokens: { input: 12, output: 3 }, cost_usd: 0.002, model: "mock:echo" } as never);
    const t = buildTrace(b.events);
    expect(t.run).toMatchObject({ tokens: { input: 12, output: 3 }, cost_usd: 0.002 });
    expect(t.stages[0]).toMatchObject({ model: "mock:echo", tokens: { input: 12, output: 3 }, cost_usd: 0.002 });
  });

  // How long this takes is measured by bench/micro.mjs (`npm run bench:micro`), not asserted here.
  it("builds a 10,000-item for_each: one entry per item, the items' outputs collected in order", () => {
    const n = 10_000;
    const b = new LogBuilder().at(0).decision({ stage: "each", kind: "for_each", expression: "inputs.list", result: n, items: Array.from({ length: n }, (_, i) => i) });
    for (let i = 0; i < n; i++) b.at(1 + i).started({ stage: "each", item: i }).at(2 + i).succeeded({ stage: "each", item: i }, 1, i * 2);
    b.completed("each").finished("succeeded", { output: null, read: ["each"] });
    const t = buildTrace(b.events);
    expect(t.stages).toHaveLength(n + 1);
    const out = t.stages[0]!.output as number[];
    expect(out).toHaveLength(n);
    expect(out.every((v, i) => v === i * 2)).toBe(true);
    expect(t.stages.slice(1).every((s, i) => s.item === i && s.status === "succeeded")).toBe(true);
  });
});

describe("ids and times", () => {
  it("formats entry ids and ISO times exactly", async () => {
    const { executionId, iso: isoOf } = await import("../../src/trace/entry.js");
    expect([executionId("research", 1), executionId("fact_check", 2, 17), executionId("fb", 1, 0, "s7"), executionId("fb", 3, undefined, "s7")])
      .toEqual(["research#1", "fact_check#2[17]", "fb#1[0]<-s7", "fb#3<-s7"]);
    for (const ms of [0, 5, 42, 999, 1000, 1_735_787_045_007, 1_735_787_045_070, 1_735_787_046_000, 1.5, -1]) {
      expect(isoOf(ms)).toBe(new Date(ms).toISOString());
    }
  });
});
