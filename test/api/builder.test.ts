import { describe, expect, it } from "vitest";
import { z } from "zod";
import { definePipeline } from "../../src/api/pipeline.js";
import { compileObject } from "../../src/template/index.js";

const fn = () => 1;
const baseDir = "/base";
/** The plan of a template object written out by hand, as the builder used to assemble it. */
const planOf = (t: Record<string, unknown>) => compileObject(t, { format: "ts", name: t.name as string, baseDir });

describe("definePipeline builder (stages linked, not copied)", () => {
  it("builds the template and plan a hand-written object gives, stages in order", () => {
    let b = definePipeline({ name: "chain", baseDir }).stage("s0", { run: fn });
    const stages: Record<string, unknown> = { s0: { run: fn } };
    for (let i = 1; i < 50; i++) {
      b = b.stage(`s${i}`, { needs: [`s${i - 1}`] as never[], run: fn });
      stages[`s${i}`] = { needs: [`s${i - 1}`], run: fn };
    }
    const t = { baton: 1, name: "chain", stages };
    expect(b.template()).toEqual(t);
    expect(Object.keys(b.template().stages as object)).toEqual(Object.keys(stages));
    expect(b.plan.hash).toBe(planOf(t).hash);
    expect(b.plan.stages.map((s) => [s.id, s.deps])).toEqual(planOf(t).stages.map((s) => [s.id, s.deps]));
  });

  it("keeps config stages first, and a stage added twice keeps its first place with its last definition", () => {
    const b = definePipeline({ name: "p", baseDir, inputs: z.object({ n: z.number() }), stages: { a: { value: "inputs.n" }, b: { value: "1" } } })
      .stage("c", { value: "a + 1" })
      .stage("b", { value: "2" })
      .stage("d", { needs: ["c"], value: "c * 2" })
      .output("d");
    const t = b.template();
    expect(Object.keys(t.stages as object)).toEqual(["a", "b", "c", "d"]);
    expect((t.stages as Record<string, unknown>).b).toEqual({ value: "2" });
    expect(t.output).toBe("d");
    const hand = { baton: 1, name: "p", stages: { a: { value: "inputs.n" }, b: { value: "2" }, c: { value: "a + 1" }, d: { needs: ["c"], value: "c * 2" } }, inputs: t.inputs, output: "d" };
    expect(b.plan.hash).toBe(planOf(hand).hash);
  });

  it("leaves a builder unchanged when stages are added to what it returned (branches are independent)", () => {
    const base = definePipeline({ name: "br", baseDir }).stage("a", { run: fn });
    const left = base.stage("l", { needs: ["a"], run: fn }).returns("l");
    const right = base.stage("r", { needs: ["a"], run: fn });
    expect(Object.keys(base.template().stages as object)).toEqual(["a"]);
    expect(Object.keys(left.template().stages as object)).toEqual(["a", "l"]);
    expect(Object.keys(right.template().stages as object)).toEqual(["a", "r"]);
    expect(left.template().output).toBe("l");
    expect(right.plan.stages.map((s) => s.id)).toEqual(["a", "r"]);
    expect(definePipeline({ name: "empty", baseDir }).template()).toEqual({ baton: 1, name: "empty", stages: {} });
  });

  it("treats a stage named __proto__ as a stage, as the object spread did", () => {
    const t = definePipeline({ name: "x", baseDir }).stage("__proto__", { run: fn }).template();
    const stages = t.stages as Record<string, unknown>;
    expect(Object.keys(stages)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(stages)).toBe(Object.prototype);
  });
});
