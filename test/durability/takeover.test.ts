/**
 * Issue 13.8, for real: a `baton run` whose event loop is blocked (a busy-looping handler) for
 * longer than its lease has its run taken over by `baton resume` from another process while it
 * is alive. When the first process wakes up it must not append its stage's outcome (fencing):
 * it stops driving the run, aborts what it had in flight and exits with one clear line.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";

const CLI = resolve("dist/cli/main.js");
const TEMPLATE = resolve("test/fixtures/takeover/block.yaml");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const c of children) c.kill("SIGKILL");
  children.clear();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function poll<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (let i = 0; i < 3000; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(20);
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function withStore<T>(db: string, f: (s: SqliteStore) => Promise<T>): Promise<T> {
  const s = SqliteStore.open(db);
  try {
    return await f(s);
  } finally {
    await s.close();
  }
}

describe("a run taken over while its process is alive but blocked (issue 13.8)", () => {
  it("the blocked process appends nothing after the takeover, aborts its attempts and exits with one clear line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "baton-takeover-"));
    const db = join(dir, "baton.db");
    const env = { ...process.env, NO_COLOR: "1", BATON_LEASE_MS: "600" };
    const first = spawn(process.execPath, [CLI, "--db", db, "run", TEMPLATE, "--input", `dir=${dir}`], { env, stdio: ["ignore", "pipe", "pipe"] });
    children.add(first);
    let stderr = "";
    first.stderr!.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => first.once("exit", (code) => r(code)));

    // The first process blocks inside `work` (with `side` in flight); its lease then runs out.
    await poll("the first process to block", () => (existsSync(join(dir, "work-started")) ? true : undefined));
    const runId = await poll("the run", () => withStore(db, async (s) => (await s.list())[0]?.id));
    await poll("the lease to expire", () => withStore(db, async (s) => ((await s.leaseHolder(runId)) === undefined ? true : undefined)));

    // Another process takes it over and finishes it, while the first is still alive (blocked).
    const second = spawnSync(process.execPath, [CLI, "--db", db, "resume", runId, "--json"], { env: { ...env, BATON_LEASE_MS: "" }, encoding: "utf8" });
    expect(second.status, second.stderr).toBe(0);
    expect(first.exitCode).toBeNull();
    const secondPid = (JSON.parse(second.stdout) as { output: { work: string } }).output.work.replace("work by ", "");
    const before = await withStore(db, async (s) => (await s.load(runId)).events);
    expect(before.at(-1)).toMatchObject({ type: "run_finished", status: "succeeded" });

    // Unblock the first process: its `work` returns; the append of its outcome must not happen.
    writeFileSync(join(dir, "release"), "");
    const code = await exited;
    expect(code).toBe(1);
    const lines = stderr.trim().split("\n").filter((l) => l.startsWith("baton: "));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^baton: run ${runId} was taken over by another process .*this process stopped driving it`));

    const after = await withStore(db, async (s) => (await s.load(runId)).events);
    expect(after).toHaveLength(before.length); // nothing was appended after the takeover
    const succeeded = after.filter((e) => e.type === "stage_succeeded" && e.stage === "work");
    expect(succeeded).toHaveLength(1);
    expect(succeeded[0]).toMatchObject({ output: `work by ${secondPid}` });
    // The first process aborted its attempt still in flight (its AbortSignal fired).
    expect(readdirSync(dir).filter((f) => f === `side-aborted-${first.pid}`)).toHaveLength(1);
  });
});
