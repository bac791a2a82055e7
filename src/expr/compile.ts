/**
 * `compileExpr`: JSONata compiled once, with its root reads listed from the AST, a
 * synchronous fast path for simple paths, and the bounds of `limits.ts` on everything else:
 * own-work time and depth (`guard.ts`), sizes (`builtins.ts`, results), RE2 regexes (`regex.ts`).
 */
import { createRequire } from "node:module";
import type jsonata from "jsonata";
import type { Expr, Scope } from "./types.js";
import { installBoundedBuiltins, tooLong } from "./builtins.js";
import { deferredExpression, simpleAst } from "./deferred.js";
import { evaluationError, syntaxError } from "./errors.js";
import { evaluateSimplePath, FALLBACK, simplePath } from "./fastpath.js";
import { guardedOptions, installGuard } from "./guard.js";
import { EXPR_LIMITS } from "./limits.js";
import { checkRegexes, REGEX_ENGINE } from "./regex.js";
import { findRoots, type AstNode, type RootRef } from "./roots.js";

export { EXPR_LIMITS } from "./limits.js";

/**
 * JSONata's own options: depth and sequence bounds, RE2 for regexes. No `timeout`: JSONata's
 * measures wall time; `guard.ts` bounds each evaluation's own work instead.
 */
const OPTIONS = guardedOptions({ stack: EXPR_LIMITS.stack, sequence: EXPR_LIMITS.sequence }, REGEX_ENGINE);

/** Flags JSONata sets on the arrays it returns; a value without them is plain JSON. */
const ARRAY_FLAGS = ["sequence", "keepSingleton", "cons", "outerWrapper", "tupleStream"];

/**
 * Strip JSONata's bookkeeping (flagged "sequence" arrays, prototype-less objects) from a
 * result, so a value kept in memory behaves like the same value read back from the event log.
 * Copies only what changes. Throws (a JSONata-shaped failure) on a string longer than
 * {@link EXPR_LIMITS}.string: the size bound on results, which covers `&`.
 */
export function plainResult(value: unknown): unknown {
  if (typeof value === "string") {
    if (value.length > EXPR_LIMITS.string) tooLong("string", value.length);
    return value;
  }
  if (Array.isArray(value)) {
    let out: unknown[] | undefined = ARRAY_FLAGS.some((k) => Object.hasOwn(value, k)) ? [] : undefined;
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      const p = plainResult(v);
      if (out === undefined && p !== v) out = value.slice(0, i);
      out?.push(p);
    }
    return out ?? value;
  }
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    // $merge, $spread … build objects without a prototype: make them ordinary objects.
    let out: Record<string, unknown> | undefined = Object.getPrototypeOf(obj) === null ? { ...obj } : undefined;
    for (const k of Object.keys(obj)) {
      const v = obj[k];
      const p = plainResult(v);
      if (p !== v) out ??= { ...obj };
      if (out) out[k] = p;
    }
    return out ?? value;
  }
  return value;
}

function sortedUnique(names: Iterable<string>): readonly string[] {
  return Object.freeze([...new Set(names)].sort());
}

/** A compiled expression. @internal Construct with {@link compileExpr}. */
export class CompiledExpr implements Expr {
  readonly source: string;
  readonly roots: readonly string[];
  readonly inputNames: readonly string[];
  /** Every root read with its offset, in document order. @internal */
  readonly refs: readonly RootRef[];
  /** Step names when the expression is a simple path (evaluated without JSONata). @internal */
  readonly fastPath: readonly string[] | undefined;
  readonly #compiled: jsonata.Expression;

  constructor(source: string, compiled: jsonata.Expression) {
    this.source = source;
    this.#compiled = compiled;
    const ast = compiled.ast() as unknown as AstNode;
    checkRegexes(ast, source);
    installGuard(compiled);
    installBoundedBuiltins(compiled, source);
    this.refs = Object.freeze(findRoots(ast, source).refs);
    this.roots = sortedUnique(this.refs.map((r) => r.name));
    this.inputNames = sortedUnique(this.refs.flatMap((r) => (r.input ? [r.input.name] : [])));
    this.fastPath = simplePath(ast);
    Object.freeze(this);
  }

  /** True when {@link evaluate} never calls JSONata for plain JSON data. */
  get isFast(): boolean {
    return this.fastPath !== undefined;
  }

  evaluate(scope: Scope): unknown {
    if (this.fastPath !== undefined) {
      const v = evaluateSimplePath(this.fastPath, scope);
      if (v !== FALLBACK) return v;
    }
    return this.evaluateAsync(scope);
  }

  /** Always through JSONata (the fast path's reference semantics). @internal */
  async evaluateAsync(scope: Scope): Promise<unknown> {
    try {
      return plainResult(await this.#compiled.evaluate(scope));
    } catch (err) {
      throw evaluationError(err, this.source, EXPR_LIMITS);
    }
  }
}

/**
 * Compile a JSONata expression.
 *
 * @param source - the expression text, e.g. `research.sources` or `$count(fact_check[verified])`.
 * @returns an {@link Expr} whose `roots` lists the names it reads from the scope.
 * @throws {@link ExprError} on a syntax error (with the 0-based `offset` of the bad token),
 *   and when the expression would read the whole scope (`*`, `**`, bare `$$`) or uses `$eval`.
 * @example
 * const e = compileExpr("research.sources");
 * e.roots;                                        // ["research"]
 * e.evaluate({ research: { sources: [1, 2] } });  // [1, 2], synchronously
 */
export function compileExpr(source: string): Expr {
  return compileExprInternal(source);
}

/**
 * Compiled expressions by source text. A compiled expression is immutable, so templates that
 * repeat an expression, and recompiles of the same template (resume), share one. Bounded:
 * cleared when full.
 */
const cache = new Map<string, CompiledExpr>();
const CACHE_MAX = 10_000;

let jsonataFn: typeof jsonata | undefined;
/** JSONata, loaded on first use: templates whose expressions all take the fast paths never need it to validate (issue 14). */
function jsonataOf(): typeof jsonata {
  jsonataFn ??= createRequire(import.meta.url)("jsonata") as typeof jsonata;
  return jsonataFn;
}

/** {@link compileExpr} with the implementation type. @internal */
export function compileExprInternal(source: string): CompiledExpr {
  const hit = cache.get(source);
  if (hit !== undefined) return hit;
  let compiled: jsonata.Expression;
  try {
    // Common expressions skip JSONata's parser until their first JSONata evaluation (simple
    // paths: until the fast path hands one to JSONata, which is rarely).
    const simple = simpleAst(source);
    compiled = simple !== undefined ? deferredExpression(simple, () => jsonataOf()(source, OPTIONS)) : jsonataOf()(source, OPTIONS);
  } catch (err) {
    throw syntaxError(err, source);
  }
  const expr = new CompiledExpr(source, compiled);
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(source, expr);
  return expr;
}
