/**
 * Outputs nothing can read any more are let go by a live run (issue 14: every output stayed in
 * memory for the whole run); they stay in the log, so runs, their traces, reruns and resumes
 * still see every output — fan-ins, routes back that read old outputs, `prev`.
 */
import { describe, expect, it } from "vitest";
import { apply, createState, decide, enableRelease, type BatonEvent, type ExecuteCommand, type RunState } from "../../src/engine/index.js";
import { definePipeline, execute, MemoryStore, Runtime } from "../../src/index.js";
import type { Plan } from "../../src/plan/types.js";
import { compileSource } from "../../src/template/index.js";
import { buildTrace } from "../../src/trace/index.js";

/** Drive a plan's state by hand (release on): every execution returns `out(stage)`. */
function drive(plan: Plan, out: (stage: string, cmd: ExecuteCommand) => unknown, observe: (state: RunState, settled: string) => void): void {
  const state = createState(plan);
  apply(state, { type: "run_started", at: 0, run_id: "r", pipeline: plan.name, plan_hash: plan.hash, engine: 3, source: { format: "ts" }, inputs: {}, seed: 1 });
  enableRelease(state);
  for (let now = 1; state.status === "running" && now < 1000; now++) {
    const step = decide(state, now);
    for (const cmd of step.effects) {
      if (cmd.kind !== "execute") continue;
      const stage = plan.stages[cmd.stage]!.id;
      apply(state, { type: "stage_succeeded", at: now, ...cmd.key, attempt: cmd.attempt, output: out(stage, cmd) } as BatonEvent);
      observe(state, stage);
    }
    if (step.effects.some((c) => c.kind === "assemble")) break;
  }
}

const outputOf = (state: RunState, plan: Plan, id: string): unknown => state.nodes[plan.stageIndex.get(id)!]!.output;

describe("outputs nothing reads any more are let go", () => {
  it("a chain lets each output go once the next stage settled; the sink's stays for the run's output", () => {
    const p = definePipeline({ name: "chain" })
      .stage("a", { run: () => 1 })
      .stage("b", { needs: ["a"], run: () => 2 })
      .stage("c", { needs: ["b"], run: () => 3 });
    const seen: Record<string, unknown[]> = {};
    drive(p.plan, (s) => ({ s, big: "x".repeat(10) }), (state, settled) => {
      seen[settled] = ["a", "b", "c"].map((id) => outputOf(state, p.plan, id));
    });
    expect(seen.a).toEqual([{ s: "a", big: "xxxxxxxxxx" }, undefined, undefined]);
    expect(seen.b).toEqual([undefined, { s: "b", big: "xxxxxxxxxx" }, undefined]);
    expect(seen.c).toEqual([undefined, undefined, { s: "c", big: "xxxxxxxxxx" }]);
  });

  it("a fan-in's source stays until its last reader settled, and every reader got it", () => {
    const p = definePipeline({ name: "fan" })
      .stage("root", { run: () => 0 })
      .stage("m0", { needs: ["root"], run: () => 0 })
      .stage("m1", { needs: ["root"], run: () => 0 })
      .stage("m2", { needs: ["root"], run: () => 0 })
      .stage("sink", { needs: ["m0", "m1", "m2"], run: () => 0 });
    const got: unknown[] = [];
    const rootAfter: Record<string, unknown> = {};
    drive(p.plan, (s, cmd) => {
      if (s.startsWith("m")) got.push(cmd.outputs.root);
      return { s };
    }, (state, settled) => void (rootAfter[settled] = outputOf(state, p.plan, "root")));
    expect(got).toEqual([{ s: "root" }, { s: "root" }, { s: "root" }]);
    expect(rootAfter).toMatchObject({ root: { s: "root" }, m0: { s: "root" }, m1: { s: "root" } });
    expect(rootAfter.m2).toBeUndefined();
    expect(rootAfter.sink).toBeUndefined();
  });

  it("runs read every output they need: fan-in, a route back reading old outputs and prev, for_each; the trace has them all", async () => {
    let checks = 0;
    const p = definePipeline({ name: "reads" })
      .stage("seed", { run: () => ({ n: 7 }) })
      .stage("fan0", { needs: ["seed"], run: (ctx) => (ctx.outputs.seed as { n: number }).n + 1 })
      .stage("fan1", { needs: ["seed"], run: (ctx) => (ctx.outputs.seed as { n: number }).n + 2 })
      .stage("items", { needs: ["fan0", "fan1"], run: (ctx) => [ctx.outputs.fan0, ctx.outputs.fan1] })
      .stage("each", { for_each: "items", run: (ctx) => (ctx.item as number) * 10 })
      .stage("draft", { needs: ["each", "seed"], run: (ctx) => ({ v: ctx.visit, sum: (ctx.outputs.each as unknown as number[]).reduce((a, b) => a + b, 0), seed: ctx.outputs.seed, prev: ctx.prev ?? null }) })
      .stage("check", {
        needs: ["draft"], run: () => ++checks,
        routes: [{ when: "check < 2", goto: "draft", max: 2 }],
      })
      .stage("final", { needs: ["check", "draft", "seed"], run: (ctx) => ({ draft: ctx.outputs.draft, seed: ctx.outputs.seed }) })
      .returns("final");
    const store = new MemoryStore();
    const r = await execute(p, {}, { store });
    expect(r.status).toBe("succeeded");
    const draft2 = { v: 2, sum: 170, seed: { n: 7 }, prev: { v: 1, sum: 170, seed: { n: 7 }, prev: null } };
    expect(r.output).toEqual({ draft: draft2, seed: { n: 7 } });
    const trace = buildTrace((await store.load(r.id)).events);
    expect(trace.stages.find((s) => s.stage === "fan0")).toMatchObject({ output: 8 });
    expect(trace.stages.find((s) => s.stage === "seed")).toMatchObject({ output: { n: 7 } });
    expect(trace.stages.filter((s) => s.stage === "each").map((s) => s.output)).toEqual([[80, 90], 80, 90]); // the stage, then its items
  });

  it("a rerun --from reuses the outputs a released run let go (from the log), and a resumed run reads what it needs", async () => {
    const plan = compileSource(`
baton: 1
name: rerun-released
stages:
  a: { value: "{ 'a': 1 }" }
  b: { value: "{ 'b': a.a + 1 }" }
  gate: { needs: [b], approval: { message: "go?" } }
  c: { needs: [gate], value: "{ 'c': b.b + 1 }" }
output: c
`, { format: "yaml", baseDir: process.cwd() });
    const p = { plan };
    const store = new MemoryStore();
    const rt = new Runtime({ store });
    const first = await (await rt.start(p.plan, {})).done;
    expect(first.status).toBe("waiting");
    // A new process answers: the run resumes from its log and reads b's output.
    const rt2 = new Runtime({ store });
    const done = await (await rt2.answer(first.id, "gate", { approved: true }, { plan: p.plan })).handle!.done;
    expect(done).toMatchObject({ status: "succeeded", output: { c: 3 } });
    const h = await new Runtime({ store }).rerun(first.id, "c", { plan: p.plan });
    expect(h.reused.sort()).toEqual(["a", "b", "gate"]);
    expect(await h.done).toMatchObject({ status: "succeeded", output: { c: 3 } });
  });
});
