/**
 * The host conformance suite (./conformance.ts) against the embedded host: `Runtime` with a
 * SQLite store in this process; the crash scenario runs the CLI (dist/cli/main.js) in a child
 * process, SIGKILLs it mid-stage and continues with `baton resume`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { planFromSource } from "../../src/api/run.js";
import type { BatonEvent } from "../../src/engine/events.js";
import { Runtime, type RunHandle } from "../../src/runtime/runtime.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { loadPlanFile } from "../../src/template/index.js";
import { hostConformance, pollUntil, readObservations, type HostHarness, type HostRun, type Observation, type StartOptions } from "./conformance.js";

const CLI = resolve("dist/cli/main.js");
const WAIT_MS = 20_000;

const dir = mkdtempSync(join(tmpdir(), "baton-host-embedded-"));
/** Observations of the runs driven in this process. */
const obsDir = join(dir, "obs");
mkdirSync(obsDir);
process.env.BATON_HOST_LOG = obsDir;

let store: SqliteStore | undefined;
const children = new Set<ChildProcess>();
let nChild = 0;

/** A run driven by a Runtime in this process. */
function inProcess(runtime: Runtime, handle: RunHandle): HostRun {
  const db = store!;
  const file = join(obsDir, `${handle.id}.jsonl`);
  const observed = async (): Promise<Observation[]> => readObservations(file);
  return {
    id: handle.id,
    observed,
    events: async () => (await db.load(handle.id)).events,
    until: (pred, what) => pollUntil(observed, pred, WAIT_MS, what),
    finished: async () => {
      await handle.done;
      return (await db.load(handle.id)).events;
    },
    cancel: async (reason) => {
      const r = await runtime.cancel(handle.id, reason);
      if (r !== "cancelled") throw new Error(`runtime.cancel answered '${r}'`);
    },
    crash: () => Promise.reject(new Error("the embedded harness crashes only runs started with crashable (a CLI child)")),
    dispose: () => runtime.close(),
  };
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `baton --db DB ARGS…` in a child process with the fixtures' log directory `obs`. */
function cli(args: string[], obs: string): { child: ChildProcess; exit: Promise<Exit> } {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, BATON_HOST_LOG: obs }, cwd: dir, stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const exit = new Promise<Exit>((res) => child.once("exit", (code, signal) => {
    children.delete(child);
    res({ code, signal, stdout, stderr });
  }));
  return { child, exit };
}

async function readLog(db: string, id: string): Promise<BatonEvent[]> {
  const s = SqliteStore.open(db);
  try {
    return (await s.load(id)).events;
  } finally {
    await s.close();
  }
}

/** A run driven by `baton run` in a child process (so it can be SIGKILLed), continued by `baton resume`. */
async function inChild(file: string): Promise<HostRun> {
  const n = ++nChild;
  const obs = join(dir, `child-${n}`);
  mkdirSync(obs);
  const db = join(dir, `child-${n}.db`);
  let current = cli(["--db", db, "run", file, "--json"], obs);
  // The run id: the name of the log file its first handler writes.
  const files = await pollUntil(() => readdirSync(obs).filter((f) => f.endsWith(".jsonl")), (f) => f.length > 0, WAIT_MS, "the CLI child to start the run's first stage", async () => {
    const exited = await Promise.race([current.exit, new Promise<undefined>((r) => setTimeout(r, 10))]);
    return exited ? `the child exited: ${JSON.stringify(exited)}` : "";
  });
  const id = files[0]!.replace(/\.jsonl$/, "");
  const observed = async (): Promise<Observation[]> => readObservations(join(obs, `${id}.jsonl`));
  return {
    id,
    observed,
    events: () => readLog(db, id),
    until: (pred, what) => pollUntil(observed, pred, WAIT_MS, what),
    finished: async () => {
      const r = await current.exit;
      if (r.code === null) throw new Error(`the CLI child was killed (${r.signal}) before the run stopped: ${r.stderr}`);
      if (!existsSync(db)) throw new Error(`the CLI child exited ${r.code} without a store: ${r.stderr}`);
      return readLog(db, id);
    },
    cancel: () => Promise.reject(new Error("not used: the cancel scenario runs in process")),
    crash: async (o) => {
      if (o.pid !== current.child.pid) throw new Error(`the attempt ran in pid ${o.pid}, not in the CLI child (${current.child.pid})`);
      current.child.kill("SIGKILL");
      const r = await current.exit;
      if (r.signal !== "SIGKILL") throw new Error(`the CLI child ended before the kill: ${JSON.stringify(r)}`);
      current = cli(["--db", db, "resume", id, "--json"], obs);
    },
    dispose: async () => {
      current.child.kill("SIGKILL");
      await current.exit;
    },
  };
}

const embedded: HostHarness = {
  name: "embedded",
  description: "Runtime + SqliteStore in the test process; the crash in a `baton run` child process, then `baton resume`",
  slotsInLog: true,
  ready: async () => {
    if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
    store ??= SqliteStore.open(join(dir, "embedded.db"));
  },
  start: async (file: string, o: StartOptions = {}) => {
    if (o.crashable) return inChild(file);
    const runtime = new Runtime({ store: store!, loadPlan: planFromSource, ...(o.slots !== undefined ? { concurrency: o.slots } : {}) });
    return inProcess(runtime, await runtime.start(loadPlanFile(file), {}));
  },
  close: async () => {
    for (const c of children) c.kill("SIGKILL");
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  },
};

hostConformance(embedded);
