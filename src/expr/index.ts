/**
 * Expressions: the one place that knows JSONata. Everything else sees {@link Expr} and
 * {@link ValueTemplate}.
 */
export type { Expr, Scope, ValueTemplate } from "./types.js";
export { ExprError, type ExprErrorOptions, type ValuePath } from "./errors.js";
export { compileExpr, EXPR_LIMITS } from "./compile.js";
export { compileValueTemplate } from "./value-template.js";
export { parseDuration } from "./duration.js";
