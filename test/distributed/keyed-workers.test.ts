/**
 * Keyed limits on workers (issue 12 item 7): two `baton worker` processes on a real PostgreSQL
 * (a schema of this file's own, dropped at the end) and a private Redis (test/helpers/redis.ts,
 * never the machine's on 6379). One pool of concurrency 1, keyed by tenant: the service below
 * answers nothing until a call of each tenant is in flight at once — which only a pool instance
 * per key allows — and counts calls in flight per tenant. No wall-clock assertion. Fails, never
 * skips, without PostgreSQL or redis-server.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type OwnRedis } from "../helpers/redis.js";

const CLI = resolve("dist/cli/main.js");
const PG = process.env.BATON_TEST_POSTGRES || "postgres://postgres@127.0.0.1:5432/test";
const tag = `${process.pid}_${randomBytes(3).toString("hex")}`;
const schema = `baton_keyed_${tag}`;
const dir = mkdtempSync(join(tmpdir(), "baton-keyed-"));
const ENV: NodeJS.ProcessEnv = { ...process.env };
delete ENV.BATON_QUEUE;
delete ENV.BATON_STORE;

let redis: OwnRedis | undefined;
const children: ChildProcess[] = [];
let schemaMade = false;

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

afterAll(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGKILL");
      await exited;
    }
  }
  await redis?.stop();
  if (schemaMade) {
    const admin = new pg.Client({ connectionString: PG });
    await admin.connect();
    try {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    } finally {
      await admin.end();
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

async function needPostgres(): Promise<void> {
  const c = new pg.Client({ connectionString: PG, connectionTimeoutMillis: 5_000 });
  c.on("error", () => undefined);
  try {
    await c.connect();
    await c.query("SELECT 1");
  } catch (err) {
    throw new Error(`PostgreSQL is not reachable at ${PG.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@")} (${(err as Error).message}): this test needs it (127.0.0.1:5432, database test, or BATON_TEST_POSTGRES)`);
  } finally {
    await c.end().catch(() => undefined);
  }
}

describe("keyed limits on workers", () => {
  it("each tenant's instance of the pool holds across two worker processes; one tenant's queue does not hold the other back", async () => {
    await needPostgres();
    redis = await startRedis();
    const inflight = new Map<string, number>();
    const peak = new Map<string, number>();
    const order: string[] = [];
    let held: { res: ServerResponse; tenant: string }[] = [];
    let opened = false;
    const answer = (res: ServerResponse, tenant: string): void => {
      inflight.set(tenant, inflight.get(tenant)! - 1);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ tenant }));
    };
    const server = createServer((req, res) => {
      const tenant = new URL(req.url!, "http://x").searchParams.get("tenant")!;
      order.push(tenant);
      inflight.set(tenant, (inflight.get(tenant) ?? 0) + 1);
      peak.set(tenant, Math.max(peak.get(tenant) ?? 0, inflight.get(tenant)!));
      if (opened) return void setTimeout(() => answer(res, tenant), 20);
      held.push({ res, tenant });
      // Nothing is answered until both tenants have a call in flight at once.
      if (new Set(held.map((h) => h.tenant)).size === 2) {
        opened = true;
        for (const h of held) answer(h.res, h.tenant);
        held = [];
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as AddressInfo).port;
      const tpl = join(dir, "keyed.yaml");
      writeFileSync(tpl, `baton: 1
name: keyed
limits: { svc: { concurrency: 1 } }
stages:
  calls:
    for_each: '[{"t": "A"}, {"t": "A"}, {"t": "A"}, {"t": "A"}, {"t": "A"}, {"t": "A"}, {"t": "B"}]'
    concurrency: 7
    limit: { pool: svc, key: "{{ item.t }}" }
    http: { url: "http://127.0.0.1:${port}/work?tenant={{ item.t }}", method: GET }
output: "$count(calls)"
`);
      schemaMade = true;
      const store = ["--store", `${PG}${PG.includes("?") ? "&" : "?"}schema=${schema}`];
      const queue = `${redis.url}/0`;
      for (let i = 0; i < 2; i++) {
        const w = spawn(process.execPath, [CLI, ...store, "worker", "--queue", queue, "--concurrency", "4"], { env: ENV, stdio: ["ignore", "ignore", "pipe"] });
        w.stderr!.resume();
        children.push(w);
      }
      const child = spawn(process.execPath, [CLI, ...store, "run", tpl, "--queue", queue, "--json"], { stdio: ["ignore", "pipe", "pipe"], env: ENV });
      children.push(child);
      let out = "";
      let err = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (err += d));
      const code = await new Promise<number | null>((res) => child.on("exit", res));
      expect(code, err).toBe(0);
      expect(JSON.parse(out).output).toBe(7);
      expect(order.filter((t) => t === "A")).toHaveLength(6);
      expect(order.filter((t) => t === "B")).toHaveLength(1);
      // B's call went out while A's instance was busy (A's calls queued), and each key kept its concurrency of 1.
      expect(order.indexOf("B")).toBeLessThan(6);
      expect(peak.get("A")).toBe(1);
      expect(peak.get("B")).toBe(1);
    } finally {
      server.close();
    }
  }, 60_000);
});
