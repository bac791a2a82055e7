/**
 * Issue 13.2 over HTTP: `POST /api/runs { "template": PATH }` on a `baton ui`-style server (a
 * templates root) never reads a file outside the root, a device or FIFO, a symlink or hard link
 * out of it, or an oversized file — and no error quotes what such a file holds.
 */
import { spawnSync } from "node:child_process";
import { closeSync, constants, linkSync, mkdtempSync, openSync, readFileSync, readSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planFromSource } from "../../src/api/run.js";
import { Runtime } from "../../src/runtime/runtime.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { startUi, type UiServer } from "../../src/ui/server.js";
import { req } from "./helpers.js";

const root = mkdtempSync(join(tmpdir(), "baton-tpl-root-"));
const MARK = `env-mark-${process.pid}-${Math.random().toString(36).slice(2)}`;
let store: SqliteStore;
let runtime: Runtime;
let ui: UiServer;

beforeAll(async () => {
  process.env["BATON_TEST_ENV_MARK"] = MARK; // so /proc/self/environ holds something to look for
  writeFileSync(join(root, "ok.yaml"), "baton: 1\nname: ok\nstages:\n  a: { value: \"1 + 1\" }\noutput: a\n");
  writeFileSync(join(root, "big.yaml"), `# ${"x".repeat(1024 * 1024)}\nbaton: 1\n`);
  symlinkSync("/dev/zero", join(root, "zero.yaml"));
  symlinkSync("/etc/passwd", join(root, "passwd.yaml"));
  symlinkSync("/proc/self/environ", join(root, "environ.yaml"));
  const outside = mkdtempSync(join(tmpdir(), "baton-tpl-outside-"));
  writeFileSync(join(outside, "secret.yaml"), `the template must not be quoted: ${MARK}\n`);
  linkSync(join(outside, "secret.yaml"), join(root, "hard.yaml"));
  const dir = mkdtempSync(join(tmpdir(), "baton-tpl-db-"));
  store = SqliteStore.open(join(dir, "ui.db"));
  runtime = new Runtime({ store, loadPlan: planFromSource });
  ui = await startUi({ store, runtime, port: 0, templates: { root }, auth: "none" });
});

afterAll(async () => {
  delete process.env["BATON_TEST_ENV_MARK"];
  await ui.close();
  await runtime.close();
  await store.close();
});

const post = (template: string) => req(ui, "/api/runs", { method: "POST", body: { template } });
const passwdLines = readFileSync("/etc/passwd", "utf8").split("\n").filter((l) => l.length > 8);

/** The error of a refused template: a 400, one line, no content of the files it names. */
async function refused(template: string): Promise<string> {
  const r = await post(template);
  expect(r.status, template).toBe(400);
  const error = r.json.error as string;
  expect(error.split("\n")).toHaveLength(1);
  expect(error).not.toContain(MARK);
  expect(error).not.toMatch(/root:|daemon:|nologin|\/bin\/(ba)?sh/);
  for (const l of passwdLines) expect(error).not.toContain(l.slice(0, 12));
  expect(error).not.toContain("x".repeat(16));
  return error;
}

describe("POST /api/runs { template } over HTTP (issue 13.2)", () => {
  it("a template under the root starts a run", async () => {
    const r = await post("ok.yaml");
    expect(r.status, r.text).toBe(201);
  });

  it("/dev/zero, directly or by a relative path or a symlink, is refused before anything is read; the server stays up", async () => {
    expect(await refused("/dev/zero")).toMatch(/^template "\/dev\/zero" is outside .*: the API only reads templates under the directory baton ui runs in$/);
    expect(await refused("../../../../../../dev/zero")).toMatch(/is outside/);
    expect(await refused("zero.yaml")).toMatch(/is outside/);
    expect((await req(ui, "/healthz")).status).toBe(200);
  });

  it("a FIFO under the root is not opened for reading at all (what was written to it is still there)", async () => {
    const fifo = join(root, "pipe.yaml");
    const made = spawnSync("mkfifo", [fifo]);
    expect(made.status, String(made.stderr)).toBe(0);
    // Opened read-write, so the server's open (had it tried) would not block; the bytes stay unless read.
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    try {
      writeSync(fd, "baton: 1\n");
      expect(await refused("pipe.yaml")).toBe('template "pipe.yaml" is not a regular file');
      const back = Buffer.alloc(64);
      expect(back.subarray(0, readSync(fd, back, 0, back.length, null)).toString()).toBe("baton: 1\n");
    } finally {
      closeSync(fd);
    }
  });

  it("/etc/passwd and /proc/self/environ, by absolute path, traversal or symlink: refused, nothing of them in the error", async () => {
    for (const p of ["/etc/passwd", "../../../../../../etc/passwd", "passwd.yaml", "/proc/self/environ", "../../../../../../proc/self/environ", "environ.yaml"]) {
      expect(await refused(p)).toMatch(/is outside/);
    }
  });

  it("a hard link to a file outside the root is refused without quoting it", async () => {
    expect(await refused("hard.yaml")).toMatch(/^template "hard\.yaml" has 2 hard links: the API reads only templates with one name/);
  });

  it("an oversized file under the root is refused by its size, unread", async () => {
    expect(await refused("big.yaml")).toMatch(/^template "big\.yaml" is \d+ bytes; templates are at most 1048576 bytes$/);
  });
});
