/**
 * The bounds every JSONata evaluation runs under: the one set of limits `expr/` enforces
 * (time and depth in `guard.ts`, sizes in `builtins.ts` and on results, regexes in `regex.ts`).
 */

/** Limits every JSONata evaluation runs under. */
export const EXPR_LIMITS = Object.freeze({
  /**
   * Bound on one evaluation's own work, in ms (error D1012): only the synchronous slices in
   * which this evaluation runs count, never the time other work runs between its awaits.
   */
  timeoutMs: 1000,
  /** Evaluation depth bound (JSONata error D1011). */
  stack: 500,
  /** Longest sequence or array an evaluation may build (JSONata error D2015): a memory bound. */
  sequence: 1_000_000,
  /** Longest string (UTF-16 code units) an evaluation may build or return: a memory bound. */
  string: 10_000_000,
});

/** The shape of {@link EXPR_LIMITS}. */
export type ExprLimits = typeof EXPR_LIMITS;

/** Error codes of Baton's own bounds, thrown as JSONata-shaped failures (`{ code, value }`). */
export const LIMIT_CODES = Object.freeze({
  /** A string longer than {@link EXPR_LIMITS}.string was about to be built or returned. */
  string: "BATON_STRING",
  /** An array longer than {@link EXPR_LIMITS}.sequence was about to be built. */
  array: "BATON_ARRAY",
  /** A regex literal the linear-time engine cannot run (backreference, lookaround). */
  regex: "BATON_REGEX",
});
