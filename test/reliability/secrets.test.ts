/**
 * Redaction is total (issue 13 item 3), end to end as a user runs Baton: a secret planted in the
 * environment of real `baton` processes reaches a stage's output as an object key, as a value
 * 300 levels deep, as `approve --data` / `--comment` and `signal --data`, and in an HTTP error
 * body longer than 200 characters with the secret at the cut. It must appear in none of: the
 * SQLite files' bytes, `baton trace --json`, the UI API's JSON, and `baton run`'s stdout.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";
import { startUi } from "../../src/ui/server.js";

const CLI = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "baton-secrets-"));
const db = join(dir, "secrets.db");
const SECRET = `tok_e2e_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
/** What must never be found: the secret and any 12-character piece of its start (a cut prefix). */
const PIECES = [SECRET, SECRET.slice(0, 12)];

let server: Server;
let port = 0;

/** A `baton` process (asynchronous: the test's HTTP server must keep answering meanwhile). */
function baton(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    const child = spawn(process.execPath, [CLI, "--db", db, ...args], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: "1", BATON_E2E_API_TOKEN: SECRET },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    child.on("close", (code) => ok({ code, stdout, stderr }));
  });
}

function expectClean(what: string, text: string): void {
  for (const p of PIECES) expect(text.includes(p), `${what} contains ${p === SECRET ? "the secret" : "a prefix of the secret"}:\n${text.slice(0, 2000)}`).toBe(false);
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  // An endpoint whose 400 body puts the secret across the 200-character excerpt cut.
  server = createServer((_req, res) => {
    const body = `${"e".repeat(189)} ${SECRET} ${"f".repeat(300)}`;
    res.writeHead(400, { "content-type": "text/plain", "content-length": String(Buffer.byteLength(body)) });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
  writeFileSync(
    join(dir, "leak.mjs"),
    `export function leak() {
  const s = process.env.BATON_E2E_API_TOKEN;
  let deep = { v: "deep " + s };
  for (let i = 0; i < 300; i++) deep = { d: deep };
  return { [s]: 1, ["id_" + s]: "key with the secret inside", deep, plain: "fine" };
}
`,
  );
  writeFileSync(
    join(dir, "out.yaml"),
    `baton: 1
name: secrets-out
stages:
  leak: { run: ./leak.mjs#leak }
  call: { http: { url: "http://127.0.0.1:${port}/fail" }, on_error: continue }
output: leak
`,
  );
  writeFileSync(
    join(dir, "gate.yaml"),
    `baton: 1
name: secrets-gate
stages:
  review: { approval: { message: "publish?" } }
  go: { needs: [review], wait: { signal: go } }
  done: { needs: [review, go], value: "{ 'review': review, 'go': go }" }
output: done
`,
  );
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe("a planted secret reaches no store, trace, API or stdout", () => {
  const ids: string[] = [];

  it("baton run: keys, deep values and an HTTP error cut at 200 characters — stdout (text and --json) is clean", async () => {
    const text = await baton(["run", "out.yaml"]);
    expect(text.code, text.stderr).toBe(0);
    expectClean("baton run stdout", text.stdout);
    expectClean("baton run stderr", text.stderr);
    const out = JSON.parse(text.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ "[redacted]": 1, "id_[redacted]": "key with the secret inside", plain: "fine" });
    const json = await baton(["run", "out.yaml", "--json"]);
    expect(json.code, json.stderr).toBe(0);
    expectClean("baton run --json", json.stdout);
    ids.push((JSON.parse(json.stdout) as { id: string }).id);
  });

  it("approve --data/--comment and signal --data: the stage outputs, the log and the commands' output are clean", async () => {
    const first = await baton(["run", "gate.yaml"]);
    expect(first.code, first.stderr).toBe(3);
    const id = /baton approve (\S+) review/.exec(first.stderr)?.[1];
    expect(id).toBeDefined();
    ids.push(id!);
    const data = JSON.stringify({ note: `use ${SECRET}`, [SECRET]: true });
    const approve = await baton(["approve", id!, "review", "--data", data, "--comment", `ok with ${SECRET}`]);
    expect(approve.code, approve.stderr).toBe(0); // recorded; the run continues, then waits for the signal
    expectClean("approve output", approve.stdout + approve.stderr);
    const signal = await baton(["signal", id!, "go", "--data", JSON.stringify({ token: SECRET })]);
    expect(signal.code, signal.stderr).toBe(0);
    expectClean("signal output", signal.stdout + signal.stderr);
  });

  it("baton trace --json of every run is clean; the redacted values are there", async () => {
    for (const id of ids) {
      const t = await baton(["trace", id, "--json"]);
      expect(t.code, t.stderr).toBe(0);
      expectClean(`trace ${id}`, t.stdout);
      expect(t.stdout).toContain("[redacted]");
    }
    const gate = JSON.parse((await baton(["trace", ids[1]!, "--json"])).stdout) as { stages: { stage: string; output?: unknown }[] };
    expect(gate.stages.find((s) => s.stage === "review")?.output).toEqual({ note: "use [redacted]", "[redacted]": true });
    expect(gate.stages.find((s) => s.stage === "go")?.output).toEqual({ token: "[redacted]" });
    // The HTTP error excerpt: cut at 200 characters after redaction (the secret started at 190).
    expect((await baton(["trace", ids[0]!, "--json"])).stdout).toMatch(/answered 400 Bad Request: e{189} \[redacted\]…"/);
  });

  it("the UI API's JSON (runs, run, trace, events) is clean", async () => {
    const store = SqliteStore.open(db);
    const token = "ui-test-token-0123456789";
    const ui = await startUi({ store, port: 0, token });
    try {
      const get = async (path: string): Promise<string> => {
        const res = await fetch(new URL(path, ui.url), { headers: { Authorization: `Bearer ${token}` } });
        expect(res.status, path).toBe(200);
        return res.text();
      };
      expectClean("GET /api/runs", await get("/api/runs"));
      for (const id of ids) {
        for (const path of [`/api/runs/${id}`, `/api/runs/${id}/trace`, `/api/runs/${id}/events`]) expectClean(path, await get(path));
      }
    } finally {
      await ui.close();
      await store.close();
    }
  });

  it("the SQLite files' bytes are clean", () => {
    let files = 0;
    for (const f of [db, `${db}-wal`, `${db}-shm`, `${db}-journal`]) {
      if (!existsSync(f)) continue;
      files++;
      expectClean(f, readFileSync(f).toString("latin1"));
    }
    expect(files).toBeGreaterThan(0);
  });
});
