/**
 * Value templates: any YAML value whose strings may hold `{{ expr }}` interpolations
 * (a stage's `input:` and `prompt:`, a route's `with:`, http and pipeline inputs).
 */
import type { Expr, Scope, ValueTemplate } from "./types.js";
import { compileExprInternal, type CompiledExpr } from "./compile.js";
import { ExprError, type ValuePath } from "./errors.js";

/** Where an expression of a value template sits. @internal */
export interface ExprSite {
  readonly expr: CompiledExpr;
  /** Path inside the value to the string holding the expression ([] when the value is that string). */
  readonly path: ValuePath;
  /** 0-based offset of the expression's first character inside that string. */
  readonly offset: number;
}

type VNode =
  | { readonly k: "const"; readonly v: unknown }
  | { readonly k: "raw"; readonly i: number }
  | { readonly k: "interp"; readonly parts: readonly (string | number)[] }
  | { readonly k: "arr"; readonly items: readonly VNode[] }
  | { readonly k: "obj"; readonly entries: readonly (readonly [string, VNode])[] };

type Segment = { readonly text: string } | { readonly expr: string; readonly offset: number };

/** Offset just past the `}}` closing the expression that starts at `from`, or -1. */
function closing(text: string, from: number): number {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"' || ch === "'" || ch === "`") {
      for (i++; i < text.length && text[i] !== ch; i++) if (text[i] === "\\" && ch !== "`") i++;
    } else if (ch === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      if (end < 0) return -1;
      i = end + 1;
    } else if (ch === "{") {
      depth++;
    } else if (ch === "}") {
      if (depth === 0 && text[i + 1] === "}") return i + 2;
      if (depth > 0) depth--;
    }
  }
  return -1;
}

function fail(message: string, detail: string, source: string, offset: number, path: ValuePath): ExprError {
  return new ExprError(message, { source, offset, detail, path });
}

/** Split a string into text and `{{ expr }}` segments. */
function segments(text: string, path: ValuePath, errors: ExprError[]): Segment[] | undefined {
  const out: Segment[] = [];
  let at = 0;
  for (;;) {
    const open = text.indexOf("{{", at);
    if (open < 0) break;
    const end = closing(text, open + 2);
    if (end < 0) {
      const detail = "unterminated `{{`: close it with `}}`";
      errors.push(fail(`${detail} in '${text}'`, detail, text, open, path));
      return undefined;
    }
    if (open > at) out.push({ text: text.slice(at, open) });
    const inner = text.slice(open + 2, end - 2);
    const lead = inner.length - inner.trimStart().length;
    if (inner.trim() === "") {
      const detail = "empty `{{ }}`: put an expression inside, such as {{ inputs.topic }}";
      errors.push(fail(detail, detail, text, open, path));
    } else {
      out.push({ expr: inner.trim(), offset: open + 2 + lead });
    }
    at = end;
  }
  if (at < text.length) out.push({ text: text.slice(at) });
  return out;
}

function stringify(v: unknown): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return v;
  if (typeof v === "object") return JSON.stringify(v) ?? "";
  if (typeof v === "function") return "";
  return String(v);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === "object" || typeof v === "function") && typeof (v as { then?: unknown }).then === "function";
}

function build(node: VNode, vals: readonly unknown[]): unknown {
  switch (node.k) {
    case "const":
      return node.v;
    case "raw":
      return vals[node.i];
    case "interp":
      return node.parts.map((p) => (typeof p === "string" ? p : stringify(vals[p]))).join("");
    case "arr":
      return node.items.map((n) => build(n, vals));
    case "obj": {
      const out: Record<string, unknown> = {};
      for (const [k, n] of node.entries) out[k] = build(n, vals);
      return out;
    }
  }
}

/** A compiled value template. @internal Construct with {@link compileValueTemplate}. */
export class CompiledValueTemplate implements ValueTemplate {
  readonly roots: readonly string[];
  readonly inputNames: readonly string[];
  readonly exprs: readonly Expr[];
  /** Every expression with its place in the value. @internal */
  readonly sites: readonly ExprSite[];
  readonly #root: VNode;

  constructor(root: VNode, sites: readonly ExprSite[]) {
    this.#root = root;
    this.sites = Object.freeze(sites);
    this.exprs = Object.freeze(sites.map((s) => s.expr));
    this.roots = Object.freeze([...new Set(sites.flatMap((s) => s.expr.roots))].sort());
    this.inputNames = Object.freeze([...new Set(sites.flatMap((s) => s.expr.inputNames))].sort());
    Object.freeze(this);
  }

  evaluate(scope: Scope): unknown {
    const n = this.sites.length;
    const vals: unknown[] = new Array(n);
    let pending = false;
    for (let i = 0; i < n; i++) {
      const v = (this.sites[i] as ExprSite).expr.evaluate(scope);
      if (isThenable(v)) pending = true;
      vals[i] = v;
    }
    if (!pending) return build(this.#root, vals);
    return Promise.all(vals).then((done) => build(this.#root, done));
  }
}

/**
 * Compile a value template, collecting every error instead of stopping at the first.
 * @internal The template validator uses this to report all errors in one pass.
 */
export function compileValueTemplateCollect(value: unknown): { template?: CompiledValueTemplate; errors: ExprError[] } {
  const errors: ExprError[] = [];
  const sites: ExprSite[] = [];

  const compileString = (text: string, path: ValuePath): VNode => {
    const segs = segments(text, path, errors);
    if (segs === undefined) return { k: "const", v: text };
    const parts: (string | number)[] = [];
    for (const seg of segs) {
      if ("text" in seg) {
        parts.push(seg.text);
        continue;
      }
      try {
        sites.push({ expr: compileExprInternal(seg.expr), path, offset: seg.offset });
        parts.push(sites.length - 1);
      } catch (err) {
        if (!(err instanceof ExprError)) throw err;
        errors.push(new ExprError(err.message, { source: err.source, offset: seg.offset + err.offset, detail: err.detail, path, ...(err.code === undefined ? {} : { code: err.code }) }));
      }
    }
    const exprParts = parts.filter((p) => typeof p === "number");
    const onlyBlank = parts.every((p) => typeof p === "number" || p.trim() === "");
    if (exprParts.length === 1 && onlyBlank) return { k: "raw", i: exprParts[0] as number };
    if (exprParts.length === 0) return { k: "const", v: text };
    return { k: "interp", parts };
  };

  const walk = (v: unknown, path: ValuePath): VNode => {
    if (typeof v === "string") return compileString(v, path);
    if (Array.isArray(v)) return { k: "arr", items: v.map((e, i) => walk(e, [...path, i])) };
    if (v !== null && typeof v === "object") {
      return { k: "obj", entries: Object.entries(v).map(([k, e]) => [k, walk(e, [...path, k])] as const) };
    }
    return { k: "const", v };
  };

  const root = walk(value, []);
  if (errors.length > 0) return { errors };
  return { template: new CompiledValueTemplate(root, sites), errors };
}

/**
 * Compile any YAML value whose strings may hold `{{ expr }}` interpolations.
 *
 * In a string, `{{ expr }}` is replaced by the expression's value (objects and arrays as JSON,
 * undefined and null as ""). A string that is exactly one `{{ expr }}` (spaces around allowed)
 * takes the expression's raw value instead. Everything else is a constant.
 *
 * @throws {@link ExprError} for the first bad expression; `offset` is inside the string at `path`.
 * @example
 * const t = compileValueTemplate({ q: "Find {{ inputs.depth }} sources", n: "{{ inputs.depth }}" });
 * t.evaluate({ inputs: { depth: 5 } }); // { q: "Find 5 sources", n: 5 } (synchronously)
 */
export function compileValueTemplate(value: unknown): ValueTemplate {
  const { template, errors } = compileValueTemplateCollect(value);
  if (errors[0] !== undefined) throw errors[0];
  return template as CompiledValueTemplate;
}
