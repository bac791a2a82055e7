/**
 * Waiting with deadlines on `baton worker`s (real PostgreSQL, a private Redis): a sleep is a
 * delayed wake job (it survives the workers being killed mid-sleep), an approval's timeout fires
 * with no process but the workers, and `baton signal --queue` hands a signal to them.
 * Fails (never skips) when PostgreSQL or redis-server is unavailable.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type OwnRedis } from "../helpers/redis.js";

const CLI = resolve("dist/cli/main.js");
const PG = process.env.BATON_TEST_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `waits_${process.pid}_${Date.now() % 100000}`;
const STORE = `${PG}?schema=${schema}`;
const children: ChildProcess[] = [];
let redis: OwnRedis;
let QUEUE = "";

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e.BATON_QUEUE;
  delete e.BATON_STORE;
  return e;
}

function baton(args: string[], timeout = 60_000): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, "--store", STORE, ...args], { encoding: "utf8", env: env(), timeout });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function worker(): ChildProcess {
  const c = spawn(process.execPath, [CLI, "--store", STORE, "worker", "--queue", QUEUE, "--lock-ms", "1500", "--sweep-ms", "500", "--concurrency", "4"], { env: env(), stdio: ["ignore", "ignore", "pipe"] });
  c.stderr!.resume();
  children.push(c);
  return c;
}

async function until<T>(f: () => T | undefined, what: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The run's trace JSON (status, stages, decisions). */
function trace(id: string): { status: string; output?: unknown; stages: { stage: string; status: string }[]; decisions: { stage: string; by?: string }[] } {
  const r = baton(["trace", id, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  const t = JSON.parse(r.stdout);
  return { ...t, status: t.run.status, output: t.run.output };
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  const ping = spawnSync("psql", [PG, "-Atc", "select 1"], { encoding: "utf8" });
  if (ping.stdout.trim() !== "1") throw new Error(`PostgreSQL is not reachable at ${PG}: start it (see .ci/run) — distributed tests need it (${ping.stderr.trim()})`);
  redis = await startRedis();
  QUEUE = redis.url;
  worker();
  worker();
}, 30_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await redis?.stop();
  spawnSync("psql", [PG, "-c", `drop schema if exists ${schema} cascade`]);
});

describe("waits on workers", () => {
  it("sleep: the wake-up is a delayed job in Redis; killing every worker mid-sleep and starting a new one still wakes it", async () => {
    const r = baton(["run", resolve("test/fixtures/distributed/sleep.yaml"), "--queue", QUEUE, "--detach", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const id = (JSON.parse(r.stdout) as { id: string }).id;
    await until(() => (trace(id).stages.find((s) => s.stage === "nap")?.status === "waiting" ? true : undefined), "the sleep to start");
    for (const c of children.splice(0)) c.kill("SIGKILL");
    expect(trace(id).status).not.toBe("succeeded");
    worker();
    const done = await until(() => { const t = trace(id); return t.status === "succeeded" ? t : undefined; }, "the run to finish after its sleep");
    expect(done.output).toMatchObject({ first: "before", nap: { woke_at: expect.any(String) } });
    expect(done.decisions.find((d) => d.stage === "nap")).toMatchObject({ by: "timer" });
    worker();
  }, 60_000);

  it("an approval's timeout fires on the workers alone (the run was paused); a late answer is refused", async () => {
    const r = baton(["run", resolve("test/fixtures/distributed/timeout.yaml"), "--queue", QUEUE, "--json"]);
    expect(r.code, r.stderr).toBe(3);
    const id = (JSON.parse(r.stdout) as { id: string }).id;
    const done = await until(() => { const t = trace(id); return t.status === "succeeded" ? t : undefined; }, "the timeout to approve the stage");
    expect(done.output).toMatchObject({ review: { approved: true, by: "timeout" } });
    const late = baton(["approve", id, "review", "--queue", QUEUE]);
    expect(late.code).not.toBe(0);
    expect(late.stderr).toContain("already succeeded");
  }, 60_000);

  it("baton signal --queue: the workers hand the signal to the waiting stage and finish the run", () => {
    const r = baton(["run", resolve("test/fixtures/cli/signal.yaml"), "--queue", QUEUE, "--json"]);
    expect(r.code, r.stderr).toBe(3);
    const id = (JSON.parse(r.stdout) as { id: string }).id;
    const s = baton(["signal", id, "review_done", "--data", '{"ok":true}', "--queue", QUEUE, "--json"]);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stderr).toContain("the workers continue it");
    expect(JSON.parse(s.stdout)).toMatchObject({ status: "succeeded", output: { draft: "v1", review: { ok: true } } });
  }, 60_000);
});
