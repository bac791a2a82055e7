/** `baton token create|list|revoke` end to end, as a user runs them: real processes, a real SQLite file. */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "baton-token-cli-"));
const db = join(dir, "tokens.db");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

function baton(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, "--db", db, ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1", BATON_UI_TOKEN: "" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const TOKEN = /^baton_[0-9a-z]{8,12}_[A-Za-z0-9_-]{43}$/;

describe("baton token", () => {
  it("create prints the token alone on stdout (T=$(baton token create …)) and a shown-once note on stderr", () => {
    const r = baton(["token", "create", "--name", "ci", "--scope", "read,run", "--expires", "90d"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^baton_\S+\n$/);
    expect(r.stdout.trim()).toMatch(TOKEN);
    expect(r.stderr).toMatch(/shown only once/);
    expect(r.stderr).toMatch(/scopes read,run, expires \d{4}-/);
  });

  it("create --json, list and list --json never show a hash; the database holds no token text", () => {
    const made = baton(["token", "create", "--name", "ops", "--scope", "approve", "--scope", "read", "--json"]);
    expect(made.code, made.stderr).toBe(0);
    const doc = JSON.parse(made.stdout);
    expect(Object.keys(doc).sort()).toEqual(["created_at", "id", "name", "scopes", "token"]);
    expect(doc).toMatchObject({ name: "ops", scopes: ["approve", "read"] });
    expect(doc.token).toMatch(TOKEN);

    const list = baton(["token", "list", "--json"]);
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.stdout) as Record<string, unknown>[];
    const ops = rows.find((t) => t["id"] === doc.id)!;
    expect(ops).toEqual({ id: doc.id, name: "ops", scopes: ["approve", "read"], created_at: doc.created_at });
    expect(rows.find((t) => t["name"] === "ci")).toMatchObject({ scopes: ["read", "run"], expires_at: expect.any(String) });
    for (const t of rows) expect(Object.keys(t)).not.toContain("hash");
    expect(list.stdout).not.toContain(doc.token.split("_").slice(2).join("_"));

    const human = baton(["token", "list"]);
    expect(human.stdout).toMatch(/^ID\s+NAME\s+SCOPES\s+CREATED\s+EXPIRES$/m);
    expect(human.stdout).toMatch(new RegExp(`^${doc.id}\\s+ops\\s+approve,read\\s+\\S+\\s+never$`, "m"));

    const bytes = [db, `${db}-wal`].filter(existsSync).map((f) => readFileSync(f).toString("latin1")).join("");
    expect(bytes).not.toContain(doc.token);
    expect(bytes).not.toContain(doc.token.split("_").slice(2).join("_"));
  });

  it("bad scopes, names and lifetimes are usage errors (exit 2) naming what is valid", () => {
    const scope = baton(["token", "create", "--name", "x", "--scope", "read,write"]);
    expect(scope.code).toBe(2);
    expect(scope.stderr).toBe("baton: --scope: unknown scope 'write': use read, run, approve, admin (comma-separated, e.g. read,run)\n");
    expect(scope.stdout).toBe("");
    const expires = baton(["token", "create", "--name", "x", "--scope", "read", "--expires", "90"]);
    expect(expires.code).toBe(2);
    expect(expires.stderr).toMatch(/--expires must be a duration like 90d/);
    const name = baton(["token", "create", "--name", "-", "--scope", "read"]);
    expect(name.code).toBe(2);
    expect(name.stderr).toMatch(/bad token name '-'/);
    expect(baton(["token", "create", "--name", "x"]).code).toBe(2); // --scope is required
  });

  it("revoke: 0 and gone from the list; an unknown id is exit 1", () => {
    const id = JSON.parse(baton(["token", "create", "--name", "tmp", "--scope", "admin", "--json"]).stdout).id as string;
    const r = baton(["token", "revoke", id]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(`revoked token ${id}`);
    expect((JSON.parse(baton(["token", "list", "--json"]).stdout) as { id: string }[]).map((t) => t.id)).not.toContain(id);
    const again = baton(["token", "revoke", id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no token '.*': see `baton token list`/);
  });

  it("`baton ui` accepts the store's tokens by scope, and a revocation from another process within seconds", async () => {
    const reader = baton(["token", "create", "--name", "reader", "--scope", "read"]).stdout.trim();
    const child = spawn(process.execPath, [CLI, "--db", db, "ui", "--port", "0"], { env: { ...process.env, BATON_UI_TOKEN: "", XDG_CONFIG_HOME: join(dir, "config") }, stdio: ["ignore", "pipe", "pipe"] });
    try {
      const url = await new Promise<string>((resolveP, reject) => {
        let out = "";
        child.stdout.on("data", (c: Buffer) => {
          out += c.toString();
          const m = /baton ui: (http:\/\/\S+?\/)\?token=\S+\n/.exec(out); // the per-user token; store tokens work beside it
          if (m) resolveP(m[1]!);
        });
        child.once("exit", (code) => reject(new Error(`baton ui exited ${code}`)));
        setTimeout(() => reject(new Error(`baton ui did not start: ${out}`)), 10_000);
      });
      const get = (token?: string, method = "GET") => fetch(new URL("/api/runs", url), { method, headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), "Content-Type": "application/json" }, ...(method === "POST" ? { body: "{}" } : {}) });
      expect((await get()).status).toBe(401);
      expect((await get(reader)).status).toBe(200);
      const denied = await get(reader, "POST");
      expect(denied.status).toBe(403);
      expect(((await denied.json()) as { error: string }).error).toBe("this token (reader) has scopes read; POST /api/runs needs 'run'");
      expect((await fetch(new URL("/healthz", url))).status).toBe(200);
      expect(baton(["token", "revoke", reader.split("_")[1]!]).code).toBe(0);
      const deadline = Date.now() + 3000;
      let status = 200;
      while (Date.now() < deadline && status !== 401) {
        status = (await get(reader)).status;
        if (status !== 401) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe(401);
    } finally {
      child.kill("SIGTERM");
    }
  }, 20_000);
});
