/**
 * Errors a stage handler can throw, and the classification of any thrown value into a
 * stored {@link StageError}: retryability is data on the error, not a guess at the catch site.
 */
import type { ErrorKind, StageError } from "../engine/events.js";

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

const KINDS = new Set<string>([
  "timeout", "network", "http", "rate_limited", "overloaded", "malformed_output", "handler", "expression",
  "template", "auth", "budget", "cancelled", "interrupted",
]);

/** Turn anything thrown by a handler into a stored error. Errors are retryable unless they say otherwise. */
export function toStageError(err: unknown): StageError {
  if (err instanceof Error) {
    const e = err as Error & { kind?: unknown; retryable?: unknown; retryAfterMs?: unknown; code?: unknown };
    let kind: ErrorKind = typeof e.kind === "string" && KINDS.has(e.kind) ? (e.kind as ErrorKind) : "handler";
    if (e.name === "ExprError") kind = "expression";
    if (e.name === "TimeoutError") kind = "timeout";
    const retryable = kind === "expression" || kind === "template" ? false : e.retryable === false ? false : true;
    const out: { kind: ErrorKind; message: string; retryable: boolean; retry_after_ms?: number } = {
      kind, message: e.message || e.name, retryable,
    };
    if (typeof e.retryAfterMs === "number" && e.retryAfterMs >= 0) out.retry_after_ms = e.retryAfterMs;
    const reply = (e as { reply?: unknown }).reply;
    if (typeof reply === "string") (out as { reply?: string }).reply = reply;
    return out;
  }
  return { kind: "handler", message: typeof err === "string" ? err : `handler threw ${safeString(err)}`, retryable: true };
}

function safeString(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** A user-facing error of the library/CLI (bad input, unknown run…): printed as one line without a stack. */
export class UserError extends Error {
  override readonly name = "UserError";
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}
