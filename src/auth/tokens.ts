/**
 * Scoped API tokens (`baton token create`): `baton_<id>_<secret>`, kept in the store as records
 * of kind `"token"` under their id with only the SHA-256 of the secret — never the token text.
 *
 * Scopes: `read` (GET anything under /api), `run` (start and cancel runs), `approve` (approve,
 * reject, signal), `admin` (everything: pipelines, tokens, any other write). `admin` implies all
 * of them; `run` and `approve` each imply `read`.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Store } from "../store/port.js";

/** The record kind tokens are stored under. */
export const TOKEN_KIND = "token";

/** Every scope, weakest first. */
export const SCOPES = ["read", "run", "approve", "admin"] as const;

/** What a token may do (see {@link SCOPES}). */
export type Scope = (typeof SCOPES)[number];

/** Who made a request: a store token, the static `--token` (`"token"`), or loopback without a token (`"local"`). */
export interface Principal {
  readonly id: string;
  readonly name: string;
  readonly scopes: readonly Scope[];
}

/** A token as stored (the value of its `"token"` record). No token text, only the secret's hash. */
export interface TokenRecord {
  readonly id: string;
  readonly name: string;
  readonly scopes: readonly Scope[];
  /** SHA-256 of the secret part, lowercase hex. */
  readonly hash: string;
  /** ISO 8601. */
  readonly created_at: string;
  /** ISO 8601; absent when the token does not expire. */
  readonly expires_at?: string;
}

/** A token as listed: the record without its hash. */
export type TokenInfo = Omit<TokenRecord, "hash">;

/** Options of {@link createToken}. */
export interface CreateTokenOptions {
  /** A label shown in listings and in 403 messages (1–64 letters, digits, space, `.`, `_`, `@`, `-`). */
  readonly name: string;
  /** At least one of {@link SCOPES}. */
  readonly scopes: readonly string[];
  /** Lifetime in ms. @default never expires */
  readonly expiresInMs?: number;
  /** The current time, ms since epoch. @default Date.now() */
  readonly now?: number;
}

const ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case
const ID_LENGTH = 10;
const TOKEN_TEXT = /^baton_([0-9a-z]{8,12})_([A-Za-z0-9_-]{43})$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$/;

const sha256Hex = (s: string): string => createHash("sha256").update(s).digest("hex");

/**
 * The scopes of a list, checked: each one of {@link SCOPES}, at least one, duplicates dropped.
 *
 * @throws TypeError naming the valid scopes.
 * @example
 * parseScopes("read,run"); // ["read", "run"]
 */
export function parseScopes(scopes: string | readonly string[]): Scope[] {
  const list = (typeof scopes === "string" ? scopes.split(",") : [...scopes]).map((s) => String(s).trim()).filter((s) => s !== "");
  if (list.length === 0) throw new TypeError(`a token needs at least one scope: ${SCOPES.join(", ")}`);
  const out: Scope[] = [];
  for (const s of list) {
    if (!(SCOPES as readonly string[]).includes(s)) throw new TypeError(`unknown scope '${s}': use ${SCOPES.join(", ")} (comma-separated, e.g. read,run)`);
    if (!out.includes(s as Scope)) out.push(s as Scope);
  }
  return out;
}

/**
 * Whether `granted` covers `needed`: `admin` covers everything, `run` and `approve` cover `read`.
 *
 * @example
 * hasScope(["run"], "read"); // true
 * hasScope(["run"], "approve"); // false
 */
export function hasScope(granted: readonly Scope[], needed: Scope): boolean {
  if (granted.includes("admin") || granted.includes(needed)) return true;
  return needed === "read" && (granted.includes("run") || granted.includes("approve"));
}

/**
 * The scope an API request needs, or undefined when the path is not under /api (pages, assets,
 * /healthz need none). GET/HEAD → `read`; `POST /api/runs`, `POST /api/runs/:id/cancel` →
 * `run`; `POST /api/runs/:id/approve|reject`, `POST /api/runs/:id/signals/:name` → `approve`;
 * anything under /api/tokens, pipeline writes and every other write → `admin`.
 *
 * @example
 * requiredScope("POST", "/api/runs/r1/approve"); // "approve"
 */
export function requiredScope(method: string, pathname: string): Scope | undefined {
  if (pathname !== "/api" && !pathname.startsWith("/api/")) return undefined;
  if (pathname === "/api/tokens" || pathname.startsWith("/api/tokens/")) return "admin";
  const m = method.toUpperCase();
  if (m === "GET" || m === "HEAD") return "read";
  if (m === "POST") {
    if (/^\/api\/runs\/?$/.test(pathname) || /^\/api\/runs\/[^/]+\/cancel$/.test(pathname)) return "run";
    if (/^\/api\/runs\/[^/]+\/(approve|reject)$/.test(pathname) || /^\/api\/runs\/[^/]+\/signals\/[^/]+$/.test(pathname)) return "approve";
  }
  return "admin";
}

function newId(): string {
  const bytes = randomBytes(ID_LENGTH);
  let id = "";
  for (const b of bytes) id += ID_ALPHABET[b % 32];
  return id;
}

/**
 * Create a token and store its record (under its id, with the secret's hash only). The token
 * text is returned once and cannot be recovered later.
 *
 * @throws TypeError for a bad name, scope or lifetime.
 * @example
 * const { token } = await createToken(store, { name: "ci", scopes: ["run"], expiresInMs: 90 * 86_400_000 });
 * // token: "baton_k3v9…_…" — send it as `Authorization: Bearer <token>`
 */
export async function createToken(store: Store, o: CreateTokenOptions): Promise<{ id: string; token: string; record: TokenRecord }> {
  if (typeof o.name !== "string" || !NAME.test(o.name)) {
    throw new TypeError(`bad token name '${String(o.name)}': use 1 to 64 letters, digits, spaces, '.', '_', '@' or '-', starting with a letter or digit`);
  }
  const scopes = parseScopes(o.scopes);
  if (o.expiresInMs !== undefined && !(Number.isFinite(o.expiresInMs) && o.expiresInMs > 0)) {
    throw new TypeError(`a token's lifetime must be a positive number of ms, got ${String(o.expiresInMs)}`);
  }
  const now = o.now ?? Date.now();
  for (let attempt = 0; attempt < 5; attempt++) {
    const id = newId();
    const secret = randomBytes(32).toString("base64url");
    const record: TokenRecord = {
      id, name: o.name, scopes, hash: sha256Hex(secret), created_at: new Date(now).toISOString(),
      ...(o.expiresInMs !== undefined ? { expires_at: new Date(now + o.expiresInMs).toISOString() } : {}),
    };
    const put = await store.putRecord(TOKEN_KIND, id, record, { ifAbsent: true });
    if (put.created) return { id, token: `baton_${id}_${secret}`, record };
  }
  throw new Error("could not find a free token id after 5 tries");
}

/** A stored value as a token record, or undefined when it is not one. */
function recordOf(value: unknown): TokenRecord | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const r = value as Partial<TokenRecord>;
  if (typeof r.id !== "string" || typeof r.name !== "string" || typeof r.hash !== "string" || typeof r.created_at !== "string") return undefined;
  if (!Array.isArray(r.scopes) || !r.scopes.every((s) => (SCOPES as readonly string[]).includes(s))) return undefined;
  if (r.expires_at !== undefined && typeof r.expires_at !== "string") return undefined;
  return r as TokenRecord;
}

const expired = (r: TokenRecord, now: number): boolean => r.expires_at !== undefined && !(Date.parse(r.expires_at) > now);

/** The id and secret of a token text, or undefined when it is not shaped like one. */
export function parseToken(presented: string | undefined): { id: string; secret: string } | undefined {
  const m = presented === undefined ? null : TOKEN_TEXT.exec(presented);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

/**
 * The principal a presented token stands for, or undefined when it is missing, malformed,
 * unknown (revoked) or expired. The hash comparison is constant-time.
 *
 * @example
 * const who = await authenticate(store, bearerOf(req)); // { id, name, scopes } | undefined
 */
export async function authenticate(store: Store, presented: string | undefined, now: number = Date.now()): Promise<Principal | undefined> {
  const rec = await verifiedRecord(store, presented, now);
  return rec === undefined ? undefined : principalOfRecord(rec);
}

const principalOfRecord = (rec: TokenRecord): Principal => ({ id: rec.id, name: rec.name, scopes: rec.scopes });

/** The record a presented token matches (known, unexpired, hash equal), or undefined. */
async function verifiedRecord(store: Store, presented: string | undefined, now: number): Promise<TokenRecord | undefined> {
  const parts = parseToken(presented);
  if (parts === undefined) return undefined;
  const rec = recordOf((await store.getRecord(TOKEN_KIND, parts.id))?.value);
  if (rec === undefined || rec.id !== parts.id || expired(rec, now)) return undefined;
  const want = Buffer.from(rec.hash, "hex");
  const got = createHash("sha256").update(parts.secret).digest();
  if (want.length !== got.length || !timingSafeEqual(want, got)) return undefined;
  return rec;
}

/**
 * The stored tokens in id order, without their hashes.
 *
 * @example
 * for (const t of await listTokens(store)) console.log(t.id, t.name, t.scopes.join(","));
 */
export async function listTokens(store: Store): Promise<TokenInfo[]> {
  const out: TokenInfo[] = [];
  for (const r of await store.listRecords(TOKEN_KIND)) {
    const rec = recordOf(r.value);
    if (rec === undefined) continue;
    const { hash: _hash, ...info } = rec;
    out.push(info);
  }
  return out;
}

/**
 * Revoke (delete) a token by id; whether it existed. Servers sharing the store stop accepting
 * it within their cache time (see {@link TokenAuth}, 1 s by default).
 *
 * @example
 * await revokeToken(store, "k3v9q0m2zt"); // true
 */
export async function revokeToken(store: Store, id: string): Promise<boolean> {
  if (typeof id !== "string" || id === "") return false;
  return store.deleteRecord(TOKEN_KIND, id);
}

/** Whether the store holds at least one token (expired ones count: they still mean "tokens are in use"). */
export async function anyToken(store: Store): Promise<boolean> {
  return (await store.listRecords(TOKEN_KIND, { limit: 1 })).length > 0;
}

/** Options of {@link TokenAuth}. */
export interface TokenAuthOptions {
  /** How long a verified token and "a token exists" are remembered, in ms. @default 1000 */
  readonly cacheMs?: number;
  /** The clock, ms since epoch. @default Date.now */
  readonly now?: () => number;
}

/**
 * {@link authenticate} and {@link anyToken} with a short cache for a server: a verified token is
 * remembered for `cacheMs` (so a revocation in another process takes effect within it), failures
 * are never cached, and neither is "no token exists" (creating the first token takes effect at once).
 *
 * @example
 * const auth = new TokenAuth(store);
 * const who = await auth.verify(bearerOf(req));
 */
export class TokenAuth {
  private readonly cacheMs: number;
  private readonly now: () => number;
  private readonly verified = new Map<string, { principal: Principal; until: number; expiresAt: number }>();
  private existsUntil = 0;

  constructor(private readonly store: Store, o: TokenAuthOptions = {}) {
    this.cacheMs = o.cacheMs ?? 1000;
    this.now = o.now ?? Date.now;
  }

  /** The principal of a presented token, or undefined (see {@link authenticate}). */
  async verify(presented: string | undefined): Promise<Principal | undefined> {
    if (parseToken(presented) === undefined) return undefined;
    const now = this.now();
    const key = sha256Hex(presented!);
    const hit = this.verified.get(key);
    if (hit !== undefined && hit.until > now && hit.expiresAt > now) return hit.principal;
    this.verified.delete(key);
    const rec = await verifiedRecord(this.store, presented, now);
    if (rec === undefined) return undefined;
    if (this.verified.size >= 1024) this.verified.clear();
    const principal = principalOfRecord(rec);
    const expiresAt = rec.expires_at !== undefined ? Date.parse(rec.expires_at) : Infinity;
    this.verified.set(key, { principal, until: now + this.cacheMs, expiresAt });
    return principal;
  }

  /** Whether the store holds at least one token ("yes" is cached for `cacheMs`). */
  async any(): Promise<boolean> {
    if (this.existsUntil > this.now()) return true;
    const yes = await anyToken(this.store);
    if (yes) this.existsUntil = this.now() + this.cacheMs;
    return yes;
  }
}
