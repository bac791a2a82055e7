/**
 * Regexes in expressions run on RE2, which matches in time linear in the input: a JavaScript
 * `RegExp` backtracks, and `$match(s, /(a+)+$/)` on 37 characters held the event loop for
 * 369 s, where no time bound can stop it (issue 13 item 6). JSONata regexes are always
 * literals (`/…/im`), so every one is checked when the expression compiles: a pattern RE2
 * cannot run (a backreference, lookahead or lookbehind) is a compile error at its position,
 * never a silent fallback to the backtracking engine.
 * `re2` is a native addon: it is loaded when the first regex literal is checked or run, so a
 * command whose expressions have none never loads it (issue 14 item 1).
 * @internal
 */
import { createRequire } from "node:module";
import type RE2Type from "re2";
import { ExprError, quoteExpr } from "./errors.js";
import type { AstNode } from "./roots.js";

type RE2 = RE2Type;
let re2: typeof RE2Type | undefined;
/** The RE2 constructor, loaded on first use. */
function RE2Class(): typeof RE2Type {
  return (re2 ??= createRequire(import.meta.url)("re2") as typeof RE2Type);
}

/** Compiled RE2 per regex literal (JSONata's AST owns the `RegExp`s, so they key a WeakMap). */
const compiled = new WeakMap<RegExp, RE2>();

/**
 * What JSONata gets from `new RegexEngine(literal)` on every evaluation of a regex literal:
 * its own `lastIndex` over an RE2 compiled once per literal (compiling costs about as much as
 * matching a short string). `exec` is synchronous, so sharing the RE2 cannot mix up matches.
 */
class SharedRE2 {
  lastIndex = 0;
  readonly #re: RE2;

  constructor(literal: RegExp) {
    let re = compiled.get(literal);
    if (re === undefined) {
      re = new (RE2Class())(literal);
      compiled.set(literal, re);
    }
    this.#re = re;
  }

  exec(str: string): RegExpExecArray | null {
    const re = this.#re;
    re.lastIndex = this.lastIndex;
    const m = re.exec(str);
    this.lastIndex = re.lastIndex;
    return m;
  }
}

/** The regex engine JSONata is compiled with (its `RegexEngine` option). */
export const REGEX_ENGINE = SharedRE2 as unknown as RegExpConstructor;

/** Every regex literal node of `ast`. */
function regexNodes(node: unknown, out: AstNode[]): AstNode[] {
  if (Array.isArray(node)) {
    for (const n of node) regexNodes(n, out);
  } else if (node !== null && typeof node === "object" && !(node instanceof RegExp)) {
    const n = node as AstNode;
    if (n.type === "regex" && n.value instanceof RegExp) out.push(n);
    for (const k of Object.keys(n)) if (k !== "value" || n.type !== "regex") regexNodes(n[k], out);
  }
  return out;
}

/** Start offset of a regex literal, which JSONata positions after its flags. */
function literalOffset(node: AstNode, re: RegExp, source: string): number {
  const end = typeof node.position === "number" ? node.position : 0;
  const width = re.source.length + 2 + re.flags.replace("g", "").length;
  return Math.max(0, Math.min(source.length, end - width));
}

/** Why RE2 refuses a pattern, in the user's terms. */
function explain(pattern: string, message: string): string {
  if (/\\[1-9]|\\k</.test(pattern)) return "uses a backreference";
  if (/\(\?<?[=!]/.test(pattern)) return "uses lookahead or lookbehind";
  return `is not supported (${message})`;
}

/**
 * Check every regex literal of a compiled expression against RE2.
 * @throws {@link ExprError} at the first literal RE2 cannot run, with its offset.
 */
export function checkRegexes(ast: AstNode, source: string): void {
  if (!source.includes("/")) return;
  for (const node of regexNodes(ast, [])) {
    const re = node.value as RegExp;
    try {
      new (RE2Class())(re);
    } catch (err) {
      const why = explain(re.source, err instanceof Error ? err.message : String(err));
      const detail =
        `regex /${re.source}/ ${why}: expressions match with RE2, which runs in linear time and has no ` +
        "backreferences or lookaround; rewrite the pattern without them (or match in a `run:` stage)";
      throw new ExprError(`expression ${quoteExpr(source)}: ${detail}`, {
        source,
        offset: literalOffset(node, re, source),
        detail,
        code: "BATON_REGEX",
        cause: err,
      });
    }
  }
}
