/**
 * Distributed mode with real processes and a real Redis: workers share one store; a worker
 * SIGKILLed in the middle of a stage loses nothing — another worker finishes the run, no
 * completed stage runs again, no event is written twice.
 *
 * Every Redis here is started by this file (test/helpers/redis.ts: a private redis-server on a
 * free port, nothing on disk) and stopped by it; the machine's Redis is never touched, flushed
 * or stopped. Each test takes its own database index on the file's server (fresh, so nothing
 * to flush); the test that restarts Redis starts a server of its own. PostgreSQL is used through
 * a schema of this file's own, dropped at the end. A missing redis-server or an unreachable
 * PostgreSQL FAILS the tests that need them (never skips).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";
import { startRedis, type OwnRedis } from "../helpers/redis.js";

const CLI = resolve("dist/cli/main.js");
const TEMPLATE = resolve("test/fixtures/kill/kill.yaml");
const PG = process.env.BATON_TEST_POSTGRES || "postgres://postgres@127.0.0.1:5432/test";
const tag = `${process.pid}_${randomBytes(3).toString("hex")}`;
const dir = mkdtempSync(join(tmpdir(), "baton-dist-"));

/** The child processes' environment: no queue or store taken from the caller's shell. */
const ENV: NodeJS.ProcessEnv = { ...process.env };
delete ENV.BATON_QUEUE;
delete ENV.BATON_STORE;

/** This file's Redis, started once; every test awaits it, so a failure to start fails each test. */
let fileRedis: Promise<OwnRedis> | undefined;
/** Redis servers started by this file (stopped in afterAll). */
const servers: OwnRedis[] = [];
/** PostgreSQL schemas created by this file (dropped in afterAll). */
const schemas = new Set<string>();
/** Next database index on the file's server: each test has its own, so its jobs are its own. */
let nextDb = 0;

async function ownRedis(): Promise<OwnRedis> {
  fileRedis ??= startRedis().then((r) => (servers.push(r), r));
  return fileRedis;
}

/** A fresh queue URL for one test: a database of its own on the file's private Redis. */
async function freshQueue(): Promise<string> {
  const r = await ownRedis();
  if (nextDb > 15) throw new Error("this file ran out of Redis databases (16 per server): start another server with startRedis()");
  return `${r.url}/${nextDb++}`;
}

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

const children: ChildProcess[] = [];
const logs = new Map<ChildProcess, string>();
afterEach(async () => {
  // Workers a test left behind (it failed before stopping them) must not outlive it.
  await Promise.all(children.splice(0).map(kill9));
});
afterAll(async () => {
  await Promise.all(children.splice(0).map(kill9));
  for (const s of servers) await s.stop();
  if (schemas.size > 0) {
    const admin = new pg.Client({ connectionString: PG });
    await admin.connect();
    try {
      for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
    } finally {
      await admin.end();
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

async function kill9(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once("exit", r));
  c.kill("SIGKILL");
  await exited;
}

/** Stop a worker the way an operator does (SIGTERM) and wait for it to go. */
async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once("exit", r));
  c.kill("SIGTERM");
  await exited;
}

/** A `baton worker` on store `store` (`--db FILE` or `--store URL`) and queue `queue`. */
function worker(store: string[], queue: string, effects: string, extra: string[] = ["--concurrency", "4"]): ChildProcess {
  const c = spawn(process.execPath, [CLI, ...store, "worker", "--queue", queue, "--lock-ms", "1500", "--sweep-ms", "500", ...extra], {
    env: { ...ENV, BATON_EFFECTS: effects }, stdio: ["ignore", "ignore", "pipe"],
  });
  logs.set(c, "");
  c.stderr!.on("data", (d) => logs.set(c, logs.get(c) + String(d)));
  children.push(c);
  return c;
}

/** Poll `cond` until it holds; after `ms` fail saying what did not happen (`what` is read then). */
async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string | (() => string)): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === "string" ? what : what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The PostgreSQL server, or a failure saying it is unreachable (never a skip). */
async function needPostgres(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: PG, connectionTimeoutMillis: 5_000 });
  c.on("error", () => undefined);
  try {
    await c.connect();
    await c.query("SELECT 1");
  } catch (err) {
    await c.end().catch(() => undefined);
    throw new Error(
      `PostgreSQL is not reachable at ${PG.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@")} (${(err as Error).message}): ` +
        "this distributed test needs it. Start it (.ci/run does: 127.0.0.1:5432, database test) or point BATON_TEST_POSTGRES at a server.",
    );
  }
  return c;
}

describe("baton worker", () => {
  it("a run submitted with --queue completes on the workers with the same output as in one process", async () => {
    const queue = await freshQueue();
    const db = ["--db", join(dir, "ok.db")];
    const effects = join(dir, "ok.effects");
    writeFileSync(effects, "");
    const ws = [worker(db, queue, effects), worker(db, queue, effects)];
    const r = spawnSync(process.execPath, [CLI, ...db, "run", TEMPLATE, "--queue", queue, "--json"], { encoding: "utf8", env: { ...ENV, BATON_EFFECTS: effects }, timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "succeeded", output: { sum: 217, flaky: 16, join: [217, 16] } });
    await Promise.all(ws.map(stop));
  }, 40_000);

  it("SIGKILL a worker in the middle of a stage: another worker completes the run; nothing completed runs again", async () => {
    const queue = await freshQueue();
    const file = join(dir, "kill.db");
    const db = ["--db", file];
    const effects = join(dir, "kill.effects");
    writeFileSync(effects, "");
    const a = worker(db, queue, effects);
    const sub = spawnSync(process.execPath, [CLI, ...db, "run", TEMPLATE, "--queue", queue, "--detach", "--json"], { encoding: "utf8", env: { ...ENV, BATON_EFFECTS: effects } });
    expect(sub.status, sub.stderr).toBe(0);
    const id = JSON.parse(sub.stdout).id as string;
    // Kill A while an `each` item is running on it.
    await until(() => /start each:1:\d/.test(readFileSync(effects, "utf8")), 20_000, "worker A to start a for_each item");
    await kill9(a);
    const store = SqliteStore.open(file);
    try {
      const before = new Set((await store.load(id)).events.flatMap((e) => (e.type === "stage_succeeded" ? [`${e.stage}:${e.visit}:${e.item ?? ""}`] : [])));
      writeFileSync(effects, readFileSync(effects, "utf8") + "KILLED\n");
      const b = worker(db, queue, effects);
      let events = (await store.load(id)).events;
      const done = async (): Promise<boolean> => (events = (await store.load(id)).events).some((e) => e.type === "run_finished");
      await until(done, 30_000, "the run to finish after worker A died").catch((err: Error) => {
        throw new Error(`${err.message}; last events: ${events.slice(-6).map((e) => `${e.type} ${"stage" in e ? e.stage : ""}`).join(", ")}; worker B said: ${(logs.get(b) ?? "").slice(0, 1500)}`);
      });
      const finished = events.find((e) => e.type === "run_finished") as { status: string; output: unknown };
      expect(finished).toMatchObject({ status: "succeeded", output: { sum: 217, flaky: 16, join: [217, 16] } });
      const succeeded = events.flatMap((e) => (e.type === "stage_succeeded" ? [`${e.stage}:${e.visit}:${e.item ?? ""}`] : []));
      expect(new Set(succeeded).size).toBe(succeeded.length); // no duplicate events
      const after = readFileSync(effects, "utf8").split("KILLED\n")[1]!.split("\n").filter((l) => l.startsWith("start ")).map((l) => l.split(" ")[1]!);
      for (const k of after) {
        const [stage, visit, item] = k.split(":");
        expect(before.has(`${stage}:${visit}:${item}`), `${k} ran again after it had completed`).toBe(false);
      }
      await stop(b);
    } finally {
      await store.close();
    }
  }, 60_000);

  it("Redis restarted mid-run (losing every job): the workers reconnect and the run completes", async () => {
    // A server of this test's own: restarting the file's server would take the other tests' jobs with it.
    const own = await startRedis();
    servers.push(own);
    const file = join(dir, "redis.db");
    const db = ["--db", file];
    const effects = join(dir, "redis.effects");
    writeFileSync(effects, "");
    const w = worker(db, own.url, effects);
    const sub = spawnSync(process.execPath, [CLI, ...db, "run", resolve("test/fixtures/cli/slow.yaml"), "--queue", own.url, "--detach", "--json"], { encoding: "utf8", env: ENV });
    expect(sub.status, sub.stderr).toBe(0);
    const id = JSON.parse(sub.stdout).id as string;
    const store = SqliteStore.open(file);
    try {
      const started = async (stage: string) => (await store.load(id)).events.some((e) => e.type === "stage_started" && e.stage === stage);
      await until(() => started("wait"), 15_000, "stage 'wait' to start on the worker");
      // Restart it with nothing kept on disk: every queued job is gone.
      await own.restart();
      let finished: { status?: string; output?: unknown } | undefined;
      await until(async () => {
        finished = (await store.load(id)).events.find((e) => e.type === "run_finished") as typeof finished;
        return finished !== undefined;
      }, 30_000, () => `the run to finish after the Redis restart (worker said: ${(logs.get(w) ?? "").slice(0, 800)})`);
      expect(finished).toMatchObject({ status: "succeeded", output: 20 });
      await stop(w);
    } finally {
      await store.close();
      await own.stop();
    }
  }, 60_000);

  it("on PostgreSQL: every connection of the workers dropped mid-run — they reconnect and the run completes", async () => {
    const admin = await needPostgres();
    try {
      const queue = await freshQueue();
      const schema = `baton_dist_${tag}`;
      schemas.add(schema);
      // An application name of this test's own: only these connections are killed below.
      const app = `baton_dist_${tag}`;
      const store = ["--store", `${PG}${PG.includes("?") ? "&" : "?"}schema=${schema}&application_name=${app}`];
      const effects = join(dir, "pg.effects");
      writeFileSync(effects, "");
      const pgw = worker(store, queue, effects, []);
      const sub = spawnSync(process.execPath, [CLI, ...store, "run", resolve("test/fixtures/cli/slow.yaml"), "--queue", queue, "--detach", "--json"], { encoding: "utf8", env: ENV });
      expect(sub.status, sub.stderr).toBe(0);
      const id = JSON.parse(sub.stdout).id as string;
      // Wait until the second (1.5 s) stage has started: the run is in the middle of a stage.
      const startedStages = async (): Promise<number> =>
        (await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.events WHERE run_id = $1 AND type = 'stage_started'`, [id])).rows[0]?.n ?? 0;
      await until(async () => (await startedStages()) >= 2, 15_000, "the run's second stage to start on the worker");
      const killed = await admin.query<{ n: number }>(
        "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
        [app],
      );
      expect(killed.rows[0]?.n).toBeGreaterThan(0);
      const finished = async (): Promise<boolean> =>
        (await admin.query(`SELECT 1 FROM ${schema}.runs WHERE id = $1 AND status <> 'running'`, [id])).rowCount === 1;
      await until(finished, 30_000, () => `the run to finish after its connections were killed (worker said: ${(logs.get(pgw) ?? "").slice(0, 800)})`);
      const tr = spawnSync(process.execPath, [CLI, ...store, "trace", id, "--json"], { encoding: "utf8", env: ENV });
      expect(tr.status, tr.stderr).toBe(0);
      expect(JSON.parse(tr.stdout).run, logs.get(pgw)).toMatchObject({ status: "succeeded", output: 20 });
      await stop(pgw);
    } finally {
      await admin.end();
    }
  }, 60_000);

  it("a pool's concurrency holds across workers (Redis-side pools)", async () => {
    const queue = await freshQueue();
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
    try {
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
      const db = ["--db", join(dir, "pool.db")];
      const effects = join(dir, "pool.effects");
      writeFileSync(effects, "");
      const ws = [worker(db, queue, effects), worker(db, queue, effects)];
      // (spawn, not spawnSync: this process serves the HTTP calls while the run goes on)
      const child = spawn(process.execPath, [CLI, ...db, "run", tpl, "--queue", queue, "--json"], { stdio: ["ignore", "pipe", "pipe"], env: ENV });
      children.push(child);
      let out = "";
      let err = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (err += d));
      const code = await new Promise<number | null>((res) => child.on("exit", res));
      expect(code, err).toBe(0);
      expect(JSON.parse(out).output).toBe(6);
      expect(served).toBe(6);
      expect(peak).toBe(1);
      await Promise.all(ws.map(stop));
    } finally {
      server.close();
    }
  }, 40_000);
});
