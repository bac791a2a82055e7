/**
 * `http:` stages: a call to an agent (or any endpoint) running as a service (SPEC §1).
 *
 * ```yaml
 * summarize:
 *   input: { text: "{{ fetch.text }}" }          # sent as the JSON body (POST) when there is no `body:`
 *   http:
 *     url: https://agents.example/summarize
 *     headers: { Authorization: "Bearer ${SUMMARIZER_TOKEN}" }   # env var, read at call time
 *     query: { lang: en }
 *     timeout: 30s                                # per request; default 60s
 * ```
 *
 * Secrets: `${NAME}` in the url, header values and query values is replaced by the environment
 * variable NAME when the request is made; the value is never part of the plan, the trace or an
 * error message (`$${` writes a literal `${`). Trace lines and error messages show the url as
 * written (with its `${NAME}` placeholders), without query string or user info.
 *
 * Redirects are followed by hand, at most {@link MAX_REDIRECTS} hops: 303 (and 301/302 of a
 * POST) continue as GET without the body, 307/308 keep method and body. A hop to another origin
 * (scheme, host or port) drops every header the stage set — as fetch does for Authorization, so
 * an `X-Api-Key` never reaches a host the template did not name — for the rest of the chain.
 * Error excerpts are redacted (base/secrets.ts) before they are cut, so no secret's prefix
 * survives the cut.
 *
 * Errors carry their kind and retryability (SPEC §1 Errors): 408/409/425/429/5xx, network
 * errors, request timeouts and invalid JSON are retryable; other 4xx are not. A `Retry-After`
 * header becomes the error's `retryAfterMs`.
 */
import { STATUS_CODES } from "node:http";
import { performance } from "node:perf_hooks";
import { NonRetryableError, StageFailure, type ErrorKind } from "../base/errors.js";
import { redactText, secretValues } from "../base/secrets.js";
import { timeoutSignal } from "../base/timers.js";
import { parseDuration } from "../expr/index.js";
import type { ExecuteArgs, StageContext } from "./types.js";

/**
 * Process-wide limits of http stages. Mutable so that embedders (and tests) can tune them.
 *
 * @example
 * HTTP_LIMITS.maxResponseBytes = 5 * 1024 * 1024; // refuse responses over 5 MB
 */
export const HTTP_LIMITS: { maxResponseBytes: number; defaultTimeoutMs: number } = {
  /** Largest response body read, in bytes (after decompression). @default 50 MB */
  maxResponseBytes: 50 * 1024 * 1024,
  /** Per-request timeout when the stage gives no `http.timeout`. @default 60 s */
  defaultTimeoutMs: 60_000,
};

/** The fields of an evaluated `http:` block. */
export interface HttpFields {
  /** http:// or https:// URL; may contain `${ENV}` references. */
  readonly url: string;
  /** GET, POST, PUT, PATCH, DELETE or HEAD. Default: POST when there is a body, else GET. */
  readonly method?: string;
  /** Request headers; values may contain `${ENV}` references. */
  readonly headers?: Record<string, unknown>;
  /** Appended to the URL's search params; values may contain `${ENV}` references. */
  readonly query?: Record<string, unknown>;
  /** Any JSON value. Default: the stage's `input:` (not for GET/HEAD). */
  readonly body?: unknown;
  /** Per-request timeout, a duration such as `10s`. Default 60s. */
  readonly timeout?: string;
}

const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]);
const FIELDS = new Set(["url", "method", "headers", "query", "body", "timeout"]);
/** `$${` (an escaped `${`) or `${NAME}`. */
const ENV_REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
/** Substituted values at least this long are scrubbed from messages and outputs. */
const MIN_SCRUB_LENGTH = 8;
/** Bytes of an error response read for its message. */
const ERROR_BODY_BYTES = 4096;
const EXCERPT_CHARS = 200;
/** Redirect hops followed before the stage fails (fetch's own limit). */
export const MAX_REDIRECTS = 20;
/** Headers that describe a body: dropped with it when a redirect turns the request into a GET. */
const BODY_HEADERS = ["content-type", "content-length", "content-encoding", "content-language", "content-location"];
const REDACTED = "[redacted]";

/** A request ready to send, plus what may be shown of it. */
interface Request {
  readonly method: string;
  readonly url: URL;
  /** The url as written (placeholders kept), without query string, fragment or user info. */
  readonly display: string;
  readonly headers: Headers;
  /** The headers Baton sets itself (no template value): all a hop to another origin keeps. */
  readonly ownHeaders: Headers;
  readonly body: string | undefined;
  readonly timeoutMs: number;
  /** Values substituted from the environment (to scrub from anything we return or store). */
  readonly secrets: readonly string[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

function templateError(stageId: string, message: string, cause?: unknown): NonRetryableError {
  return new NonRetryableError(`stage '${stageId}': ${message}`, { kind: "template", ...(cause === undefined ? {} : { cause }) });
}

/** The url as shown in traces and messages: no query string, fragment or user info. */
function displayUrl(raw: string): string {
  const cut = raw.search(/[?#]/);
  const base = cut < 0 ? raw : raw.slice(0, cut);
  return base.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/@]*@/, "$1");
}

/**
 * Replace `${NAME}` with the environment variable NAME and `$${` with a literal `${`.
 * Substituted values are added to `secrets`.
 */
function substituteEnv(text: string, what: string, stageId: string, secrets: string[]): string {
  if (!text.includes("${")) return text;
  return text.replace(ENV_REF, (_m: string, name: string | undefined) => {
    if (name === undefined) return "${";
    const value = process.env[name];
    if (value === undefined) throw templateError(stageId, `${what} refers to \${${name}}, which is not set in the environment`);
    if (value.length >= MIN_SCRUB_LENGTH && !secrets.includes(value)) secrets.push(value);
    return value;
  });
}

function scalar(v: unknown): v is string | number | boolean {
  return typeof v === "string" || typeof v === "number" || typeof v === "boolean";
}

function isJsonType(contentType: string | null): boolean {
  if (contentType === null) return false;
  const mime = (contentType.split(";")[0] ?? "").trim();
  return /^[\w.+-]+\/(?:[\w.+-]+\+)?json$/i.test(mime);
}

function charsetOf(contentType: string | null): string {
  const m = contentType === null ? null : /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType);
  return m?.[1] ?? "utf-8";
}

/** Decode bytes; invalid sequences become U+FFFD, an unknown charset falls back to UTF-8. */
function decode(bytes: Uint8Array, charset = "utf-8"): string {
  try {
    return new TextDecoder(charset, { fatal: false }).decode(bytes);
  } catch {
    return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  }
}

/** The start of a body for a message: redacted first (its secrets and the environment's), then cut. */
function excerpt(text: string, secrets: readonly string[]): string {
  const t = redactText(scrubText(text, secrets), secretValues()).trim();
  return t.length > EXCERPT_CHARS ? `${t.slice(0, EXCERPT_CHARS)}…` : t;
}

function formatBytes(n: number): string {
  const MB = 1024 * 1024;
  if (n >= MB && n % MB === 0) return `${n / MB} MB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KB`;
  return `${n} bytes`;
}

function scrubText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
  return out;
}

/** Replace substituted secret values in every string (and key) of a JSON value. */
function scrubValue(v: unknown, secrets: readonly string[]): unknown {
  if (secrets.length === 0) return v;
  if (typeof v === "string") return scrubText(v, secrets);
  if (Array.isArray(v)) return v.map((x) => scrubValue(x, secrets));
  if (isRecord(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[scrubText(k, secrets)] = scrubValue(x, secrets);
    return out;
  }
  return v;
}

/**
 * Parse a `Retry-After` header (delta-seconds or an HTTP-date) into milliseconds from `now`.
 *
 * @returns undefined when the header is absent or unreadable; 0 for a date in the past.
 * @example
 * parseRetryAfter("2"); // 2000
 * parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", Date.parse("Wed, 21 Oct 2015 07:27:00 GMT")); // 60000
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const t = value.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  if (!/[A-Za-z]/.test(t)) return undefined; // not a date either (e.g. "1.5", "-3")
  const at = Date.parse(t);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Kind and retryability of a non-2xx status (SPEC §1 Errors): 408/409/425/429/5xx are
 * retryable; 401/403 are `auth`, other statuses `http`, not retryable.
 */
export function classifyStatus(status: number): { kind: ErrorKind; retryable: boolean } {
  if (status === 429) return { kind: "rate_limited", retryable: true };
  if (status === 503 || status === 529) return { kind: "overloaded", retryable: true };
  if (status >= 500 || status === 408 || status === 409 || status === 425) return { kind: "http", retryable: true };
  if (status === 401 || status === 403) return { kind: "auth", retryable: false };
  return { kind: "http", retryable: false };
}

/** Check an evaluated `http:` block and build the request (env references resolved). */
function buildRequest(http: unknown, ctx: StageContext, stageId: string): Request {
  if (!isRecord(http)) throw templateError(stageId, `http must be a mapping with at least a url, got ${show(http)}`);
  const unknown = Object.keys(http).filter((k) => !FIELDS.has(k));
  if (unknown.length) throw templateError(stageId, `http has unknown field${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")} (known: ${[...FIELDS].join(", ")})`);
  const rawUrl = http.url;
  if (typeof rawUrl !== "string" || rawUrl === "") throw templateError(stageId, `http url must be a non-empty string, got ${show(rawUrl)}`);
  const display = displayUrl(rawUrl);

  // Method and body.
  let method: string | undefined;
  if (http.method !== undefined && http.method !== null) {
    if (typeof http.method !== "string" || !METHODS.has(http.method.toUpperCase())) {
      throw templateError(stageId, `http method ${show(http.method)} is not supported (use one of ${[...METHODS].join(", ")})`);
    }
    method = http.method.toUpperCase();
  }
  const bodyless = method === "GET" || method === "HEAD";
  if (bodyless && http.body !== undefined) throw templateError(stageId, `a ${method} request cannot have a body: drop 'body' or use POST`);
  const body = http.body !== undefined ? http.body : bodyless ? undefined : ctx.input;
  method ??= body === undefined ? "GET" : "POST";

  // Timeout.
  let timeoutMs = HTTP_LIMITS.defaultTimeoutMs;
  if (http.timeout !== undefined && http.timeout !== null) {
    try {
      timeoutMs = parseDuration(http.timeout);
    } catch (err) {
      throw templateError(stageId, (err as Error).message.replace(/^bad duration ('[^']*')/, "bad duration $1 for 'http.timeout'"));
    }
    if (timeoutMs <= 0) throw templateError(stageId, `http.timeout must be more than 0 ms`);
  }

  // URL (secrets resolved here, never before) and query.
  const secrets: string[] = [];
  let url: URL;
  try {
    url = new URL(substituteEnv(rawUrl, "url", stageId, secrets));
  } catch (err) {
    if (err instanceof NonRetryableError) throw err;
    throw templateError(stageId, `http url '${display}' is not a valid URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw templateError(stageId, `http url '${display}' must start with http:// or https://`);
  if (http.query !== undefined && http.query !== null) {
    if (!isRecord(http.query)) throw templateError(stageId, `http query must be a mapping of names to values, got ${show(http.query)}`);
    for (const [name, v] of Object.entries(http.query)) {
      for (const x of Array.isArray(v) ? v : [v]) {
        if (x === null || x === undefined) continue;
        if (!scalar(x)) throw templateError(stageId, `query parameter ${name} must be a string, number, boolean or a list of them`);
        url.searchParams.append(name, substituteEnv(String(x), `query parameter ${name}`, stageId, secrets));
      }
    }
  }

  // Headers: defaults first, the stage's own override them.
  const ownHeaders = new Headers({ accept: "application/json", "idempotency-key": ctx.idempotencyKey });
  const headers = new Headers(ownHeaders);
  if (http.headers !== undefined && http.headers !== null) {
    if (!isRecord(http.headers)) throw templateError(stageId, `http headers must be a mapping of names to values, got ${show(http.headers)}`);
    for (const [name, v] of Object.entries(http.headers)) {
      if (v === null || v === undefined) continue;
      if (!scalar(v)) throw templateError(stageId, `header ${name} must be a string, number or boolean`);
      const value = substituteEnv(String(v), `header ${name}`, stageId, secrets);
      try {
        headers.set(name, value);
      } catch {
        // The platform's message quotes the value: it may be a secret.
        throw templateError(stageId, `header ${JSON.stringify(name)} has an invalid name or value`);
      }
    }
  }
  let encoded: string | undefined;
  if (body !== undefined) {
    const ct = headers.get("content-type");
    if (ct === null) {
      headers.set("content-type", "application/json");
      ownHeaders.set("content-type", "application/json");
    }
    encoded = typeof body === "string" && ct !== null && !isJsonType(ct) ? body : JSON.stringify(body);
  }
  return { method, url, display, headers, ownHeaders, body: encoded, timeoutMs, secrets };
}

/** Read a whole body, refusing more than `cap` bytes. */
async function readCapped(res: Response, cap: number, what: string): Promise<Uint8Array> {
  const declared = res.headers.get("content-length");
  const encoding = res.headers.get("content-encoding");
  if (declared !== null && (encoding === null || encoding === "identity") && Number(declared) > cap) {
    await res.body?.cancel().catch(() => undefined);
    throw new NonRetryableError(`${what}: response of ${Number(declared)} bytes exceeds ${formatBytes(cap)}`, { kind: "http" });
  }
  if (res.body === null) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > cap) {
      await reader.cancel().catch(() => undefined);
      throw new NonRetryableError(`${what}: response of more than ${cap} bytes exceeds ${formatBytes(cap)}`, { kind: "http" });
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total);
}

/** Read at most `max` bytes of a body (for error messages); never throws. */
async function readHead(res: Response, max: number): Promise<Uint8Array> {
  if (res.body === null) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (total < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.byteLength;
    }
    if (total >= max) await reader.cancel().catch(() => undefined);
  } catch {
    // The status says enough.
  }
  return Buffer.concat(chunks, total).subarray(0, max);
}

/**
 * Make the request, following redirects by hand (see the module doc): the final response and
 * the hops taken. Locations are never put in messages (a redirect may carry a signed URL).
 */
async function send(req: Request, signal: AbortSignal, what: string): Promise<{ res: Response; hops: number }> {
  let url = req.url;
  let method = req.method;
  let body = req.body;
  let headers = req.headers;
  for (let hops = 0; ; hops++) {
    const res = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }), signal, redirect: "manual" });
    const location = res.status >= 300 && res.status < 400 ? res.headers.get("location") : null;
    if (location === null || ![301, 302, 303, 307, 308].includes(res.status)) return { res, hops };
    await res.body?.cancel().catch(() => undefined);
    if (hops >= MAX_REDIRECTS) throw new NonRetryableError(`${what}: more than ${MAX_REDIRECTS} redirects`, { kind: "http" });
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new NonRetryableError(`${what} answered ${res.status} with a Location that is not a valid URL`, { kind: "http" });
    }
    if (next.protocol !== "http:" && next.protocol !== "https:") {
      throw new NonRetryableError(`${what} answered ${res.status} redirecting to a ${next.protocol} URL: only http:// and https:// are followed`, { kind: "http" });
    }
    if ((res.status === 303 && method !== "GET" && method !== "HEAD") || ((res.status === 301 || res.status === 302) && method === "POST")) {
      method = "GET";
      body = undefined;
      headers = new Headers(headers);
      for (const h of BODY_HEADERS) headers.delete(h);
    }
    if (next.origin !== url.origin) {
      // Another origin: only Baton's own headers go on (and never come back on a later hop).
      const own = new Headers(req.ownHeaders);
      if (body === undefined) for (const h of BODY_HEADERS) own.delete(h);
      for (const name of [...own.keys()]) if (!headers.has(name)) own.delete(name);
      headers = own;
    }
    url = next;
  }
}

/** The innermost useful description of a fetch failure ("connect ECONNREFUSED 127.0.0.1:9"). */
function describeNetworkError(err: unknown): string {
  let e: unknown = err;
  let best = err instanceof Error ? err.message : String(err);
  for (let depth = 0; depth < 5 && e instanceof Error; depth++) {
    const code = (e as Error & { code?: unknown }).code;
    if (e.message && e.message !== "fetch failed") best = e.message;
    else if (typeof code === "string") best = code;
    if (e instanceof AggregateError && e.errors.length > 0) e = e.errors[0];
    else e = e.cause;
  }
  return best;
}

/**
 * Execute an `http:` stage: evaluate the block, make one request and turn the response into the
 * stage's output (parsed JSON, text, or null for 204), or into a classified error.
 */
export async function executeHttp({ stage, ctx, scope }: ExecuteArgs): Promise<unknown> {
  const spec = stage.spec;
  if (spec.kind !== "http") throw new Error("executeHttp on a non-http stage");
  const req = buildRequest(await spec.http.evaluate(scope), ctx, stage.id);
  const what = `${req.method} ${req.display}`;
  const outer = ctx.signal;
  const timeout = timeoutSignal(req.timeoutMs); // (AbortSignal.timeout overflows past ~24.9 days)
  const signal = AbortSignal.any([outer, timeout]);
  const t0 = performance.now();
  let outcome = "failed";
  try {
    let res: Response;
    try {
      let hops: number;
      ({ res, hops } = await send(req, signal, what));
      outcome = hops === 0 ? String(res.status) : `${res.status} after ${hops} redirect${hops > 1 ? "s" : ""}`;
      if (res.ok) {
        if (res.status === 204 || res.status === 205 || req.method === "HEAD") {
          await res.body?.cancel().catch(() => undefined);
          return null;
        }
        const bytes = await readCapped(res, HTTP_LIMITS.maxResponseBytes, what);
        const contentType = res.headers.get("content-type");
        if (!isJsonType(contentType)) return scrubValue(decode(bytes, charsetOf(contentType)), req.secrets);
        const text = decode(bytes);
        if (text.trim() === "") return null;
        try {
          return scrubValue(JSON.parse(text), req.secrets);
        } catch (err) {
          throw new StageFailure(
            scrubText(`${what} answered ${res.status} with invalid JSON (${(err as Error).message}): ${excerpt(text, req.secrets)}`, req.secrets),
            { kind: "malformed_output", retryable: true },
          );
        }
      }
      const head = excerpt(decode(await readHead(res, ERROR_BODY_BYTES)), req.secrets);
      const statusText = res.statusText || STATUS_CODES[res.status] || "";
      const { kind, retryable } = classifyStatus(res.status);
      const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
      throw new StageFailure(
        scrubText(`${what} answered ${res.status}${statusText ? ` ${statusText}` : ""}${head ? `: ${head}` : ""}`, req.secrets),
        { kind, retryable, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
      );
    } catch (err) {
      if (outer.aborted) {
        outcome = "cancelled";
        throw outer.reason;
      }
      if (err instanceof StageFailure || err instanceof NonRetryableError) throw err;
      if (timeout.aborted) {
        outcome = "timed out";
        throw new StageFailure(`${what} timed out after ${req.timeoutMs} ms`, { kind: "timeout", retryable: true, cause: err });
      }
      if (outcome === "failed") outcome = "network error";
      throw new StageFailure(scrubText(`${what} failed: ${describeNetworkError(err)}`, req.secrets), { kind: "network", retryable: true, cause: err });
    }
  } finally {
    ctx.log(`${what} → ${outcome} in ${Math.round(performance.now() - t0)} ms`);
  }
}
