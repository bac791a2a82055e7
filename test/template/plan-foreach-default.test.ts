import { describe, expect, it } from "vitest";
import { FOR_EACH_CONCURRENCY } from "../../src/engine/index.js";
import { compileSource } from "../../src/template/index.js";
import { describePlan, renderPlan } from "../../src/template/describe.js";

describe("baton plan: a for_each without concurrency shows the default the engine applies", () => {
  const plan = compileSource(`baton: 1
name: fe
stages:
  list: { value: "[1, 2, 3]" }
  each: { needs: [list], for_each: list, value: "item * 2" }
  few: { needs: [list], for_each: list, concurrency: 2, value: "item" }
`, { file: "fe.yaml", format: "yaml", baseDir: process.cwd() });
  const d = describePlan(plan);
  it("JSON: the default's number, marked default; a declared concurrency as declared", () => {
    expect(d.stages.find((s) => s.id === "each")!.for_each).toEqual({ over: "list", as: "item", concurrency: FOR_EACH_CONCURRENCY, default: true });
    expect(d.stages.find((s) => s.id === "few")!.for_each).toEqual({ over: "list", as: "item", concurrency: 2 });
  });
  it("text: 'N at a time (the default)'", () => {
    const text = renderPlan(d);
    expect(text).toMatch(new RegExp(`each .*for_each list, ${FOR_EACH_CONCURRENCY} at a time \\(the default\\)`));
    expect(text).toMatch(/few .*for_each list, 2 at a time(?! \(the default\))/);
  });
});
