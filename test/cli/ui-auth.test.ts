/**
 * Issue 13.1: `baton ui` and `baton serve` ask for a token by default, loopback included — the
 * per-user UI token (0600 file under $XDG_CONFIG_HOME/baton or ~/.config/baton), which the
 * printed URL carries. `--no-auth` keeps tokenless local use possible, loopback only. Real
 * processes of the built CLI, a real HTTP client, HOME and XDG_CONFIG_HOME in a temp dir.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist/cli/main.js");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const c of children) c.kill("SIGKILL");
  children.clear();
});

/** A fresh home: HOME and (unless `xdg: false`) XDG_CONFIG_HOME in a temp dir; no BATON_UI_TOKEN. */
function home(o: { xdg?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "baton-ui-auth-"));
  const env: Record<string, string> = { ...(process.env as Record<string, string>), NO_COLOR: "1", HOME: join(dir, "home"), BATON_UI_TOKEN: "" };
  mkdirSync(env["HOME"]!);
  if (o.xdg === false) delete env["XDG_CONFIG_HOME"];
  else env["XDG_CONFIG_HOME"] = join(dir, "xdg");
  const file = o.xdg === false ? join(dir, "home", ".config", "baton", "ui-token") : join(dir, "xdg", "baton", "ui-token");
  return { dir, env, file, db: join(dir, "baton.db") };
}

/** Start `baton ui|serve … --port 0`; resolves with the printed line once it listens. */
function server(cmd: "ui" | "serve", h: ReturnType<typeof home>, args: string[] = []): Promise<{ line: string; stderr: () => string; child: ChildProcess }> {
  const child = spawn(process.execPath, [CLI, "--db", h.db, cmd, "--port", "0", ...args], { env: h.env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let out = "";
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  return new Promise((res, rej) => {
    child.stdout!.on("data", (d) => {
      out += d;
      const m = new RegExp(`^baton ${cmd}: .*$`, "m").exec(out);
      if (m) res({ line: m[0], stderr: () => err, child });
    });
    child.on("exit", (code) => rej(new Error(`baton ${cmd} exited (${code}) before listening: ${err}`)));
  });
}

function cli(h: ReturnType<typeof home>, args: string[]) {
  const r = spawnSync(process.execPath, [CLI, "--db", h.db, ...args], { env: h.env, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const get = (url: string, token?: string) => fetch(new URL("/api/runs", url), { headers: token ? { Authorization: `Bearer ${token}` } : {} });
const mode = (p: string) => statSync(p).mode & 0o777;

describe("baton ui: a token by default, loopback included", () => {
  it("generates the per-user token once (0600 in a 0700 directory); without it the API is 401, with it 200; the printed URL carries it", async () => {
    const h = home();
    const ui = await server("ui", h);
    const m = /^baton ui: (http:\/\/127\.0\.0\.1:\d+\/)\?token=([A-Za-z0-9_-]{43})$/.exec(ui.line);
    expect(m, ui.line).not.toBeNull();
    const [, base, token] = m!;
    expect(readFileSync(h.file, "utf8")).toBe(`${token}\n`);
    expect(mode(h.file)).toBe(0o600);
    expect(mode(join(h.dir, "xdg", "baton"))).toBe(0o700);
    expect(ui.stderr()).toMatch(`wrote a new UI token to ${h.file} (mode 0600)`);

    const none = await get(base!);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: string }).error).toMatch(/requires a token: open the URL it printed/);
    expect((await get(base!, "not-the-token")).status).toBe(401);
    expect((await get(base!, token)).status).toBe(200);
    // A write without the token is refused too (start/approve/cancel), and the stream's ?token= works.
    const cancel = await fetch(new URL("/api/runs/nope/cancel", base), { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    expect(cancel.status).toBe(401);
    expect((await fetch(new URL(`/api/runs/nope/stream?token=${token}`, base))).status).toBe(404); // past auth: no such run
    // The page itself loads (the app then takes ?token= and keeps it for the tab).
    expect((await fetch(new URL(`/?token=${token}`, base))).status).toBe(200);
    ui.child.kill("SIGTERM");

    // The next start reuses it.
    const again = await server("ui", h);
    expect(again.line).toBe(`baton ui: ${(/^baton ui: (\S+?\/)\?/.exec(again.line))![1]}?token=${token}`);
    expect(again.stderr()).not.toMatch(/wrote a new UI token/);
  });

  it("without XDG_CONFIG_HOME the token lives in ~/.config/baton/ui-token", async () => {
    const h = home({ xdg: false });
    const ui = await server("ui", h);
    const token = /\?token=(\S+)$/.exec(ui.line)![1]!;
    expect(readFileSync(h.file, "utf8").trim()).toBe(token);
    expect(mode(h.file)).toBe(0o600);
  });

  it("refuses a token file others can read, in one line saying `chmod 600 FILE`; a file of the right mode is used as is", async () => {
    const h = home();
    mkdirSync(join(h.dir, "xdg", "baton"), { recursive: true, mode: 0o700 });
    writeFileSync(h.file, "a-token-others-can-read-0123456789\n");
    chmodSync(h.file, 0o644);
    const r = cli(h, ["ui", "--port", "0"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`baton: ${h.file} can be read by other users (mode 644): restrict it with \`chmod 600 ${h.file}\` (and, as it may be known, consider removing it so a new token is written)\n`);
    chmodSync(h.file, 0o640);
    expect(cli(h, ["serve", "--port", "0"]).stderr).toMatch(`chmod 600 ${h.file}`);

    chmodSync(h.file, 0o600);
    const ui = await server("ui", h);
    expect(ui.line).toMatch(/\?token=a-token-others-can-read-0123456789$/);
    expect((await get(/(http:\S+?\/)\?/.exec(ui.line)![1]!, "a-token-others-can-read-0123456789")).status).toBe(200);
  });

  it("--no-auth: tokenless on loopback with a warning line; refused on 0.0.0.0; no token file is written", async () => {
    const h = home();
    const ui = await server("ui", h, ["--no-auth"]);
    const base = /^baton ui: (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(ui.line)![1]!;
    expect((await get(base)).status).toBe(200);
    expect(ui.stderr()).toMatch(/^baton ui: --no-auth: no token is asked for; every user and process on this machine can start, approve and cancel runs here$/m);
    expect(existsSync(h.file)).toBe(false);

    for (const cmd of ["ui", "serve"]) {
      const r = cli(h, [cmd, "--port", "0", "--host", "0.0.0.0", "--no-auth"]);
      expect(r.code, cmd).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^baton: baton ${cmd} --no-auth is for a loopback bind only: on 0\\.0\\.0\\.0 anyone who can reach it could start, approve and cancel runs`));
    }
    expect(cli(h, ["ui", "--port", "0", "--no-auth", "--token", "x".repeat(20)]).stderr).toMatch(/--no-auth and a token \(--token\) exclude each other/);
  });

  it("--token and BATON_UI_TOKEN work as before and write no token file", async () => {
    const h = home();
    const ui = await server("ui", h, ["--token", "st4tic-token"]);
    expect(ui.line).toMatch(/\?token=st4tic-token$/);
    const base = /(http:\S+?\/)\?/.exec(ui.line)![1]!;
    expect((await get(base)).status).toBe(401);
    expect((await get(base, "st4tic-token")).status).toBe(200);
    expect(existsSync(h.file)).toBe(false);
  });
});

describe("baton serve: a token by default, loopback included", () => {
  it("uses the same per-user token (not printed when stdout is not a terminal); 401 without it, 200 with it; --no-auth works on loopback", async () => {
    const h = home();
    const s = await server("serve", h);
    const m = /^baton serve: (http:\/\/127\.0\.0\.1:\d+\/) \(open it with \?token= and the token in (\S+)\)$/.exec(s.line);
    expect(m, s.line).not.toBeNull();
    expect(m![2]).toBe(h.file);
    const token = readFileSync(h.file, "utf8").trim();
    expect(mode(h.file)).toBe(0o600);
    expect((await get(m![1]!)).status).toBe(401);
    expect((await get(m![1]!, token)).status).toBe(200);
    expect((await fetch(new URL("/healthz", m![1]!))).status).toBe(200); // probes need none
    s.child.kill("SIGTERM");

    const open = await server("serve", h, ["--no-auth"]);
    const base = /^baton serve: (\S+)$/.exec(open.line)![1]!;
    expect((await get(base)).status).toBe(200);
    expect(open.stderr()).toMatch(/baton serve: --no-auth: no token is asked for/);
  });
});
