/**
 * Common expressions parsed without JSONata's parser: simple paths (`inputs.topic`, most `{{ }}`),
 * and arithmetic, comparisons and object constructors over them (`a.n + 1`, `x.ok = false`).
 * A template holds thousands of them, and JSONata rebuilds its whole symbol table on every
 * parse: tens of µs each, most of a template's compile time. {@link simpleAst} builds the AST
 * JSONata would build; {@link deferredExpression} answers `ast()` with it and compiles the real
 * expression on its first evaluation, replaying the bindings assigned to it until then. Simple
 * paths are evaluated by the fast path, so most are never compiled by JSONata at all.
 * @internal
 */
import type jsonata from "jsonata";
import type { AstNode } from "./roots.js";

/** What JSONata's lexer skips between tokens. */
const WS = " \t\n\r\v";
/** Names JSONata's lexer or parser turns into something else (operators, values, lambdas). */
const KEYWORDS: ReadonlySet<string> = new Set(["and", "or", "in", "true", "false", "null", "function"]);

const isStart = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isPart = (c: number): boolean => isStart(c) || (c >= 48 && c <= 57);

/** Binding powers of the infix operators {@link simpleAst} accepts (JSONata's own table). */
const LBP: Readonly<Record<string, number>> = { ".": 75, "*": 60, "+": 50, "-": 50, "&": 50, "=": 40, "!=": 40, "<": 40, "<=": 40, ">": 40, ">=": 40, and: 30, or: 25 };
/** Every single character JSONata's lexer treats as an operator (a name token stops at one). */
const OPERATOR_CHARS = ".[]{}(),@#;:?+-*/%|=<>^&!~";
/** The operator tokens {@link simpleAst} accepts; any other operator leaves the text to JSONata. */
const ACCEPTED_OPS: ReadonlySet<string> = new Set(["+", "-", "*", "&", "=", "!=", "<", "<=", ">", ">=", "(", ")", "{", "}", ",", ":", "."]);
const TWO_CHAR_OPS: ReadonlySet<string> = new Set(["..", ":=", "!=", ">=", "<=", "**", "~>", "?:", "??"]);

interface Token {
  readonly kind: "name" | "number" | "string" | "value" | "op" | "end";
  readonly value: string | number | boolean | null;
  /** Where the token ends: JSONata positions a node at the end of its token. */
  readonly end: number;
}

/** JSONata's tokens for `source`, or undefined at anything outside the accepted subset. */
function tokens(source: string): Token[] | undefined {
  const out: Token[] = [];
  const n = source.length;
  let i = 0;
  for (;;) {
    while (i < n && WS.includes(source[i] as string)) i++;
    if (i >= n) {
      out.push({ kind: "end", value: "(end)", end: i });
      return out;
    }
    const ch = source[i] as string;
    const c = source.charCodeAt(i);
    if (isStart(c)) {
      let j = i + 1;
      while (j < n && isPart(source.charCodeAt(j))) j++;
      // JSONata's name runs on to whitespace or an operator character.
      if (j < n && !WS.includes(source[j] as string) && !OPERATOR_CHARS.includes(source[j] as string)) return undefined;
      const name = source.slice(i, j);
      if (name === "and" || name === "or") out.push({ kind: "op", value: name, end: j });
      else if (name === "true" || name === "false") out.push({ kind: "value", value: name === "true", end: j });
      else if (name === "null") out.push({ kind: "value", value: null, end: j });
      else if (KEYWORDS.has(name)) return undefined;
      else out.push({ kind: "name", value: name, end: j });
      i = j;
    } else if (c >= 48 && c <= 57) {
      // Integers only: decimals and exponents are left to JSONata.
      let j = i + 1;
      if (c !== 48) while (j < n && source.charCodeAt(j) >= 48 && source.charCodeAt(j) <= 57) j++;
      if (j - i > 15 || (j < n && ".eE".includes(source[j] as string))) return undefined;
      out.push({ kind: "number", value: Number(source.slice(i, j)), end: j });
      i = j;
    } else if (ch === '"' || ch === "'") {
      const close = source.indexOf(ch, i + 1);
      if (close < 0) return undefined;
      const text = source.slice(i + 1, close);
      if (text.includes("\\")) return undefined; // escapes are left to JSONata
      out.push({ kind: "string", value: text, end: close + 1 });
      i = close + 1;
    } else {
      const two = source.slice(i, i + 2);
      const op = TWO_CHAR_OPS.has(two) ? two : ch;
      if (!ACCEPTED_OPS.has(op)) return undefined;
      i += op.length;
      out.push({ kind: "op", value: op, end: i });
    }
  }
}

/**
 * The AST JSONata builds for `source` when it is in a small, common subset of JSONata: names
 * joined by dots, integers, strings without escapes, `true`/`false`/`null`, the infix
 * operators `+ - * & = != < <= > >= and or`, parentheses and object constructors; else
 * undefined (the caller asks JSONata). The shapes are JSONata's, checked against JSONata's own
 * parser on generated expressions (test/expr/deferred.test.ts).
 *
 * @example
 * simpleAst("a.n + 1"); // { type: "binary", value: "+", position: 5, lhs: { type: "path", ... }, rhs: { value: 1, type: "number", position: 7 } }
 */
export function simpleAst(source: string): AstNode | undefined {
  const toks = tokens(source);
  if (toks === undefined) return undefined;
  let at = 0;
  const peek = (): Token => toks[at] as Token;
  const isOp = (t: Token, v: string): boolean => t.kind === "op" && t.value === v;
  const bail = (): never => {
    throw BAIL;
  };
  const expect = (v: string): Token => {
    const t = toks[at++] as Token;
    return isOp(t, v) ? t : bail();
  };
  const nud = (): AstNode => {
    const t = toks[at++] as Token;
    switch (t.kind) {
      case "name":
        return { type: "path", steps: [{ value: t.value, type: "name", position: t.end }] };
      case "number":
      case "string":
      case "value":
        return { value: t.value, type: t.kind, position: t.end };
      case "op":
        if (t.value === "(") {
          const e = expression(0);
          expect(")");
          return { type: "block", position: t.end, expressions: [e] };
        }
        if (t.value === "{") {
          const pairs: [AstNode, AstNode][] = [];
          if (!isOp(peek(), "}")) {
            for (;;) {
              const k = expression(0);
              expect(":");
              pairs.push([k, expression(0)]);
              if (!isOp(peek(), ",")) break;
              at++;
            }
          }
          expect("}");
          return { type: "unary", value: "{", position: t.end, lhs: pairs };
        }
        return bail();
      default:
        return bail();
    }
  };
  const expression = (rbp: number): AstNode => {
    let left = nud();
    for (;;) {
      const t = peek();
      if (t.kind !== "op") {
        if (t.kind === "end") return left;
        return bail(); // an operand right after an operand
      }
      const op = t.value as string;
      const lbp = LBP[op];
      if (lbp === undefined) {
        if (op === "(" || op === "{") return bail(); // a call or a group-by
        return left; // ) } , : end the expression
      }
      if (rbp >= lbp) return left;
      at++;
      if (op === ".") {
        // A path step: only a plain name after a path of names.
        const step = toks[at++] as Token;
        if (left.type !== "path" || step.kind !== "name") return bail();
        (left.steps as AstNode[]).push({ value: step.value, type: "name", position: step.end });
        continue;
      }
      left = { type: "binary", value: op, position: t.end, lhs: left, rhs: expression(lbp) };
    }
  };
  try {
    const ast = expression(0);
    return peek().kind === "end" ? ast : undefined;
  } catch {
    return undefined; // BAIL, or too deep to parse here: JSONata decides
  }
}
const BAIL = Symbol("not in the subset");

type Pending = { readonly assign: readonly [string, unknown] } | { readonly register: readonly [string, (...args: any[]) => any, string | undefined] };

/**
 * A stand-in for `jsonata(source)` whose AST is already known (from {@link simpleAst}):
 * `compile` runs on the first `evaluate`, and `assign`/`registerFunction` calls made before
 * then are replayed on the compiled expression in order.
 */
export function deferredExpression(ast: AstNode, compile: () => jsonata.Expression): jsonata.Expression {
  let real: jsonata.Expression | undefined;
  const pending: Pending[] = [];
  const compiled = (): jsonata.Expression => {
    if (real === undefined) {
      real = compile();
      for (const p of pending) {
        if ("assign" in p) real.assign(p.assign[0], p.assign[1]);
        else real.registerFunction(p.register[0], p.register[1], p.register[2]);
      }
      pending.length = 0;
    }
    return real;
  };
  const expr = {
    evaluate: (input: unknown, bindings?: Record<string, unknown>, callback?: (err: jsonata.JsonataError, resp: unknown) => void) =>
      callback === undefined ? compiled().evaluate(input, bindings) : compiled().evaluate(input, bindings, callback),
    assign: (name: string, value: unknown): void => {
      if (real !== undefined) real.assign(name, value);
      else pending.push({ assign: [name, value] });
    },
    registerFunction: (name: string, implementation: (...args: any[]) => any, signature?: string): void => {
      if (real !== undefined) real.registerFunction(name, implementation, signature);
      else pending.push({ register: [name, implementation, signature] });
    },
    ast: () => ast as unknown as jsonata.ExprNode,
  };
  return expr as unknown as jsonata.Expression;
}
