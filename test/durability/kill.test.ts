/**
 * Crash recovery for real: a child process running a pipeline is SIGKILLed at many different
 * moments, then resumed (sometimes killed again while resuming). Side-effect records prove that
 * nothing that had completed ran again, and every run ends with the uninterrupted output.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it, beforeAll } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";

const CLI = resolve("dist/cli/main.js");
const TEMPLATE = resolve("test/fixtures/kill/kill.yaml");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

interface Child { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function runCli(args: string[], env: Record<string, string>, killAfterMs?: number, sig: NodeJS.Signals = "SIGKILL"): Promise<Child> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    let timer: NodeJS.Timeout | undefined;
    if (killAfterMs !== undefined) timer = setTimeout(() => child.kill(sig), killAfterMs);
    child.on("exit", (code, signal) => {
      if (timer) clearTimeout(timer);
      res({ code, signal, stdout, stderr });
    });
  });
}

/** Execution keys (stage:visit:item) that succeeded according to the log. */
async function succeededKeys(db: string, runId: string): Promise<Set<string>> {
  const store = SqliteStore.open(db);
  try {
    const { events } = await store.load(runId);
    const keys = new Set<string>();
    for (const e of events) if (e.type === "stage_succeeded") keys.add(`${e.stage}:${e.visit}:${e.item ?? ""}`);
    return keys;
  } finally {
    await store.close();
  }
}

async function onlyRun(db: string): Promise<string | undefined> {
  if (!existsSync(db)) return undefined;
  const store = SqliteStore.open(db);
  try {
    return (await store.list())[0]?.id;
  } finally {
    await store.close();
  }
}

/** Map the handler-level key (input.key:visit:index) to the stage id used in the log. */
const STAGE_OF: Record<string, string> = { seed: "seed", each: "each", left: "left", flaky: "flaky", join: "join" };
function startsAfter(effects: string, marker: string): string[] {
  const after = effects.slice(effects.lastIndexOf(marker) + marker.length);
  return after.split("\n").filter((l) => l.startsWith("start ")).map((l) => l.split(" ")[1]!);
}

describe("kill -9 and resume", () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-kill-"));

  it("an uninterrupted run gives the reference output", async () => {
    const effects = join(dir, "ref.effects");
    writeFileSync(effects, "");
    const r = await runCli(["--db", join(dir, "ref.db"), "run", TEMPLATE, "--json"], { BATON_EFFECTS: effects });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).output).toEqual({ sum: 217, flaky: 16, join: [217, 16] });
  });

  // Kill moments spread over the whole run (process start ≈ 150 ms, run ≈ 700 ms).
  const moments = [120, 200, 260, 320, 380, 440, 500, 560, 620, 700, 780, 900];
  it.each(moments)("SIGKILL after %i ms, resume: nothing completed runs again, output as uninterrupted", async (ms) => {
    const db = join(dir, `k${ms}.db`);
    const effects = join(dir, `k${ms}.effects`);
    writeFileSync(effects, "");
    const env = { BATON_EFFECTS: effects };
    const first = await runCli(["--db", db, "run", TEMPLATE, "--json"], env, ms);
    const runId = await onlyRun(db);
    if (first.code === 0) return; // finished before the kill: nothing to resume
    if (runId === undefined) return; // killed before the run was created
    expect(first.signal).toBe("SIGKILL");
    // Kill the resume too on some moments, then resume again.
    let marker = "RESUME 1";
    const done1 = await succeededKeys(db, runId);
    appendFileSync(effects, marker + "\n");
    if (ms % 200 === 0) {
      await runCli(["--db", db, "resume", runId, "--json"], env, 250);
      for (const k of startsAfter(readFileSync(effects, "utf8"), marker)) {
        const [stage, visit, item] = k.split(":");
        expect(done1.has(`${STAGE_OF[stage!]}:${visit}:${item}`), `${k} ran again after it had completed`).toBe(false);
      }
      marker = "RESUME 2";
      appendFileSync(effects, marker + "\n");
    }
    const done = await succeededKeys(db, runId);
    const resumed = await runCli(["--db", db, "resume", runId, "--json"], env);
    expect(resumed.code, resumed.stderr).toBe(0);
    const result = JSON.parse(resumed.stdout);
    expect(result.status).toBe("succeeded");
    expect(result.output).toEqual({ sum: 217, flaky: 16, join: [217, 16] });
    for (const k of startsAfter(readFileSync(effects, "utf8"), marker)) {
      const [stage, visit, item] = k.split(":");
      expect(done.has(`${STAGE_OF[stage!]}:${visit}:${item}`), `${k} ran again after it had completed`).toBe(false);
    }
    // Every execution completed exactly once in the log.
    const store = SqliteStore.open(db);
    const { events } = await store.load(runId);
    await store.close();
    const succeeded = events.filter((e) => e.type === "stage_succeeded").map((e) => `${e.stage}:${e.visit}:${e.item ?? ""}`);
    expect(new Set(succeeded).size).toBe(succeeded.length);
  }, 30_000);

  it("Ctrl-C cancels the run cleanly (exit 130) and it stays resumable", async () => {
    const db = join(dir, "int.db");
    const effects = join(dir, "int.effects");
    writeFileSync(effects, "");
    const child = spawn(process.execPath, [CLI, "--db", db, "run", TEMPLATE, "--json"], { env: { ...process.env, BATON_EFFECTS: effects }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((res) => child.on("exit", (c) => res(c)));
    // Interrupt once the run is under way (its first stage has started).
    // (polled for up to 10 s: a loaded machine starts processes slowly)
    for (let i = 0; i < 500 && !readFileSync(effects, "utf8").includes("start"); i++) await new Promise((r) => setTimeout(r, 20));
    expect(readFileSync(effects, "utf8"), "the run's first stage never started").toContain("start");
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(JSON.parse(out).status).toBe("cancelled");
    const runId = (await onlyRun(db))!;
    const resumed = await runCli(["--db", db, "resume", runId, "--json"], { BATON_EFFECTS: effects });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout).output).toEqual({ sum: 217, flaky: 16, join: [217, 16] });
  }, 30_000);

  it("resume refuses a run another live process is executing", async () => {
    const db = join(dir, "lease.db");
    const effects = join(dir, "lease.effects");
    writeFileSync(effects, "");
    // A run that takes ~2 s (test/fixtures/cli/slow.yaml), so it is surely still going.
    const child = spawn(process.execPath, [CLI, "--db", db, "run", resolve("test/fixtures/cli/slow.yaml")], { env: { ...process.env, BATON_EFFECTS: effects }, stdio: "ignore" });
    let runId: string | undefined;
    for (let i = 0; i < 200 && !runId; i++) {
      await new Promise((r) => setTimeout(r, 50));
      runId = await onlyRun(db).catch(() => undefined);
    }
    expect(runId, "the run was never recorded").toBeDefined();
    const r = spawnSync(process.execPath, [CLI, "--db", db, "resume", runId!], { env: { ...process.env, BATON_EFFECTS: effects }, encoding: "utf8" });
    child.kill("SIGKILL");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/is being executed by another process/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  }, 30_000);
});
