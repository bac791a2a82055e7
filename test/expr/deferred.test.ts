import jsonata from "jsonata";
import { describe, expect, it } from "vitest";
import { compileExprInternal, plainResult } from "../../src/expr/compile.js";
import { deferredExpression, simplePathAst } from "../../src/expr/deferred.js";

const SIMPLE = ["a", "a.b", "a.b.c", " inputs.topic ", "\ta_1.B2\n", "research.summary", "_x", "andy.order", "inputs", "inputs.x.y", "nullable.truth", "functional", "s0.n", "in_x.or_y"];
const NOT_SIMPLE = ["", " ", "a.", ".a", "a..b", "a . b", "a.0", "0a", "$x", "$", "a[0]", "a.b[c]", "`a b`", "and", "a.or", "true", "null.x", "function", "a+b", "a /* c */", "é", "a.b;", "(a)", "a.$b", "a.*", "a.**", "a%"];

describe("simplePathAst", () => {
  it.each(SIMPLE)("builds the AST JSONata builds for %j", (s) => {
    expect(simplePathAst(s)).toEqual(jsonata(s).ast());
  });
  it.each(NOT_SIMPLE)("leaves %j to JSONata", (s) => {
    expect(simplePathAst(s)).toBeUndefined();
  });
});

describe("deferredExpression", () => {
  it("compiles on the first evaluation and replays earlier bindings in order", async () => {
    let compiles = 0;
    const e = deferredExpression(simplePathAst("a")!, () => {
      compiles++;
      return jsonata("$x & $y & a");
    });
    e.assign("x", "1");
    e.assign("x", "2");
    e.registerFunction("f", () => 0);
    expect(compiles).toBe(0);
    e.assign("y", "3");
    expect(await e.evaluate({ a: "4" })).toBe("234");
    e.assign("y", "5");
    expect(await e.evaluate({ a: "6" })).toBe("256");
    expect(compiles).toBe(1);
  });

  it("gives compiled simple paths the roots, refs and fast path of JSONata's AST, and its results", async () => {
    const scope = { inputs: { topic: "tides", x: { y: [1, 2] } }, a: { b: [{ c: 1 }, { c: [2, 3] }] }, s0: { n: [[1], [2]] } };
    for (const s of ["inputs.topic", "inputs.x.y", "a.b.c", "s0.n", "missing.x"]) {
      const e = compileExprInternal(` ${s} `);
      const ast = jsonata(` ${s} `).ast();
      expect(e.fastPath).toEqual((ast as unknown as { steps: { value: string }[] }).steps.map((st) => st.value));
      expect(await e.evaluateAsync(scope)).toEqual(plainResult(await jsonata(s).evaluate(scope)));
    }
    const i = compileExprInternal("inputs.topic");
    expect(i.refs).toEqual([{ name: "inputs", offset: 0, input: { name: "topic", offset: 7 } }]);
    expect(i.roots).toEqual(["inputs"]);
    expect(i.inputNames).toEqual(["topic"]);
  });
});
