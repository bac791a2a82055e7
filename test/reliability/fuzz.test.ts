/**
 * Template fuzzing: random and mutated templates, random YAML. Validation and compilation only
 * ever end in a template error (one line per problem, FILE:LINE:COL) or a plan — never a crash,
 * never another exception; templates that compile run to a clear end. How long a case takes is
 * measured by bench/micro.mjs (`npm run bench:micro`), not asserted here: CI machines are loaded
 * (a case that hangs still fails, on the test timeout).
 */
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { compileSource, TemplateError } from "../../src/template/index.js";
import { execute, MemoryStore } from "../../src/index.js";

const SEED = readFileSync("examples/research-report.yaml", "utf8");
const LLM = readFileSync("examples/research-report-llm.yaml", "utf8");

function check(text: string): void {
  try {
    compileSource(text, { file: "fuzz.yaml", format: "yaml", baseDir: "examples" });
  } catch (err) {
    if (!(err instanceof TemplateError)) throw new Error(`crashed with ${(err as Error)?.name}: ${(err as Error)?.message}\n--- template:\n${text}`);
    for (const line of err.message.split("\n")) expect(line).toMatch(/^fuzz\.yaml:\d+:\d+: \S/);
  }
}

/** Mutations: delete, duplicate or swap lines, flip characters, truncate. */
const arbMutation = (base: string) =>
  fc.array(
    fc.oneof(
      fc.record({ op: fc.constant("del" as const), at: fc.nat() }),
      fc.record({ op: fc.constant("dup" as const), at: fc.nat() }),
      fc.record({ op: fc.constant("char" as const), at: fc.nat(), ch: fc.constantFrom(":", "{", "}", "[", "]", "-", " ", "\t", "'", '"', "#", "{{", "}}", "$", "(", "&", "*", "!", "|", ">", "\n", "0", "x") }),
      fc.record({ op: fc.constant("cut" as const), at: fc.nat() }),
    ),
    { minLength: 1, maxLength: 6 },
  ).map((muts) => {
    let text = base;
    for (const m of muts) {
      const lines = text.split("\n");
      if (m.op === "del") lines.splice(m.at % lines.length, 1);
      else if (m.op === "dup") lines.splice(m.at % lines.length, 0, lines[m.at % lines.length]!);
      else if (m.op === "cut") return lines.join("\n").slice(0, m.at % Math.max(1, text.length));
      else {
        const j = m.at % Math.max(1, text.length);
        text = text.slice(0, j) + m.ch + text.slice(j);
        continue;
      }
      text = lines.join("\n");
    }
    return text;
  });

/** Random template-shaped objects (as YAML via JSON, which YAML accepts). */
const arbValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof({ maxDepth: 4 }, fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(tie("v"), { maxLength: 3 }), fc.dictionary(fc.constantFrom("run", "value", "needs", "if", "for_each", "routes", "goto", "when", "retry", "attempts", "timeout", "on_error", "input", "prompt", "agent", "x"), tie("v"), { maxKeys: 4 })),
})).v;
const arbTemplate = fc.record({
  baton: fc.oneof(fc.constant(1), fc.integer(), fc.string()),
  name: fc.oneof(fc.constant("t"), fc.string()),
  stages: fc.dictionary(fc.constantFrom("a", "b", "c", "d", "inputs", "1x", "item"), fc.oneof(arbValue, fc.record({ value: fc.constantFrom("a", "b.c", "$count(c)", "{{", "a +", "inputs.q", "1"), needs: fc.array(fc.constantFrom("a", "b", "c", "z")) })), { maxKeys: 5 }),
  output: fc.oneof(fc.constant(undefined), fc.constantFrom("a", "{ 'x': b }", "(", "visit")),
}, { requiredKeys: [] });

/** Mostly-valid templates of value stages (so many of them compile and run). */
const EXPRS = ["1", "'x'", "a + 1", "$count([1, 2])", "b", "$sum([1, a])", "1 / 0", "$error('no')", "[1..5]", "c.x", "{ 'k': d }", "$string(a) & 'z'"];
const arbValid = fc.record({
  stages: fc.array(
    fc.record({
      value: fc.constantFrom(...EXPRS),
      if: fc.option(fc.constantFrom("true", "false", "a > 0", "$exists(b)"), { nil: undefined }),
      on_error: fc.option(fc.constantFrom("continue", "fail"), { nil: undefined }),
      routes: fc.option(fc.constantFrom([{ when: "true", fail: "stop" }], [{ when: "false", goto: "a", max: 1 }]), { nil: undefined }),
    }, { requiredKeys: ["value"] }),
    { minLength: 1, maxLength: 4 },
  ),
}).map(({ stages }) => ({
  baton: 1, name: "fz",
  stages: Object.fromEntries(stages.map((st, i) => [["a", "b", "c", "d"][i]!, Object.fromEntries(Object.entries(st).filter(([, v]) => v !== undefined))])),
}));

describe("template fuzzing", () => {
  it("mutated copies of the example templates never crash the compiler", () => {
    fc.assert(fc.property(arbMutation(SEED), (t) => check(t)), { numRuns: 400 });
    fc.assert(fc.property(arbMutation(LLM), (t) => check(t)), { numRuns: 200 });
  });

  it("random template-shaped objects never crash the compiler, and those that compile run to a clear end", async () => {
    let ran = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(arbTemplate, arbValid, arbValid), async (t) => {
        const text = JSON.stringify(t);
        check(text);
        let plan;
        try {
          plan = compileSource(text, { file: "fuzz.yaml", format: "yaml", baseDir: "examples" });
        } catch {
          return;
        }
        ran++;
        const r = await execute({ name: plan.name, plan, parseInputs: (x) => x as Record<string, unknown> }, {}, { store: new MemoryStore() });
        expect(["succeeded", "failed", "waiting"]).toContain(r.status);
        if (r.error) expect(r.error.message.split("\n")).toHaveLength(1);
      }),
      { numRuns: 500 },
    );
    expect(ran).toBeGreaterThan(0);
  });

  it("random text never crashes the compiler", () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (t) => check(t)), { numRuns: 300 });
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom(...":{}[]-# \n\t'\"|>&*!$abc01"), maxLength: 200 }), (t) => check(t)), { numRuns: 300 });
  });
});
