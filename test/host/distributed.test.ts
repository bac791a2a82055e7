/**
 * The host conformance suite (./conformance.ts) against the distributed host: real `baton worker`
 * processes (dist/cli/main.js) on a real PostgreSQL store and a Redis of this file's own.
 *
 * A deployment is a fresh PostgreSQL schema, a queue prefix and its workers. The cancel, budget,
 * retry and route-back scenarios share one (two workers, --concurrency 8: worker start-up is the
 * slow part here); the slots scenario has its own single worker with --concurrency 2, and the
 * crash scenario its own single worker, which it SIGKILLs mid-stage before starting another. Runs are submitted with the library's `submitRun`; cancel is
 * `requestCancel` + `handOff`, as the CLI does against a shared store.
 *
 * Redis: a private redis-server on a free port (test/helpers/redis.ts), never the machine's 6379.
 * PostgreSQL: $BATON_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test); every schema
 * this file creates is dropped at the end. Either one missing FAILS every scenario (never skips).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import pg from "pg";
import type { ConnectionOptions } from "bullmq";
import { handOff, submitRun } from "../../src/distributed/submit.js";
import { redisConnection, requestCancel } from "../../src/distributed/worker.js";
import type { Store } from "../../src/store/port.js";
import { openStoreAsync } from "../../src/store/open.js";
import { loadPlanFile } from "../../src/template/index.js";
import { startRedis, type OwnRedis } from "../helpers/redis.js";
import { hostConformance, pollUntil, readObservations, renderLog, type HostHarness, type HostRun, type Observation, type StartOptions } from "./conformance.js";

const CLI = resolve("dist/cli/main.js");
/**
 * Workers load the agent executor (the AI SDK) before they take jobs: its first import blocks a
 * worker's event loop for about a second on a loaded machine, longer than the 1500 ms job lock
 * these workers run with can go unrenewed, so the job of an agent attempt in flight would be
 * declared stalled and re-run while it still runs (see the report of this suite).
 */
const PRELOAD = pathToFileURL(resolve("dist/stages/agent.js")).href;
const PG = process.env.BATON_TEST_POSTGRES || "postgres://postgres@127.0.0.1:5432/test";
const tag = `${process.pid}_${randomBytes(3).toString("hex")}`;
/** Bound on waiting for a stuck run (not an assertion on speed). */
const WAIT_MS = 30_000;

const dir = mkdtempSync(join(tmpdir(), "baton-host-dist-"));
const obsDir = join(dir, "obs");
mkdirSync(obsDir);

/** The workers' environment (read when each starts: $BATON_FAKE_OPENAI_URL is set by then), no queue or store from the caller's shell. */
function workerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, BATON_HOST_LOG: obsDir };
  delete env.BATON_QUEUE;
  delete env.BATON_STORE;
  delete env.BATON_CONFIG;
  return env;
}

let redis: OwnRedis | undefined;
let ready: Promise<void> | undefined;
const schemas = new Set<string>();
const workers = new Set<ChildProcess>();
let nDeployment = 0;
const deployments: Deployment[] = [];
/** The deployment the cancel, budget, retry and route-back scenarios share (two workers). */
let shared: Promise<Deployment> | undefined;

function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

async function checkPostgres(): Promise<void> {
  const c = new pg.Client({ connectionString: PG, connectionTimeoutMillis: 5_000 });
  c.on("error", () => undefined);
  try {
    await c.connect();
    await c.query("SELECT 1");
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${redactUrl(PG)} (${(err as Error).message}): the distributed host conformance suite needs it. ` +
        "Start it (CI does: 127.0.0.1:5432, trust auth, database test) or point BATON_TEST_POSTGRES at a server.",
    );
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** One deployment: a schema, a queue prefix, and its worker processes. */
class Deployment {
  readonly prefix: string;
  readonly storeUrl: string;
  readonly connection: ConnectionOptions;
  readonly procs: ChildProcess[] = [];
  readonly stderr = new Map<ChildProcess, string>();

  constructor(readonly n: number, readonly store: Store, schema: string, readonly shared: boolean) {
    this.prefix = `hostconf${n}`;
    this.storeUrl = `${PG}${PG.includes("?") ? "&" : "?"}schema=${schema}`;
    this.connection = redisConnection(redis!.url);
  }

  /** Start a `baton worker` of this deployment. */
  worker(concurrency: number): ChildProcess {
    const c = spawn(
      process.execPath,
      ["--import", PRELOAD, CLI, "--store", this.storeUrl, "--queue-prefix", this.prefix, "worker", "--queue", redis!.url, "--concurrency", String(concurrency), "--lock-ms", "1500", "--sweep-ms", "500"],
      { env: workerEnv(), cwd: dir, stdio: ["ignore", "ignore", "pipe"] },
    );
    this.stderr.set(c, "");
    c.stderr!.on("data", (d) => this.stderr.set(c, this.stderr.get(c) + String(d)));
    c.once("exit", () => workers.delete(c));
    workers.add(c);
    this.procs.push(c);
    return c;
  }

  /** What the workers said (for failure messages). */
  said(): string {
    return this.procs.map((p) => `worker pid ${p.pid}${p.exitCode !== null || p.signalCode !== null ? ` (exited ${p.exitCode ?? p.signalCode})` : ""}: ${(this.stderr.get(p) ?? "").trim().slice(-1500)}`).join("\n");
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => stopProcess(p)));
  }
}

async function stopProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once("exit", r));
  p.kill("SIGTERM");
  const t = setTimeout(() => p.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(t);
}

async function kill9(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once("exit", r));
  p.kill("SIGKILL");
  await exited;
}

/** A deployment with one worker per entry of `concurrency`. */
async function deployment(concurrency: readonly number[], isShared = false): Promise<Deployment> {
  const n = ++nDeployment;
  const schema = `baton_host_${tag}_${n}`;
  schemas.add(schema);
  const store = await openStoreAsync(`${PG}${PG.includes("?") ? "&" : "?"}schema=${schema}`);
  const d = new Deployment(n, store, schema, isShared);
  for (const c of concurrency) d.worker(c);
  deployments.push(d);
  return d;
}

function distributedRun(d: Deployment, id: string): HostRun {
  const file = join(obsDir, `${id}.jsonl`);
  const observed = async (): Promise<Observation[]> => readObservations(file);
  const events = async () => (await d.store.load(id)).events;
  return {
    id,
    observed,
    events,
    until: (pred, what) => pollUntil(observed, pred, WAIT_MS, what, () => d.said()),
    finished: async () => {
      let log = await events();
      await pollUntil(
        async () => (log = await events()),
        (l) => l.some((e) => e.type === "run_finished" || e.type === "run_waiting"),
        WAIT_MS,
        `run ${id} to stop on the workers`,
        () => `log so far:\n${renderLog(log)}\n${d.said()}`,
      );
      return log;
    },
    cancel: async (reason) => {
      if (!(await requestCancel(d.store, id, reason))) throw new Error(`run ${id} had already finished`);
      const rec = await d.store.get(id);
      await handOff({ connection: d.connection, prefix: d.prefix }, id, rec!.seq);
    },
    crash: async (o) => {
      const victim = d.procs.find((p) => p.pid === o.pid);
      if (!victim) throw new Error(`the attempt ran in pid ${o.pid}, which is not a worker of this deployment (${d.procs.map((p) => p.pid).join(", ")})`);
      await kill9(victim);
      d.worker(8);
    },
    dispose: () => (d.shared ? Promise.resolve() : d.stop()),
  };
}

const distributed: HostHarness = {
  name: "distributed",
  description: "`baton worker` processes (dist/cli/main.js) on PostgreSQL + a private Redis, runs submitted with submitRun",
  slotsInLog: false,
  ready: () =>
    (ready ??= (async () => {
      if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
      await checkPostgres();
      redis = await startRedis();
    })()),
  start: async (file: string, o: StartOptions = {}) => {
    // The slots and crash scenarios need workers of their own; the others share one deployment.
    const d = o.slots !== undefined ? await deployment([o.slots]) : o.crashable ? await deployment([8]) : await (shared ??= deployment([8, 8], true));
    const { id } = await submitRun(d.store, { connection: d.connection, prefix: d.prefix }, loadPlanFile(file), {});
    return distributedRun(d, id);
  },
  close: async () => {
    await Promise.all([...workers].map(kill9));
    await Promise.all(deployments.map((d) => d.store.close().catch(() => undefined)));
    await redis?.stop();
    if (schemas.size > 0) {
      const admin = new pg.Client({ connectionString: PG, connectionTimeoutMillis: 5_000 });
      admin.on("error", () => undefined);
      try {
        await admin.connect();
        for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
      } catch {
        // unreachable: nothing was created there
      } finally {
        await admin.end().catch(() => undefined);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  },
};

hostConformance(distributed);
