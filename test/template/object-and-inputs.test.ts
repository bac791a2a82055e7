import { fileURLToPath } from "node:url";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, it, vi } from "vitest";
import { compileObject, InputError, loadPlanFile, TemplateError, validateInputs } from "../../src/template/index.js";

const dir = fileURLToPath(new URL("../fixtures/templates/", import.meta.url));

describe("compileObject (templates built in TypeScript)", () => {
  const fetchSources = async (ctx: { input: unknown }) => ({ sources: [ctx.input] });

  it("accepts functions as run and compiles like YAML", () => {
    const plan = compileObject(
      {
        baton: 1,
        name: "ts",
        stages: {
          research: { run: fetchSources, input: { q: "{{ inputs.topic }}" }, retry: undefined },
          count: { value: "$count(research.sources)" },
        },
        inputs: { topic: { type: "string" } },
      },
      { format: "ts", baseDir: "/base" },
    );
    expect(plan.source).toEqual({ format: "ts" });
    expect(plan.stages[0]?.spec).toEqual({ kind: "run", fn: fetchSources });
    expect(plan.stages[1]?.deps).toEqual([0]);
    expect(plan.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("hashes function runs by their source text", () => {
    const make = (run: () => unknown) => compileObject({ baton: 1, name: "h", stages: { a: { run } } }, { format: "ts", baseDir: "/" }).hash;
    expect(make(() => 1)).toBe(make(() => 1));
    expect(make(() => 1)).not.toBe(make(() => 2));
  });

  it("reports every error with the path of the offending field", () => {
    let err: unknown;
    try {
      compileObject(
        {
          baton: 1,
          name: "report",
          stages: {
            research: { run: fetchSources, retry: { attempts: 0 }, nope: 1 },
            b: { value: "reserch", on_error: () => "x" },
          },
        },
        { format: "ts", baseDir: "/" },
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TemplateError);
    expect((err as TemplateError).message.split("\n")).toEqual([
      "report: stages.b.on_error: a function is only allowed as a stage's or a tool's run",
      "report: stages.research.nope: unknown field 'nope' in stage 'research'",
      "report: stages.research.retry.attempts: stage 'research': 'retry.attempts' must be a positive integer, got 0",
      "report: stages.b.value: unknown stage or input 'reserch' in expression (did you mean 'research'?)",
    ]);
    expect((err as TemplateError).diagnostics[0]).toMatchObject({ file: "report", line: 0, col: 0, path: "stages.b.on_error" });
  });
});

describe("validateInputs", () => {
  const plan = loadPlanFile(dir + "all-features.yaml");
  const spec = loadPlanFile(dir + "research-report.yaml");

  const problem = (p: typeof plan, raw: Record<string, unknown>): string => {
    try {
      validateInputs(p, raw);
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      return (e as Error).message;
    }
    throw new Error("expected an InputError");
  };

  it("applies defaults and coerces command-line strings", () => {
    expect(validateInputs(spec, { topic: "tides" })).toEqual({ topic: "tides", depth: 5 });
    expect(validateInputs(plan, { topic: "tides", depth: "7", strict: "true", tags: '["a","b"]' })).toEqual({
      topic: "tides",
      depth: 7,
      strict: true,
      tags: ["a", "b"],
    });
    expect(validateInputs(plan, { topic: "5" })).toMatchObject({ topic: "5" }); // strings stay strings
  });

  it("returns a new object and never shares defaults between runs", () => {
    const raw = { topic: "t" };
    const a = validateInputs(plan, raw);
    (a.tags as string[]).push("x");
    expect(raw).toEqual({ topic: "t" });
    expect(validateInputs(plan, raw).tags).toEqual([]);
  });

  it("says what was expected and how to pass it", () => {
    expect(problem(spec, { topic: "t", depth: "five" })).toBe(`input 'depth': expected integer, got "five" — pass --input depth=5`);
    expect(problem(plan, { topic: "t", depth: "2.5" })).toBe(`input 'depth': expected integer, got "2.5" — pass --input depth=3`);
    expect(problem(plan, { topic: "t", strict: "yes" })).toBe(`input 'strict': expected boolean, got "yes" — pass --input strict=false`);
    expect(problem(plan, { topic: "t", depth: "0" })).toBe(`input 'depth': must be >= 1, got "0"`);
  });

  it("rejects unknown inputs with a suggestion, and missing required ones", () => {
    expect(problem(spec, { topik: "t" })).toBe(`unknown input 'topik' (did you mean 'topic'?); missing input 'topic' — pass --input topic=text`);
    expect(problem(spec, {})).toBe(`missing input 'topic' — pass --input topic=text`);
  });

  it("caches one validator per plan", () => {
    // Counted, not timed: ajv compiles a schema once per plan, however many runs validate against it.
    const fresh = loadPlanFile(dir + "research-report.yaml");
    const other = loadPlanFile(dir + "all-features.yaml");
    const compile = vi.spyOn(Ajv2020.prototype, "compile");
    try {
      for (let i = 0; i < 1000; i++) validateInputs(fresh, { topic: "t", depth: String(i + 1) });
      expect(compile).toHaveBeenCalledTimes(1);
      for (let i = 0; i < 10; i++) validateInputs(other, { topic: "t" });
      expect(compile).toHaveBeenCalledTimes(2);
      expect(validateInputs(fresh, { topic: "t", depth: "3" })).toEqual({ topic: "t", depth: 3 });
    } finally {
      compile.mockRestore();
    }
  });
});
