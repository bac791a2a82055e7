/**
 * Durable tool loops for real (SPEC §8–9): `baton run` of a tool-using agent is SIGKILLed after a
 * model turn (the next one in flight) and during a tool call, then `baton resume`d. The fake
 * provider's request log and the tools' side-effect logs prove that no completed turn was sent
 * again and no completed tool call ran again; the in-flight one ran again with the same key.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeOpenAI, type FakeOpenAI, type FakeRequest } from "../../src/testing/index.js";
import { SqliteStore } from "../../src/store/sqlite.js";

const CLI = resolve("dist/cli/main.js");
const TEMPLATE = resolve("test/fixtures/tools/crash.yaml");
let fake: FakeOpenAI;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  fake = await startFakeOpenAI();
});
afterAll(async () => {
  await fake.close();
});

const toolMsgs = (r: FakeRequest): number => r.messages.filter((m) => m.role === "tool").length;

/** The script: turn 1 searches q1, turn 2 searches q2, turn 3 calls slow, turn 4 answers. */
function script(hangTurn3: boolean): void {
  fake.reset();
  if (hangTurn3) fake.addRule({ match: (r) => toolMsgs(r) === 2, reply: { hang: true }, times: 1 });
  fake.addRule({ match: (r) => toolMsgs(r) === 0, reply: { toolCalls: [{ id: "t1", name: "search", arguments: { query: "q1" } }] } });
  fake.addRule({ match: (r) => toolMsgs(r) === 1, reply: { toolCalls: [{ id: "t2", name: "search", arguments: { query: "q2" } }] } });
  fake.addRule({ match: (r) => toolMsgs(r) === 2, reply: { toolCalls: [{ id: "t3", name: "slow", arguments: { ms: 60000 } }] } });
  fake.addRule({ match: (r) => toolMsgs(r) === 3, reply: { content: "tides: done" } });
}

function cli(args: string[], env: Record<string, string>, killWhen?: () => boolean): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, OPENAI_API_KEY: "sk-test", FAKE_URL: fake.url, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const poll = killWhen ? setInterval(() => { if (killWhen()) child.kill("SIGKILL"); }, 5) : undefined;
    child.on("exit", (code, signal) => {
      if (poll) clearInterval(poll);
      res({ code, signal, stdout, stderr });
    });
  });
}

const lines = (f: string): string[] => (existsSync(f) ? readFileSync(f, "utf8").trim().split("\n").filter(Boolean) : []);

async function runId(db: string): Promise<string> {
  const s = SqliteStore.open(db);
  try {
    return (await s.list())[0]!.id;
  } finally {
    await s.close();
  }
}

describe("tool loops survive kill -9", () => {
  it("killed while turn 3 is in flight: resume sends turn 3 again, never turns 1–2, and runs no completed call again", async () => {
    const dir = mkdtempSync(join(tmpdir(), "baton-toolkill-"));
    const db = join(dir, "baton.db");
    script(true);
    const env = { BATON_DB: db, COUNTER_DIR: dir, SLOW_MS: "1" };
    const killed = await cli(["run", TEMPLATE], env, () => fake.requests.some((r) => toolMsgs(r) === 2));
    expect(killed.signal).toBe("SIGKILL");
    expect(lines(join(dir, "search.log"))).toHaveLength(2);
    const id = await runId(db);
    const resumed = await cli(["resume", id, "--json"], env);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ status: "succeeded", output: "tides: done" });
    const byTurn = [0, 1, 2, 3].map((k) => fake.requests.filter((r) => toolMsgs(r) === k).length);
    expect(byTurn).toEqual([1, 1, 2, 1]); // turn 3 was in flight: sent again; the others once
    expect(lines(join(dir, "search.log"))).toHaveLength(2); // completed calls never ran again
    expect(lines(join(dir, "slow.log"))).toHaveLength(1);
  });

  it("killed during a tool call: resume runs that call again with the same idempotency key, and no turn again", async () => {
    const dir = mkdtempSync(join(tmpdir(), "baton-toolkill-"));
    const db = join(dir, "baton.db");
    script(false);
    const killed = await cli(["run", TEMPLATE], { BATON_DB: db, COUNTER_DIR: dir }, () => lines(join(dir, "slow.log")).length > 0);
    expect(killed.signal).toBe("SIGKILL");
    const id = await runId(db);
    const resumed = await cli(["resume", id, "--json"], { BATON_DB: db, COUNTER_DIR: dir, SLOW_MS: "1" });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ status: "succeeded", output: "tides: done" });
    expect([0, 1, 2, 3].map((k) => fake.requests.filter((r) => toolMsgs(r) === k).length)).toEqual([1, 1, 1, 1]);
    expect(lines(join(dir, "search.log"))).toHaveLength(2);
    const slow = lines(join(dir, "slow.log"));
    expect(slow).toHaveLength(2); // in flight when killed: at-least-once
    expect(slow[0]).toBe(slow[1]); // the same idempotency key both times
    expect(slow[0]).toMatch(/:call:t3$/);
  });
});
