/**
 * The error vocabulary every layer shares: the error kinds (SPEC §1 Errors) and the error
 * classes a stage handler, a stage kind or the library throws. Imports nothing, so stages,
 * agents, runtime, distributed, the UI and the CLI can all use it without an arrow pointing
 * up. (`toStageError`, which classifies a thrown value into a stored error, is runtime's.)
 */

/** Error kinds (SPEC §1 Errors), declared once: the type and the list come from this array. */
export const ERROR_KINDS = [
  "timeout",
  "network",
  "http",
  "rate_limited",
  "overloaded",
  "malformed_output",
  "handler",
  "expression",
  "template",
  "auth",
  "budget",
  "cancelled",
  "interrupted",
  // Agents that use tools (SPEC §8): a reply cut at max_tokens (retryable), a loop that ran out
  // of model turns (not retryable), a tool call that failed with `on_error: fail`.
  "truncated",
  "max_steps",
  "tool",
] as const;

/** One of {@link ERROR_KINDS}. */
export type ErrorKind = (typeof ERROR_KINDS)[number];

const KINDS: ReadonlySet<string> = new Set(ERROR_KINDS);

/** Whether `v` is one of {@link ERROR_KINDS}. */
export function isErrorKind(v: unknown): v is ErrorKind {
  return typeof v === "string" && KINDS.has(v);
}

/**
 * Throw from a stage handler to fail the attempt without retrying.
 *
 * @example
 * if (!ctx.input.url) throw new NonRetryableError("input.url is required");
 */
export class NonRetryableError extends Error {
  override readonly name: string = "NonRetryableError";
  readonly retryable = false;
  constructor(message: string, options?: { cause?: unknown; kind?: ErrorKind }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.kind) this.kind = options.kind;
  }
  kind: ErrorKind = "handler";
}

/**
 * An error with an explicit kind and retryability (used by stage kinds; handlers may throw it too).
 *
 * @example
 * throw new StageFailure("upstream returned 503", { kind: "http", retryable: true, retryAfterMs: 2000 });
 */
export class StageFailure extends Error {
  override readonly name = "StageFailure";
  readonly kind: ErrorKind;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, opts: { kind: ErrorKind; retryable: boolean; retryAfterMs?: number; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.kind = opts.kind;
    this.retryable = opts.retryable;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** A user-facing error of the library/CLI (bad input, unknown run…): printed as one line without a stack. */
export class UserError extends Error {
  override readonly name = "UserError";
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}
