import { describe, expect, it } from "vitest";
import { compileExpr, ExprError } from "../../src/expr/index.js";

function roots(source: string): readonly string[] {
  return compileExpr(source).roots;
}

function errorOf(fn: () => unknown): ExprError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ExprError) return e;
    throw e;
  }
  throw new Error("expected an ExprError");
}

describe("roots (from the JSONata AST)", () => {
  it.each([
    ["research", ["research"]],
    ["research.sources", ["research"]],
    ["a.b.c", ["a"]],
    ["fact_check[verified = false]", ["fact_check"]],
    ["$count(fact_check[verified = false]) / $count(fact_check) > 0.2", ["fact_check"]],
    ["$map(research.sources, function($s) { $s.url & inputs.topic })", ["inputs", "research"]],
    ["{ 'report': draft.text, 'score': verify.score }", ["draft", "verify"]],
    ["$$.draft.text", ["draft"]],
    ["$.draft", ["draft"]],
    ["items[kind = $$.inputs.kind].name", ["inputs", "items"]],
    ["'research' & \"draft\"", []],
    ["a{b: c}", ["a"]],
    ["a^(b).c", ["a"]],
    ["($x := analyze; $x.summary & draft)", ["analyze", "draft"]],
    ["verify.score < 0.8 ? draft : analyze", ["analyze", "draft", "verify"]],
    ["[research, analyze][0]", ["analyze", "research"]],
    ["-score.value", ["score"]],
    ["$count(a).x", ["a"]],
    ["(a).b", ["a"]],
    ["a.(b + c)", ["a"]],
    ["research ~> $map(function($v) { $v.url })", ["research"]],
    ["`my stage`.x", ["my stage"]],
    ["| research | {'seen': true} |", []],
    ["a.*", ["a"]],
    ["true", []],
  ])("%s → %j", (source, expected) => {
    expect(roots(source)).toEqual(expected);
  });

  it("lists input names read as inputs.X", () => {
    const e = compileExpr("inputs.topic & ' ' & $string(inputs.depth) & $$.inputs.topic & inputs");
    expect(e.roots).toEqual(["inputs"]);
    expect(e.inputNames).toEqual(["depth", "topic"]);
  });

  it("rejects reading the whole scope", () => {
    expect(errorOf(() => compileExpr("*")).message).toContain("`*` at the top of an expression reads every stage: name the stage instead");
    expect(errorOf(() => compileExpr("**.url")).detail).toBe("`**` at the top of an expression reads every stage: name the stage instead");
    expect(errorOf(() => compileExpr("$keys($$)")).offset).toBe(6);
    expect(errorOf(() => compileExpr("$eval('research')")).detail).toContain("$eval");
  });
});

describe("syntax errors", () => {
  it("carries the 0-based offset of the bad token", () => {
    const e = errorOf(() => compileExpr("$count(x"));
    expect(e).toBeInstanceOf(ExprError);
    expect(e.offset).toBe(8);
    expect(e.message).toBe('expression `$count(x` is not valid: JSONata syntax error: Expected ")" before end of expression');
    expect(errorOf(() => compileExpr("a b")).offset).toBe(2);
    expect(errorOf(() => compileExpr("a = = b")).offset).toBe(4);
    expect(errorOf(() => compileExpr("")).detail).toContain("JSONata syntax error");
  });
});

describe("evaluate", () => {
  it("is synchronous for simple paths", () => {
    const e = compileExpr("research.sources");
    const v = e.evaluate({ research: { sources: [{ url: "a" }] } });
    expect(v).toEqual([{ url: "a" }]);
  });

  it("never reads the prototype chain on the fast path", () => {
    expect(compileExpr("toString").evaluate({})).toBeUndefined();
    expect(compileExpr("a.constructor").evaluate({ a: {} })).toBeUndefined();
    expect(compileExpr("a.length").evaluate({ a: [1, 2] })).toBeUndefined();
  });

  it("returns a Promise otherwise", async () => {
    const e = compileExpr("$count(research.sources)");
    const v = e.evaluate({ research: { sources: [1, 2, 3] } });
    expect(v).toBeInstanceOf(Promise);
    expect(await v).toBe(3);
  });

  it("returns plain arrays, not JSONata sequences", async () => {
    const v = (await compileExpr("$map(a, function($x) { $x * 2 })").evaluate({ a: [1, 2] })) as unknown[];
    expect(v).toEqual([2, 4]);
    expect(Object.keys(v)).toEqual(["0", "1"]);
    const merged = (await compileExpr("$merge([{ 'a': 1 }, { 'b': [1, 2] }])").evaluate({})) as object;
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(merged).toEqual({ a: 1, b: [1, 2] });
  });

  it("wraps evaluation errors in ExprError", async () => {
    const err = await (compileExpr("$count(1, 2)").evaluate({}) as Promise<unknown>).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExprError);
    expect((err as ExprError).message).toMatch(/^expression `\$count\(1, 2\)` failed: Argument 2 of function "count"/);
    expect((err as ExprError).retryable).toBe(false);
  });

  it("stops a runaway expression after 1000 ms", async () => {
    const e = compileExpr("($loop := function($n) { $loop($n + 1) }; $loop(0))");
    const err = await (e.evaluate({}) as Promise<unknown>).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(ExprError);
    // The time bound (not the depth bound) stopped it; how soon after 1000 ms is not asserted (loaded CI).
    expect((err as ExprError).message).toBe("expression `($loop := function($n) { $loop($n + 1) }; $loop(0))` ran for more than 1000 ms of its own work");
  }, 120_000); // 1 s of own work: more wall time on a loaded machine

  it("bounds the sequences an expression builds", async () => {
    const e = compileExpr("$count($append([1..600000], [1..600000]))");
    const err = await (e.evaluate({}) as Promise<unknown>).catch((x: unknown) => x);
    expect((err as ExprError).message).toBe("expression `$count($append([1..600000], [1..600000]))` built a sequence longer than 1000000 items");
  });

  it("stops runaway recursion", async () => {
    const e = compileExpr("($f := function($n) { $n = 0 ? 0 : 1 + $f($n - 1) }; $f(1000000))");
    const err = await (e.evaluate({}) as Promise<unknown>).catch((x: unknown) => x);
    expect((err as ExprError).message).toMatch(/recursed more than 500 levels deep$/);
  });
});
