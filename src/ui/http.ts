/**
 * Small node:http helpers for the UI server: JSON replies, JSON bodies, security headers and
 * the checks that keep a local server local (bearer token, Host and Origin).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Principal } from "../auth/tokens.js";

/** An API failure with its HTTP status; the body is `{ error: message }`. */
export class HttpError extends Error {
  override readonly name = "HttpError";
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** Largest request body accepted (a template path and its inputs, or an approval's data). */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * Content-Security-Policy of every response: only this origin's script, style and data;
 * no inline script, no frames, no plugins.
 */
export const CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Headers every response carries. */
export function securityHeaders(res: ServerResponse): void {
  res.setHeader("Content-Security-Policy", CSP);
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("X-Frame-Options", "DENY");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
  res.setHeader("Cross-Origin-Resource-Policy", "same-origin");
}

/** Reply with a JSON document. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store", "Content-Length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Read a request body as bytes; 413 once it grows beyond `max` bytes. */
export async function readBody(req: IncomingMessage, max: number = MAX_BODY_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new HttpError(413, `request body is larger than ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Read a request body as JSON (an empty body reads as `{}`); 400 when it is not JSON, 413 when too big. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  const text = (await readBody(req)).toString("utf8");
  if (text.trim() === "") return {};
  // A cross-site form can post text/plain without a preflight; JSON requests must say so.
  if (type !== "application/json") throw new HttpError(415, `send the body as JSON with 'Content-Type: application/json' (got '${type || "none"}')`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `request body is not valid JSON: ${(err as Error).message}`);
  }
}

/** The body as a plain object, else 400. */
export function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new HttpError(400, "request body must be a JSON object");
  return body as Record<string, unknown>;
}

const digest = (s: string): Buffer => createHash("sha256").update(s).digest();

/** Constant-time comparison of a presented token with the expected one. */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined || presented === "") return false;
  return timingSafeEqual(digest(presented), digest(expected));
}

/** The bearer token of a request (`Authorization: Bearer T`), if any. */
export function bearerOf(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  const m = h === undefined ? null : /^Bearer\s+(.+)$/i.exec(h.trim());
  return m?.[1]?.trim();
}

/** Whether a host name is a loopback address (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h) || h === "::ffff:127.0.0.1";
}

/** The host name of a `Host` header or an origin, without port and brackets. */
export function hostnameOf(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(1, h.indexOf("]") > 0 ? h.indexOf("]") : undefined);
  const colon = h.lastIndexOf(":");
  return colon > 0 && h.indexOf(":") === colon ? h.slice(0, colon) : h;
}

/** Who made each request, filled by the server once it authenticated the request. */
const principals = new WeakMap<IncomingMessage, Principal>();

/**
 * The principal the server authenticated a request as: a store token (`{ id, name, scopes }`),
 * the static token (name `"token"`), or loopback without tokens (name `"local"`). Undefined
 * for requests the server did not authenticate (pages, assets, /healthz).
 *
 * @example
 * const by = principalOf(req)?.name ?? "ui";
 */
export function principalOf(req: IncomingMessage): Principal | undefined {
  return principals.get(req);
}

/** @internal Record the principal of a request (the server does, before the API sees it). */
export function setPrincipal(req: IncomingMessage, principal: Principal): void {
  principals.set(req, principal);
}
