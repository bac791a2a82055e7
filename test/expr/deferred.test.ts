import fc from "fast-check";
import jsonata from "jsonata";
import { describe, expect, it } from "vitest";
import { CompiledExpr, compileExprInternal, plainResult } from "../../src/expr/compile.js";
import { deferredExpression, simpleAst } from "../../src/expr/deferred.js";

/** Own keys at every level (toEqual ignores keys whose value is undefined; `k in node` does not). */
function keysDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(keysDeep);
  if (v !== null && typeof v === "object") return Object.keys(v).sort().map((k) => [k, keysDeep((v as Record<string, unknown>)[k])]);
  return typeof v;
}

/** simpleAst must build exactly JSONata's AST, and the compiled expression must read the same names. */
function sameAsJsonata(s: string): void {
  const mine = simpleAst(s);
  const theirs = jsonata(s).ast();
  expect(mine).toEqual(theirs);
  expect(keysDeep(mine)).toEqual(keysDeep(theirs));
  const a = compileExprInternal(s);
  const b = new CompiledExpr(s, jsonata(s));
  expect([a.refs, a.roots, a.inputNames, a.fastPath]).toEqual([b.refs, b.roots, b.inputNames, b.fastPath]);
}

const SIMPLE = ["a", "a.b", "a.b.c", " inputs.topic ", "\ta_1.B2\n", "research.summary", "_x", "andy.order", "inputs", "inputs.x.y", "nullable.truth", "functional", "s0.n", "in_x.or_y", "a . b"];
const EXPRESSIONS = [
  "a.n + 1", "s0.n + 7", "{ 'n': p.n + 1, 'label': p.label }", '{ "n": a.n + 1, "label": a.label }', "x.ok = false", "a and b or c",
  "(a.x > 1) and (b.y <= 2)", "a + b * c - d", 'a != "x"', "12", "0", "true", "null", "{}", "{ a: 1 }", "inputs.n * 2 & 'x'",
];
const NOT_SIMPLE = [
  "", " ", "a.", ".a", "a..b", "a.0", "0a", "$x", "$", "a[0]", "a.b[c]", "`a b`", "and", "a.or", "null.x", "function", "é", "a.b;", "a.$b", "a.*", "a.**",
  "a%", "a / b", "-1", "1.5", "1e3", "a ? b : c", "a ~> $f", "$count(a)", "a in b", "'a\\'b'", "\"x\\n\"", "a /* c */", "a(b)", "a{b: c}", "[a]", "a := 1",
  "01", "a b", "'it''s'", "(a; b)", "()", "a = ", "{ a }", "{ a: 1, }", "a#b", "a@b", "a^(b)", "a!", "'x", "1234567890123456",
];

describe("simpleAst", () => {
  it.each([...SIMPLE, ...EXPRESSIONS])("builds the AST JSONata builds for %j", (s) => sameAsJsonata(s));
  it.each(NOT_SIMPLE)("leaves %j to JSONata", (s) => {
    expect(simpleAst(s)).toBeUndefined();
  });

  const ws = fc.constantFrom("", "", " ", "  ", "\n", "\t ");
  const name = fc.constantFrom("a", "b", "s0", "inputs", "x_1", "andy", "order", "nullx", "A", "_", "in_", "truth", "topic");
  const path = fc.array(name, { minLength: 1, maxLength: 3 }).chain((ns) => fc.array(ws, { minLength: ns.length, maxLength: ns.length }).map((w) => ns.map((n, i) => (i === 0 ? n : `${w[i]}.${w[i]}${n}`)).join("")));
  const str = fc.tuple(fc.constantFrom("'", '"'), fc.string({ unit: fc.constantFrom("a", " ", "{", "}", ".", "+", "é", "\n", "$", "'", '"'), maxLength: 6 })).map(([q, t]) => q + t.split(q).join("") + q);
  const atom = fc.oneof(path, fc.nat({ max: 1_000_000 }).map(String), str, fc.constantFrom("true", "false", "null"));
  const op = fc.constantFrom("+", "-", "*", "&", "=", "!=", "<", "<=", ">", ">=", " and ", " or ");
  const { expr } = fc.letrec<{ expr: string }>((tie) => ({
    expr: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      atom,
      fc.tuple(tie("expr"), ws, op, ws, tie("expr")).map((p) => p.join("")),
      fc.tuple(ws, tie("expr"), ws).map(([a, e, b]) => `(${a}${e}${b})`),
      fc.array(fc.tuple(tie("expr"), ws, tie("expr")), { maxLength: 3 }).map((ps) => `{${ps.map(([k, w, v]) => `${k}${w}:${w}${v}`).join(", ")}}`),
    ),
  }));

  it("matches JSONata's parser on generated expressions of the subset", () => {
    fc.assert(
      fc.property(fc.tuple(ws, expr, ws), ([a, e, b]) => {
        const s = a + e + b;
        expect(simpleAst(s)).toBeDefined();
        sameAsJsonata(s);
      }),
      { numRuns: 1500 },
    );
  });

  it("accepts only what JSONata parses to the same AST (random token soup)", () => {
    const piece = fc.constantFrom("a", "b.", ".c", "1", "0", "01", "'x'", '"y"', "\\", "(", ")", "{", "}", ",", ":", "+", "-", "*", "/", "%", "=", "!", "<", ">", "&", " and ", "or", " in ", "true", "null", ".", " ", "$", "[", "]", "1.5", "e", "`", ";", "?", "~", "#", "@", "^", "|");
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 10 }), (ps) => {
        const s = ps.join("");
        if (simpleAst(s) !== undefined) sameAsJsonata(s);
      }),
      { numRuns: 4000 },
    );
  });
});

describe("deferredExpression", () => {
  it("compiles on the first evaluation and replays earlier bindings in order", async () => {
    let compiles = 0;
    const e = deferredExpression(simpleAst("a")!, () => {
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

  it("evaluates compiled expressions of the subset as JSONata does", async () => {
    const scope = { inputs: { topic: "tides", n: 3, x: { y: [1, 2] } }, a: { b: [{ c: 1 }, { c: [2, 3] }], n: 4 }, s0: { n: [[1], [2]] }, x: { ok: false } };
    for (const s of ["inputs.topic", "inputs.x.y", "a.b.c", "s0.n", "missing.x", "a.n + 1", "x.ok = false", "{ 'n': a.n * 2, 't': inputs.topic & '!' }", "(a.n > 1) and (inputs.n <= 2)"]) {
      const e = compileExprInternal(` ${s} `);
      expect(await e.evaluateAsync(scope)).toEqual(plainResult(await jsonata(s).evaluate(scope)));
    }
    const i = compileExprInternal("inputs.topic");
    expect(i.refs).toEqual([{ name: "inputs", offset: 0, input: { name: "topic", offset: 7 } }]);
    expect(i.roots).toEqual(["inputs"]);
    expect(i.inputNames).toEqual(["topic"]);
  });
});
