/** Scoped API tokens: creation, hashing, authentication, scopes, routes, the server's cache. */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  anyToken, authenticate, createToken, hasScope, listTokens, parseScopes, parseToken, requiredScope, revokeToken, SCOPES, TOKEN_KIND, TokenAuth, type Scope,
} from "../../src/auth/tokens.js";
import { MemoryStore } from "../../src/store/memory.js";
import { SqliteStore } from "../../src/store/sqlite.js";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

describe("createToken", () => {
  it("returns baton_<id>_<secret> once and stores only the secret's hash under the id", async () => {
    const store = new MemoryStore();
    const now = Date.parse("2026-12-01T00:00:00Z");
    const { id, token, record } = await createToken(store, { name: "ci", scopes: ["run", "read", "run"], expiresInMs: 86_400_000, now });
    expect(token).toMatch(/^baton_[0-9a-z]{8,12}_[A-Za-z0-9_-]{43}$/);
    const parts = parseToken(token)!;
    expect(parts.id).toBe(id);
    expect(record).toEqual({ id, name: "ci", scopes: ["run", "read"], hash: sha(parts.secret), created_at: "2026-12-01T00:00:00.000Z", expires_at: "2026-12-02T00:00:00.000Z" });
    const stored = await store.getRecord(TOKEN_KIND, id);
    expect(stored?.value).toEqual(record);
    expect(JSON.stringify(stored)).not.toContain(parts.secret);
    expect(Object.keys(record)).not.toContain("token");
  });

  it("without a lifetime the record has no expires_at; ids differ", async () => {
    const store = new MemoryStore();
    const a = await createToken(store, { name: "a", scopes: ["read"] });
    const b = await createToken(store, { name: "a", scopes: ["read"] });
    expect(a.record.expires_at).toBeUndefined();
    expect("expires_at" in a.record).toBe(false);
    expect(a.id).not.toBe(b.id);
    expect((await listTokens(store)).map((t) => t.id).sort()).toEqual([a.id, b.id].sort());
  });

  it("refuses bad names, scopes and lifetimes with the valid choices", async () => {
    const store = new MemoryStore();
    await expect(createToken(store, { name: "", scopes: ["read"] })).rejects.toThrow(/bad token name ''/);
    await expect(createToken(store, { name: "x\ny", scopes: ["read"] })).rejects.toThrow(/bad token name/);
    await expect(createToken(store, { name: "x", scopes: ["write"] })).rejects.toThrow("unknown scope 'write': use read, run, approve, admin");
    await expect(createToken(store, { name: "x", scopes: [] })).rejects.toThrow("a token needs at least one scope: read, run, approve, admin");
    await expect(createToken(store, { name: "x", scopes: ["read"], expiresInMs: 0 })).rejects.toThrow(/positive number of ms, got 0/);
    expect(await anyToken(store)).toBe(false);
  });
});

describe("authenticate", () => {
  it("accepts the token, refuses wrong, malformed, expired and revoked ones", async () => {
    const store = new MemoryStore();
    const now = Date.now();
    const { id, token } = await createToken(store, { name: "ops", scopes: ["approve"], expiresInMs: 60_000, now });
    expect(await authenticate(store, token, now)).toEqual({ id, name: "ops", scopes: ["approve"] });
    const secret = parseToken(token)!.secret;
    const flipped = secret.slice(0, -1) + (secret.endsWith("A") ? "B" : "A");
    for (const bad of [undefined, "", "token", `baton_${id}_${flipped}`, `baton_${id}`, `${token}x`, ` ${token}`, `baton_zzzzzzzzzz_${secret}`, `baton_${id.toUpperCase()}_${secret}`]) {
      expect(await authenticate(store, bad, now), String(bad)).toBeUndefined();
    }
    expect(await authenticate(store, token, now + 60_000)).toBeUndefined(); // expired
    expect(await revokeToken(store, id)).toBe(true);
    expect(await authenticate(store, token, now)).toBeUndefined();
    expect(await revokeToken(store, id)).toBe(false);
  });

  it("ignores records that are not token records", async () => {
    const store = new MemoryStore();
    await store.putRecord(TOKEN_KIND, "abcdefghjk", { id: "abcdefghjk", name: "x", scopes: ["root"], hash: sha("s"), created_at: "x" });
    expect(await authenticate(store, `baton_abcdefghjk_${"A".repeat(43)}`)).toBeUndefined();
    expect(await listTokens(store)).toEqual([]);
  });
});

describe("scopes", () => {
  it("admin implies all; run and approve imply read; nothing else", () => {
    const table: Record<Scope, Scope[]> = { read: ["read"], run: ["read", "run"], approve: ["read", "approve"], admin: [...SCOPES] };
    for (const g of SCOPES) for (const n of SCOPES) expect(hasScope([g], n), `${g} → ${n}`).toBe(table[g].includes(n));
    expect(hasScope(["run", "approve"], "approve")).toBe(true);
    expect(hasScope([], "read")).toBe(false);
  });

  it("parseScopes: comma lists, trimmed, deduplicated", () => {
    expect(parseScopes("read, run,run")).toEqual(["read", "run"]);
    expect(() => parseScopes("read,Admin")).toThrow("unknown scope 'Admin': use read, run, approve, admin");
  });

  it("requiredScope: reads, runs, approvals, admin", () => {
    const cases: [string, string, Scope | undefined][] = [
      ["GET", "/", undefined], ["GET", "/runs/abc", undefined], ["GET", "/healthz", undefined], ["POST", "/apix", undefined],
      ["GET", "/api/runs", "read"], ["HEAD", "/api/runs/r1/stream", "read"], ["GET", "/api/pipelines", "read"], ["GET", "/api", "read"],
      ["POST", "/api/runs", "run"], ["POST", "/api/runs/r1/cancel", "run"],
      ["POST", "/api/runs/r1/approve", "approve"], ["POST", "/api/runs/r1/reject", "approve"], ["POST", "/api/runs/r1/signals/go", "approve"],
      ["POST", "/api/pipelines", "admin"], ["PUT", "/api/pipelines/p", "admin"], ["DELETE", "/api/pipelines/p", "admin"],
      ["GET", "/api/tokens", "admin"], ["POST", "/api/tokens/x", "admin"], ["DELETE", "/api/runs/r1", "admin"], ["PUT", "/api/runs", "admin"],
      ["POST", "/api/runs/r1/approve/x", "admin"], ["OPTIONS", "/api/runs", "admin"], ["post", "/api/runs", "run"],
    ];
    for (const [m, p, want] of cases) expect(requiredScope(m, p), `${m} ${p}`).toBe(want);
  });
});

describe("TokenAuth (the server's cache)", () => {
  it("remembers a verified token for cacheMs: a revocation takes effect within it; failures are not cached", async () => {
    const store = new MemoryStore();
    let t = 1_000_000;
    const auth = new TokenAuth(store, { cacheMs: 1000, now: () => t });
    expect(await auth.any()).toBe(false);
    const { id, token } = await createToken(store, { name: "r", scopes: ["read"], now: t });
    expect(await auth.any()).toBe(true); // "none" was not cached
    expect(await auth.verify("baton_nope")).toBeUndefined();
    expect((await auth.verify(token))?.name).toBe("r");
    await revokeToken(store, id);
    t += 500;
    expect((await auth.verify(token))?.name).toBe("r"); // still cached
    t += 501;
    expect(await auth.verify(token)).toBeUndefined();
    expect(await auth.any()).toBe(false);
  });

  it("a cached token still expires on time", async () => {
    const store = new MemoryStore();
    let t = 5_000_000;
    const auth = new TokenAuth(store, { cacheMs: 10_000, now: () => t });
    const { token } = await createToken(store, { name: "short", scopes: ["read"], expiresInMs: 100, now: t });
    expect(await auth.verify(token)).toBeDefined();
    t += 100;
    expect(await auth.verify(token)).toBeUndefined();
  });
});

describe("in SQLite", () => {
  it("the database files never hold the token text or its secret, only the hash", async () => {
    const dir = mkdtempSync(join(tmpdir(), "baton-tokens-"));
    const file = join(dir, "t.db");
    const store = SqliteStore.open(file);
    const { token, record } = await createToken(store, { name: "ci", scopes: ["run"] });
    const secret = parseToken(token)!.secret;
    expect(await authenticate(store, token)).toMatchObject({ name: "ci" });
    const bytes = [file, `${file}-wal`].filter(existsSync).map((f) => readFileSync(f).toString("latin1")).join("");
    expect(bytes).toContain(record.hash);
    expect(bytes).not.toContain(secret);
    expect(bytes).not.toContain(token);
    await store.close();
    const again = SqliteStore.open(file);
    expect(await authenticate(again, token)).toMatchObject({ name: "ci", scopes: ["run"] });
    await again.close();
  });
});
