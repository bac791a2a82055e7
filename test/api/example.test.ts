/** The seed pipeline in both forms: the TypeScript API and the YAML template give the same plan and output. */
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { researchReport } from "../../examples/research-report.ts";
import { execute, loadTemplate } from "../../src/index.js";
import type { Plan } from "../../src/plan/types.js";

/** The shape of a plan, without how handlers are referenced (module path vs function). */
function shape(plan: Plan) {
  return plan.stages.map((s) => ({
    id: s.id, kind: s.spec.kind, deps: s.deps.map((d) => plan.stages[d]!.id), forEach: s.forEach?.source ?? null, as: s.as,
    itemConcurrency: s.itemConcurrency, retry: s.retry, timeoutMs: s.timeoutMs ?? null, onError: s.onError,
    routes: s.routes.map((r) => ({ when: r.when.source, goto: r.goto, backward: r.backward, max: r.max })),
  }));
}

describe("examples/research-report in YAML and TypeScript", () => {
  const yaml = loadTemplate(resolve("examples/research-report.yaml"));

  it("compile to the same plan shape", () => {
    expect(shape(researchReport.plan)).toEqual(shape(yaml.plan));
    expect(researchReport.plan.output?.source).toBe(yaml.plan.output?.source);
    expect(researchReport.plan.timeoutMs).toBe(yaml.plan.timeoutMs);
    expect(researchReport.plan.concurrency).toBe(yaml.plan.concurrency);
  });

  it("run to the same output: verify routes back once, analyze recovers by retry", async () => {
    const a = await execute(yaml, { topic: "tides" }, { seed: 3 });
    const b = await execute(researchReport, { topic: "tides", depth: 5 }, { seed: 3 });
    expect(a.status).toBe("succeeded");
    expect(b.output).toEqual(a.output);
    expect(a.output).toMatchObject({ topic: "tides", score: 1 });
  });
});
