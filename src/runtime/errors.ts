/**
 * The classification of any thrown value into a stored {@link StageError}: retryability is data
 * on the error, not a guess at the catch site. The error classes themselves live in
 * ../base/errors.ts (below stages and agents, which throw them); they are re-exported here so
 * `baton`'s public API and existing imports are unchanged.
 */
import { isErrorKind, UserError, type ErrorKind } from "../base/errors.js";
import type { StageError } from "../engine/events.js";

export { NonRetryableError, StageFailure, UserError } from "../base/errors.js";

/** Turn anything thrown by a handler into a stored error. Errors are retryable unless they say otherwise. */
export function toStageError(err: unknown): StageError {
  if (err instanceof Error) {
    const e = err as Error & { kind?: unknown; retryable?: unknown; retryAfterMs?: unknown; code?: unknown };
    let kind: ErrorKind = isErrorKind(e.kind) ? e.kind : "handler";
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

/**
 * This process lost a run it was driving: another process took its lease over (this one did
 * not renew it in time — a blocked event loop, a long pause) and has written to its log since.
 * The driver then stops at once: its attempts in flight are aborted and nothing more of this
 * process is appended (fencing: appends are conditional on the log's sequence number).
 */
export class LeaseLostError extends UserError {
  constructor(readonly runId: string, readonly holder: string | undefined, readonly leaseMs: number) {
    super(
      `run ${runId} was taken over by another process${holder ? ` (${holder})` : ""} while this one did not renew its lease in time (its event loop was blocked or paused for longer than the ${leaseMs} ms lease): ` +
        `this process stopped driving it — its stages in flight here were aborted and none of their results is recorded; the run goes on there (\`baton trace ${runId}\` follows it)`,
      1,
    );
  }
}
