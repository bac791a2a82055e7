/**
 * Regexes in expressions run on RE2, which matches in time linear in the input: a JavaScript
 * `RegExp` backtracks, and `$match(s, /(a+)+$/)` on 37 characters held the event loop for
 * 369 s, where no time bound can stop it (issue 13 item 6). JSONata regexes are always
 * literals (`/…/im`), so every one is checked when the expression compiles: a pattern RE2
 * cannot run (a backreference, lookahead or lookbehind) is a compile error at its position,
 * never a silent fallback to the backtracking engine.
 * @internal
 */
import RE2 from "re2";
import { ExprError, quoteExpr } from "./errors.js";
import type { AstNode } from "./roots.js";

/** The regex engine JSONata is compiled with (its `RegexEngine` option). */
export const REGEX_ENGINE = RE2 as unknown as RegExpConstructor;

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
      new RE2(re);
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
