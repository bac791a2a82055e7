/** `baton diff`: the JSON diff, diffTraces over real runs of the runtime, and the text view. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { definePipeline, execute, MemoryStore } from "../../src/index.js";
import type { Pipeline } from "../../src/api/pipeline.js";
import { buildTrace } from "../../src/trace/index.js";
import { diffTraces, jsonDiff, jsonEqual, shorten, type RunDiff } from "../../src/trace/diff.js";
import { renderDiff } from "../../src/trace/diff-render.js";
import type { Trace, TraceDecision, TraceStage } from "../../src/trace/types.js";

const ANSI = /\u001b\[/;

describe("jsonDiff", () => {
  it("gives [] for identical values, however deep, and for undefined members vs absent ones", () => {
    expect(jsonDiff(1, 1)).toEqual([]);
    expect(jsonDiff(null, null)).toEqual([]);
    expect(jsonDiff({ a: [1, { b: "x" }], c: { d: null } }, { c: { d: null }, a: [1, { b: "x" }] })).toEqual([]);
    expect(jsonDiff({ a: 1, u: undefined }, { a: 1 })).toEqual([]);
    expect(jsonEqual({ a: [1, 2] }, { a: [1, 2] })).toBe(true);
    expect(jsonEqual({ a: [1, 2] }, { a: [2, 1] })).toBe(false);
    expect(jsonEqual([], {})).toBe(false);
  });

  it("walks nested objects by key: changed, removed (A's order), then added", () => {
    expect(jsonDiff({ a: { b: 1, c: 2 }, x: true }, { a: { b: 2, d: [1] }, y: "new" })).toEqual([
      { path: "a.b", op: "changed", a: 1, b: 2 },
      { path: "a.c", op: "removed", a: 2 },
      { path: "a.d", op: "added", b: [1] },
      { path: "x", op: "removed", a: true },
      { path: "y", op: "added", b: "new" },
    ]);
  });

  it("walks arrays by index: common prefix compared, the tail added or removed", () => {
    expect(jsonDiff({ sources: [{ url: "a" }, { url: "b" }, { url: "c" }] }, { sources: [{ url: "a" }, { url: "B" }] })).toEqual([
      { path: "sources[1].url", op: "changed", a: "b", b: "B" },
      { path: "sources[2]", op: "removed", a: { url: "c" } },
    ]);
    expect(jsonDiff([1], [1, 2, 3])).toEqual([{ path: "[1]", op: "added", b: 2 }, { path: "[2]", op: "added", b: 3 }]);
  });

  it("reports a type change, a root change and odd keys", () => {
    expect(jsonDiff({ a: [1] }, { a: { 0: 1 } })).toEqual([{ path: "a", op: "changed", a: [1], b: { 0: 1 } }]);
    expect(jsonDiff("x", 2)).toEqual([{ path: "", op: "changed", a: "x", b: 2 }]);
    expect(jsonDiff(null, { a: 1 })).toEqual([{ path: "", op: "changed", a: null, b: { a: 1 } }]);
    expect(jsonDiff({ "odd key": { "2x": 1 } }, { "odd key": { "2x": 2 } })).toEqual([{ path: '["odd key"]["2x"]', op: "changed", a: 1, b: 2 }]);
  });

  it("caps the list with one 'more' marker counting the rest", () => {
    const a = Array.from({ length: 120 }, (_, i) => i);
    const b = a.map((x) => x + 1);
    const d = jsonDiff(a, b);
    expect(d).toHaveLength(51);
    expect(d[49]).toEqual({ path: "[49]", op: "changed", a: 49, b: 50 });
    expect(d[50]).toEqual({ path: "… 70 more", op: "more", more: 70 });
    expect(jsonDiff({ a: 1, b: 2, c: 3 }, {}, { max: 2 }).at(-1)).toEqual({ path: "… 1 more", op: "more", more: 1 });
    expect(jsonDiff({ a: 1 }, {}, { max: 2 })).toHaveLength(1);
  });

  it("cuts long strings, around the first difference when both sides are strings", () => {
    const head = "x".repeat(300);
    const [c] = jsonDiff({ t: `${head}AAA tail` }, { t: `${head}BBB tail` });
    expect(c!.op).toBe("changed");
    const a = c!.a as string;
    const b = c!.b as string;
    expect([...a].length).toBeLessThanOrEqual(120);
    expect(a.startsWith("…")).toBe(true);
    expect(a).toContain("AAA");
    expect(b).toContain("BBB");
    const [added] = jsonDiff({}, { t: "y".repeat(500) });
    expect(added!.b).toBe(`${"y".repeat(119)}…`);
    const [early] = jsonDiff("a" + "z".repeat(400), "b" + "z".repeat(400));
    expect(early!.a).toBe(`a${"z".repeat(118)}…`);
  });

  it("summarises big added or removed containers", () => {
    const big = { items: Array.from({ length: 30 }, (_, i) => ({ i, deep: { deeper: { deepest: [i] } } })) };
    const [c] = jsonDiff({}, { big });
    const shown = c!.b as { items: unknown[] };
    expect(shown.items).toHaveLength(11);
    expect(shown.items[10]).toBe("… 20 more");
    expect(shown.items[0]).toEqual({ i: 0, deep: "{… 1 key}" });
    expect(shorten(Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`k${i}`, i])))).toMatchObject({ k0: 0, "…": "2 more keys" });
  });
});

// A report pipeline whose shape depends on its inputs: the number of sources decides the
// for_each items and whether `check` routes back to `draft` (one extra visit); `flaky` makes
// research fail its first attempt.
const inputs = z.object({ topic: z.string(), sources: z.number().default(2), flaky: z.boolean().default(false) });
function report(extra = false): Pipeline<z.infer<typeof inputs>, unknown> {
  let p = definePipeline({ name: "report", inputs })
    .stage("research", {
      retry: { attempts: 2, delay: "1ms", jitter: "none" },
      run: (ctx) => {
        if (ctx.inputs.flaky && ctx.attempt === 1) throw new Error("search backend hiccup");
        return { topic: ctx.inputs.topic, sources: Array.from({ length: ctx.inputs.sources }, (_, i) => ({ url: `https://x.test/${ctx.inputs.topic}/${i}` })) };
      },
    })
    .stage("fact_check", { needs: ["research"], for_each: "research.sources", run: (ctx) => ({ ok: !String((ctx.item as { url: string }).url).endsWith("/1") }) })
    .stage("draft", { needs: ["research", "fact_check"], run: (ctx) => ({ text: `${ctx.outputs.research.topic} (${ctx.outputs.research.sources.length} sources)`, visit: ctx.visit }) })
    .stage("check", { needs: ["draft", "research"], value: "$count(research.sources)", routes: [{ when: "check < 3", goto: "draft", max: 1 }] });
  if (extra) p = p.stage("polish", { needs: ["draft"], value: "draft.text & '!'" }) as unknown as typeof p;
  return p.output("{ 'text': draft.text, 'n': check }") as unknown as Pipeline<z.infer<typeof inputs>, unknown>;
}

async function traceOf(store: MemoryStore, p: Pipeline<any, any>, input: Record<string, unknown>): Promise<Trace> {
  const r = await execute(p, input, { store, seed: 1 });
  expect(r.status, JSON.stringify(r.error)).toBe("succeeded");
  const { events } = await store.load(r.id);
  return buildTrace(events, p.plan);
}

describe("diffTraces over real runs", () => {
  const store = new MemoryStore();
  let tides: Trace, moons: Trace, tides2: Trace, flaky: Trace, extra: Trace;
  const ready = (async () => {
    tides = await traceOf(store, report(), { topic: "tides" });
    moons = await traceOf(store, report(), { topic: "moons", sources: 3 });
    tides2 = await traceOf(store, report(), { topic: "tides" });
    flaky = await traceOf(store, report(), { topic: "tides", flaky: true });
    extra = await traceOf(store, report(true), { topic: "tides" });
  })();

  it("the same pipeline with the same inputs twice: same plan, no stage changes, no decisions", async () => {
    await ready;
    const d = diffTraces(tides, tides2);
    expect(d.same_plan).toBe(true);
    expect(d.a.id).toBe(tides.run.id);
    expect(d.b.id).toBe(tides2.run.id);
    expect(d.inputs).toEqual([]);
    expect(d.output).toEqual([]);
    expect(d.stages).toEqual([]);
    expect(d.unchanged).toBe(tides.stages.length);
    expect(d.decisions).toEqual([]);
    expect(d.errors).toEqual({});
    expect(d.totals.tokens).toEqual([{ input: 0, output: 0 }, { input: 0, output: 0 }]);
    // --all lists them, unchanged, with both durations
    const all = diffTraces(tides, tides2, { all: true });
    expect(all.stages.map((s) => s.key)).toEqual(tides.stages.map((s) => s.id));
    expect(all.stages.every((s) => !s.changed && s.duration_ms.length === 2)).toBe(true);
    expect(JSON.parse(JSON.stringify(d))).toEqual(d);
  });

  it("different inputs: inputs, outputs and items change, a route is taken in one run only, an extra visit only in A", async () => {
    await ready;
    const d = diffTraces(tides, moons);
    expect(d.same_plan).toBe(true);
    expect(d.inputs).toEqual([
      { path: "topic", op: "changed", a: "tides", b: "moons" },
      { path: "sources", op: "changed", a: 2, b: 3 },
    ]);
    expect(d.output).toEqual([
      { path: "text", op: "changed", a: "tides (2 sources)", b: "moons (3 sources)" },
      { path: "n", op: "changed", a: 2, b: 3 },
    ]);
    const byKey = new Map(d.stages.map((s) => [s.key, s]));
    expect(byKey.get("research#1")).toMatchObject({
      changed: true,
      output: [
        { path: "topic", op: "changed", a: "tides", b: "moons" },
        { path: "sources[0].url", op: "changed", a: "https://x.test/tides/0", b: "https://x.test/moons/0" },
        { path: "sources[1].url", op: "changed", a: "https://x.test/tides/1", b: "https://x.test/moons/1" },
        { path: "sources[2]", op: "added", b: { url: "https://x.test/moons/2" } },
      ],
    });
    expect(byKey.get("research#1")!.attempts).toBeUndefined();
    expect(byKey.get("fact_check#1")).toMatchObject({ output: [{ path: "[2]", op: "added", b: { ok: true } }] });
    expect(byKey.get("fact_check#1[2]")).toMatchObject({ only_in: "b", item: 2, status: [null, "succeeded"], changed: true });
    // tides has 2 sources: check routes back to draft once, so draft#2 and check#2 ran in A only
    expect(byKey.get("draft#2")).toMatchObject({ only_in: "a", stage: "draft", visit: 2, status: ["succeeded", null] });
    expect(byKey.get("check#2")).toMatchObject({ only_in: "a" });
    expect(d.stages.filter((s) => s.only_in === "a").map((s) => s.key)).toEqual(["draft#2", "check#2"]);
    const route = d.decisions.find((x) => x.stage === "check" && x.visit === 1 && x.kind === "route");
    expect(route).toMatchObject({ route: 0, goto: "draft", expression: "check < 3", a: { taken: true, result: true, read: { check: 2 } }, b: { taken: false, result: false, read: { check: 3 } } });
    const forEach = d.decisions.find((x) => x.kind === "for_each");
    expect(forEach).toMatchObject({ stage: "fact_check", a: { result: 2 }, b: { result: 3 } });
    // matched stages keep their durations and a delta
    const r = byKey.get("research#1")!;
    expect(r.duration_ms[0]).toBeTypeOf("number");
    expect(r.delta_ms).toBe(r.duration_ms[1]! - r.duration_ms[0]!);
    // nothing is listed twice, and run order is kept: research before fact_check before draft
    const keys = d.stages.map((s) => s.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.indexOf("research#1")).toBeLessThan(keys.indexOf("fact_check#1[2]"));
    expect(keys.indexOf("fact_check#1[2]")).toBeLessThan(keys.indexOf("draft#1"));
  });

  it("a retried stage: attempts 2 → 1 and the error counted by kind", async () => {
    await ready;
    const d = diffTraces(flaky, tides);
    const r = d.stages.find((s) => s.key === "research#1");
    expect(r).toMatchObject({ changed: true, attempts: [2, 1] });
    expect(r!.status).toBeUndefined();
    expect(d.stages.map((s) => s.key)).toEqual(["research#1"]);
    expect(d.inputs).toEqual([{ path: "flaky", op: "changed", a: true, b: false }]);
    const kinds = Object.entries(d.errors);
    expect(kinds).toHaveLength(1);
    expect(kinds[0]![1]).toEqual([1, 0]);
  });

  it("a different plan: same_plan false, the new stage only in B", async () => {
    await ready;
    const d = diffTraces(tides, extra);
    expect(d.same_plan).toBe(false);
    expect(d.a.plan_hash).not.toBe(d.b.plan_hash);
    const polish = d.stages.filter((s) => s.stage === "polish");
    expect(polish.length).toBeGreaterThan(0);
    expect(polish.every((s) => s.only_in === "b")).toBe(true);
  });

  it("renders the header, changed stages with their JSON changes, one-sided stages and decisions, without ANSI", async () => {
    await ready;
    const text = renderDiff(diffTraces(tides, moons), { color: false, width: 200 });
    expect(text).not.toMatch(ANSI);
    const lines = text.split("\n");
    expect(lines[0]).toMatch(new RegExp(`^A ${tides.run.id}  report  succeeded `));
    expect(lines[1]).toMatch(new RegExp(`^B ${moons.run.id}  report  succeeded `));
    expect(text).toMatch(/^plan same {2}duration .+ → /m);
    expect(text).toContain('  ~ inputs.topic: "tides" → "moons"');
    expect(text).toContain('  ~ output.text: "tides (2 sources)" → "moons (3 sources)"');
    expect(text).toMatch(/^stages: \d+ changed, 2 only in A, 1 only in B, \d+ unchanged$/m);
    expect(text).toMatch(/^ {2}~ research#1 {2}output changed \(4\), \S+ → \S+/m);
    expect(text).toContain('      ~ output.sources[0].url: "https://x.test/tides/0" → "https://x.test/moons/0"');
    expect(text).toContain('      + output.sources[2]: {"url":"https://x.test/moons/2"}');
    expect(text).toMatch(/^ {2}- draft#2 {2}only in A \(succeeded, \S+\)$/m);
    expect(text).toMatch(/^ {2}\+ fact_check#1\[2\] {2}only in B \(succeeded, \S+\)$/m);
    expect(text).toContain("  ~ check#1 route 0 (→ draft): taken → not taken (read check=2 → check=3)");
    expect(text).toContain("  ~ fact_check#1 for_each: 2 items → 3 items");
    expect(text).toMatch(/^errors: none in either run$/m);
    expect(renderDiff(diffTraces(tides, moons), { color: true })).toMatch(ANSI);
  });

  it("renders a same-run diff briefly, and a retry with attempts and the error count", async () => {
    await ready;
    const same = renderDiff(diffTraces(tides, tides2), { color: false });
    expect(same).toContain("inputs: same");
    expect(same).toContain("output: same");
    expect(same).toMatch(/^stages: 0 changed, \d+ unchanged$/m);
    expect(same).toContain("decisions: same");
    const all = renderDiff(diffTraces(tides, tides2, { all: true }), { color: false });
    expect(all).toMatch(/^ {2}= research#1 {2}\S+ → \S+/m);
    const retry = renderDiff(diffTraces(flaky, tides), { color: false });
    expect(retry).toMatch(/^ {2}~ research#1 {2}\S+ → \S+( \([+-]\S+\))?, attempts 2 → 1$/m);
    expect(retry).toMatch(/^errors: \w+ 1 → 0$/m);
  });

  it("renders a different plan", async () => {
    await ready;
    const text = renderDiff(diffTraces(tides, extra), { color: false });
    expect(text).toMatch(/^plan different/m);
    expect(text).toMatch(/^ {2}\+ polish#1 {2}only in B/m);
  });
});

// Hand-made traces for the fields real runs of plain stages do not exercise.
function stage(id: string, over: Partial<TraceStage> = {}): TraceStage {
  const [, name, visit] = /^(\w+)#(\d+)/.exec(id)!;
  return {
    id, stage: name!, visit: Number(visit), status: "succeeded", started_at: "2025-01-01T00:00:00.000Z", ended_at: "2025-01-01T00:00:01.000Z",
    duration_ms: 1000, queued_ms: 0, input: null, output: null, attempts: [{ n: 1, started_at: "2025-01-01T00:00:00.000Z", ended_at: "2025-01-01T00:00:01.000Z", status: "succeeded" }], ...over,
  };
}
function trace(id: string, stages: TraceStage[], decisions: TraceDecision[] = [], over: Partial<Trace["run"]> = {}): Trace {
  return {
    run: {
      id, pipeline: "p", plan_hash: "h", status: "succeeded", inputs: {}, output: null, started_at: "2025-01-01T00:00:00.000Z",
      ended_at: "2025-01-01T00:00:02.000Z", duration_ms: 2000, tokens: { input: 0, output: 0 }, cost_usd: 0, ...over,
    },
    stages, decisions, errors: [], assembly: { expression: null, read: [] },
  };
}
const dec = (over: Partial<TraceDecision>): TraceDecision => ({ at: "2025-01-01T00:00:00.000Z", stage: "s", visit: 1, kind: "if", expression: "x", read: {}, result: true, ...over });

describe("diffTraces on hand-made traces", () => {
  it("compares status (with the last error), model, tokens and cost; timing alone is no change", () => {
    const a = trace("ra", [
      stage("ask#1", { model: "m-small", tokens: { input: 10, output: 5 }, cost_usd: 0.001 }),
      stage("slow#1", { duration_ms: 10 }),
      stage("bad#1", { status: "failed", attempts: [{ n: 1, started_at: "x", ended_at: "y", status: "failed", error: { kind: "timeout", message: "took too long", retryable: true } }] }),
    ], [], { tokens: { input: 10, output: 5 }, cost_usd: 0.001 });
    const b = trace("rb", [
      stage("ask#1", { model: "m-large", tokens: { input: 10, output: 50 }, cost_usd: 0.01 }),
      stage("slow#1", { duration_ms: 5000 }),
      stage("bad#1"),
    ], [], { tokens: { input: 10, output: 50 }, cost_usd: 0.01 });
    const d = diffTraces(a, b);
    expect(d.unchanged).toBe(1);
    expect(d.stages.map((s) => s.key)).toEqual(["ask#1", "bad#1"]);
    expect(d.stages[0]).toMatchObject({ model: ["m-small", "m-large"], tokens: [{ input: 10, output: 5 }, { input: 10, output: 50 }], cost_usd: [0.001, 0.01] });
    expect(d.stages[1]).toMatchObject({ status: ["failed", "succeeded"], error: ["timeout: took too long", null] });
    expect(d.totals).toEqual({ duration_ms: [2000, 2000], tokens: [{ input: 10, output: 5 }, { input: 10, output: 50 }], cost_usd: [0.001, 0.01] });
    const text = renderDiff(d, { color: false });
    expect(text).toMatch(/tokens 15 → 60 {2}cost \$0\.0010 → \$0\.0100/);
    expect(text).toContain("~ ask#1  1.00s → 1.00s, model m-small → m-large, tokens 15 → 60, cost $0.0010 → $0.0100");
    expect(text).toContain("~ bad#1  failed → succeeded, 1.00s → 1.00s");
    expect(text).toContain("      A timeout: took too long");
  });

  it("matches decisions by stage, visit, item, kind and route index; repeats by occurrence", () => {
    const a = trace("ra", [], [
      dec({ kind: "route", route: 0, taken: false, result: false }),
      dec({ kind: "route", route: 1, taken: true, result: true, goto: "t" }),
      dec({ kind: "if", result: true }),
      dec({ kind: "if", result: true }), // evaluated again (e.g. after a resume)
      dec({ kind: "fallback", item: 3, result: "fb" }),
    ]);
    const b = trace("rb", [], [
      dec({ kind: "route", route: 0, taken: false, result: false }),
      dec({ kind: "route", route: 1, taken: false, result: false, goto: "t" }),
      dec({ kind: "if", result: true }),
      dec({ kind: "fallback", item: 4, result: "fb" }),
    ]);
    const d = diffTraces(a, b);
    expect(d.decisions).toEqual([
      { stage: "s", visit: 1, kind: "route", route: 1, goto: "t", expression: "x", a: { result: true, taken: true, read: {} }, b: { result: false, taken: false, read: {} } },
      { stage: "s", visit: 1, item: 4, kind: "fallback", expression: "x", b: { result: "fb", read: {} } },
      { stage: "s", visit: 1, kind: "if", expression: "x", a: { result: true, read: {} } },
      { stage: "s", visit: 1, item: 3, kind: "fallback", expression: "x", a: { result: "fb", read: {} } },
    ]);
    const text = renderDiff(d, { color: false });
    expect(text).toContain("  ~ s#1 route 1 (→ t): taken → not taken");
    expect(text).toContain("  - s#1 if: only in A: true (ran)");
    expect(text).toContain("  + s#1[4] fallback: only in B: → fb");
  });

  it("caps the rendered changes per value and the listed stages", () => {
    const big = (k: number) => Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`k${i}`, i * k]));
    const d: RunDiff = diffTraces(
      trace("ra", Array.from({ length: 5 }, (_, i) => stage(`s${i}#1`, { output: big(1) }))),
      trace("rb", Array.from({ length: 5 }, (_, i) => stage(`s${i}#1`, { output: big(2) }))),
    );
    expect(d.stages[0]!.output).toHaveLength(51); // 50 + the marker (k0 is 0 on both sides)
    expect(d.stages[0]!.output!.at(-1)).toMatchObject({ op: "more", more: 29 });
    const text = renderDiff(d, { color: false, maxChanges: 5, maxStages: 2 });
    expect(text).toContain("~ s0#1  output changed (79), 1.00s → 1.00s");
    expect(text).toContain("      ~ output.k1: 1 → 2");
    expect(text).toContain("      … 74 more changes");
    expect(text).toContain("  … 3 more stage executions");
    expect(text).not.toContain("s2#1");
  });
});
