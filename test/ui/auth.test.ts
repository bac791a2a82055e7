/** The UI server with scoped store tokens, over real HTTP against a real SQLite store. */
import { request } from "node:http";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken, revokeToken } from "../../src/auth/tokens.js";
import { planFromSource } from "../../src/api/run.js";
import { Runtime } from "../../src/runtime/runtime.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { principalOf, setPrincipal } from "../../src/ui/http.js";
import { startUi, type UiServer } from "../../src/ui/server.js";
import { APPROVE, req, startFile, until } from "./helpers.js";

/** A raw request, for headers fetch will not let us set (Host, Origin). */
function raw(url: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolveP, reject) => {
    const r = request(url, { method: o.method ?? "GET", headers: o.headers ?? {} }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolveP({ status: res.statusCode ?? 0, body }));
    });
    r.on("error", reject);
    r.end(o.body);
  });
}

const freshStore = () => SqliteStore.open(join(mkdtempSync(join(tmpdir(), "baton-auth-")), "ui.db"));

describe("loopback without tokens (auth: \"none\", --no-auth)", () => {
  it("passes tokenless requests (local use) until the first token exists; /healthz never needs one", async () => {
    const store = freshStore();
    const ui = await startUi({ store, port: 0, storeTokens: true, auth: "none" });
    try {
      expect((await req(ui, "/api/runs")).status).toBe(200);
      expect((await req(ui, "/api/runs/nope/cancel", { method: "POST" })).status).not.toBe(401);
      expect((await req(ui, "/api/runs", { token: "garbage" })).status).toBe(200); // no tokens: Authorization is not looked at
      const { token } = await createToken(store, { name: "first", scopes: ["read"] });
      const none = await req(ui, "/api/runs");
      expect(none.status).toBe(401); // at once: "no token" is never cached
      expect(none.json.error).toMatch(/requires a token/);
      expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect((await req(ui, "/api/runs", { token })).status).toBe(200);
      const health = await req(ui, "/healthz");
      expect(health).toMatchObject({ status: 200, json: { ok: true } });
      expect((await req(ui, "/healthz", { method: "POST" })).status).toBe(405);
    } finally {
      await ui.close();
      await store.close();
    }
  });
});

describe("with store tokens", () => {
  let store: SqliteStore;
  let runtime: Runtime;
  let ui: UiServer;
  const t: Record<"read" | "run" | "approve" | "admin" | "expired" | "revoked", string> = {} as never;

  beforeAll(async () => {
    store = freshStore();
    runtime = new Runtime({ store, loadPlan: planFromSource });
    ui = await startUi({ store, runtime, port: 0, pollMs: 50, storeTokens: true });
    for (const s of ["read", "run", "approve", "admin"] as const) t[s] = (await createToken(store, { name: `${s}er`, scopes: [s] })).token;
    t.expired = (await createToken(store, { name: "old", scopes: ["admin"], expiresInMs: 1000, now: Date.now() - 5000 })).token;
    t.revoked = (await createToken(store, { name: "gone", scopes: ["admin"] })).token;
  });
  afterAll(async () => {
    await ui.close();
    await runtime.close();
    await store.close();
  });

  it("401 without a token, and for wrong, malformed, expired and revoked ones", async () => {
    expect((await req(ui, "/api/runs")).status).toBe(401);
    const secretless = t.admin.slice(0, t.admin.lastIndexOf("_"));
    for (const bad of ["wrong", secretless, `${t.admin}x`, t.admin.replace(/.$/, (c) => (c === "A" ? "B" : "A")), t.expired]) {
      const r = await req(ui, "/api/runs", { token: bad });
      expect(r.status, bad).toBe(401);
      expect(r.json.error).toMatch(/not valid \(unknown, revoked or expired\)/);
    }
    expect((await req(ui, "/api/runs", { token: t.revoked })).status).toBe(200);
    const id = t.revoked.split("_")[1]!;
    expect(await revokeToken(store, id)).toBe(true);
    // The server caches a verified token for 1 s: the revocation takes effect within it.
    await until(async () => (await req(ui, "/api/runs", { token: t.revoked })).status === 401, 2500, "the revocation");
    expect((await req(ui, "/api/runs", { headers: { Authorization: `Basic ${t.admin}` } })).status).toBe(401);
  });

  it("403 when the token's scopes fall short, for each route class", async () => {
    const cases: [string, string, Record<keyof typeof t & string, boolean>][] = [
      // method, path, allowed for read / run / approve / admin
      ["GET", "/api/runs", { read: true, run: true, approve: true, admin: true } as never],
      ["POST", "/api/runs", { read: false, run: true, approve: false, admin: true } as never],
      ["POST", "/api/runs/nope/cancel", { read: false, run: true, approve: false, admin: true } as never],
      ["POST", "/api/runs/nope/approve", { read: false, run: false, approve: true, admin: true } as never],
      ["POST", "/api/runs/nope/reject", { read: false, run: false, approve: true, admin: true } as never],
      ["POST", "/api/runs/nope/signals/go", { read: false, run: false, approve: true, admin: true } as never],
      ["DELETE", "/api/pipelines/p", { read: false, run: false, approve: false, admin: true } as never],
      ["GET", "/api/tokens", { read: false, run: false, approve: false, admin: true } as never],
    ];
    for (const [method, path, allowed] of cases) {
      for (const s of ["read", "run", "approve", "admin"] as const) {
        const r = await req(ui, path, { method, token: t[s], ...(method === "POST" ? { body: {} } : {}) });
        if (allowed[s]) expect([401, 403], `${s} ${method} ${path}: ${r.text}`).not.toContain(r.status);
        else {
          expect(r.status, `${s} ${method} ${path}`).toBe(403);
          expect(r.json.error).toMatch(new RegExp(`^this token \\(${s}er\\) has scopes ${s}; ${method} ${path.replace(/\//g, "\\/")} needs '`));
        }
      }
    }
    expect((await req(ui, "/api/runs", { method: "POST", token: t.read, body: {} })).json.error).toBe("this token (reader) has scopes read; POST /api/runs needs 'run'");
  });

  it("an approve token answers a waiting run; a run token cannot", async () => {
    const h = await startFile(runtime, APPROVE);
    await h.done;
    expect((await req(ui, `/api/runs/${h.id}/approve`, { method: "POST", token: t.run, body: {} })).status).toBe(403);
    const ok = await req(ui, `/api/runs/${h.id}/approve`, { method: "POST", token: t.approve, body: { stage: "review" } });
    expect(ok.status, ok.text).toBeLessThan(300);
  });

  it("?token= is accepted on /stream only", async () => {
    const q = encodeURIComponent(t.read);
    expect((await req(ui, `/api/runs?token=${q}`)).status).toBe(401);
    expect((await req(ui, `/api/runs/nope?token=${q}`)).status).toBe(401);
    expect((await req(ui, `/api/runs/nope/stream`)).status).toBe(401);
    expect((await req(ui, `/api/runs/nope/stream?token=${q}`)).status).toBe(404); // past auth: no such run
    expect((await req(ui, `/api/runs/nope/stream?token=wrong`)).status).toBe(401);
  });

  it("a foreign Origin on a write is 403 even with a valid token; a foreign Host is refused", async () => {
    const url = new URL("/api/runs", ui.url).href;
    const csrf = await raw(url, { method: "POST", headers: { Origin: "http://evil.example", "Content-Type": "application/json", Authorization: `Bearer ${t.admin}` }, body: "{}" });
    expect(csrf.status).toBe(403);
    expect(csrf.body).toMatch(/cross-origin/);
    const rebound = await raw(url, { headers: { Host: "evil.example:4500", Authorization: `Bearer ${t.admin}` } });
    expect(rebound.status).toBe(403);
    expect(rebound.body).toMatch(/requests for host 'evil.example' are refused/);
    const sameOrigin = await raw(new URL("/api/runs/nope/cancel", ui.url).href, { method: "POST", headers: { Origin: ui.url.replace(/\/$/, ""), Authorization: `Bearer ${t.run}` } });
    expect(sameOrigin.status).toBe(404);
  });
});

describe("the static token beside store tokens, and bind addresses", () => {
  it("the static token is an admin; store tokens work beside it", async () => {
    const store = freshStore();
    const { token } = await createToken(store, { name: "reader", scopes: ["read"] });
    const ui = await startUi({ store, port: 0, storeTokens: true, token: "st4tic" });
    try {
      expect((await req(ui, "/api/runs")).status).toBe(401);
      expect((await req(ui, "/api/runs", { token: "st4tic" })).status).toBe(200);
      expect((await req(ui, "/api/tokens", { token: "st4tic" })).status).toBe(404); // admin: past auth
      expect((await req(ui, "/api/runs", { token })).status).toBe(200);
      expect((await req(ui, "/api/runs", { method: "POST", token, body: {} })).status).toBe(403);
    } finally {
      await ui.close();
      await store.close();
    }
  });

  it("without storeTokens, store tokens are not accepted (and do not lock a loopback server)", async () => {
    const store = freshStore();
    const { token } = await createToken(store, { name: "reader", scopes: ["read"] });
    const ui = await startUi({ store, port: 0, auth: "none" });
    try {
      expect((await req(ui, "/api/runs")).status).toBe(200);
      expect((await req(ui, "/api/runs", { token })).status).toBe(200);
    } finally {
      await ui.close();
      await store.close();
    }
    const other = freshStore();
    await createToken(other, { name: "reader", scopes: ["read"] });
    const st = await startUi({ store: other, port: 0, token: "st4tic" });
    try {
      expect((await req(st, "/api/runs", { token })).status).toBe(401);
    } finally {
      await st.close();
      await other.close();
    }
  });

  it("a non-loopback bind needs a token: with storeTokens, one in the store is enough", async () => {
    const store = freshStore();
    try {
      await expect(startUi({ store, host: "0.0.0.0", port: 0, storeTokens: true })).rejects.toThrow(/would expose runs to the network without a password: .*baton token create/);
      const { id, token } = await createToken(store, { name: "remote", scopes: ["read"] });
      const ui = await startUi({ store, host: "0.0.0.0", port: 0, storeTokens: true });
      try {
        const base = `http://127.0.0.1:${ui.port}`;
        expect((await raw(`${base}/api/runs`)).status).toBe(401);
        // Every request needs a token, so any Host may be used (the server is meant to be reached from elsewhere).
        expect((await raw(`${base}/api/runs`, { headers: { Host: "baton.internal", Authorization: `Bearer ${token}` } })).status).toBe(200);
        await revokeToken(store, id);
        // No token left: a non-loopback server does not fall back to tokenless.
        await until(async () => (await raw(`${base}/api/runs`, { headers: { Authorization: `Bearer ${token}` } })).status === 401, 2500, "the revocation");
        expect((await raw(`${base}/api/runs`)).status).toBe(401);
      } finally {
        await ui.close();
      }
    } finally {
      await store.close();
    }
  });
});

describe("principalOf", () => {
  it("is what the server recorded for the request, else undefined", () => {
    const a = {} as never;
    const b = {} as never;
    setPrincipal(a, { id: "x", name: "ci", scopes: ["run"] });
    expect(principalOf(a)?.name).toBe("ci");
    expect(principalOf(b)).toBeUndefined();
  });
});
