/**
 * Distributed-mode benchmark (SPEC §6, issue 10 item 4; not a test, CI does not run it):
 *   npm run bench:distributed
 *
 * Measures real `run:` stages — each one a job round trip through `baton worker` processes —
 * against the floor: a bare BullMQ job round trip measured in the same run, on the same Redis.
 * It drives Baton only through its CLI (dist/cli/main.js: `baton migrate`, `baton worker`,
 * `baton run --detach --json`) and reads the results from the run's stored events.
 *
 *   floor chain    one BullMQ Worker (its own process); job k's processor adds job k+1:
 *                  hop = enqueue of job k+1 → its processor starts; jobs/s
 *   floor fan-out  DIST_FLOOR_FAN no-op jobs added at once, consumed by 1/2/4 Worker processes: jobs/s
 *   Baton chain    DIST_CHAIN `run:` stages, each reading the previous one, through 1/2/4 workers:
 *                  hop = the previous stage's function call → this stage's function call (each
 *                  output records Date.now() at the call; every process is on this machine), and
 *                  its parts from the events (stage_succeeded.at → next stage_started.at → call)
 *   Baton fan-out  a for_each of DIST_FAN items of a `run:` stage with concurrency DIST_FAN (plus its
 *                  run: root and run: fan-in), through 1/2/4 workers: stages/s
 *
 * Per workload: PostgreSQL transactions (Δ xact_commit + xact_rollback of the store's database
 * in pg_stat_database, read from a connection to the `postgres` database so the reading does
 * not count; the harness's own queries on the store's database are counted and subtracted) and
 * Redis commands (Δ of the total calls in INFO commandstats of the benchmark's own Redis,
 * including commands run inside BullMQ's Lua scripts), each ÷ stages. PostgreSQL 15 publishes
 * an idle backend's counters up to 10 s late but an exiting backend's at once, so each workload
 * runs in its own worker lifetime and the counters are read before the workers start and after
 * they exit; the unmeasured part of that lifetime (startup, warm-up run, shutdown) is counted
 * client-side by a probe preloaded into the workers and the submitter
 * (bench/distributed/probe.mjs) and subtracted. The probe's totals cross-check the server's
 * (they agree exactly on a quiet database) and give the statements and BullMQ scripts per stage.
 *
 * Isolation: a PRIVATE redis-server on a free port (never the machine's Redis), and a fresh
 * PostgreSQL schema bench_<pid> (dropped at the end). Every child process is killed at the end, on
 * failure, on a stall (no progress for DIST_STALL_S) and on Ctrl-C; bench/distributed/reaper.mjs
 * cleans up even if this process is SIGKILLed.
 *
 * Knobs (env):
 *   DIST_WORKERS=1,2,4       Baton worker / floor fan-out process counts
 *   DIST_CONCURRENCY=8       --concurrency of each `baton worker` (and of each floor BullMQ Worker)
 *   DIST_CHAIN=200           Baton chain length
 *   DIST_FAN=500             Baton fan-out width
 *   DIST_FAN_SHAPE=for_each  or "stages": DIST_FAN independent run: stages and a fan-in stage
 *   DIST_FLOOR_CHAIN=500     floor chain hops
 *   DIST_FLOOR_FAN=2000      floor fan-out jobs
 *   DIST_WORKLOADS=floor,chain,fan
 *   DIST_QUICK=1             smoke run: workers 1,2; chain 50; fan 100; floor 200 / 500
 *   DIST_STALL_S=60          fail when nothing progresses for this long
 *   DIST_STORE               PostgreSQL URL (default postgres://postgres@127.0.0.1:5432/test)
 *   DIST_PG_STATS            where to read pg_stat_database from (default: DIST_STORE's server, db postgres)
 *   DIST_BATON=PATH          another build's dist/ (node_modules/ next to it) instead of ./dist
 *   DIST_PROBE=0             do not preload the client-side probe into the workers
 *   DIST_CPU_PROF=DIR        run worker #1 of every workload under `node --cpu-prof` into DIR
 *                            (worker.<workload>-w<N>.cpuprofile and .window.json, the measured run's
 *                            time span; summarise with bench/distributed/profile-window.mjs);
 *                            that worker is slower, so its figures are diagnostics, not results
 *   DIST_WORKER_ARGS         extra args for `baton worker` (e.g. "--sweep-ms 2000")
 *   DIST_OUT                 where to write the table (default bench/results-distributed.md; "-": nowhere)
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import pg from "pg";
import { pct } from "./distributed/measure.mjs";
import { startRedis } from "./distributed/redis.mjs";
import { chainYaml, fanYaml } from "./distributed/templates.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const env = process.env;
const QUICK = env.DIST_QUICK === "1";
const num = (k, d) => (env[k] !== undefined && env[k] !== "" ? Number(env[k]) : d);
const list = (k, d) => (env[k] ? env[k].split(",").map((s) => s.trim()).filter(Boolean) : d);
const cfg = {
  workers: list("DIST_WORKERS", QUICK ? ["1", "2"] : ["1", "2", "4"]).map(Number),
  concurrency: num("DIST_CONCURRENCY", 8),
  chain: num("DIST_CHAIN", QUICK ? 50 : 200),
  fan: num("DIST_FAN", QUICK ? 100 : 500),
  fanShape: env.DIST_FAN_SHAPE || "for_each",
  floorChain: num("DIST_FLOOR_CHAIN", QUICK ? 200 : 500),
  floorFan: num("DIST_FLOOR_FAN", QUICK ? 500 : 2000),
  workloads: list("DIST_WORKLOADS", ["floor", "chain", "fan"]),
  stallS: num("DIST_STALL_S", 60),
  store: env.DIST_STORE || "postgres://postgres@127.0.0.1:5432/test",
  probe: env.DIST_PROBE !== "0",
  prof: env.DIST_CPU_PROF ? resolve(env.DIST_CPU_PROF) : undefined,
  workerArgs: env.DIST_WORKER_ARGS ? env.DIST_WORKER_ARGS.split(/\s+/).filter(Boolean) : [],
};
const distDir = env.DIST_BATON ? resolve(env.DIST_BATON) : join(root, "dist");
const CLI = join(distDir, "cli", "main.js");
const PROBE = join(here, "distributed", "probe.mjs");
const FLOOR = join(here, "distributed", "floor.mjs");
const TARGET = { fanWorkers: 4, fanStagesPerS: 500, hopVsFloor: 2, pgPerStage: 2 };
const APP = `baton-bench-${process.pid}`; // application_name of every PostgreSQL connection of ours
const SCHEMA = `bench_${process.pid}`;
const SCHEMA_TAG = "baton bench/distributed.mjs";
const dbName = decodeURIComponent(new URL(cfg.store).pathname.slice(1)) || "postgres";
const storeUrl = (() => {
  const u = new URL(cfg.store);
  u.searchParams.set("schema", SCHEMA);
  return u.toString();
})();
const statsUrl = env.DIST_PG_STATS || (() => {
  const u = new URL(cfg.store);
  u.pathname = "/postgres";
  u.search = "";
  return u.toString();
})();

const log = (s) => process.stderr.write(s);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now(); // wall-clock ms, sub-ms resolution (as floor.mjs and stages.mjs)
class BenchError extends Error {}

// ---------------------------------------------------------------- processes and cleanup
const reaper = spawn(process.execPath, [join(here, "distributed", "reaper.mjs")], { stdio: ["pipe", "ignore", "inherit"] });
reaper.stdin.on("error", () => undefined);
const tell = (line) => {
  if (!reaper.stdin.destroyed) reaper.stdin.write(line + "\n");
};
const children = new Set();
function track(proc, what) {
  proc.what = what;
  children.add(proc);
  tell(`+${proc.pid}`);
  proc.once("exit", () => {
    children.delete(proc);
    tell(`-${proc.pid}`);
  });
  return proc;
}
const alive = (p) => p.exitCode === null && p.signalCode === null;
function killAll(sig = "SIGKILL") {
  for (const c of children) if (alive(c)) try { c.kill(sig); } catch { /* gone */ }
}
/** Stop processes: SIGTERM, then SIGKILL after `graceMs`. */
async function stopProcs(procs, graceMs = 15_000) {
  await Promise.all(procs.map((p) => new Promise((res) => {
    if (!alive(p)) return res();
    const t = setTimeout(() => p.kill("SIGKILL"), graceMs);
    p.once("exit", () => { clearTimeout(t); res(); });
    p.kill("SIGTERM");
  })));
}

let redisServer;
let redis; // our client of the private Redis
let stats; // pg client on the `postgres` database: pg_stat_database, pg_stat_activity
let admin; // pg client on the store's database: setup and cleanup only (never open during a measurement)
let tmp;
let schemaCreated = false;
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  killAll();
  await Promise.all([...children].map((c) => (alive(c) ? new Promise((r) => c.once("exit", r)) : undefined)));
  redis?.disconnect();
  await redisServer?.stop().catch(() => undefined);
  if (schemaCreated) {
    try {
      admin ??= new pg.Client({ connectionString: cfg.store, application_name: `${APP}-setup` });
      await Promise.race([admin.connect().catch(() => undefined).then(() => admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`)), sleep(15_000).then(() => { throw new Error("timeout"); })]);
      tell("-schema");
    } catch (err) {
      log(`could not drop schema ${SCHEMA} (${err.message}); the reaper will try\n`);
    }
  }
  await admin?.end().catch(() => undefined);
  await stats?.end().catch(() => undefined);
  if (tmp) {
    rmSync(tmp, { recursive: true, force: true });
    tell(`-dir ${tmp}`);
  }
  reaper.stdin.end();
  await new Promise((r) => (alive(reaper) ? reaper.once("exit", r) : r()));
  const left = childPids(process.pid);
  if (left.length) {
    log(`⚠ child processes still present after cleanup: ${left.join(", ")} — killing them\n`);
    for (const pid of left) try { process.kill(Number(pid), "SIGKILL"); } catch { /* gone */ }
  }
}
/** PIDs of the live direct children of `ppid` (Linux /proc). */
function childPids(ppid) {
  const out = [];
  try {
    for (const d of readdirSync("/proc")) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const s = readFileSync(`/proc/${d}/stat`, "utf8");
        const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
        if (Number(f[1]) === ppid && f[0] !== "Z") out.push(d);
      } catch { /* gone */ }
    }
  } catch { /* not Linux */ }
  return out;
}
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  log(`\n${sig}: stopping the benchmark, killing its processes\n`);
  void cleanup().finally(() => process.exit(130));
});
process.on("exit", () => killAll());
process.on("unhandledRejection", (err) => {
  log(`\n✖ distributed benchmark: unexpected error: ${err?.stack ?? err}\n`);
  void cleanup().finally(() => process.exit(1));
});

// ---------------------------------------------------------------- measurements
/** CPU seconds of processes (Linux /proc utime + stime). */
function cpuOf(pids) {
  let s = 0;
  const per = new Map();
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8");
      const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
      const v = (Number(rest[11]) + Number(rest[12])) / 100;
      per.set(String(pid), v);
      s += v;
    } catch { /* gone */ }
  }
  return per;
}
const cpuDelta = (a, b) => { let s = 0; for (const [pid, v] of b) s += v - (a.get(pid) ?? 0); return s; };

async function redisCounters() {
  const info = await redis.call("INFO", "stats", "commandstats");
  const cmds = {};
  let calls = 0;
  let usec = 0;
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    cmds[m[1]] = Number(m[2]);
    calls += Number(m[2]);
    usec += Number(m[3]);
  }
  const processed = Number(info.match(/^total_commands_processed:(\d+)/m)?.[1] ?? NaN);
  return { cmds, calls, usec, processed };
}
/** Redis activity between two snapshots, minus the one INFO of the first snapshot. */
function redisDelta(a, b) {
  const cmds = {};
  for (const [k, v] of Object.entries(b.cmds)) {
    const d = v - (a.cmds[k] ?? 0) - (k === "info" ? 1 : 0);
    if (d > 0) cmds[k] = d;
  }
  return { calls: b.calls - a.calls - 1, usec: b.usec - a.usec, processed: b.processed - a.processed - 1, cmds };
}

async function xactCommit() {
  const { rows } = await stats.query("SELECT xact_commit::bigint AS c, xact_rollback::bigint AS r FROM pg_stat_database WHERE datname = $1", [dbName]);
  return { commit: Number(rows[0].c), rollback: Number(rows[0].r) };
}
/** Backends on the store's database that are not ours (other users of the database meanwhile). */
const others = new Map(); // "application_name (backend_type)" → max seen at once
async function sampleOthers() {
  const { rows } = await stats.query(
    "SELECT coalesce(nullif(application_name, ''), '(no application_name)') AS app, backend_type AS bt, count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name NOT LIKE $2 GROUP BY 1, 2",
    [dbName, `${APP}%`],
  );
  for (const r of rows) {
    const k = `${r.app} (${r.bt})`;
    others.set(k, Math.max(others.get(k) ?? 0, r.n));
  }
}
/** The backends of the workers (and of a submitting `baton run`). */
async function ourBackends() {
  const { rows } = await stats.query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", [APP]);
  return rows.map((r) => r.pid);
}

// ---------------------------------------------------------------- Baton through its CLI
function startWorker(i, tag) {
  const prof = cfg.prof && i === 0 ? ["--cpu-prof", "--cpu-prof-dir", cfg.prof, "--cpu-prof-name", `worker.${tag}.cpuprofile`] : [];
  const args = [...(cfg.probe ? ["--import", PROBE] : []), ...prof, CLI, "worker", "--store", storeUrl, "--queue", redisServer.url, "--concurrency", String(cfg.concurrency), ...cfg.workerArgs];
  const p = track(spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "ignore", "pipe"], env: { ...env, PGAPPNAME: APP, ...(cfg.probe ? { BATON_PROBE_EXIT: "1" } : {}) } }), `baton worker #${i + 1}`);
  const w = { p, log: "", i };
  p.stderr.on("data", (d) => {
    w.log += d;
    if (w.log.length > 400_000) w.log = w.log.slice(-200_000);
  });
  w.ready = new Promise((res, rej) => {
    const t = setTimeout(() => rej(new BenchError(`baton worker #${i + 1} not ready after 30 s:\n${w.log.slice(-2000)}`)), 30_000);
    const check = () => {
      if (/ ready /.test(w.log)) { clearTimeout(t); res(); }
    };
    p.stderr.on("data", check);
    p.once("exit", (code, sig) => { clearTimeout(t); rej(new BenchError(`baton worker #${i + 1} exited (${code ?? sig}) before it was ready:\n${w.log.slice(-2000)}`)); });
  });
  w.ready.catch(() => undefined); // awaited with the others; a second failure must not go unhandled
  return w;
}
/** The end of a worker's output, without the probe's lines. */
const tail = (log, n = 1500) => log.split("\n").filter((l) => !l.startsWith("PROBE ")).join("\n").slice(-n) || "(nothing)";
function checkWorkers(ws) {
  for (const w of ws) if (!alive(w.p)) throw new BenchError(`baton worker #${w.i + 1} (pid ${w.p.pid}) died (${w.p.exitCode ?? w.p.signalCode}); its last output:\n${tail(w.log, 3000)}`);
}
/** Each worker's probe counters (SIGUSR2 → one PROBE line), summed. */
async function probeCounts(ws) {
  if (!cfg.probe) return undefined;
  const each = await Promise.all(ws.map((w) => new Promise((res, rej) => {
    const from = w.log.length;
    const t0 = Date.now();
    const check = () => {
      const at = w.log.indexOf("PROBE ", from);
      const end = at >= 0 ? w.log.indexOf("\n", at) : -1;
      if (end >= 0) {
        if (env.DIST_DEBUG) log(`[probe #${w.i + 1}] ${w.log.slice(at + 6, Math.min(end, at + 200))}\n`);
        return res(JSON.parse(w.log.slice(at + 6, end)));
      }
      if (Date.now() - t0 > 5000) return rej(new BenchError(`baton worker #${w.i + 1} did not answer the probe (SIGUSR2) within 5 s`));
      setTimeout(check, 5);
    };
    w.p.kill("SIGUSR2");
    check();
  })));
  return each.reduce((a, b) => addProbe(a, b), emptyProbe());
}
const emptyProbe = () => ({ txn: 0, commit: 0, rollback: 0, connect: 0, pg: {}, script: {} });
function addProbe(a, b, sign = 1) {
  const out = { txn: a.txn + sign * b.txn, commit: a.commit + sign * b.commit, rollback: a.rollback + sign * b.rollback, connect: (a.connect ?? 0) + sign * (b.connect ?? 0), pg: { ...a.pg }, script: { ...a.script } };
  for (const k of ["pg", "script"]) for (const [n, v] of Object.entries(b[k])) out[k][n] = (out[k][n] ?? 0) + sign * v;
  return out;
}

/** Run a CLI command to its end; resolves to { stdout, stderr }. */
function cli(args, what, { probeExit = false, timeoutMs = 60_000 } = {}) {
  return new Promise((res, rej) => {
    const p = track(spawn(process.execPath, [...(probeExit ? ["--import", PROBE] : []), CLI, ...args], {
      cwd: root, stdio: ["ignore", "pipe", "pipe"], env: { ...env, PGAPPNAME: APP, ...(probeExit ? { BATON_PROBE_EXIT: "1" } : {}) },
    }), what);
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const t = setTimeout(() => { p.kill("SIGKILL"); rej(new BenchError(`${what} did not finish within ${timeoutMs / 1000} s:\n${err.slice(-2000)}`)); }, timeoutMs);
    p.once("exit", (code, sig) => {
      clearTimeout(t);
      if (code === 0) res({ stdout: out, stderr: err });
      else rej(new BenchError(`${what} failed (${code ?? sig}): ${`node ${CLI} ${args.join(" ")}`}\n${err.slice(-3000)}`));
    });
  });
}

/** Submit a template to the workers with `baton run FILE --detach --json`. */
async function submit(file) {
  const { stdout, stderr } = await cli(["run", file, "--store", storeUrl, "--queue", redisServer.url, "--detach", "--json"], "baton run --detach", { probeExit: cfg.probe });
  let id;
  try { id = JSON.parse(stdout.trim().split("\n").pop()).id; } catch { /* below */ }
  if (!id) throw new BenchError(`baton run --detach --json printed no run id: ${stdout.slice(0, 500)}`);
  const m = stderr.match(/PROBE (.*)\n?/);
  return { id, probe: m ? JSON.parse(m[1]) : undefined };
}

/**
 * Poll the run (through `db`, counting its queries) until it stops; fail on a failed run, a dead
 * worker or a stall. Resolves once the run has finished.
 */
async function waitRun(db, id, ws, what, q) {
  let seq = -1;
  let lastChange = Date.now();
  let i = 0;
  for (;;) {
    const { rows } = await db.query(`SELECT status, seq FROM ${SCHEMA}.runs WHERE id = $1`, [id]);
    q.n++;
    const r = rows[0];
    if (!r) throw new BenchError(`${what}: run ${id} is not in the store`);
    if (r.status === "succeeded") return;
    if (r.status !== "running") {
      const ev = await db.query(`SELECT data FROM ${SCHEMA}.events WHERE run_id = $1 AND type IN ('stage_failed', 'run_finished') ORDER BY seq DESC LIMIT 3`, [id]);
      q.n++;
      throw new BenchError(`${what}: run ${id} ended ${r.status}: ${ev.rows.map((x) => x.data.slice(0, 400)).join("\n")}`);
    }
    if (r.seq !== seq) {
      seq = r.seq;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > cfg.stallS * 1000) {
      throw new BenchError(`${what}: stalled — run ${id} made no progress for ${cfg.stallS} s (still running at seq ${seq}). Last worker output:\n${ws.map((w) => `#${w.i + 1}: ${tail(w.log)}`).join("\n")}`);
    }
    checkWorkers(ws);
    if (i++ % 4 === 0) await sampleOthers();
    await sleep(250);
  }
}

async function loadEvents(db, id, q) {
  const { rows } = await db.query(`SELECT type, at, data FROM ${SCHEMA}.events WHERE run_id = $1 ORDER BY seq`, [id]);
  q.n++;
  return rows.map((r) => JSON.parse(r.data));
}

/** Figures of one Baton run from its events. */
function measureRun(events, kind) {
  const started = new Map(); // key → stage_started.at
  const done = new Map(); // key → { at, t }
  let runStart = NaN;
  let runEnd = NaN;
  let succeeded = 0;
  const key = (e) => `${e.stage}${e.item !== undefined ? `[${e.item}]` : ""}`;
  for (const e of events) {
    if (e.type === "run_started") runStart = e.at;
    else if (e.type === "run_finished") runEnd = e.at;
    else if (e.type === "stage_started") started.set(key(e), e.at);
    else if (e.type === "stage_succeeded") {
      succeeded++;
      done.set(key(e), { at: e.at, t: typeof e.output?.t === "number" ? e.output.t : e.at });
    }
  }
  const wallMs = runEnd - runStart;
  const out = { stages: succeeded, wallMs, stagesPerS: succeeded / (wallMs / 1000) };
  if (kind === "chain") {
    const hop = [];
    const adv = []; // s{i-1} stage_succeeded.at → s{i} stage_started.at
    const disp = []; // s{i} stage_started.at → its function called
    const fin = []; // s{i} function called → its stage_succeeded.at
    for (let i = 0; ; i++) {
      const d = done.get(`s${i}`);
      if (!d) break;
      const ms = Math.floor(d.t); // event times are whole ms (Date.now()); compare like with like
      fin.push(d.at - ms);
      disp.push(ms - started.get(`s${i}`));
      if (i > 0) {
        const p = done.get(`s${i - 1}`);
        hop.push(d.t - p.t);
        adv.push(started.get(`s${i}`) - p.at);
      }
    }
    const s = (a) => a.sort((x, y) => x - y);
    for (const a of [hop, adv, disp, fin]) s(a);
    Object.assign(out, {
      hopP50: pct(hop, 50), hopP99: pct(hop, 99), hopMean: hop.reduce((a, b) => a + b, 0) / hop.length,
      parts: { adv: [pct(adv, 50), pct(adv, 99)], disp: [pct(disp, 50), pct(disp, 99)], fin: [pct(fin, 50), pct(fin, 99)] },
    });
  } else {
    // fan-out: items (or middle stages) only, from the root's end to the last item's end
    const rootDone = done.get("root");
    let last = -Infinity;
    let items = 0;
    for (const [k, d] of done) if (k !== "root" && k !== "sink" && k !== "fan") { items++; last = Math.max(last, d.at); }
    out.items = items;
    out.itemsPerS = items / ((last - rootDone.at) / 1000);
    out.firstItemMs = Math.min(...[...done].filter(([k]) => k.startsWith("fan[") || /^m\d+$/.test(k)).map(([, d]) => d.t)) - rootDone.at;
  }
  return out;
}

const probeTxn = (p) => (p ? p.txn + p.connect : 0); // what the server counts for a client: its transactions + one per connection
/** The PROBE line a worker printed at its exit (BATON_PROBE_EXIT=1). */
function exitProbe(w) {
  const at = w.log.lastIndexOf("PROBE ");
  const end = at >= 0 ? w.log.indexOf("\n", at) : -1;
  return at >= 0 && end > at ? JSON.parse(w.log.slice(at + 6, end)) : undefined;
}

/**
 * One measured Baton workload, in its own worker lifetime:
 *   xact_commit A → start N workers → warm-up run → [Redis, CPU, probe: A] submit, run [B]
 *   → stop the workers (their backends exit, which publishes their counters) → xact_commit B.
 * PostgreSQL 15 publishes an idle backend's counters up to 10 s late, and only the exit of a
 * backend publishes them at once, so the server's count can only be read around whole worker
 * lifetimes. Their non-measured part (startup, warm-up, shutdown) is counted client-side by the
 * probe and subtracted; the server's total over the lifetime cross-checks the client-side total.
 */
async function measureWorkload(n, file, kind, title, warmFile) {
  log(`  ${`${title}, ${n} worker${n > 1 ? "s" : ""}`.padEnd(40)} `);
  // The harness's own transactions on the store's database in this window: its poll client's
  // startup (connected after the first reading, so it surely falls inside) and its queries.
  const q = { n: 1 };
  const pgA = await xactCommit();
  const poll = new pg.Client({ connectionString: cfg.store, application_name: `${APP}-harness` });
  await poll.connect();
  const ws = Array.from({ length: n }, (_, i) => startWorker(i, `${kind}-w${n}`));
  let r;
  try {
    await Promise.all(ws.map((w) => w.ready));
    // Warm-up, not measured: connections, JIT, BullMQ scripts, the run: module in every worker.
    const warm = await submit(warmFile);
    await waitRun(poll, warm.id, ws, `${title}: warm-up`, q);
    const rA = await redisCounters();
    const prA = await probeCounts(ws);
    const backends = await ourBackends();
    const cpuA = { w: cpuOf(ws.map((w) => w.p.pid)), pg: cpuOf(backends), r: cpuOf([redisServer.proc.pid]) };
    const sub = await submit(file);
    await waitRun(poll, sub.id, ws, title, q);
    const rB = await redisCounters();
    const prB = await probeCounts(ws);
    const backendsB = await ourBackends();
    const cpuB = { w: cpuOf(ws.map((w) => w.p.pid)), pg: cpuOf([...new Set([...backends, ...backendsB])]), r: cpuOf([redisServer.proc.pid]) };
    const events = await loadEvents(poll, sub.id, q);
    const m = measureRun(events, kind);
    if (cfg.prof) {
      // The run's span (run_started.at → run_finished.at) on CLOCK_MONOTONIC µs, the clock of V8's .cpuprofile.
      const offUs = Number(process.hrtime.bigint() / 1000n) - Date.now() * 1000;
      const at = (type) => events.find((e) => e.type === type).at * 1000 + offUs;
      writeFileSync(join(cfg.prof, `worker.${kind}-w${n}.window.json`), JSON.stringify({ startUs: at("run_started"), endUs: at("run_finished"), run: sub.id }));
    }
    r = {
      kind, title, workers: n, runId: sub.id, ...m,
      probeRun: prA && prB ? addProbe(prB, prA, -1) : undefined, // the workers, during the run
      submitProbe: sub.probe,
      warmSubmitProbe: warm.probe,
      redis: redisDelta(rA, rB),
      cpu: { workers: cpuDelta(cpuA.w, cpuB.w), pg: cpuDelta(cpuA.pg, cpuB.pg), redis: cpuDelta(cpuA.r, cpuB.r) },
    };
  } catch (err) {
    for (const w of ws) if (alive(w.p)) w.p.kill("SIGKILL"); // failed or stalled: no graceful stop
    throw err;
  } finally {
    await poll.end().catch(() => undefined);
    await stopProcs(ws.map((w) => w.p));
    const bad = ws.flatMap((w) => w.log.split("\n").filter((l) => /failed:|worker error|sweep:/.test(l)));
    if (bad.length) notes.workerErrors.push(`${title}, ${n} worker(s): ${bad.length} error lines, first: ${bad[0].slice(0, 300)}`);
  }
  // Wait for every backend of ours on the store's database to be gone (exited: counters published).
  for (let i = 0; i < 200; i++) {
    const { rows } = await stats.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE $2", [dbName, `${APP}%`]);
    if (rows[0].n === 0) break;
    await sleep(25);
  }
  await sleep(100);
  const pgB = await xactCommit();
  await sampleOthers();
  r.harnessQueries = q.n;
  // Transactions = commits + rollbacks (a conflicting append is rolled back: it still cost one).
  r.pgServerTotal = pgB.commit - pgA.commit + (pgB.rollback - pgA.rollback) - q.n; // the harness's poll queries are autocommit statements
  r.pgRollbackTotal = pgB.rollback - pgA.rollback;
  const exits = ws.map(exitProbe);
  if (cfg.probe && exits.every(Boolean) && r.probeRun) {
    const runClient = probeTxn(r.probeRun) + probeTxn(r.submitProbe);
    r.pgClientTotal = exits.reduce((s, p) => s + probeTxn(p), 0) + probeTxn(r.submitProbe) + probeTxn(r.warmSubmitProbe);
    r.pgClientRun = runClient;
    r.pgAgree = Math.abs(r.pgServerTotal - r.pgClientTotal) <= Math.max(2, 0.01 * r.pgClientTotal);
    // The server's count for the run: its total minus the non-measured part counted client-side.
    r.pgServer = r.pgServerTotal - (r.pgClientTotal - runClient);
    r.pgTxn = r.pgAgree ? r.pgServer : r.pgClientRun; // on a busy database, the client-side count (†)
  } else {
    r.pgServer = r.pgServerTotal; // no probe: the whole lifetime (startup and warm-up included)
    r.pgTxn = r.pgServer;
  }
  const m = r;
  log(`${m.stagesPerS.toFixed(0).padStart(5)} stages/s${m.hopP50 !== undefined ? `, hop p50 ${m.hopP50.toFixed(1)} ms p99 ${m.hopP99.toFixed(1)} ms` : `, items ${m.itemsPerS.toFixed(0)}/s`}, PG ${(r.pgTxn / m.stages).toFixed(2)}${r.pgAgree === false ? "†" : ""} txn/stage, Redis ${(r.redis.calls / m.stages).toFixed(1)} cmds/stage (${(m.wallMs / 1000).toFixed(1)} s)\n`);
  return r;
}

// ---------------------------------------------------------------- the floor: bare BullMQ
function startFloor(mode, queue, n) {
  const p = track(spawn(process.execPath, [FLOOR, mode, redisServer.url, queue, String(cfg.concurrency), String(n ?? 0)], { cwd: root, stdio: ["pipe", "pipe", "pipe"] }), `floor ${mode} worker`);
  const f = { p, out: "", err: "", processed: 0, lastEnd: 0, progressAt: Date.now() };
  p.stdin.on("error", () => undefined);
  p.stdout.on("data", (d) => {
    f.out += d;
    for (const m of String(d).matchAll(/^P (\d+) ([\d.]+)$/gm)) {
      f.processed = Number(m[1]);
      f.lastEnd = Number(m[2]);
      f.progressAt = Date.now();
    }
  });
  p.stderr.on("data", (d) => (f.err = (f.err + d).slice(-5000)));
  f.ready = new Promise((res, rej) => {
    const t = setTimeout(() => rej(new BenchError(`floor ${mode} worker not ready after 30 s: ${f.err}`)), 30_000);
    p.stdout.on("data", () => /^ready$/m.test(f.out) && (clearTimeout(t), res()));
    p.once("exit", (c, s) => { clearTimeout(t); rej(new BenchError(`floor ${mode} worker exited (${c ?? s}): ${f.err}`)); });
  });
  f.ready.catch(() => undefined);
  return f;
}
async function waitFloor(fs, done, what) {
  for (;;) {
    if (done()) return;
    for (const f of fs) if (!alive(f.p)) throw new BenchError(`${what}: a floor worker died (${f.p.exitCode ?? f.p.signalCode}): ${f.err}`);
    const last = Math.max(...fs.map((f) => f.progressAt));
    if (Date.now() - last > cfg.stallS * 1000) throw new BenchError(`${what}: stalled — no job processed for ${cfg.stallS} s (${fs.reduce((s, f) => s + f.processed, 0)} done)`);
    await sleep(20);
  }
}
async function floorChain() {
  log(`  ${`BullMQ chain, ${cfg.floorChain} hops`.padEnd(34)} `);
  const f = startFloor("chain", "floor-chain", cfg.floorChain);
  await f.ready;
  await sleep(200);
  const rA = await redisCounters();
  const cpuA = cpuOf([f.p.pid, redisServer.proc.pid]);
  f.progressAt = Date.now();
  f.p.stdin.write("go\n");
  await waitFloor([f], () => /^RESULT /m.test(f.out), "floor chain");
  const rB = await redisCounters();
  const cpuB = cpuOf([f.p.pid, redisServer.proc.pid]);
  const res = JSON.parse(f.out.match(/^RESULT (.*)$/m)[1]);
  f.p.stdin.end();
  await stopProcs([f.p], 5000);
  const hops = [...res.hops].sort((a, b) => a - b);
  const period = res.starts.slice(1).map((t, i) => t - res.starts[i]).sort((a, b) => a - b);
  const jobs = res.starts.length;
  const r = {
    kind: "floor-chain", workers: 1, stages: jobs, wallMs: res.t1 - res.t0, stagesPerS: jobs / ((res.t1 - res.t0) / 1000),
    hopP50: pct(hops, 50), hopP99: pct(hops, 99), hopMean: hops.reduce((a, b) => a + b, 0) / hops.length,
    periodP50: pct(period, 50), periodP99: pct(period, 99),
    redis: redisDelta(rA, rB), cpuMsPerJob: (cpuDelta(cpuA, cpuB) * 1000) / jobs,
  };
  log(`${r.stagesPerS.toFixed(0).padStart(5)} jobs/s, hop p50 ${r.hopP50.toFixed(2)} ms p99 ${r.hopP99.toFixed(2)} ms, Redis ${(r.redis.calls / jobs).toFixed(1)} cmds/job\n`);
  return r;
}
async function floorFan(n) {
  log(`  ${`BullMQ fan-out, ${cfg.floorFan} jobs, ${n} proc`.padEnd(34)} `);
  const queue = `floor-fan-${n}`;
  const fs = Array.from({ length: n }, () => startFloor("fan", queue));
  await Promise.all(fs.map((f) => f.ready));
  await sleep(300);
  const q = new Queue(queue, { connection: { host: "127.0.0.1", port: redisServer.port, maxRetriesPerRequest: null } });
  await q.waitUntilReady();
  const JOB_OPTS = { removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: "exponential", delay: 200 } };
  const rA = await redisCounters();
  const cpuA = cpuOf([...fs.map((f) => f.p.pid), redisServer.proc.pid]);
  const t0 = now();
  for (const f of fs) f.progressAt = Date.now();
  for (let i = 0; i < cfg.floorFan; i += 500) {
    await q.addBulk(Array.from({ length: Math.min(500, cfg.floorFan - i) }, (_, j) => ({ name: "job", data: { k: i + j }, opts: JOB_OPTS })));
  }
  const addMs = now() - t0;
  await waitFloor(fs, () => fs.reduce((s, f) => s + f.processed, 0) >= cfg.floorFan, `floor fan-out (${n} processes)`);
  await sleep(60); // the last moveToFinished
  const rB = await redisCounters();
  const cpuB = cpuOf([...fs.map((f) => f.p.pid), redisServer.proc.pid]);
  const end = Math.max(...fs.map((f) => f.lastEnd));
  await q.close();
  for (const f of fs) f.p.stdin.end();
  await stopProcs(fs.map((f) => f.p), 5000);
  const r = {
    kind: "floor-fan", workers: n, stages: cfg.floorFan, wallMs: end - t0, stagesPerS: cfg.floorFan / ((end - t0) / 1000), addMs,
    redis: redisDelta(rA, rB), cpuMsPerJob: (cpuDelta(cpuA, cpuB) * 1000) / cfg.floorFan,
  };
  log(`${r.stagesPerS.toFixed(0).padStart(5)} jobs/s, Redis ${(r.redis.calls / cfg.floorFan).toFixed(1)} cmds/job (harness adds; ${(r.wallMs / 1000).toFixed(2)} s)\n`);
  return r;
}

// ---------------------------------------------------------------- main
const results = [];
const notes = { workerErrors: [] };
const tStart = Date.now();
const loadAtStart = loadavg();

async function main() {
  try { readFileSync(CLI); } catch { throw new BenchError(`${CLI} not found: run npm run build first (or set DIST_BATON)`); }
  if (cfg.prof) mkdirSync(cfg.prof, { recursive: true });
  tmp = mkdtempSync(join(tmpdir(), "baton-bench-dist-"));
  tell(`+dir ${tmp}`);
  redisServer = await startRedis((proc) => track(proc, "redis-server"));
  redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  redis.on("error", () => undefined);
  stats = new pg.Client({ connectionString: statsUrl, application_name: `${APP}-stats` });
  await stats.connect().catch((err) => { throw new BenchError(`cannot connect to ${statsUrl} to read pg_stat_database (${err.message}); set DIST_PG_STATS`); });
  // Setup through a client closed right after (a backend's counters are published when it exits,
  // so nothing of ours is left to be counted inside a measured window).
  admin = new pg.Client({ connectionString: cfg.store, application_name: `${APP}-setup` });
  await admin.connect().catch((err) => { throw new BenchError(`cannot connect to the store ${cfg.store}: ${err.message}`); });
  // Schemas of earlier runs of this benchmark that were killed outright (their process is gone).
  for (const { nspname, d } of (await admin.query("SELECT nspname, obj_description(oid, 'pg_namespace') AS d FROM pg_namespace WHERE nspname ~ '^bench_[0-9]+$'")).rows) {
    const pid = Number(nspname.slice(6));
    if (!String(d ?? "").startsWith(SCHEMA_TAG)) continue;
    let gone = false;
    try { process.kill(pid, 0); } catch { gone = true; }
    if (gone) await admin.query(`DROP SCHEMA IF EXISTS ${nspname} CASCADE`);
  }
  await admin.query(`CREATE SCHEMA ${SCHEMA}`);
  schemaCreated = true;
  tell(`+schema ${cfg.store} ${SCHEMA}`);
  await admin.query(`COMMENT ON SCHEMA ${SCHEMA} IS '${SCHEMA_TAG} pid ${process.pid}'`);
  await cli(["migrate", "--store", storeUrl], "baton migrate");
  await admin.end();
  admin = undefined;

  const mod = relative(tmp, join(here, "distributed", "stages.mjs"));
  const files = {
    warm: join(tmp, "warm.yaml"),
    chain: join(tmp, "chain.yaml"),
    fan: join(tmp, "fan.yaml"),
  };
  writeFileSync(files.chain, chainYaml(cfg.chain, mod));
  writeFileSync(files.fan, fanYaml(cfg.fan, mod, cfg.fanShape));

  log(`Distributed benchmark: Redis ${redisServer.url} (private), store schema ${SCHEMA}, Baton ${distDir}\n`);
  if (cfg.workloads.includes("floor")) {
    log("floor (bare BullMQ, no Baton):\n");
    results.push(await floorChain());
    for (const n of cfg.workers) results.push(await floorFan(n));
    await redis.flushall();
  }
  const baton = cfg.workloads.filter((w) => w === "chain" || w === "fan");
  for (const n of baton.length ? cfg.workers : []) {
    log(`${n} baton worker${n > 1 ? "s" : ""} (--concurrency ${cfg.concurrency}), each workload in its own worker lifetime:\n`);
    writeFileSync(files.warm, fanYaml(16 * n, mod, "for_each", `bench-warm-${n}`));
    for (const kind of baton) {
      const title = kind === "chain" ? `chain of ${cfg.chain} run: stages` : `fan-out ${cfg.fanShape} × ${cfg.fan} run:`;
      results.push(await measureWorkload(n, kind === "chain" ? files.chain : files.fan, kind, title, files.warm));
      await redis.flushall();
    }
  }
}

let failed;
try {
  await main();
} catch (err) {
  failed = err;
}
await cleanup();
if (failed) {
  log(`\n✖ distributed benchmark failed: ${failed instanceof BenchError ? failed.message : failed.stack}\n(all its processes were killed, its Redis stopped and schema ${SCHEMA} dropped)\n`);
  process.exit(1);
}
if (interrupted) process.exit(130);

// ---------------------------------------------------------------- report
const f1 = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "–");
const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : "–");
const mark = (ok) => (ok ? "✅ met" : "❌ not met");
const floorC = results.find((r) => r.kind === "floor-chain");
const floorHop = floorC?.hopP50;
const rows = [];
const targetNotes = [];
for (const r of results) {
  const per = (x) => x / r.stages;
  let label;
  let vs = "";
  if (r.kind === "floor-chain") {
    label = "floor: BullMQ chain (job adds the next)";
    vs = `the floor: ${TARGET.hopVsFloor} × ${f1(floorHop, 2)} = ${f1(TARGET.hopVsFloor * floorHop, 2)} ms`;
  } else if (r.kind === "floor-fan") {
    label = "floor: BullMQ fan-out (no-op jobs)";
  } else {
    label = r.kind === "chain" ? `Baton chain of run: stages` : `Baton fan-out of run: stages (${cfg.fanShape})`;
    const pgPer = per(r.pgTxn);
    const parts = [];
    if (r.kind === "chain" && floorHop) {
      const x = r.hopP50 / floorHop;
      parts.push(`hop p50 ${f1(x)}× floor (≤ ${TARGET.hopVsFloor}×) ${x <= TARGET.hopVsFloor ? "✅" : "❌"}`);
    }
    const ff = results.find((x) => x.kind === "floor-fan" && x.workers === r.workers);
    if (r.kind === "fan" && ff) parts.push(`${f1(r.stagesPerS / ff.stagesPerS, 2)}× the floor fan-out`);
    if (r.kind === "fan" && r.workers === TARGET.fanWorkers) {
      const x = r.stagesPerS / TARGET.fanStagesPerS;
      parts.push(`${f0(r.stagesPerS)}/${TARGET.fanStagesPerS} stages/s = ${f1(x, 2)}× ${x >= 1 ? "✅" : "❌"}`);
    }
    parts.push(`PG ${f1(pgPer, 2)}/${TARGET.pgPerStage} = ${f1(pgPer / TARGET.pgPerStage)}× ${pgPer <= TARGET.pgPerStage ? "✅" : "❌"}`);
    vs = parts.join("; ");
  }
  rows.push(`| ${label} | ${r.workers} | ${r.stages} | **${f0(r.stagesPerS)}** | ${r.hopP50 !== undefined ? `**${f1(r.hopP50, 2)}**` : "–"} | ${r.hopP99 !== undefined ? f1(r.hopP99, 2) : "–"} | ${r.pgTxn !== undefined ? `${f1(per(r.pgTxn), 2)}${r.pgAgree === false ? " †" : ""}` : "–"} | ${f1(per(r.redis.calls))} | ${vs} |`);
}
const batonRows = results.filter((r) => r.kind === "chain" || r.kind === "fan");
const fan4 = results.find((r) => r.kind === "fan" && r.workers === TARGET.fanWorkers);
const chains = results.filter((r) => r.kind === "chain");
if (fan4) targetNotes.push(`≥ ${TARGET.fanStagesPerS} run: stages/s on the fan-out with ${TARGET.fanWorkers} workers: ${f0(fan4.stagesPerS)} stages/s (${f1(fan4.stagesPerS / TARGET.fanStagesPerS, 2)}× the target) — **${mark(fan4.stagesPerS >= TARGET.fanStagesPerS)}**`);
else targetNotes.push(`≥ ${TARGET.fanStagesPerS} run: stages/s on the fan-out with ${TARGET.fanWorkers} workers: not measured in this run`);
if (chains.length && floorHop) targetNotes.push(`chain hop p50 ≤ ${TARGET.hopVsFloor} × the bare BullMQ round trip (${f1(floorHop, 2)} ms → ≤ ${f1(TARGET.hopVsFloor * floorHop, 2)} ms): ${chains.map((r) => `${r.workers} worker${r.workers > 1 ? "s" : ""} ${f1(r.hopP50, 1)} ms (${f1(r.hopP50 / floorHop)}×)`).join(", ")} — **${mark(chains.every((r) => r.hopP50 <= TARGET.hopVsFloor * floorHop))}**`);
if (batonRows.length) {
  const worst = Math.max(...batonRows.map((r) => r.pgTxn / r.stages));
  const best = Math.min(...batonRows.map((r) => r.pgTxn / r.stages));
  targetNotes.push(`≤ ${TARGET.pgPerStage} PostgreSQL transactions per stage: ${f1(best, 2)}–${f1(worst, 2)} per stage — **${mark(worst <= TARGET.pgPerStage)}** (counted per stage, i.e. per ready → done transition of a run: stage; read per event-level transition — stage_started, stage_succeeded — the figure halves: ${f1(best / 2, 2)}–${f1(worst / 2, 2)})`);
}

// where the time goes
const top = (o, n, div) => Object.entries(o ?? {}).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${k} ${f1(v / div, 2)}`).join(", ");
const detail = [];
for (const r of batonRows) {
  const s = r.stages;
  const lines = [`**${r.title}, ${r.workers} worker${r.workers > 1 ? "s" : ""}** (run ${r.runId}, ${f1(r.wallMs / 1000, 2)} s):`];
  if (r.kind === "chain") {
    lines.push(`  hop = previous stage's function call → this stage's function call: p50 ${f1(r.hopP50, 2)} ms, p99 ${f1(r.hopP99, 2)} ms, mean ${f1(r.hopMean, 2)} ms${floorC ? ` (${f1(r.hopP50 / floorC.hopP50)}× the floor's hop p50, ${f1(r.hopP50 / floorC.periodP50)}× its start-to-start period p50)` : ""}; its parts (p50 / p99): previous stage's stage_succeeded.at → this stage's stage_started.at (from the result to the step that decides to start this stage; both are stamped before they are appended) ${r.parts.adv.map((x) => f1(x)).join(" / ")} ms; stage_started.at → function called (the append of that step, the exec job's enqueue and pickup, the worker's sync of the run) ${r.parts.disp.map((x) => f1(x)).join(" / ")} ms; function called → stage_succeeded.at ${r.parts.fin.map((x) => f1(x)).join(" / ")} ms (event times are whole ms)`);
  } else {
    lines.push(`  ${r.items} items: ${f0(r.itemsPerS)} items/s from the root's stage_succeeded to the last item's; the first item's function ran ${f1(r.firstItemMs)} ms after the root's stage_succeeded`);
  }
  lines.push(`  CPU ms per stage: workers ${f1((r.cpu.workers * 1000) / s, 2)}, their PostgreSQL backends ${f1((r.cpu.pg * 1000) / s, 2)}, Redis ${f1((r.cpu.redis * 1000) / s, 2)} (${cpus().length} CPUs: at most ${cpus().length} CPU-s per s for all of them and everything else on the machine)`);
  if (r.probeRun) {
    lines.push(`  PostgreSQL, counted in the workers (probe), per stage: ${f1(r.probeRun.txn / s, 2)} transactions (${f1(r.probeRun.rollback / s, 3)} rolled back); statements: ${top(r.probeRun.pg, 8, s)}`);
    if (r.pgClientTotal !== undefined) lines.push(`  cross-check over the workers' whole lifetime (startup, warm-up, run, shutdown): server Δ(xact_commit + xact_rollback) − ${r.harnessQueries} of the harness = ${r.pgServerTotal} (${r.pgRollbackTotal} rolled back); counted client-side ${r.pgClientTotal} (the workers' and both submitters' transactions, plus one per new connection); ${r.pgAgree ? "they agree" : `**they differ by ${r.pgServerTotal - r.pgClientTotal}** (other sessions used the database meanwhile): the table shows the client-side count for the run (†)`}. The run's share: server ${r.pgServer}, client-side ${r.pgClientRun}.`);
    lines.push(`  BullMQ scripts per stage: ${top(r.probeRun.script, 8, s)}`);
  }
  lines.push(`  Redis per stage: ${f1(r.redis.calls / s)} commands (${f1((r.redis.cmds.evalsha ?? 0) / s, 1)} of them BullMQ script calls, evalsha; the commands those scripts run are counted too), ${f1(r.redis.usec / s / 1000, 3)} ms of Redis time; top: ${top(r.redis.cmds, 8, s)}`);
  detail.push(lines.join("\n"));
}
for (const r of results.filter((x) => x.kind.startsWith("floor"))) {
  detail.push(`**${r.kind === "floor-chain" ? `floor chain, ${r.stages} jobs on 1 Worker` : `floor fan-out, ${r.stages} jobs, ${r.workers} Worker process${r.workers > 1 ? "es" : ""}`}** (${f1(r.wallMs / 1000, 2)} s${r.addMs !== undefined ? `, of which adding the jobs took ${f1(r.addMs / 1000, 2)} s` : ""}): ${r.kind === "floor-chain" ? `hop (enqueue → processor starts) p50 ${f1(r.hopP50, 2)} ms, p99 ${f1(r.hopP99, 2)} ms, mean ${f1(r.hopMean, 2)} ms; period (processor start → next processor start) p50 ${f1(r.periodP50, 2)} ms, p99 ${f1(r.periodP99, 2)} ms; ` : ""}CPU ${f1(r.cpuMsPerJob, 2)} ms/job (workers + Redis); Redis ${f1(r.redis.calls / r.stages)} commands/job (${f1((r.redis.cmds.evalsha ?? 0) / r.stages)} script calls); top: ${top(r.redis.cmds, 6, r.stages)}`);
}

const cpu = cpus();
const setup = `${env.DIST_BATON ? `**Baton from ${env.DIST_BATON}**; ` : ""}${cfg.prof ? `**DIST_CPU_PROF: worker #1 of each workload ran under --cpu-prof (slower)**; ` : ""}${QUICK ? "**DIST_QUICK**; " : ""}Node ${process.version}, ${cpu.length} × ${cpu[0]?.model.trim() ?? "?"} (shared by the workers, PostgreSQL, Redis and the harness); ` +
  `baton worker --concurrency ${cfg.concurrency}; load average at the start ${loadAtStart.map((x) => x.toFixed(2)).join(" / ")}; ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; total ${f0((Date.now() - tStart) / 1000)} s.`;
const table = [
  "| | workers | stages (jobs) | stages/s (jobs/s) | hop p50 ms | hop p99 ms | PG txn / stage | Redis cmds / stage | vs targets |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---|",
  ...rows,
].join("\n");
const othersSeen = [...others].map(([k, v]) => `${k} ×${v}`).join(", ");
const method = [
  `Floor: bare BullMQ ${floorC ? "" : "(not run) "}with Baton's job options (removeOnComplete/removeOnFail, 5 attempts), each Worker in its own process with concurrency ${cfg.concurrency}. Chain: one Worker; job k's processor adds job k+1; hop = the time just before the add → the next processor's first line (performance.timeOrigin + performance.now(): sub-ms). Fan-out: the harness adds the jobs (addBulk, 500 at a time) to idle Workers; jobs/s = jobs ÷ (first add → last processor end); Redis commands include the adds.`,
  `Baton: \`baton worker --store … --queue … --concurrency ${cfg.concurrency}\` processes; each run submitted with \`baton run FILE --store … --queue … --detach --json\`; templates generated into a temp directory, their run: module is bench/distributed/stages.mjs (trivial; its output records the time of the call, sub-ms). Each workload gets fresh workers and a warm-up run (a for_each of 16 × workers items) that is not measured. stages/s = stage_succeeded events ÷ (run_started.at → run_finished.at); the fan-out counts its run: root and fan-in too (${cfg.fan} + 2 stages). Chain hop = previous stage's function call → this stage's (the same start-to-start measure the floor's hop approximates from the enqueue).`,
  `PG txn / stage = Δ (xact_commit + xact_rollback: a conflicting append that is rolled back still costs a transaction) of database \`${dbName}\` (pg_stat_database, read from a connection to database \`postgres\`, so reading it does not count) ÷ stages. PostgreSQL 15 publishes an idle backend's counters up to 10 s late and an exiting backend's at once, so the harness reads the counters before it starts the workers of a workload and after they (and its own polling connection) have exited; the part of that lifetime outside the measured run — startup, warm-up run, shutdown — is counted client-side by the probe (bench/distributed/probe.mjs: each transaction, plus one per new connection, which is what the server counts) and subtracted, as are the harness's own queries. The figure includes the submitting \`baton run\` (its migration check, the run's creation) and the workers' recovery sweeps during the run (one list query per worker every 5 s). Other sessions on \`${dbName}\` seen during the measurements: ${othersSeen || "none"}.`,
  `Redis cmds / stage = Δ of the total \`calls\` in INFO commandstats of the benchmark's private Redis (commands run inside BullMQ's Lua scripts included) from just before the submission to the run's end, minus the harness's INFO; it includes the submitter's and the idle polling of the workers (blocking pops, stalled-job checks).`,
  `Targets (issue 10 item 4): ≥ ${TARGET.fanStagesPerS} run: stages/s on the fan-out with ${TARGET.fanWorkers} workers; chain hop p50 ≤ ${TARGET.hopVsFloor} × the bare BullMQ round trip (the floor chain's hop p50); ≤ ${TARGET.pgPerStage} PostgreSQL transactions per stage. The machine is shared (see the load average): stages/s and hops move with other load much more than the per-stage counts.`,
  ...(cfg.probe ? [] : ["DIST_PROBE=0: no client-side count, so the PG column is the server's count over each workload's whole worker lifetime (startup and warm-up run included), an overestimate."]),
  `Diagnostics: \`DIST_CPU_PROF=DIR\` runs worker #1 of each workload under \`node --cpu-prof\` and records the run's time span; \`node bench/distributed/profile-window.mjs DIR/worker.chain-w1.cpuprofile\` prints where that worker's CPU went during the run (by package / Baton directory, and by function).`,
  ...(batonRows.some((r) => r.pgAgree === false) ? ["† over that workload's worker lifetime pg_stat_database's count differed from the client-side count (other sessions used the database meanwhile, see above): that row shows the client-side count for the run — the workers' and the submitter's own transactions plus one per new connection, which is what the server counts for them (the two agree on a quiet database; see the cross-check lines)."] : []),
  ...(notes.workerErrors.length ? [`Worker error lines: ${notes.workerErrors.join("; ")}`] : []),
];
const doc = `## Distributed benchmark: run: stages against bare BullMQ\n\n${setup}\n\n${table}\n\n### Targets\n\n${targetNotes.map((x) => `- ${x}`).join("\n")}\n\n### Where the time goes\n\n${detail.join("\n\n")}\n\n### Method\n\n${method.map((x) => `- ${x}`).join("\n")}\n\nRun it with \`npm run bench:distributed\` (\`DIST_QUICK=1 npm run bench:distributed\` for a smoke run; sizes and other knobs at the top of bench/distributed.mjs).\n`;
process.stdout.write("\n" + doc);
const outFile = env.DIST_OUT ?? join(here, "results-distributed.md");
if (outFile !== "-") {
  writeFileSync(outFile, doc);
  log(`\nwritten to ${outFile}\n`);
}
