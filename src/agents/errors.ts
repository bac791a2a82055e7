/**
 * Provider errors → Baton's taxonomy (SPEC §1 Errors), from status codes and headers.
 * Retryable: timeouts, network errors, 408/409/425/429/5xx, overload, malformed replies.
 * Not retryable: 4xx auth/validation. A `Retry-After` travels to the runtime as retryAfterMs.
 */
import { APICallError } from "ai";
import { StageFailure } from "../base/errors.js";

/** Parse Retry-After (delta-seconds or an HTTP date) and retry-after-ms headers into ms. */
export function retryAfterMs(headers: Readonly<Record<string, string | undefined>> | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = headers["retry-after-ms"];
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.round(Number(ms));
  const ra = headers["retry-after"];
  if (ra === undefined) return undefined;
  const t = ra.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const date = Date.parse(t);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function isAbort(err: unknown): boolean {
  const name = (err as { name?: string } | null)?.name;
  return name === "AbortError" || name === "TimeoutError";
}

/** Network failures surface as TypeErrors from fetch with a `cause` carrying the errno code. */
function networkCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^(E[A-Z]+|UND_ERR_\w+)$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return (err as Error)?.message === "fetch failed" ? "fetch failed" : undefined;
}

/** Classify an error thrown by an AI SDK call for `where` (e.g. "stage 'research' (openai:gpt-4o-mini)"). */
export function classifyProviderError(err: unknown, where: string): unknown {
  if (isAbort(err)) return err;
  if (err instanceof StageFailure) return err;
  if (APICallError.isInstance(err)) {
    const status = err.statusCode;
    const headers = err.responseHeaders;
    const body = (err.responseBody ?? "").slice(0, 200).replace(/\s+/g, " ");
    const detail = `${where}: ${err.message}${body && !err.message.includes(body) ? ` — ${body}` : ""}`;
    if (status === undefined || (status >= 200 && status < 300)) {
      if (/invalid json|json parse|unexpected token/i.test(err.message)) {
        return new StageFailure(`${where}: the provider's response was not valid JSON (${err.message})`, { kind: "malformed_output", retryable: true, cause: err });
      }
      const code = networkCode(err.cause ?? err);
      return new StageFailure(`${where}: ${code ? `network error (${code})` : err.message}`, { kind: "network", retryable: true, cause: err });
    }
    const ra = retryAfterMs(headers);
    const opts = (kind: "rate_limited" | "overloaded" | "http" | "auth", retryable: boolean) => ({ kind, retryable, cause: err, ...(ra !== undefined ? { retryAfterMs: ra } : {}) });
    if (status === 429) return new StageFailure(detail, opts("rate_limited", true));
    if (status === 503 || status === 529) return new StageFailure(detail, opts("overloaded", true));
    if (status === 408 || status === 409 || status === 425 || status >= 500) return new StageFailure(detail, opts("http", true));
    if (status === 401 || status === 403) return new StageFailure(`${detail} — check the API key`, opts("auth", false));
    return new StageFailure(detail, opts("http", false));
  }
  const code = networkCode(err);
  if (code) return new StageFailure(`${where}: network error (${code})`, { kind: "network", retryable: true, cause: err });
  const name = (err as { name?: string } | null)?.name ?? "";
  if (/EmptyResponseBody|NoContentGenerated|InvalidResponseData|JSONParse/.test(name)) {
    return new StageFailure(`${where}: ${(err as Error).message}`, { kind: "malformed_output", retryable: true, cause: err });
  }
  return err;
}
