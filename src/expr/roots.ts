/**
 * Which names an expression reads from the root scope, found by walking the JSONata AST.
 *
 * A name is a root read when it is evaluated against the scope itself: a bare name or the
 * first step of a path in root context, or the step after `$$` (anywhere) or after `$` (in
 * root context). Later path steps, predicates, group-by and sort terms are relative to the
 * current item. Function arguments, operands, conditions, blocks, constructors and lambda
 * bodies keep the context they appear in.
 */
import { ExprError, quoteExpr } from "./errors.js";

/** A JSONata AST node (the published typings miss several node types). */
export interface AstNode {
  readonly type: string;
  readonly value?: unknown;
  readonly position?: number;
  readonly [key: string]: unknown;
}
type Node = AstNode;

/** One root read, with the 0-based offset of its name inside the expression. */
export interface RootRef {
  readonly name: string;
  readonly offset: number;
  /** For `inputs.X`: the input name and its offset. */
  readonly input?: { readonly name: string; readonly offset: number };
}

/** Result of {@link findRoots}. */
export interface RootsResult {
  /** Every root read in document order (a name may appear more than once). */
  readonly refs: readonly RootRef[];
}

/** Start offset of a token that JSONata positioned at its end; `width` is its text length. */
function startOf(node: Node, source: string, width: number): number {
  const end = typeof node.position === "number" ? node.position : 0;
  // A backquoted name (`my stage`) ends after the closing backquote.
  const quoted = source[end - 1] === "`";
  return Math.max(0, end - width - (quoted ? 2 : 0));
}

function fail(source: string, offset: number, detail: string): never {
  throw new ExprError(`expression ${quoteExpr(source)}: ${detail}`, { source, offset, detail });
}

/**
 * Walk a JSONata AST and list the names read from the root scope.
 * Throws {@link ExprError} for reads that would hide dependencies: `*`/`**` or a bare `$$`
 * at the top, and `$eval`.
 */
export function findRoots(ast: AstNode, source: string): RootsResult {
  const refs: RootRef[] = [];

  const wholeScope = (node: Node, what: string): never =>
    fail(
      source,
      startOf(node, source, what.length),
      `\`${what}\` at the top of an expression reads every stage: name the stage instead`,
    );

  /** A name evaluated against the root scope; `next` is the following path step, if any. */
  const rootName = (node: Node, next: Node | undefined): void => {
    const name = String(node.value);
    const offset = startOf(node, source, name.length);
    if (name === "inputs" && next !== undefined && next.type === "name") {
      const input = String(next.value);
      refs.push({ name, offset, input: { name: input, offset: startOf(next, source, input.length) } });
    } else {
      refs.push({ name, offset });
    }
  };

  const walkAll = (nodes: unknown, root: boolean): void => {
    if (!Array.isArray(nodes)) return;
    for (const n of nodes) if (n !== null && typeof n === "object") walk(n as Node, root);
  };

  /** Things hanging off any node that are evaluated relative to its result. */
  const walkRelativeParts = (node: Node): void => {
    for (const key of ["stages", "predicate"] as const) {
      const list = node[key];
      if (Array.isArray(list)) for (const s of list as Node[]) if (s.expr) walk(s.expr as Node, false);
    }
    const group = node.group as { lhs?: [Node, Node][] } | undefined;
    if (group?.lhs) for (const [k, v] of group.lhs) (walk(k, false), walk(v, false));
    const terms = node.terms as { expression: Node }[] | undefined;
    if (terms) for (const t of terms) walk(t.expression, false);
  };

  /** The step evaluated directly against the root (after `$$`, or first in root context). */
  const walkRootStep = (step: Node, next: Node | undefined): void => {
    if (step.type === "name") rootName(step, next);
    else if (step.type === "wildcard" || step.type === "descendant") wholeScope(step, String(step.value));
    else walk(step, true, true);
    walkRelativeParts(step);
  };

  const walkPath = (node: Node, root: boolean): void => {
    const steps = (node.steps ?? []) as Node[];
    let i = 0;
    const first = steps[0];
    if (first?.type === "variable" && (first.value === "$" || (first.value === "" && root))) {
      // `$$.x` anywhere, `$.x` at the top: x is read from the root scope.
      walkRelativeParts(first);
      const second = steps[1];
      if (second === undefined) return wholeScope(first, first.value === "$" ? "$$" : "$");
      walkRootStep(second, steps[2]);
      i = 2;
    } else if (first !== undefined && root) {
      walkRootStep(first, steps[1]);
      i = 1;
    }
    for (; i < steps.length; i++) {
      const step = steps[i] as Node;
      walk(step, false, true);
      walkRelativeParts(step);
    }
    walkRelativeParts(node);
  };

  /**
   * Walk a node. `root` says whether a name here is read from the root scope. `asStep` is set
   * when the caller handles the node's stages/predicates itself.
   */
  function walk(node: Node, root: boolean, asStep = false): void {
    switch (node.type) {
      case "path":
        walkPath(node, root);
        return;
      case "name":
        if (root) rootName(node, undefined);
        break;
      case "wildcard":
      case "descendant":
        if (root) wholeScope(node, String(node.value));
        break;
      case "variable":
        if (node.value === "eval") {
          fail(source, startOf(node, source, 5), "`$eval` hides what an expression reads: write the expression directly");
        }
        if (root && (node.value === "$" || node.value === "")) wholeScope(node, node.value === "$" ? "$$" : "$");
        break;
      case "binary":
      case "apply":
        walk(node.lhs as Node, root);
        walk(node.rhs as Node, root);
        break;
      case "bind":
        walk(node.rhs as Node, root);
        break;
      case "unary":
        if (node.value === "{") {
          for (const pair of (node.lhs ?? []) as [Node, Node][]) (walk(pair[0], root), walk(pair[1], root));
        } else if (node.value === "[") {
          walkAll(node.expressions, root);
        } else {
          walk(node.expression as Node, root);
        }
        break;
      case "block":
        walkAll(node.expressions, root);
        break;
      case "condition":
        walk(node.condition as Node, root);
        walk(node.then as Node, root);
        if (node.else) walk(node.else as Node, root);
        break;
      case "function":
      case "partial":
        walk(node.procedure as Node, root);
        walkAll(node.arguments, root);
        break;
      case "lambda":
        // The body is evaluated against the input where the lambda was defined.
        walk(node.body as Node, root);
        break;
      case "transform":
        // A transform is a function applied to its input later: relative.
        walk(node.pattern as Node, false);
        walk(node.update as Node, false);
        if (node.delete) walk(node.delete as Node, false);
        break;
      case "sort":
        break;
      default:
        // string, number, value, regex, operator, parent: read nothing.
        break;
    }
    if (!asStep) walkRelativeParts(node);
  }

  walk(ast, true);
  return { refs };
}
