/**
 * `baton serve` as a real process: it resumes what a dead process left behind without an
 * operator — runs killed with SIGKILL mid-flight (the server itself, then restarted) and paused
 * runs whose deadline passed while nobody was running. Side-effect records prove that nothing
 * that had completed ran again.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";

const CLI = resolve("dist/cli/main.js");
const FIXTURES = resolve("test/fixtures/serve");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const c of children) c.kill("SIGKILL");
  children.clear();
});

/** Start `baton serve` on a free port; resolves once it prints its URL. */
function serve(db: string, env: Record<string, string>): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, "--db", db, "serve", "--port", "0", "--sweep-ms", "200", "--no-auth"], {
    env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let out = "";
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  return new Promise((res, rej) => {
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /baton serve: (http:\/\/\S+)/.exec(out);
      if (m) res({ child, url: m[1]!, stderr: () => err });
    });
    child.on("exit", (code) => rej(new Error(`baton serve exited (${code}) before listening: ${err}`)));
  });
}

function cli(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, tries = 600): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting: ${what}`);
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((r) => child.once("exit", r));
}

async function status(url: string, id: string): Promise<{ status: string; output?: unknown }> {
  const r = await fetch(`${url}api/runs/${id}`);
  const body = (await r.json()) as { run: { status: string }; output?: unknown; trace?: { output?: unknown } };
  return { status: body.run.status, output: body.trace?.output ?? body.output };
}

/** Execution keys that succeeded according to the log, per run. */
async function succeeded(db: string): Promise<Map<string, Set<string>>> {
  const store = SqliteStore.open(db);
  try {
    const out = new Map<string, Set<string>>();
    for (const run of await store.list({ limit: 1000 })) {
      const keys = new Set<string>();
      for (const e of (await store.load(run.id)).events) if (e.type === "stage_succeeded") keys.add(`${e.stage}:${e.visit}:${e.item ?? ""}`);
      out.set(run.id, keys);
    }
    return out;
  } finally {
    await store.close();
  }
}

describe("baton serve", () => {
  it("kill -9 with runs in flight, restart: every run finishes and nothing completed runs again", async () => {
    const dir = mkdtempSync(join(tmpdir(), "baton-serve-kill-"));
    const db = join(dir, "baton.db");
    const effects = join(dir, "effects.log");
    const env = { BATON_EFFECTS: effects };
    const deployed = cli(["--db", db, "deploy", join(FIXTURES, "serve.yaml")]);
    expect(deployed.status, deployed.stderr).toBe(0);

    const first = await serve(db, env);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${first.url}api/runs`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ pipeline: "serve-kill", inputs: { n: 3 } }) });
      expect(r.status).toBe(201);
      ids.push(((await r.json()) as { id: string }).id);
    }
    // Kill once some stages have completed and others are in flight.
    await until("some stages done", () => (existsSync(effects) && readFileSync(effects, "utf8").split("\n").filter((l) => l.startsWith("done")).length >= 6 ? true : undefined));
    first.child.kill("SIGKILL");
    await exited(first.child);
    const before = await succeeded(db);
    expect([...before.values()].reduce((n, keys) => n + keys.size, 0)).toBeGreaterThan(0); // some work had completed
    const lines = readFileSync(effects, "utf8").split("\n").filter(Boolean);
    expect(lines.some((l) => l.startsWith("start") && !lines.includes(l.replace("start", "done")))).toBe(true); // work was in flight

    const second = await serve(db, env);
    for (const id of ids) {
      const s = await until(`run ${id} to finish`, async () => {
        const x = await status(second.url, id);
        return x.status === "running" || x.status === "waiting" ? undefined : x;
      });
      expect(s.status).toBe("succeeded");
    }
    expect(second.stderr()).toMatch(/resumed run/);
    // first = n+1 = 4 → items 0,10,20,30 → each +1 → sum 64 → last 65
    const store = SqliteStore.open(db);
    try {
      for (const id of ids) {
        const { events } = await store.load(id);
        const fin = events.find((e) => e.type === "run_finished") as { output?: unknown } | undefined;
        expect(fin?.output).toEqual({ sum: 65 });
      }
    } finally {
      await store.close();
    }
    // Nothing that had completed before the kill started again.
    const all = readFileSync(effects, "utf8").split("\n").filter(Boolean);
    for (const [run, keys] of before) {
      for (const k of keys) {
        const [stage, visit, item] = k.split(":");
        if (stage === "items") continue; // records no effects
        const key = `${stage}:${visit}:${item}`; // the handlers' effect keys are the stage ids
        expect(all.filter((l) => l === `start ${run} ${key}`), `${run} ${key}`).toHaveLength(1);
      }
    }
    second.child.kill("SIGTERM");
    await exited(second.child);
  }, 120_000);

  it("a paused run whose deadline passed while nothing ran is resumed and finishes by its on_timeout", async () => {
    const dir = mkdtempSync(join(tmpdir(), "baton-serve-deadline-"));
    const db = join(dir, "baton.db");
    const paused = cli(["--db", db, "run", join(FIXTURES, "deadline.yaml"), "--json"]);
    expect(paused.status, paused.stderr).toBe(3); // waiting
    const id = (JSON.parse(paused.stdout) as { id: string }).id;
    const server = await serve(db, {});
    const s = await until(`run ${id} to finish`, async () => {
      const x = await status(server.url, id);
      return x.status === "waiting" || x.status === "running" ? undefined : x;
    });
    expect(s.status).toBe("succeeded");
    const store = SqliteStore.open(db);
    try {
      const { events } = await store.load(id);
      expect(events.find((e) => e.type === "approval")).toMatchObject({ approved: true, by: "timeout" });
      expect((events.find((e) => e.type === "run_finished") as { output?: unknown }).output).toBe("approved by timeout");
    } finally {
      await store.close();
    }
    server.child.kill("SIGTERM");
    await exited(server.child);
  }, 60_000);
});
