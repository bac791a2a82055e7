/**
 * Tool-using agents on `baton worker`s (SPEC §6, §8–9), real PostgreSQL and a private Redis:
 * the loop runs on the workers with its turns and calls recorded; a call waiting for approval
 * is answered with `baton approve --call`; a worker killed during a tool call loses nothing
 * completed — another worker re-runs only the call in flight, with the same idempotency key.
 * Fails (never skips) when PostgreSQL or redis-server is unavailable.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startRedis, type OwnRedis } from "../helpers/redis.js";
import { startFakeOpenAI, type FakeOpenAI, type FakeRequest } from "../../src/testing/index.js";

const CLI = resolve("dist/cli/main.js");
const PG = process.env.BATON_TEST_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `tools_${process.pid}_${Date.now() % 100000}`;
const STORE = `${PG}?schema=${schema}`;
const CRASH = resolve("test/fixtures/tools/crash.yaml");
const APPROVE = resolve("test/fixtures/tools/approve.yaml");
const PIPE = resolve("test/fixtures/tools/pipeline-tool.yaml");
const dir = mkdtempSync(join(tmpdir(), "baton-dtools-"));
const gate = join(dir, "gate");
const children: ChildProcess[] = [];
let redis: OwnRedis;
let fake: FakeOpenAI;

const toolMsgs = (r: FakeRequest): number => r.messages.filter((m) => m.role === "tool").length;
const lines = (f: string): string[] => (existsSync(f) ? readFileSync(f, "utf8").trim().split("\n").filter(Boolean) : []);

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, OPENAI_API_KEY: "sk-test", FAKE_URL: fake.url, COUNTER_DIR: dir, SLOW_UNTIL_FILE: gate };
  delete e.BATON_QUEUE;
  delete e.BATON_STORE;
  delete e.SLOW_MS;
  return e;
}

function baton(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const c = spawn(process.execPath, [CLI, "--store", STORE, ...args], { env: env(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("exit", (code) => res({ code, stdout, stderr }));
  });
}

function worker(): ChildProcess {
  const c = spawn(process.execPath, [CLI, "--store", STORE, "worker", "--queue", redis.url, "--lock-ms", "4000", "--sweep-ms", "500", "--concurrency", "4"], { env: env(), stdio: ["ignore", "ignore", "pipe"] });
  c.stderr!.on("data", () => undefined);
  children.push(c);
  return c;
}

async function until<T>(f: () => T | undefined, what: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  const ping = spawnSync("psql", [PG, "-Atc", "select 1"], { encoding: "utf8" });
  if (ping.stdout.trim() !== "1") throw new Error(`PostgreSQL is not reachable at ${PG}: start it (see .ci/run) — distributed tests need it (${ping.stderr.trim()})`);
  redis = await startRedis();
  fake = await startFakeOpenAI();
  worker();
  worker();
}, 30_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await redis?.stop();
  await fake?.close();
  spawnSync("psql", [PG, "-c", `drop schema if exists ${schema} cascade`]);
});

beforeEach(() => {
  fake.reset();
  for (const f of ["search.log", "slow.log", "slow.pid", "search.pid"]) writeFileSync(join(dir, f), "");
});

describe("tool-using agents on workers", () => {
  it("a worker killed during a tool call: another worker re-runs only that call (same key); no turn is sent twice", async () => {
    fake.addRule({ match: (r) => toolMsgs(r) === 0, reply: { toolCalls: [{ id: "t1", name: "search", arguments: { query: "q1" } }] } });
    fake.addRule({ match: (r) => toolMsgs(r) === 1, reply: { toolCalls: [{ id: "t2", name: "search", arguments: { query: "q2" } }] } });
    fake.addRule({ match: (r) => toolMsgs(r) === 2, reply: { toolCalls: [{ id: "t3", name: "slow", arguments: {} }] } });
    fake.addRule({ match: (r) => toolMsgs(r) === 3, reply: { content: "tides: done" } });
    const r = await baton(["run", CRASH, "--queue", redis.url, "--detach", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const id = JSON.parse(r.stdout).id as string;
    const pid = Number(await until(() => lines(join(dir, "slow.pid"))[0], "the slow call to start"));
    const victim = children.find((c) => c.pid === pid)!;
    expect(victim).toBeDefined();
    victim.kill("SIGKILL");
    worker(); // keep two
    // The survivor takes the stalled attempt over and re-runs the call; let it finish now.
    await until(() => (lines(join(dir, "slow.log")).length >= 2 ? true : undefined), "the call to run again elsewhere");
    writeFileSync(gate, "");
    const done = await until(() => {
      const t = spawnSync(process.execPath, [CLI, "--store", STORE, "trace", id, "--json"], { encoding: "utf8", env: env() });
      const j = JSON.parse(t.stdout) as { run: { status: string; output?: unknown } };
      return j.run.status === "succeeded" ? j : undefined;
    }, "the run to finish", 60_000);
    expect(done.run.output).toBe("tides: done");
    expect([0, 1, 2, 3].map((k) => fake.requests.filter((q) => toolMsgs(q) === k).length)).toEqual([1, 1, 1, 1]);
    expect(lines(join(dir, "search.log"))).toHaveLength(2);
    const slow = lines(join(dir, "slow.log"));
    expect(slow).toHaveLength(2);
    expect(slow[0]).toBe(slow[1]);
  }, 90_000);

  it("approval on workers: the run waits for the call; approve --call hands the answer over and the loop finishes", async () => {
    fake.addRule({ match: (r) => toolMsgs(r) === 0, reply: { toolCalls: [{ id: "p1", name: "publish", arguments: { title: "Tides" } }, { id: "s1", name: "search", arguments: { query: "q" } }] } });
    fake.addRule({ match: (r) => toolMsgs(r) === 2, reply: { content: "published" } });
    const r = await baton(["run", APPROVE, "--queue", redis.url, "--json"]);
    expect(r.code, r.stderr).toBe(3);
    const id = JSON.parse(r.stdout).id as string;
    const wrong = await baton(["approve", id, "report", "--call", "nope", "--queue", redis.url]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/no tool call 'nope' waiting for approval \(waiting: p1\)/);
    const a = await baton(["approve", id, "report", "--call", "p1", "--queue", redis.url, "--json"]);
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout)).toMatchObject({ status: "succeeded", output: "published" });
    expect(fake.requests).toHaveLength(2);
    expect(lines(join(dir, "search.log"))).toHaveLength(1);
    const tool = new Map(fake.requests[1]!.messages.filter((m) => m.role === "tool").map((m) => [m.toolCallId, m.content]));
    expect(JSON.parse(tool.get("p1")!)).toEqual({ published: "Tides" });
  }, 90_000);

  it("pipeline: tools on workers: each call's child run runs on the workers; the parent's loop resumes from its recorded turn", async () => {
    fake.addRule({ match: (r) => toolMsgs(r) === 0, reply: { toolCalls: [{ id: "p1", name: "child", arguments: { n: 2 } }, { id: "p2", name: "child", arguments: { n: 5 } }, { id: "s1", name: "search", arguments: { query: "q" } }] } });
    fake.addRule({ match: (r) => toolMsgs(r) === 3, reply: { content: "children done" } });
    const r = await baton(["run", PIPE, "--queue", redis.url, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "succeeded", output: "children done" });
    expect(fake.requests).toHaveLength(2); // turn 1 was never sent again while the children ran
    expect(lines(join(dir, "search.log"))).toHaveLength(1);
    const res = new Map(fake.requests[1]!.messages.filter((m) => m.role === "tool").map((m) => [m.toolCallId, m.content]));
    expect(JSON.parse(res.get("p1")!)).toEqual({ doubled: 4, slow: 5 });
    expect(JSON.parse(res.get("p2")!)).toEqual({ doubled: 10, slow: 11 });
  }, 90_000);
});
