/**
 * Distributed mode with real processes and the real Redis: workers share one store; a worker
 * SIGKILLed in the middle of a stage loses nothing — another worker finishes the run, no
 * completed stage runs again, no event is written twice. Fails (never skips) without Redis.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";

const CLI = resolve("dist/cli/main.js");
const TEMPLATE = resolve("test/fixtures/kill/kill.yaml");
const REDIS_BASE = process.env.BATON_TEST_REDIS ?? "redis://127.0.0.1:6379";
/** Each test gets its own Redis database, so workers of one test never take another's jobs. */
let dbIndex = 3;
let REDIS = `${REDIS_BASE}/${dbIndex}`;
const dir = mkdtempSync(join(tmpdir(), "baton-dist-"));
const children: ChildProcess[] = [];

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  const ping = spawnSync("redis-cli", ["-u", REDIS, "ping"], { encoding: "utf8" });
  if (ping.stdout.trim() !== "PONG") throw new Error(`Redis is not reachable at ${REDIS}: start it (see .ci/run) — distributed tests need it`);
});
beforeEach(() => {
  REDIS = `${REDIS_BASE}/${dbIndex++}`;
  spawnSync("redis-cli", ["-u", REDIS, "flushdb"]);
});
afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
});

const logs = new Map<ChildProcess, string>();
function worker(db: string, effects: string): ChildProcess {
  const c = spawn(process.execPath, [CLI, "--db", db, "worker", "--queue", REDIS, "--lock-ms", "1500", "--sweep-ms", "500", "--concurrency", "4"], {
    env: { ...process.env, BATON_EFFECTS: effects }, stdio: ["ignore", "ignore", "pipe"],
  });
  logs.set(c, "");
  c.stderr!.on("data", (d) => logs.set(c, logs.get(c) + String(d)));
  children.push(c);
  return c;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("baton worker", () => {
  it("a run submitted with --queue completes on the workers with the same output as in one process", async () => {
    const db = join(dir, "ok.db");
    const effects = join(dir, "ok.effects");
    writeFileSync(effects, "");
    const ws = [worker(db, effects), worker(db, effects)];
    const r = spawnSync(process.execPath, [CLI, "--db", db, "run", TEMPLATE, "--queue", REDIS, "--json"], { encoding: "utf8", env: { ...process.env, BATON_EFFECTS: effects }, timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "succeeded", output: { sum: 217, flaky: 16, join: [217, 16] } });
    for (const w of ws) w.kill("SIGTERM");
  }, 40_000);

  it("SIGKILL a worker in the middle of a stage: another worker completes the run; nothing completed runs again", async () => {
    const db = join(dir, "kill.db");
    const effects = join(dir, "kill.effects");
    writeFileSync(effects, "");
    const a = worker(db, effects);
    const sub = spawnSync(process.execPath, [CLI, "--db", db, "run", TEMPLATE, "--queue", REDIS, "--detach", "--json"], { encoding: "utf8", env: { ...process.env, BATON_EFFECTS: effects } });
    expect(sub.status, sub.stderr).toBe(0);
    const id = JSON.parse(sub.stdout).id as string;
    // Kill A while an `each` item is running on it.
    await until(() => /start each:1:\d/.test(readFileSync(effects, "utf8")), 20_000, "worker A to start a for_each item");
    a.kill("SIGKILL");
    await new Promise((r) => a.on("exit", r));
    const store = SqliteStore.open(db);
    const before = new Set((await store.load(id)).events.flatMap((e) => (e.type === "stage_succeeded" ? [`${e.stage}:${e.visit}:${e.item ?? ""}`] : [])));
    writeFileSync(effects, readFileSync(effects, "utf8") + "KILLED\n");
    const b = worker(db, effects);
    let events = (await store.load(id)).events;
    for (let i = 0; i < 1200 && !events.some((e) => e.type === "run_finished"); i++) {
      await new Promise((r) => setTimeout(r, 25));
      events = (await store.load(id)).events;
    }
    if (!events.some((e) => e.type === "run_finished")) {
      throw new Error(`run did not finish after worker A died; last events: ${events.slice(-6).map((e) => `${e.type} ${"stage" in e ? e.stage : ""}`).join(", ")}; worker B said: ${(logs.get(b) ?? "").slice(0, 1500)}`);
    }
    const finished = events.find((e) => e.type === "run_finished") as { status: string; output: unknown };
    expect(finished).toMatchObject({ status: "succeeded", output: { sum: 217, flaky: 16, join: [217, 16] } });
    const succeeded = events.flatMap((e) => (e.type === "stage_succeeded" ? [`${e.stage}:${e.visit}:${e.item ?? ""}`] : []));
    expect(new Set(succeeded).size).toBe(succeeded.length); // no duplicate events
    const after = readFileSync(effects, "utf8").split("KILLED\n")[1]!.split("\n").filter((l) => l.startsWith("start ")).map((l) => l.split(" ")[1]!);
    for (const k of after) {
      const [stage, visit, item] = k.split(":");
      expect(before.has(`${stage}:${visit}:${item}`), `${k} ran again after it had completed`).toBe(false);
    }
    b.kill("SIGTERM");
    await store.close();
  }, 60_000);

  it("Redis restarted mid-run (losing every job): the workers reconnect and the run completes", async () => {
    const db = join(dir, "redis.db");
    const effects = join(dir, "redis.effects");
    writeFileSync(effects, "");
    const w = worker(db, effects);
    const sub = spawnSync(process.execPath, [CLI, "--db", db, "run", resolve("test/fixtures/cli/slow.yaml"), "--queue", REDIS, "--detach", "--json"], { encoding: "utf8" });
    expect(sub.status, sub.stderr).toBe(0);
    const id = JSON.parse(sub.stdout).id as string;
    const store = SqliteStore.open(db);
    const started = async (stage: string) => (await store.load(id)).events.some((e) => e.type === "stage_started" && e.stage === stage);
    for (let i = 0; i < 200 && !(await started("wait")); i++) await new Promise((r) => setTimeout(r, 25));
    // Restart Redis the way CI starts it: nothing is kept on disk, so every queued job is gone.
    spawnSync("redis-cli", ["-p", "6379", "shutdown", "nosave"]);
    await new Promise((r) => setTimeout(r, 300));
    const up = spawnSync("redis-server", ["--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"], { encoding: "utf8" });
    expect(up.status, up.stderr).toBe(0);
    let finished: { status?: string; output?: unknown } | undefined;
    for (let i = 0; i < 300 && !finished; i++) {
      await new Promise((r) => setTimeout(r, 50));
      finished = (await store.load(id)).events.find((e) => e.type === "run_finished") as typeof finished;
    }
    expect(finished).toMatchObject({ status: "succeeded", output: 20 });
    w.kill("SIGTERM");
    await store.close();
  }, 60_000);

  it("on PostgreSQL: every connection of the workers dropped mid-run — they reconnect and the run completes", async () => {
    const schema = `dist_${process.pid}_${Date.now() % 100000}`;
    const PG = process.env.BATON_TEST_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/test";
    const store = `${PG}?schema=${schema}&application_name=baton-dist-test`;
    const effects = join(dir, "pg.effects");
    writeFileSync(effects, "");
    const pgw = spawn(process.execPath, [CLI, "--store", store, "worker", "--queue", REDIS, "--lock-ms", "1500", "--sweep-ms", "500"], { env: { ...process.env, BATON_EFFECTS: effects }, stdio: ["ignore", "ignore", "pipe"] });
    children.push(pgw);
    let wlog = "";
    pgw.stderr!.on("data", (d) => (wlog += d));
    const sub = spawnSync(process.execPath, [CLI, "--store", store, "run", resolve("test/fixtures/cli/slow.yaml"), "--queue", REDIS, "--detach", "--json"], { encoding: "utf8" });
    expect(sub.status, sub.stderr).toBe(0);
    const id = JSON.parse(sub.stdout).id as string;
    await until(() => readFileSync(effects, "utf8").length > 0 || true, 100, "start");
    await new Promise((r) => setTimeout(r, 700)); // the long stage is running
    const kill = spawnSync("psql", [PG, "-Atc", "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = 'baton-dist-test'"], { encoding: "utf8" });
    expect(kill.status, kill.stderr).toBe(0);
    expect(Number(kill.stdout.trim())).toBeGreaterThan(0);
    let out = "";
    for (let i = 0; i < 300; i++) {
      const r = spawnSync(process.execPath, [CLI, "--store", store, "runs", "--json"], { encoding: "utf8" });
      out = r.stdout;
      if (r.status === 0 && JSON.parse(out).some((x: { id: string; status: string }) => x.id === id && x.status !== "running")) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const t = JSON.parse(spawnSync(process.execPath, [CLI, "--store", store, "trace", id, "--json"], { encoding: "utf8" }).stdout);
    expect(t.run, wlog).toMatchObject({ status: "succeeded", output: 20 });
    pgw.kill("SIGTERM");
    spawnSync("psql", [PG, "-c", `drop schema if exists ${schema} cascade`]);
  }, 60_000);

  it("a pool's concurrency holds across workers (Redis-side pools)", async () => {
    let now = 0;
    let peak = 0;
    let served = 0;
    const server = createServer((req, res) => {
      now++;
      peak = Math.max(peak, now);
      setTimeout(() => {
        now--;
        served++;
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ ok: true }));
      }, 120);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const tpl = join(dir, "pooled.yaml");
    writeFileSync(tpl, `baton: 1
name: pooled
limits: { svc: { concurrency: 1 } }
stages:
  calls:
    for_each: "[1, 2, 3, 4, 5, 6]"
    concurrency: 6
    limit: svc
    http: { url: "http://127.0.0.1:${port}/work", method: GET }
output: "$count(calls)"
`);
    const db = join(dir, "pool.db");
    const effects = join(dir, "pool.effects");
    writeFileSync(effects, "");
    const ws = [worker(db, effects), worker(db, effects)];
    // (spawn, not spawnSync: this process serves the HTTP calls while the run goes on)
    const child = spawn(process.execPath, [CLI, "--db", db, "run", tpl, "--queue", REDIS, "--json"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const code = await new Promise<number | null>((res) => child.on("exit", res));
    expect(code).toBe(0);
    expect(JSON.parse(out).output).toBe(6);
    expect(served).toBe(6);
    expect(peak).toBe(1);
    for (const w of ws) w.kill("SIGTERM");
    server.close();
  }, 40_000);
});
