/**
 * The one error type of `expr/`: syntax errors found when compiling, and failures (including
 * timeouts and runaway recursion) when evaluating. Never retryable: evaluating the same
 * expression over the same data fails the same way.
 */

/** A path inside a YAML value (`input:`, `with:` …) to the string holding an expression. */
export type ValuePath = readonly (string | number)[];

/** Longest expression text quoted in a message before it is shortened with `…`. */
const QUOTE_MAX = 80;

/** Quote an expression for a message: backticks, single line, shortened when long. */
export function quoteExpr(source: string): string {
  const flat = source.replace(/\s+/g, " ").trim();
  return "`" + (flat.length > QUOTE_MAX ? flat.slice(0, QUOTE_MAX - 1) + "…" : flat) + "`";
}

/** Options of {@link ExprError}. */
export interface ExprErrorOptions {
  /** The expression text. */
  readonly source: string;
  /** 0-based offset inside `source` (or inside the string at `path` for value templates). */
  readonly offset: number;
  /** What went wrong, without the expression (used by template diagnostics, which show the position instead). */
  readonly detail: string;
  /** JSONata's error code (`S0203`, `D1012` …) when the error came from JSONata. */
  readonly code?: string;
  /** For value templates: where the string holding the bad expression sits inside the value. */
  readonly path?: ValuePath;
  readonly cause?: unknown;
}

/**
 * An expression failed to compile or to evaluate.
 *
 * @example
 * try { compileExpr("$count(x") } catch (e) { if (e instanceof ExprError) console.log(e.offset, e.detail) }
 */
export class ExprError extends Error {
  override readonly name = "ExprError";
  /** Expression errors are never retryable. */
  readonly retryable = false;
  readonly source: string;
  readonly offset: number;
  readonly detail: string;
  readonly code?: string;
  readonly path?: ValuePath;

  constructor(message: string, opts: ExprErrorOptions) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.source = opts.source;
    this.offset = opts.offset;
    this.detail = opts.detail;
    if (opts.code !== undefined) this.code = opts.code;
    if (opts.path !== undefined) this.path = opts.path;
  }
}

/** The shape of the plain objects JSONata throws. */
interface JsonataFailure {
  readonly code?: string;
  readonly position?: number;
  readonly token?: string;
  readonly message?: string;
  readonly value?: unknown;
}

function asFailure(err: unknown): JsonataFailure {
  return typeof err === "object" && err !== null ? (err as JsonataFailure) : { message: String(err) };
}

/** Start offset of the token a JSONata error points at (JSONata reports the token's end). */
export function jsonataOffset(err: unknown, source: string): number {
  const f = asFailure(err);
  let pos = typeof f.position === "number" ? f.position : 0;
  if (typeof f.token === "string" && f.token !== "(end)") pos -= f.token.length;
  return Math.max(0, Math.min(source.length, pos));
}

/** Wrap a JSONata syntax error. */
export function syntaxError(err: unknown, source: string): ExprError {
  const f = asFailure(err);
  const detail = `JSONata syntax error: ${f.message ?? "invalid expression"}`;
  return new ExprError(`expression ${quoteExpr(source)} is not valid: ${detail}`, {
    source,
    offset: jsonataOffset(err, source),
    detail,
    ...(f.code === undefined ? {} : { code: f.code }),
    cause: err,
  });
}

const n = (x: unknown): string => (typeof x === "number" ? x.toLocaleString("en-US") : String(x));

/** How to stay inside the size bounds. */
const SIZE_FIX = "pass large data by a simple path (`stage.field`), or build it in a `run:` stage";

/** Wrap a JSONata evaluation failure, naming the limits for runaway expressions. */
export function evaluationError(
  err: unknown,
  source: string,
  limits: { readonly sequence: number; readonly string: number },
): ExprError {
  if (err instanceof ExprError) return err;
  // V8's own size limits (past ours, e.g. `&` doubling a string) surface as RangeErrors.
  if (err instanceof RangeError && /Invalid (string|array) length/.test(err.message)) {
    const kind = err.message.includes("string") ? "BATON_STRING" : "BATON_ARRAY";
    err = { code: kind, value: undefined };
  }
  const f = asFailure(err);
  let detail: string;
  switch (f.code) {
    case "D1012":
      detail = `ran for more than ${String(f.value)} ms of its own work`;
      break;
    case "BATON_STRING":
      detail =
        (f.value === undefined ? "built a string longer than JavaScript allows" : `built a string of ${n(f.value)} characters`) +
        `; expressions are limited to strings of ${n(limits.string)} characters (about ${Math.round(limits.string / 1e6)} MB): ${SIZE_FIX}`;
      break;
    case "BATON_ARRAY":
      detail =
        (f.value === undefined ? "built an array longer than JavaScript allows" : `built an array of ${n(f.value)} items`) +
        `; expressions are limited to ${n(limits.sequence)} items: ${SIZE_FIX}`;
      break;
    case "D1011":
      detail = `recursed more than ${String(f.value)} levels deep`;
      break;
    case "D2015":
      detail = `built a sequence longer than ${limits.sequence} items`;
      break;
    default:
      detail = `failed: ${f.message ?? "unknown error"}`;
  }
  return new ExprError(`expression ${quoteExpr(source)} ${detail}`, {
    source,
    offset: jsonataOffset(err, source),
    detail: `expression ${detail}`,
    ...(f.code === undefined ? {} : { code: f.code }),
    cause: err,
  });
}
