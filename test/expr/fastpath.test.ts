import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileExprInternal } from "../../src/expr/compile.js";
import { evaluateSimplePath, FALLBACK } from "../../src/expr/fastpath.js";

const KEYS = ["a", "b", "c"] as const;

/** JSON values whose objects use a small key alphabet, so random paths often hit. */
const json = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, 1, "x", ""),
    fc.integer(),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom(...KEYS), tie("value"), { maxKeys: 3, noNullPrototype: true }),
  ),
})).value;

const path = fc.array(fc.constantFrom(...KEYS), { minLength: 1, maxLength: 4 });

describe("fast path", () => {
  it("recognises simple paths only", () => {
    expect(compileExprInternal("a.b.c").fastPath).toEqual(["a", "b", "c"]);
    for (const s of ["a[0]", "a.b[x]", "$count(a)", "a{b: c}", "a^(b)", "$$.a", "a.*", "a.b@$x", "a.b#$i", "[a]"]) {
      expect(compileExprInternal(s).fastPath, s).toBeUndefined();
    }
  });

  it("keeps JSONata's array rules", () => {
    expect(evaluateSimplePath(["r", "s"], { r: { s: [1] } })).toEqual([1]); // array reached directly: kept
    expect(evaluateSimplePath(["r", "s"], { r: [{ s: 1 }] })).toBe(1); // mapped singleton: unwrapped
    expect(evaluateSimplePath(["r", "s"], { r: [{ s: 1 }, { s: 2 }] })).toEqual([1, 2]);
    expect(evaluateSimplePath(["r", "s"], { r: [{ s: [1] }, { s: [2, 3] }] })).toEqual([1, 2, 3]); // flattened one level
    expect(evaluateSimplePath(["r", "s"], { r: [] })).toBeUndefined();
    expect(evaluateSimplePath(["r"], { r: [] })).toEqual([]);
    expect(evaluateSimplePath(["r", "s", "t"], { r: [[{ s: 1 }]] })).toBe(FALLBACK);
  });

  it("equals JSONata on random data and paths", async () => {
    let compared = 0;
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.constantFrom(...KEYS), json, { maxKeys: 3, noNullPrototype: true }), path, async (scope, names) => {
        const fast = evaluateSimplePath(names, scope);
        if (fast === FALLBACK) return;
        compared++;
        const slow = await compileExprInternal(names.join(".")).evaluateAsync(scope);
        expect(fast).toStrictEqual(slow);
      }),
      { numRuns: 2000 },
    );
    expect(compared).toBeGreaterThan(1000);
  });

  it("evaluate() falls back to JSONata for nested arrays and agrees with it", async () => {
    const e = compileExprInternal("r.s");
    const scope = { r: [[{ s: 1 }, { s: 2 }], { s: 3 }] };
    const v = e.evaluate(scope);
    expect(v).toBeInstanceOf(Promise);
    expect(await v).toEqual(await e.evaluateAsync(scope));
  });
});
