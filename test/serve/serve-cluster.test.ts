/**
 * `baton serve --store postgres://… --queue redis://…` joins a cluster (real PostgreSQL, a
 * private Redis): runs started over its API — by name, by a webhook — go to the workers (the
 * one inside it, and a separate `baton worker`), never executed beside them; approvals given
 * over its API are handed to the workers too. Fails (never skips) when PostgreSQL or
 * redis-server is unavailable.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type OwnRedis } from "../helpers/redis.js";

const CLI = resolve("dist/cli/main.js");
const PG = process.env.BATON_TEST_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `serve_${process.pid}_${Date.now() % 100000}`;
const STORE = `${PG}?schema=${schema}`;
const children: ChildProcess[] = [];
let redis: OwnRedis;
let url = "";
let serveErr = "";
const dir = mkdtempSync(join(tmpdir(), "baton-serve-cluster-"));

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, BATON_TEST_HOOK_SECRET: "cluster-secret" };
  delete e.BATON_QUEUE;
  delete e.BATON_STORE;
  return e;
}

function baton(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, "--store", STORE, ...args], { encoding: "utf8", env: env(), timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function until<T>(f: () => Promise<T | undefined>, what: string, tries = 300): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}; serve said: ${serveErr}`);
}

async function run(id: string): Promise<{ run: { status: string }; trace: { run: { output?: unknown }; stages: { stage: string; status: string }[] } }> {
  return (await (await fetch(`${url}api/runs/${id}`)).json()) as never;
}

const finished = (id: string) => until(async () => {
  const r = await run(id);
  return r.run.status === "running" || r.run.status === "waiting" ? undefined : r;
}, `run ${id} to finish`);

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  const ping = spawnSync("psql", [PG, "-Atc", "select 1"], { encoding: "utf8" });
  if (ping.stdout.trim() !== "1") throw new Error(`PostgreSQL is not reachable at ${PG}: start it (see .ci/run) — cluster tests need it (${ping.stderr.trim()})`);
  redis = await startRedis();
  writeFileSync(join(dir, "cluster.yaml"), `baton: 1
name: cluster-demo
inputs:
  who: { type: string, default: nobody }
triggers:
  - webhook: { path: /hooks/cluster, secret_env: BATON_TEST_HOOK_SECRET, inputs: "{ 'who': body.who }" }
stages:
  where: { run: ./where.mjs }
  review: { needs: [where], approval: { message: "ok?" } }
output: "{ 'who': inputs.who, 'pid': where, 'review': review.approved }"
`);
  writeFileSync(join(dir, "where.mjs"), "export default () => process.pid;\n");
  const d = baton(["deploy", join(dir, "cluster.yaml")]);
  expect(d.code, d.stderr).toBe(0);
  const c = spawn(process.execPath, [CLI, "--store", STORE, "serve", "--port", "0", "--queue", redis.url, "--no-auth"], { env: env(), stdio: ["ignore", "pipe", "pipe"] });
  children.push(c);
  c.stderr!.on("data", (b) => (serveErr += b));
  url = await new Promise<string>((res, rej) => {
    let out = "";
    c.stdout!.on("data", (b) => {
      out += b;
      const m = /baton serve: (http:\/\/\S+)/.exec(out);
      if (m) res(m[1]!);
    });
    c.on("exit", (code) => rej(new Error(`baton serve exited (${code}): ${serveErr}`)));
  });
}, 60_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await redis?.stop();
  spawnSync("psql", [PG, "-c", `drop schema if exists ${schema} cascade`]);
});

describe("baton serve --queue", () => {
  it("runs started over the API and by a webhook are executed by the workers; an approval over the API continues them there", async () => {
    const serverPid = children[0]!.pid!;
    const start = await fetch(`${url}api/runs`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ pipeline: "cluster-demo", inputs: { who: "api" } }) });
    expect(start.status).toBe(201);
    const a = ((await start.json()) as { id: string }).id;
    const body = JSON.stringify({ who: "hook" });
    const hook = await fetch(`${url}hooks/cluster`, {
      method: "POST", body,
      headers: { "Content-Type": "application/json", "X-Baton-Signature": `sha256=${createHmac("sha256", "cluster-secret").update(body).digest("hex")}` },
    });
    expect(hook.status).toBe(202);
    const b = ((await hook.json()) as { id: string }).id;
    for (const id of [a, b]) {
      await until(async () => ((await run(id)).run.status === "waiting" ? true : undefined), `run ${id} to wait for review`);
      const ok = await fetch(`${url}api/runs/${id}/approve`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ stage: "review" }) });
      expect(ok.status, await ok.clone().text()).toBe(200);
    }
    // A separate worker joins: both serve's worker and it may take the rest.
    const w = spawn(process.execPath, [CLI, "--store", STORE, "worker", "--queue", redis.url, "--concurrency", "2"], { env: env(), stdio: ["ignore", "ignore", "ignore"] });
    children.push(w);
    const ra = await finished(a);
    const rb = await finished(b);
    expect(ra.run.status).toBe("succeeded");
    expect(rb.run.status).toBe("succeeded");
    expect(ra.trace.run.output).toMatchObject({ who: "api", review: true });
    expect(rb.trace.run.output).toMatchObject({ who: "hook", review: true });
    // The stage ran in one of the cluster's processes (serve's worker or the separate one).
    for (const r of [ra, rb]) expect([serverPid, w.pid]).toContain((r.trace.run.output as { pid: number }).pid);
  }, 90_000);
});
