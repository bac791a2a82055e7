/**
 * Simple paths (`a`, `inputs.topic`, `research.summary`) recognised without JSONata's parser.
 * A template holds thousands of them (most `{{ }}` are simple paths), and JSONata rebuilds its
 * whole symbol table on every parse: tens of µs each, most of a template's compile time.
 * {@link deferredExpression} answers `ast()` with the AST JSONata would build and compiles the
 * real expression on its first evaluation, replaying the bindings assigned to it until then.
 * Simple paths are evaluated by the fast path, so most are never compiled at all.
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

/**
 * The AST JSONata builds for `source` when it is plain names joined by dots (ASCII letters,
 * digits and `_`, not a keyword), with optional whitespace around the whole; else undefined.
 * Same shape as `jsonata(source).ast()`: a `path` whose `name` steps are positioned at the end
 * of their name.
 *
 * @example
 * simplePathAst(" inputs.topic "); // { type: "path", steps: [{ value: "inputs", type: "name", position: 7 }, { value: "topic", type: "name", position: 13 }] }
 */
export function simplePathAst(source: string): AstNode | undefined {
  let i = 0;
  let end = source.length;
  while (i < end && WS.includes(source[i] as string)) i++;
  while (end > i && WS.includes(source[end - 1] as string)) end--;
  const steps: AstNode[] = [];
  for (;;) {
    const start = i;
    if (i >= end || !isStart(source.charCodeAt(i))) return undefined;
    i++;
    while (i < end && isPart(source.charCodeAt(i))) i++;
    const name = source.slice(start, i);
    if (KEYWORDS.has(name)) return undefined;
    steps.push({ value: name, type: "name", position: i });
    if (i === end) return { type: "path", steps };
    if (source[i] !== ".") return undefined;
    i++;
  }
}

type Pending = { readonly assign: readonly [string, unknown] } | { readonly register: readonly [string, (...args: any[]) => any, string | undefined] };

/**
 * A stand-in for `jsonata(source)` whose AST is already known (from {@link simplePathAst}):
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
