/**
 * Distributed parity (issue 10 item 3): every stage kind, routes, for_each, cancel and `rerun
 * --from` work in `baton worker`s, on real PostgreSQL and a private Redis, through the same CLI
 * commands a user types — and a command against a shared store hands the run to the workers
 * instead of executing it in its own process (a stage never runs twice at once).
 * Fails (never skips) when PostgreSQL or redis-server is unavailable.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type OwnRedis } from "../helpers/redis.js";

const CLI = resolve("dist/cli/main.js");
const PG = process.env.BATON_TEST_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `parity_${process.pid}_${Date.now() % 100000}`;
const STORE = `${PG}?schema=${schema}`;
/** A second deployment on the same Redis (its own prefix) has its own store too. */
const STORE_B = `${PG}?schema=${schema}_b`;
const dir = mkdtempSync(join(tmpdir(), "baton-parity-"));
const children: ChildProcess[] = [];
let redis: OwnRedis;
let QUEUE = "";
const effects = join(dir, "effects.log");

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, BATON_EFFECTS: effects };
  delete e.BATON_QUEUE;
  delete e.BATON_STORE;
  return e;
}

function baton(args: string[], timeout = 60_000): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, "--store", STORE, ...args], { encoding: "utf8", env: env(), timeout });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function worker(extra: string[] = [], cwd?: string): ChildProcess {
  const c = spawn(process.execPath, [CLI, "--store", STORE, "worker", "--queue", QUEUE, "--lock-ms", "1500", "--sweep-ms", "500", "--concurrency", "4", ...extra], { env: env(), stdio: ["ignore", "ignore", "pipe"], ...(cwd ? { cwd } : {}) });
  let log = "";
  c.stderr!.on("data", (d) => (log += d));
  (c as ChildProcess & { log: () => string }).log = () => log;
  children.push(c);
  return c;
}

const TPL = {
  approve: resolve("test/fixtures/distributed/approve.yaml"),
  parent: resolve("test/fixtures/pipeline/parent.yaml"),
  slow: resolve("test/fixtures/cli/slow.yaml"),
};

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  const ping = spawnSync("psql", [PG, "-Atc", "select 1"], { encoding: "utf8" });
  if (ping.stdout.trim() !== "1") throw new Error(`PostgreSQL is not reachable at ${PG}: start it (see .ci/run) — distributed tests need it (${ping.stderr.trim()})`);
  redis = await startRedis();
  QUEUE = redis.url;
  writeFileSync(effects, "");
  worker();
  worker();
}, 30_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await redis?.stop();
  spawnSync("psql", [PG, "-c", `drop schema if exists ${schema} cascade`]);
  spawnSync("psql", [PG, "-c", `drop schema if exists ${schema}_b cascade`]);
});

async function until<T>(f: () => T | undefined, what: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function trace(id: string): { run: { status: string; output?: unknown; pipeline: string }; stages: { stage: string; status: string; attempts: unknown[] }[] } {
  const t = baton(["trace", id, "--json"]);
  expect(t.code, t.stderr).toBe(0);
  return JSON.parse(t.stdout);
}

describe("distributed parity (PostgreSQL + Redis, real workers)", () => {
  it("pipeline: stages (one and for_each) run their child runs on the workers", () => {
    const r = baton(["run", TPL.parent, "--queue", QUEUE, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ status: "succeeded", output: { sub: { doubled: 40, slow: 41 }, each: [2, 4] } });
    // The children are ordinary runs in the same store, linked to the parent.
    const runs = JSON.parse(baton(["runs", "--json", "--limit", "20"]).stdout) as { id: string; status: string }[];
    const kids = runs.filter((x) => x.id.startsWith(`${out.id}~`));
    expect(kids.map((k) => k.status).sort()).toEqual(["succeeded", "succeeded", "succeeded"]);
  }, 90_000);

  it("approval: the run waits (exit 3); `baton approve` hands the answer to the workers, which finish the run", () => {
    const r = baton(["run", TPL.approve, "--queue", QUEUE, "--json"]);
    expect(r.code, r.stderr).toBe(3);
    const id = JSON.parse(r.stdout).id as string;
    const a = baton(["approve", id, "review", "--data", '{"ok":true}', "--queue", QUEUE, "--json"]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stderr).toContain("the workers continue it");
    const t = trace(id);
    expect(t.run).toMatchObject({ status: "succeeded", output: { text: "v1", review: { ok: true } } });
  }, 90_000);

  it("cancel: `baton cancel` of a run on the workers aborts the running stage on its worker (its AbortSignal fires)", async () => {
    const tpl = join(dir, "long.yaml");
    writeFileSync(tpl, readFileSync(TPL.slow, "utf8").replace("ms: 1500", "ms: 60000").replaceAll("./slow.mjs", resolve("test/fixtures/cli/slow.mjs")));
    const r = baton(["run", tpl, "--queue", QUEUE, "--detach", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const id = JSON.parse(r.stdout).id as string;
    // Wait until the minute-long stage is running on a worker.
    await until(() => (JSON.parse(baton(["trace", id, "--json"]).stdout).stages as { stage: string; status: string }[]).find((s) => s.stage === "wait" && s.status === "running") ? true : undefined, "stage 'wait' to run");
    const c = baton(["cancel", id, "--queue", QUEUE]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout.trim()).toBe(`run ${id} cancelled`);
    const t = trace(id);
    expect(t.run.status).toBe("cancelled");
    const wait = t.stages.find((s) => s.stage === "wait")!;
    expect(wait.status).toBe("cancelled");
    // `last` never ran: the stage was cut short, not left to finish.
    expect(t.stages.some((s) => s.stage === "last" && s.status === "succeeded")).toBe(false);
    // The abort ended the handler at once: the stage's attempt is over long before its minute.
    expect((wait.attempts as { status: string }[]).at(-1)?.status).toBe("cancelled");
  }, 90_000);

  it("rerun --from on the workers reuses upstream outputs and runs the rest there", () => {
    const r = baton(["run", TPL.slow, "--queue", QUEUE, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const id = JSON.parse(r.stdout).id as string;
    const f = baton(["rerun", id, "--from", "last", "--queue", QUEUE, "--json"]);
    expect(f.code, f.stderr).toBe(0);
    expect(f.stderr).toMatch(/on the workers: reusing first, wait/);
    const forked = JSON.parse(f.stdout);
    expect(forked).toMatchObject({ status: "succeeded", output: 20 });
    const t = trace(forked.id);
    expect(t.stages.filter((s) => s.stage === "first" || s.stage === "wait").every((s) => s.attempts.length === 0)).toBe(true);
  }, 90_000);

  it("routes back and for_each with on_error: continue behave as in one process", () => {
    const mod = join(dir, "flaky.mjs");
    writeFileSync(mod, `export function check(ctx) { if (ctx.item === 2) throw Object.assign(new Error("bad item"), { retryable: false }); return ctx.item * 10; }\n`);
    const tpl = join(dir, "routes.yaml");
    writeFileSync(tpl, `baton: 1
name: routes-dist
stages:
  draft: { value: "visit" }
  each:
    for_each: "[1, 2, 3]"
    needs: [draft]
    on_error: continue
    run: ./flaky.mjs#check
  verify:
    value: "$count(each[$ != null])"
    routes:
      - when: "draft < 2"
        goto: draft
        max: 3
output: "{ 'draft': draft, 'each': each, 'verify': verify }"
`);
    const embedded = spawnSync(process.execPath, [CLI, "--db", join(dir, "emb.db"), "run", tpl, "--json"], { encoding: "utf8", env: env() });
    expect(embedded.status, embedded.stderr).toBe(0);
    const r = baton(["run", tpl, "--queue", QUEUE, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).output).toEqual(JSON.parse(embedded.stdout).output);
    expect(JSON.parse(r.stdout).output).toEqual({ draft: 2, each: [10, null, 30], verify: 2 });
  }, 90_000);

  it("a command against the shared store with workers never runs the stages itself: each stage runs once", () => {
    writeFileSync(effects, "");
    const r = baton(["run", resolve("test/fixtures/kill/kill.yaml"), "--queue", QUEUE, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const starts = readFileSync(effects, "utf8").split("\n").filter((l) => l.startsWith("start ")); // "start KEY ATTEMPT"
    expect(starts.length).toBeGreaterThan(0);
    expect(new Set(starts).size).toBe(starts.length);
  }, 90_000);

  it("`baton run` against the shared store without a queue runs the run in its own process under a lease: the workers' sweep leaves it alone (each stage once)", () => {
    writeFileSync(effects, "");
    const r = baton(["run", resolve("test/fixtures/kill/kill.yaml"), "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "succeeded", output: { sum: 217, flaky: 16, join: [217, 16] } });
    const starts = readFileSync(effects, "utf8").split("\n").filter((l) => l.startsWith("start "));
    expect(starts.length).toBeGreaterThan(0);
    expect(new Set(starts).size).toBe(starts.length);
  }, 90_000);

  it("two deployments on one Redis (different --queue-prefix) never take each other's jobs", async () => {
    const other = worker(["--concurrency", "2"]);
    const mine = spawn(process.execPath, [CLI, "--store", STORE_B, "--queue-prefix", "team_b", "worker", "--queue", QUEUE, "--lock-ms", "1500", "--sweep-ms", "500"], { env: env(), stdio: ["ignore", "ignore", "pipe"] });
    children.push(mine);
    const tpl = join(dir, "whoami.yaml");
    writeFileSync(join(dir, "whoami.mjs"), "export function pid() { return process.pid; }\n");
    writeFileSync(tpl, "baton: 1\nname: whoami\nstages:\n  who: { run: ./whoami.mjs#pid }\noutput: who\n");
    const r = spawnSync(process.execPath, [CLI, "--store", STORE_B, "--queue-prefix", "team_b", "run", tpl, "--queue", QUEUE, "--json"], { encoding: "utf8", env: env(), timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).output).toBe(mine.pid);
    mine.kill("SIGTERM");
    other.kill("SIGTERM");
  }, 90_000);

  it("a template is recorded relative to the project root: a worker whose copy of the code lives at another path runs it", () => {
    const a = mkdtempSync(join(tmpdir(), "baton-root-a-"));
    const b = mkdtempSync(join(tmpdir(), "baton-root-b-"));
    for (const root of [a, b]) {
      spawnSync("mkdir", ["-p", join(root, "flows")]);
      // The same code on both machines (code pinning refuses a run whose modules differ), found at another path.
      writeFileSync(join(root, "flows", "where.mjs"), `export function where() { return import.meta.url.includes("baton-root-b-") ? "b" : "a"; }\n`);
      writeFileSync(join(root, "flows", "where.yaml"), "baton: 1\nname: where\nstages:\n  here: { run: ./where.mjs#where }\noutput: here\n");
    }
    const sub = spawnSync(process.execPath, [CLI, "--store", STORE_B, "--queue-prefix", "machine_b", "run", "flows/where.yaml", "--queue", QUEUE, "--detach", "--json"], { encoding: "utf8", env: env(), cwd: a });
    expect(sub.status, sub.stderr).toBe(0);
    const id = JSON.parse(sub.stdout).id as string;
    spawnSync("rm", ["-rf", a]); // machine B has no /…/a
    // Only a worker on "machine B" (cwd b, where a does not exist) takes this deployment's jobs.
    const wb = spawn(process.execPath, [CLI, "--store", STORE_B, "--queue-prefix", "machine_b", "worker", "--queue", QUEUE, "--lock-ms", "1500", "--sweep-ms", "500"], { env: env(), stdio: ["ignore", "ignore", "pipe"], cwd: b });
    children.push(wb);
    const t = spawnSync(process.execPath, [CLI, "--store", STORE_B, "trace", id, "--json"], { encoding: "utf8", env: env() });
    const first = JSON.parse(spawnSync("psql", [PG, "-Atc", `select data from ${schema}_b.events where run_id = '${id}' and seq = 1`], { encoding: "utf8" }).stdout);
    expect(first.source).toMatchObject({ file: "flows/where.yaml" });
    expect(t.status).toBe(0);
    const f = spawnSync(process.execPath, [CLI, "--store", STORE_B, "--queue-prefix", "machine_b", "resume", id, "--queue", QUEUE, "--json"], { encoding: "utf8", env: env(), cwd: b, timeout: 60_000 });
    expect(f.status, f.stderr + f.stdout + JSON.stringify(JSON.parse(spawnSync(process.execPath, [CLI, "--store", STORE_B, "trace", id, "--json"], { encoding: "utf8", env: env() }).stdout).errors)).toBe(0);
    expect(JSON.parse(f.stdout)).toMatchObject({ status: "succeeded", output: "b" });
    wb.kill("SIGTERM");
  }, 90_000);

  it("pool limits in the workers' baton.config.yaml win over the template's: one call at a time across workers", async () => {
    const root = mkdtempSync(join(tmpdir(), "baton-cfg-"));
    writeFileSync(join(root, "baton.config.yaml"), "limits:\n  svc: { concurrency: 1 }\n");
    const log = join(root, "calls.log");
    writeFileSync(join(root, "call.mjs"), `import { appendFileSync } from "node:fs";
export async function call(ctx) {
  appendFileSync(${JSON.stringify(log)}, "start " + Date.now() + "\\n");
  await new Promise((r) => setTimeout(r, 150));
  appendFileSync(${JSON.stringify(log)}, "end " + Date.now() + "\\n");
  return ctx.item;
}
`);
    writeFileSync(join(root, "pooled.yaml"), `baton: 1
name: pooled-config
limits: { svc: { concurrency: 6 } }
stages:
  calls:
    for_each: "[1, 2, 3, 4, 5, 6]"
    concurrency: 6
    limit: svc
    run: ./call.mjs#call
output: "$count(calls)"
`);
    const ws = [0, 1].map(() => {
      const c = spawn(process.execPath, [CLI, "--store", STORE_B, "--queue-prefix", "cfg", "worker", "--queue", QUEUE, "--lock-ms", "1500", "--sweep-ms", "500"], { env: env(), stdio: ["ignore", "ignore", "pipe"], cwd: root });
      children.push(c);
      return c;
    });
    const r = spawnSync(process.execPath, [CLI, "--store", STORE_B, "--queue-prefix", "cfg", "run", "pooled.yaml", "--queue", QUEUE, "--json"], { encoding: "utf8", env: env(), cwd: root, timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).output).toBe(6);
    // At most one call in flight at any moment (events sorted by time; a start never follows a start).
    const events = readFileSync(log, "utf8").trim().split("\n").map((l) => l.split(" ")).map(([k, t]) => ({ k: k!, t: Number(t) })).sort((a, b) => a.t - b.t || (a.k === "end" ? -1 : 1));
    let now = 0;
    let peak = 0;
    for (const e of events) {
      now += e.k === "start" ? 1 : -1;
      peak = Math.max(peak, now);
    }
    expect(events.filter((e) => e.k === "start")).toHaveLength(6);
    expect(peak).toBe(1);
    for (const w of ws) w.kill("SIGTERM");
  }, 90_000);

  it("cancel of a busy run (workers appending all the time) is recorded and takes effect", async () => {
    const tpl = join(dir, "busy.yaml");
    writeFileSync(join(dir, "tick.mjs"), "export async function tick(ctx) { await new Promise((r) => setTimeout(r, 20)); return ctx.item; }\n");
    writeFileSync(tpl, `baton: 1
name: busy
stages:
  each:
    for_each: "[0..1999]"
    concurrency: 16
    run: ./tick.mjs#tick
output: "$count(each)"
`);
    const r = baton(["run", tpl, "--queue", QUEUE, "--detach", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const id = JSON.parse(r.stdout).id as string;
    // Wait until items are completing (the run's log grows while we cancel).
    await until(() => {
      const n = Number(spawnSync("psql", [PG, "-Atc", `select seq from ${schema}.runs where id = '${id}'`], { encoding: "utf8" }).stdout.trim());
      return n > 60 ? n : undefined;
    }, "items to complete");
    const c = baton(["cancel", id, "--queue", QUEUE]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout.trim()).toBe(`run ${id} cancelled`);
    const t = trace(id);
    expect(t.run.status).toBe("cancelled");
    expect(t.stages.filter((s) => s.stage === "each" && s.status === "succeeded").length).toBeLessThan(2000);
  }, 90_000);
});
