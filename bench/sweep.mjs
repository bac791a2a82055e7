/**
 * Idle cost of distributed mode (issue 10: "the recovery sweep grows with workers × running
 * runs — 300 idle runs, 4 workers: 130 PG transactions/s and 5,900 Redis commands/s"). Not a
 * test, CI does not run it:
 *   npm run bench:sweep
 *
 * Setup: a PRIVATE redis-server on a free port (bench/distributed/redis.mjs; never the machine's
 * Redis), PostgreSQL at SWEEP_STORE with a fresh schema sweep_<pid> (dropped at the end),
 * SWEEP_WORKERS `baton worker --store … --queue … --concurrency C --sweep-ms 5000` processes.
 * SWEEP_RUNS runs of a one-stage template whose only stage is a `run:` handler that awaits
 * SWEEP_HOLD_S seconds or its AbortSignal: every run stays `running` with one attempt in flight
 * on a worker and nothing else happens — the deployment is idle. With the default --concurrency
 * 100, 4 workers hold 400 ≥ 300 attempts, so every run's attempt is in flight (each one an active
 * BullMQ job whose lock is renewed); SWEEP_CONCURRENCY=8 leaves most exec jobs waiting instead.
 * The runs are submitted in this process with the functions `baton run --detach` calls
 * (loadPlanFile, validateInputs, submitRun from dist/; SWEEP_SUBMIT=cli spawns the CLI instead).
 *
 * Measured once every attempt has started and SWEEP_SETTLE_S more seconds have passed (≥ 3 sweep
 * intervals, so the sweep's "not advanced for 3 intervals" rule is in its steady state), over
 * SWEEP_WINDOW_S seconds:
 * - PostgreSQL transactions/s: Δ(xact_commit + xact_rollback) of the store's database in
 *   pg_stat_database, read from a connection to database `postgres` (reading does not count; the
 *   harness has no connection to the store's database during the window). PostgreSQL 15
 *   publishes a backend's counters up to ~10 s late, so the workers' own count (the client-side
 *   probe bench/distributed/probe.mjs, preloaded: one per autocommit statement or BEGIN…COMMIT)
 *   is reported beside it, with the statements by kind. Other sessions on the database during
 *   the window are listed (pg_stat_activity, by application_name).
 * - Redis commands/s: Δ of the total calls in INFO commandstats of the private server (commands
 *   run inside Lua scripts included), minus the harness's own INFO calls; the top commands; the
 *   BullMQ scripts the workers called, by name (probe).
 * - Then, for attribution, SWEEP_MONITOR_S seconds of Redis MONITOR (after the window, so it does
 *   not disturb it): every top-level command with the commands its Lua script ran, grouped by
 *   queue (baton-advance / baton-exec) and script or key.
 * Then every run is cancelled (cancelOnWorkers, what `baton cancel` calls), the workers stop
 * (SIGTERM, then SIGKILL), the schema is dropped, Redis stopped, and `ps` is checked for leftovers.
 * bench/distributed/reaper.mjs cleans up even if this process is SIGKILLed.
 *
 * Knobs (env): SWEEP_WORKERS=4 SWEEP_RUNS=300 SWEEP_CONCURRENCY=100 SWEEP_MS=5000
 * SWEEP_WINDOW_S=30 SWEEP_SETTLE_S=4×SWEEP_MS+5 s SWEEP_MONITOR_S=30 (0: no MONITOR)
 * SWEEP_HOLD_S=900 SWEEP_SUBMIT=api|cli SWEEP_STORE (default postgres://postgres@127.0.0.1:5432/test)
 * SWEEP_PROBE=0 (no client-side probe) SWEEP_OUT (default bench/results-sweep.md; "-": nowhere)
 * SWEEP_WORKER_ARGS (extra `baton worker` args).
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import pg from "pg";
import { startRedis } from "./distributed/redis.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const env = process.env;
const num = (k, d) => (env[k] !== undefined && env[k] !== "" ? Number(env[k]) : d);
const sweepMs = num("SWEEP_MS", 5000);
const cfg = {
  workers: num("SWEEP_WORKERS", 4),
  runs: num("SWEEP_RUNS", 300),
  concurrency: num("SWEEP_CONCURRENCY", 100),
  sweepMs,
  windowS: num("SWEEP_WINDOW_S", 30),
  settleS: num("SWEEP_SETTLE_S", (4 * sweepMs) / 1000 + 5),
  monitorS: num("SWEEP_MONITOR_S", 30),
  holdS: num("SWEEP_HOLD_S", 900),
  submit: env.SWEEP_SUBMIT === "cli" ? "cli" : "api",
  store: env.SWEEP_STORE || "postgres://postgres@127.0.0.1:5432/test",
  probe: env.SWEEP_PROBE !== "0",
  workerArgs: env.SWEEP_WORKER_ARGS ? env.SWEEP_WORKER_ARGS.split(/\s+/).filter(Boolean) : [],
};
const distDir = join(root, "dist");
const CLI = join(distDir, "cli", "main.js");
const PROBE = join(here, "distributed", "probe.mjs");
const PREFIX = "baton"; // the workers' default --queue-prefix
const APP = `baton-sweep-${process.pid}`; // application_name of every PostgreSQL connection of ours
const SCHEMA = `sweep_${process.pid}`;
const SCHEMA_TAG = "baton bench/sweep.mjs";
const dbName = decodeURIComponent(new URL(cfg.store).pathname.slice(1)) || "postgres";
const storeUrl = (() => {
  const u = new URL(cfg.store);
  u.searchParams.set("schema", SCHEMA);
  return u.toString();
})();
const statsUrl = (() => {
  const u = new URL(cfg.store);
  u.pathname = "/postgres";
  u.search = "";
  return u.toString();
})();
env.PGAPPNAME = `${APP}-harness`; // this process's own connections (setup, submit, poll, cancel)

const log = (s) => process.stderr.write(s);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
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
async function stopProcs(procs, graceMs = 15_000) {
  await Promise.all(procs.map((p) => new Promise((res) => {
    if (!alive(p)) return res();
    const t = setTimeout(() => p.kill("SIGKILL"), graceMs);
    p.once("exit", () => { clearTimeout(t); res(); });
    p.kill("SIGTERM");
  })));
}
/** Live processes that are ours: children of this process, or anything naming our schema or Redis port. */
function leftovers() {
  const out = [];
  const r = spawnSync("ps", ["-eo", "pid=,ppid=,stat=,args="], { encoding: "utf8" });
  for (const line of r.stdout.split("\n")) {
    const m = line.trim().match(/^(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/);
    if (!m) continue;
    const [, pid, ppid, stat, args] = m;
    if (Number(pid) === process.pid || stat.startsWith("Z") || args.startsWith("ps ")) continue;
    const mine = Number(ppid) === process.pid || args.includes(SCHEMA) || (redisServer && args.includes(`--port ${redisServer.port}`));
    if (mine) out.push(`${pid} ${args.slice(0, 120)}`);
  }
  return out;
}

let redisServer;
let redis; // our client of the private Redis
let stats; // pg client on the `postgres` database: pg_stat_database, pg_stat_activity
let tmp;
let schemaCreated = false;
let cleaned = false;
const cleanupNotes = [];
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  killAll();
  await Promise.all([...children].map((c) => (alive(c) ? new Promise((r) => c.once("exit", r)) : undefined)));
  redis?.disconnect();
  await redisServer?.stop().catch(() => undefined);
  if (schemaCreated) {
    const admin = new pg.Client({ connectionString: cfg.store, application_name: `${APP}-setup` });
    try {
      await Promise.race([admin.connect().then(() => admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`)), sleep(15_000).then(() => { throw new Error("timeout"); })]);
      tell("-schema");
      const { rows } = await admin.query("SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1", [SCHEMA]);
      cleanupNotes.push(rows[0].n === 0 ? `schema ${SCHEMA} dropped` : `schema ${SCHEMA} STILL PRESENT`);
    } catch (err) {
      log(`could not drop schema ${SCHEMA} (${err.message}); the reaper will try\n`);
      cleanupNotes.push(`schema ${SCHEMA}: drop failed (${err.message}), left to the reaper`);
    } finally {
      await admin.end().catch(() => undefined);
    }
  }
  await stats?.end().catch(() => undefined);
  if (tmp) {
    rmSync(tmp, { recursive: true, force: true });
    tell(`-dir ${tmp}`);
  }
  reaper.stdin.end();
  await new Promise((r) => (alive(reaper) ? reaper.once("exit", r) : r()));
  const left = leftovers();
  if (left.length) {
    log(`⚠ processes still present after cleanup, killing them:\n  ${left.join("\n  ")}\n`);
    for (const l of left) try { process.kill(Number(l.split(" ")[0]), "SIGKILL"); } catch { /* gone */ }
    cleanupNotes.push(`ps after cleanup: ${left.length} leftover process(es) found and killed: ${left.join("; ")}`);
  } else cleanupNotes.push(`ps after cleanup: no child process, redis-server on port ${redisServer?.port ?? "?"} or process naming ${SCHEMA} left`);
}
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  log(`\n${sig}: stopping the benchmark, killing its processes\n`);
  void cleanup().finally(() => process.exit(130));
});
process.on("exit", () => killAll());

// ---------------------------------------------------------------- counters
function cpuOf(pids) {
  const per = new Map();
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8");
      const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
      per.set(String(pid), (Number(rest[11]) + Number(rest[12])) / 100);
    } catch { /* gone, or not on this machine */ }
  }
  return per;
}
const cpuDelta = (a, b) => { let s = 0; for (const [pid, v] of b) if (a.has(pid)) s += v - a.get(pid); return s; };

let infoCalls = 0; // INFO commands the harness sent (subtracted)
async function redisCounters() {
  infoCalls++;
  const info = await redis.call("INFO", "commandstats");
  const cmds = {};
  let calls = 0;
  let usec = 0;
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    cmds[m[1]] = Number(m[2]);
    calls += Number(m[2]);
    usec += Number(m[3]);
  }
  return { cmds, calls, usec, info: infoCalls, at: performance.now() };
}
/** Redis activity between two snapshots, without the harness's INFO calls. */
function redisDelta(a, b) {
  const own = b.info - a.info;
  const cmds = {};
  for (const [k, v] of Object.entries(b.cmds)) {
    const d = v - (a.cmds[k] ?? 0) - (k === "info" ? own : 0);
    if (d > 0) cmds[k] = d;
  }
  return { calls: b.calls - a.calls - own, usec: b.usec - a.usec, cmds, s: (b.at - a.at) / 1000 };
}
async function xact() {
  const { rows } = await stats.query("SELECT xact_commit::bigint AS c, xact_rollback::bigint AS r FROM pg_stat_database WHERE datname = $1", [dbName]);
  return { commit: Number(rows[0].c), rollback: Number(rows[0].r), at: performance.now() };
}
/** Sessions on the store's database, by application_name (ours and others'), max seen at once. */
const sessions = new Map();
async function sampleSessions() {
  const { rows } = await stats.query(
    "SELECT coalesce(nullif(application_name, ''), '(none)') AS app, backend_type AS bt, count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() GROUP BY 1, 2",
    [dbName],
  );
  for (const r of rows) {
    const k = `${r.app.startsWith(APP) ? r.app.replace(APP, "(this bench)") : r.app} [${r.bt}]`;
    sessions.set(k, Math.max(sessions.get(k) ?? 0, r.n));
  }
}
async function ourBackends() {
  const { rows } = await stats.query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", [APP]);
  return rows.map((r) => r.pid);
}

// ---------------------------------------------------------------- workers
function startWorker(i) {
  const args = [...(cfg.probe ? ["--import", PROBE] : []), CLI, "worker", "--store", storeUrl, "--queue", redisServer.url, "--concurrency", String(cfg.concurrency), "--sweep-ms", String(cfg.sweepMs), ...cfg.workerArgs];
  const p = track(spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "ignore", "pipe"], env: { ...env, PGAPPNAME: APP } }), `baton worker #${i + 1}`);
  const w = { p, log: "", i };
  p.stderr.on("data", (d) => {
    w.log += d;
    if (w.log.length > 400_000) w.log = w.log.slice(-200_000);
  });
  w.ready = new Promise((res, rej) => {
    const t = setTimeout(() => rej(new BenchError(`baton worker #${i + 1} not ready after 30 s:\n${w.log.slice(-2000)}`)), 30_000);
    p.stderr.on("data", () => / ready /.test(w.log) && (clearTimeout(t), res()));
    p.once("exit", (code, sig) => { clearTimeout(t); rej(new BenchError(`baton worker #${i + 1} exited (${code ?? sig}) before it was ready:\n${w.log.slice(-2000)}`)); });
  });
  w.ready.catch(() => undefined);
  return w;
}
const tail = (s, n = 1500) => s.split("\n").filter((l) => !l.startsWith("PROBE ")).join("\n").slice(-n) || "(nothing)";
function checkWorkers(ws) {
  for (const w of ws) if (!alive(w.p)) throw new BenchError(`baton worker #${w.i + 1} (pid ${w.p.pid}) died (${w.p.exitCode ?? w.p.signalCode}):\n${tail(w.log, 3000)}`);
}
const emptyProbe = () => ({ txn: 0, commit: 0, rollback: 0, connect: 0, pg: {}, script: {} });
function addProbe(a, b, sign = 1) {
  const out = { txn: a.txn + sign * b.txn, commit: a.commit + sign * b.commit, rollback: a.rollback + sign * b.rollback, connect: (a.connect ?? 0) + sign * (b.connect ?? 0), pg: { ...a.pg }, script: { ...a.script } };
  for (const k of ["pg", "script"]) for (const [n, v] of Object.entries(b[k] ?? {})) out[k][n] = (out[k][n] ?? 0) + sign * v;
  return out;
}
/** Each worker's probe counters (SIGUSR2 → one PROBE line). */
async function probeCounts(ws) {
  if (!cfg.probe) return undefined;
  return Promise.all(ws.map((w) => new Promise((res, rej) => {
    const from = w.log.length;
    const t0 = Date.now();
    const check = () => {
      const at = w.log.indexOf("PROBE ", from);
      const end = at >= 0 ? w.log.indexOf("\n", at) : -1;
      if (end >= 0) return res(JSON.parse(w.log.slice(at + 6, end)));
      if (Date.now() - t0 > 5000) return rej(new BenchError(`baton worker #${w.i + 1} did not answer the probe (SIGUSR2) within 5 s`));
      setTimeout(check, 5);
    };
    w.p.kill("SIGUSR2");
    check();
  })));
}

function cli(args, what, timeoutMs = 60_000) {
  return new Promise((res, rej) => {
    const p = track(spawn(process.execPath, [CLI, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: { ...env, PGAPPNAME: `${APP}-cli` } }), what);
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const t = setTimeout(() => { p.kill("SIGKILL"); rej(new BenchError(`${what} did not finish within ${timeoutMs / 1000} s:\n${err.slice(-2000)}`)); }, timeoutMs);
    p.once("exit", (code, sig) => {
      clearTimeout(t);
      if (code === 0) res({ stdout: out, stderr: err });
      else rej(new BenchError(`${what} failed (${code ?? sig}): node ${CLI} ${args.join(" ")}\n${err.slice(-3000)}`));
    });
  });
}
async function pool(n, items, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  }));
}
const dist = async (p) => import(pathToFileURL(join(distDir, p)).href);

// ---------------------------------------------------------------- Redis MONITOR attribution
/** sha1 of each BullMQ script → its name (ioredis sends EVALSHA of the script's text). */
function bullmqShas() {
  const require = createRequire(join(root, "package.json"));
  const scripts = createRequire(require.resolve("bullmq"))("./scripts/index.js");
  const out = new Map();
  for (const s of Object.values(scripts)) if (s?.content) out.set(createHash("sha1").update(s.content).digest("hex"), s.name);
  return out;
}
const QUEUE_SUFFIX = new Set(["wait", "active", "stalled", "stalled-check", "marker", "events", "meta", "id", "delayed", "prioritized", "pc", "paused", "completed", "failed", "limiter", "waiting-children", "repeat", "de"]);
/** A key with run and job ids taken out: baton:baton-exec:<job>:lock, baton:active, … */
function keyFamily(key) {
  const k = String(key);
  const parts = k.split(":");
  if (parts[0] !== PREFIX) return "(other key)";
  if (parts[1] === "baton-advance" || parts[1] === "baton-exec") {
    const rest = parts.slice(2);
    if (rest.length === 1 && QUEUE_SUFFIX.has(rest[0])) return `${parts[0]}:${parts[1]}:${rest[0]}`;
    const last = rest[rest.length - 1];
    return `${parts[0]}:${parts[1]}:<job>${["lock", "logs", "dependencies", "processed"].includes(last) && rest.length > 1 ? `:${last}` : ""}`;
  }
  return `${parts[0]}:${parts[1] ?? ""}${parts.length > 2 ? ":…" : ""}`;
}
const queueOf = (keys) => (keys.some((k) => String(k).includes(":baton-advance:")) ? "advance queue" : keys.some((k) => String(k).includes(":baton-exec:")) ? "exec queue" : "");

async function monitorWindow(seconds, shas, wait) {
  const base = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  base.on("error", () => undefined);
  const mon = await base.monitor();
  mon.on("error", () => undefined);
  const groups = new Map(); // label → { calls, inner, innerCmds }
  let current;
  let lines = 0;
  mon.on("monitor", (_time, args, source) => {
    lines++;
    const cmd = String(args[0] ?? "?").toLowerCase();
    if (source === "lua") {
      if (current) {
        current.inner++;
        current.innerCmds[cmd] = (current.innerCmds[cmd] ?? 0) + 1;
      }
      return;
    }
    let label;
    if (cmd === "evalsha" || cmd === "eval") {
      const n = Number(args[2]);
      const keys = args.slice(3, 3 + n);
      const name = cmd === "evalsha" ? shas.get(String(args[1])) ?? `Baton script ${String(args[1]).slice(0, 8)} on ${keyFamily(keys[0])}` : "eval";
      label = `${name}${queueOf(keys) ? ` (${queueOf(keys)})` : ""}`;
    } else if (["monitor", "info", "client", "ping"].includes(cmd)) label = `${cmd} (harness / connection)`;
    else if (["subscribe", "psubscribe", "publish"].includes(cmd)) label = `${cmd} ${args[1] ?? ""}`;
    else if (["bzpopmin", "bzpopmax", "blpop", "brpoplpush", "blmove"].includes(cmd)) label = `${cmd} ${keyFamily(args[1])} (a worker waiting for jobs)`;
    else label = `${cmd} ${keyFamily(args[1])}`;
    let g = groups.get(label);
    if (!g) groups.set(label, (g = { calls: 0, inner: 0, innerCmds: {} }));
    g.calls++;
    current = g;
  });
  const a = await redisCounters();
  await wait(seconds * 1000);
  const b = await redisCounters();
  mon.disconnect();
  base.disconnect();
  return { groups, lines, delta: redisDelta(a, b), seconds };
}

// ---------------------------------------------------------------- main
const tStart = Date.now();
const loadAtStart = loadavg();
let result;

async function main() {
  try { readFileSync(CLI); } catch { throw new BenchError(`${CLI} not found: run npm run build first`); }
  tmp = mkdtempSync(join(tmpdir(), "baton-bench-sweep-"));
  tell(`+dir ${tmp}`);
  redisServer = await startRedis((proc) => track(proc, "redis-server"));
  redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  redis.on("error", () => undefined);
  stats = new pg.Client({ connectionString: statsUrl, application_name: `${APP}-stats` });
  await stats.connect().catch((err) => { throw new BenchError(`cannot connect to ${statsUrl} to read pg_stat_database (${err.message})`); });
  const admin = new pg.Client({ connectionString: cfg.store, application_name: `${APP}-setup` });
  await admin.connect().catch((err) => { throw new BenchError(`cannot connect to the store ${cfg.store}: ${err.message}`); });
  // Schemas of earlier runs of this benchmark that were killed outright (their process is gone).
  for (const { nspname, d } of (await admin.query("SELECT nspname, obj_description(oid, 'pg_namespace') AS d FROM pg_namespace WHERE nspname ~ '^sweep_[0-9]+$'")).rows) {
    if (!String(d ?? "").startsWith(SCHEMA_TAG)) continue;
    let gone = false;
    try { process.kill(Number(nspname.slice(6)), 0); } catch { gone = true; }
    if (gone) await admin.query(`DROP SCHEMA IF EXISTS ${nspname} CASCADE`);
  }
  await admin.query(`CREATE SCHEMA ${SCHEMA}`);
  schemaCreated = true;
  tell(`+schema ${cfg.store} ${SCHEMA}`);
  await admin.query(`COMMENT ON SCHEMA ${SCHEMA} IS '${SCHEMA_TAG} pid ${process.pid}'`);
  await admin.end();
  await cli(["migrate", "--store", storeUrl], "baton migrate");

  // The template: one run: stage that holds its attempt until SWEEP_HOLD_S or its abort.
  writeFileSync(join(tmp, "idle.mjs"), [
    "// An attempt that does nothing for a long time (until its AbortSignal fires).",
    "export function hold(ctx) {",
    "  const ms = ctx.input?.ms ?? 120000;",
    "  return new Promise((resolve, reject) => {",
    "    const t = setTimeout(() => resolve({ held: ms }), ms);",
    "    ctx.signal.addEventListener('abort', () => { clearTimeout(t); reject(ctx.signal.reason ?? new Error('aborted')); }, { once: true });",
    "  });",
    "}",
    "",
  ].join("\n"));
  const file = join(tmp, "idle.yaml");
  writeFileSync(file, ["baton: 1", "name: bench-sweep-idle", "stages:", "  hold:", '    run: "./idle.mjs#hold"', `    input: { ms: ${cfg.holdS * 1000} }`, "output: hold", ""].join("\n"));

  log(`Sweep benchmark: Redis ${redisServer.url} (private), store schema ${SCHEMA}; ${cfg.workers} workers --concurrency ${cfg.concurrency} --sweep-ms ${cfg.sweepMs}; ${cfg.runs} idle runs\n`);
  const ws = Array.from({ length: cfg.workers }, (_, i) => startWorker(i));
  await Promise.all(ws.map((w) => w.ready));

  // Submit.
  const tSubmit = Date.now();
  const ids = [];
  const { loadPlanFile, validateInputs } = await dist("index.js");
  const { openStoreAsync } = await dist("store/open.js");
  const { submitRun, cancelOnWorkers } = await dist("distributed/submit.js");
  const { redisConnection } = await dist("distributed/worker.js");
  const target = { connection: redisConnection(redisServer.url), prefix: PREFIX };
  if (cfg.submit === "cli") {
    await pool(8, Array.from({ length: cfg.runs }, (_, i) => i), async () => {
      const { stdout } = await cli(["run", file, "--store", storeUrl, "--queue", redisServer.url, "--detach", "--json"], "baton run --detach");
      ids.push(JSON.parse(stdout.trim().split("\n").pop()).id);
    });
  } else {
    const store = await openStoreAsync(storeUrl);
    try {
      const plan = loadPlanFile(file);
      const inputs = validateInputs(plan, {});
      await pool(16, Array.from({ length: cfg.runs }, (_, i) => i), async () => {
        ids.push((await submitRun(store, target, plan, inputs)).id);
      });
    } finally {
      await store.close();
    }
  }
  const submitS = (Date.now() - tSubmit) / 1000;
  log(`  submitted ${ids.length} runs in ${submitS.toFixed(1)} s (${cfg.submit === "cli" ? "baton run --detach --json" : "submitRun in this process"})\n`);

  // Wait until every run is running with its attempt taken by a worker (an active exec job).
  const inFlight = Math.min(cfg.runs, cfg.workers * cfg.concurrency);
  const poll = new pg.Client({ connectionString: cfg.store, application_name: `${APP}-poll` });
  await poll.connect();
  let st;
  const tWait = Date.now();
  for (;;) {
    const { rows } = await poll.query(
      `SELECT (SELECT count(*)::int FROM ${SCHEMA}.runs WHERE status = 'running') AS running, (SELECT count(*)::int FROM ${SCHEMA}.runs) AS runs,
              (SELECT count(DISTINCT run_id)::int FROM ${SCHEMA}.events WHERE type = 'stage_started') AS started,
              (SELECT count(*)::int FROM ${SCHEMA}.events WHERE type IN ('stage_failed', 'stage_cancelled', 'run_finished')) AS bad`,
    );
    const active = await redis.llen(`${PREFIX}:baton-exec:active`);
    const waiting = await redis.llen(`${PREFIX}:baton-exec:wait`);
    st = { ...rows[0], active, waiting };
    if (st.bad > 0) throw new BenchError(`runs did not stay idle: ${st.bad} stage_failed/stage_cancelled/run_finished events`);
    if (st.running === cfg.runs && st.started === cfg.runs && active === inFlight) break;
    checkWorkers(ws);
    if (Date.now() - tWait > 180_000) throw new BenchError(`not all runs started within 180 s: ${JSON.stringify(st)}\n${ws.map((w) => `#${w.i + 1}: ${tail(w.log, 600)}`).join("\n")}`);
    await sleep(250);
  }
  await poll.end();
  const startedS = (Date.now() - tSubmit) / 1000;
  log(`  all ${cfg.runs} runs running, ${st.active} attempts in flight (active exec jobs), ${st.waiting} exec jobs waiting, ${startedS.toFixed(1)} s after the first submit\n`);

  // Settle (the sweep's quiet rule is 3 intervals), sampling Redis (and the workers' probes) each second.
  const series = [];
  const probeSum = (each) => (each ? each.reduce((a, p) => a + p.txn + p.connect, 0) : NaN);
  const xsum = (x) => x.commit + x.rollback;
  let prev = { r: await redisCounters(), p: probeSum(await probeCounts(ws)), x: await xact() };
  let watchSessions = false;
  const sampleUntil = async (ms) => {
    const end = performance.now() + ms;
    while (performance.now() < end - 5) {
      await sleep(Math.min(1000, end - performance.now()));
      const cur = { r: await redisCounters(), p: probeSum(await probeCounts(ws)), x: await xact() };
      series.push({ t: (Date.now() - tSubmit) / 1000, ...redisDelta(prev.r, cur.r), pg: cur.p - prev.p, pgServer: xsum(cur.x) - xsum(prev.x) });
      prev = cur;
      if (watchSessions) await sampleSessions(); // every second: short-lived sessions of others show up too
      checkWorkers(ws);
    }
  };
  log(`  settling ${cfg.settleS} s\n`);
  for (let i = 0; i < 200; i++) { // the submit and poll backends exit (their counters are published at exit)
    const { rows } = await stats.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE $2", [dbName, `${APP}-%`]);
    if (rows[0].n === 0) break;
    await sleep(25);
  }
  await sampleUntil(cfg.settleS * 1000);

  // The window.
  log(`  measuring ${cfg.windowS} s\n`);
  sessions.clear();
  await sampleSessions();
  const backends = await ourBackends();
  const pgA = await xact();
  const rA = await redisCounters();
  const prA = await probeCounts(ws);
  const cpuA = { w: cpuOf(ws.map((w) => w.p.pid)), r: cpuOf([redisServer.proc.pid]), pg: cpuOf(backends) };
  const seriesFrom = series.length;
  prev = { r: rA, p: probeSum(prA), x: pgA };
  watchSessions = true;
  await sampleUntil(cfg.windowS * 1000);
  watchSessions = false;
  const pgB = await xact();
  const rB = await redisCounters();
  const prB = await probeCounts(ws);
  prev = { r: rB, p: probeSum(prB), x: pgB };
  const cpuB = { w: cpuOf(ws.map((w) => w.p.pid)), r: cpuOf([redisServer.proc.pid]), pg: cpuOf(backends) };
  await sampleSessions();
  const windowSeries = series.slice(seriesFrom);
  const winS = (pgB.at - pgA.at) / 1000;
  const redisWin = redisDelta(rA, rB);
  const perWorker = prA && prB ? prA.map((a, i) => addProbe(prB[i], a, -1)) : undefined;
  const probeWin = perWorker ? perWorker.reduce((a, b) => addProbe(a, b), emptyProbe()) : undefined;
  // Runs still idle and in flight?
  const active = await redis.llen(`${PREFIX}:baton-exec:active`);

  // Attribution: Redis MONITOR after the window.
  let mon;
  if (cfg.monitorS > 0) {
    log(`  Redis MONITOR ${cfg.monitorS} s (attribution)\n`);
    mon = await monitorWindow(cfg.monitorS, bullmqShas(), sampleUntil);
  }

  // Cancel everything, stop the workers.
  log(`  cancelling ${ids.length} runs\n`);
  const tCancel = Date.now();
  const store = await openStoreAsync(storeUrl);
  let statuses;
  try {
    await pool(16, ids, (id) => cancelOnWorkers(store, target, id, "bench/sweep.mjs: done"));
    for (;;) {
      statuses = Object.fromEntries((await store.list({ limit: -1 })).reduce((m, r) => m.set(r.status, (m.get(r.status) ?? 0) + 1), new Map()));
      if ((statuses.running ?? 0) === 0) break;
      if (Date.now() - tCancel > 60_000) { log(`  ⚠ runs still running 60 s after the cancel: ${JSON.stringify(statuses)}\n`); break; }
      await sleep(250);
    }
  } finally {
    await store.close();
  }
  const cancelS = (Date.now() - tCancel) / 1000;
  const activeAfter = await redis.llen(`${PREFIX}:baton-exec:active`);
  log(`  runs after the cancel: ${JSON.stringify(statuses)} (${cancelS.toFixed(1)} s; active exec jobs left ${activeAfter}); stopping the workers\n`);
  await stopProcs(ws.map((w) => w.p));
  const errors = ws.flatMap((w) => w.log.split("\n").filter((l) => /failed:|worker error|sweep:/.test(l)).map((l) => `#${w.i + 1} ${l}`));
  result = { ws, st, submitS, startedS, pgA, pgB, winS, redisWin, probeWin, perWorker, cpu: { workers: cpuDelta(cpuA.w, cpuB.w), redis: cpuDelta(cpuA.r, cpuB.r), pg: cpuDelta(cpuA.pg, cpuB.pg), pgSeen: cpuA.pg.size }, windowSeries, seriesFrom, series, mon, active, statuses, cancelS, errors, inFlight };
}

let failed;
try {
  await main();
} catch (err) {
  failed = err;
}
await cleanup();
if (failed) {
  log(`\n✖ sweep benchmark failed: ${failed instanceof BenchError ? failed.message : failed.stack}\n(all its processes were killed, its Redis stopped and schema ${SCHEMA} dropped)\n${cleanupNotes.join("\n")}\n`);
  process.exit(1);
}
if (interrupted) process.exit(130);

// ---------------------------------------------------------------- report
const r = result;
const f1 = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "–");
const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–");
const ISSUE = { pg: 130, redis: 5900 };
const pgServer = r.pgB.commit - r.pgA.commit + (r.pgB.rollback - r.pgA.rollback);
const pgServerS = pgServer / r.winS;
const probeS = r.probeWin ? (r.probeWin.txn + r.probeWin.connect) / r.winS : NaN;
const redisS = r.redisWin.calls / r.redisWin.s;
// The sweep's work comes in bursts (every idle run re-enqueued at once): find them in the
// per-second series (settle + window + MONITOR) and average over whole burst-to-burst periods.
const all = r.series;
const med = (a) => { const b = [...a].sort((x, y) => x - y); return b[Math.floor(b.length / 2)] ?? NaN; };
const baseRedis = med(all.map((x) => x.calls / x.s));
const basePg = med(all.map((x) => x.pg / x.s));
const usePg = cfg.probe;
const hot = usePg ? Math.max(10, cfg.runs / 10, 5 * basePg) : Math.max(5 * baseRedis, baseRedis + 20 * cfg.runs);
const bursts = [];
all.forEach((x, i) => {
  if ((usePg ? x.pg : x.calls) / x.s <= hot) return;
  const last = bursts[bursts.length - 1];
  if (last && last.i1 === i - 1) last.i1 = i;
  else bursts.push({ i0: i, i1: i });
});
// Between bursts: the mean over the seconds that are not in a burst (nor the second after one).
const quiet = all.filter((_, i) => !bursts.some((b) => i >= b.i0 && i <= b.i1 + 1));
const quietS = quiet.reduce((a, x) => a + x.s, 0);
const quietRedis = quiet.reduce((a, x) => a + x.calls, 0) / quietS;
const quietPg = quiet.reduce((a, x) => a + x.pg, 0) / quietS;
const burstAt = (b) => all[b.i0].t - all[b.i0].s; // start of the first hot second, s after the first submit
let periods;
if (bursts.length >= 2) {
  const span = all.slice(bursts[0].i0, bursts[bursts.length - 1].i0);
  const dur = span.reduce((a, x) => a + x.s, 0);
  const n = bursts.length - 1;
  const calls = span.reduce((a, x) => a + x.calls, 0);
  const pgTx = span.reduce((a, x) => a + x.pg, 0);
  const pgSrv = span.reduce((a, x) => a + x.pgServer, 0);
  periods = { n, dur, period: dur / n, redisS: calls / dur, pgS: pgTx / dur, pgServerS: pgSrv / dur, redisPerRun: (calls - quietRedis * dur) / n / cfg.runs, pgPerRun: (pgTx - quietPg * dur) / n / cfg.runs };
}
const inWindow = bursts.filter((b) => b.i0 >= r.seriesFrom && b.i0 < r.seriesFrom + r.windowSeries.length).length;
const top = (o, n, div, d = 1) => Object.entries(o ?? {}).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${k} ${f1(v / div, d)}`).join(", ");

const table = [
  `| idle, ${cfg.runs} running runs, ${cfg.workers} workers | this run (${f1(r.winS, 1)} s window) | issue 10 (before the change) | ratio |`,
  "|---|---:|---:|---:|",
  `| PostgreSQL transactions/s — Δ(xact_commit + xact_rollback) of \`${dbName}\` | **${f1(pgServerS)}** | ${ISSUE.pg} | ${f1(pgServerS / ISSUE.pg, 2)}× |`,
  `| PostgreSQL transactions/s — the workers' own count (probe) | ${f1(probeS)} | | |`,
  `| Redis commands/s — Δ total calls, INFO commandstats | **${f0(redisS)}** | ${ISSUE.redis.toLocaleString("en-US")} | ${f1(redisS / ISSUE.redis, 2)}× |`,
  ...(periods ? [
    `| Redis commands/s over ${periods.n} whole sweep period${periods.n > 1 ? "s" : ""} (burst → burst, ${f1(periods.dur, 0)} s) | ${f0(periods.redisS)} | ${ISSUE.redis.toLocaleString("en-US")} | ${f1(periods.redisS / ISSUE.redis, 2)}× |`,
    `| PostgreSQL transactions/s over the same periods — pg_stat_database Δ / the workers' count | ${f1(periods.pgServerS)} / ${f1(periods.pgS)} | ${ISSUE.pg} | ${f1(periods.pgServerS / ISSUE.pg, 2)}× / ${f1(periods.pgS / ISSUE.pg, 2)}× |`,
  ] : []),
  `| CPU of the ${cfg.workers} workers / Redis / the workers' PG backends open at the window's start | ${f1((r.cpu.workers / r.winS) * 100)}% / ${f1((r.cpu.redis / r.winS) * 100)}% / ${r.cpu.pgSeen ? `${f1((r.cpu.pg / r.winS) * 100)}%` : "–"} of one CPU | | |`,
].join("\n");

const detail = [];
detail.push(`- Redis, top commands per second (commandstats, Lua-run commands included): ${top(r.redisWin.cmds, 10, r.redisWin.s)}`);
if (r.probeWin) {
  detail.push(`- PostgreSQL statements per second, counted in the workers: ${top(r.probeWin.pg, 8, r.winS, 2) || "none"}; rolled back ${f1(r.probeWin.rollback / r.winS, 2)}/s; new connections ${f1(r.probeWin.connect / r.winS, 2)}/s`);
  detail.push(`- BullMQ (and Baton) scripts called per second, counted in the workers: ${top(r.probeWin.script, 10, r.winS, 2) || "none"}`);
  detail.push(`- per worker, PG transactions in the window: ${r.perWorker.map((p, i) => `#${i + 1} ${p.txn}`).join(", ")} (the sweep runs in one worker at a time, under the Redis lock \`${PREFIX}:sweep\`)`);
}
const buckets = [];
for (let i = 0; i < r.windowSeries.length; i += 5) {
  const part = r.windowSeries.slice(i, i + 5);
  const s = part.reduce((a, x) => a + x.s, 0);
  buckets.push(`${f0(part.reduce((a, x) => a + x.calls, 0) / s)}`);
}
detail.push(`- Redis commands/s in 5 s slices of the window: ${buckets.join(" · ")}; per second, min ${f0(Math.min(...r.windowSeries.map((x) => x.calls / x.s)))}, max ${f0(Math.max(...r.windowSeries.map((x) => x.calls / x.s)))}`);
detail.push(`- Sweep bursts (seconds above ${f0(hot)} ${usePg ? "PG transactions/s counted in the workers" : "Redis commands/s"}) at ${bursts.map((b) => `${f1(burstAt(b), 0)} s`).join(", ") || "–"} after the first submit (window: ${f1(all[r.seriesFrom].t - all[r.seriesFrom].s, 0)}–${f1(all[r.seriesFrom + r.windowSeries.length - 1].t, 0)} s, holding ${inWindow} burst${inWindow === 1 ? "" : "s"})${periods ? `: one every ${f1(periods.period)} s = ${f1(periods.period / (cfg.sweepMs / 1000), 1)} sweep intervals; between bursts ${f0(quietRedis)} Redis commands/s and ${f1(quietPg, 2)} PG transactions/s (the workers' count); each burst costs ${f1(periods.redisPerRun)} Redis commands and ${f1(periods.pgPerRun, 2)} PG transactions per running run above that` : ""}`);
const sessionsSeen = [...sessions].map(([k, v]) => `${k} ×${v}`).join(", ");
detail.push(`- Sessions on database \`${dbName}\` during the window (pg_stat_activity sampled every second, max at once): ${sessionsSeen || "none"}`);

let attribution = "";
if (r.mon) {
  const m = r.mon;
  const rows = [...m.groups].map(([label, g]) => ({ label, ...g, total: g.calls + g.inner })).sort((a, b) => b.total - a.total);
  const sum = rows.reduce((a, x) => a + x.total, 0);
  attribution = [
    `Redis MONITOR for ${m.seconds} s right after the window (runs still idle): ${f0(sum / m.seconds)} commands/s seen by MONITOR (commandstats over the same ${m.seconds} s: ${f0(m.delta.calls / m.delta.s)}/s). Each top-level command with the commands its Lua script ran:`,
    "",
    "| top-level command (queue / key) | calls/s | commands run by it/s | total/s | share | inside the script |",
    "|---|---:|---:|---:|---:|---|",
    ...rows.filter((x) => x.total / m.seconds >= 0.5).map((x) => `| ${x.label} | ${f1(x.calls / m.seconds)} | ${f1(x.inner / m.seconds)} | ${f1(x.total / m.seconds)} | ${f1((100 * x.total) / sum)}% | ${top(x.innerCmds, 6, m.seconds)} |`),
    ...(rows.some((x) => x.total / m.seconds < 0.5) ? [`| (${rows.filter((x) => x.total / m.seconds < 0.5).length} others under 0.5/s) | | | ${f1(rows.filter((x) => x.total / m.seconds < 0.5).reduce((a, x) => a + x.total, 0) / m.seconds)} | | |`] : []),
  ].join("\n");
}

const cpu = cpus();
const setup = `Node ${process.version}, ${cpu.length} × ${cpu[0]?.model.trim() ?? "?"} (shared by the workers, PostgreSQL, Redis and the harness); load average at the start ${loadAtStart.map((x) => x.toFixed(2)).join(" / ")}; ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; total ${f0((Date.now() - tStart) / 1000)} s.`;
const method = [
  `${cfg.workers} × \`baton worker --store …?schema=${SCHEMA} --queue <private redis-server> --concurrency ${cfg.concurrency} --sweep-ms ${cfg.sweepMs}\`${cfg.workerArgs.length ? ` ${cfg.workerArgs.join(" ")}` : ""}${cfg.probe ? " (each with bench/distributed/probe.mjs preloaded: client-side counts only)" : ""}. ${cfg.runs} runs of a one-stage template whose \`run:\` handler awaits ${cfg.holdS} s or its AbortSignal, submitted ${cfg.submit === "cli" ? "with `baton run --detach --json`" : "in the harness with `submitRun` (what `baton run --detach` calls)"} in ${f1(r.submitS)} s; all ${cfg.runs} running with ${r.st.active} attempts in flight (active exec jobs) and ${r.st.waiting} exec jobs waiting ${f1(r.startedS)} s after the first submit (--concurrency ${cfg.concurrency} × ${cfg.workers} = ${cfg.concurrency * cfg.workers} slots${cfg.concurrency * cfg.workers >= cfg.runs ? ": every attempt in flight" : ""}).`,
  `Then ${cfg.settleS} s of settling (the sweep re-enqueues a run only after 3 sweep intervals = ${(3 * cfg.sweepMs) / 1000} s without an advance, so the window starts in that steady state), then the ${cfg.windowS} s window. Active exec jobs at the end of the window: ${r.active}.`,
  `PG: pg_stat_database of \`${dbName}\` read from a connection to \`postgres\`; the harness holds no connection to \`${dbName}\` during the window. PostgreSQL 15 publishes a backend's counters up to ~10 s late, so a 30 s server delta is ± that lag; the probe line counts the workers' transactions client-side (each autocommit statement or BEGIN…COMMIT, plus one per new connection).`,
  `Redis: Δ of the total calls in INFO commandstats of the private redis-server (commands run inside BullMQ's Lua scripts are counted there too), minus the harness's INFO (one per second).`,
  `Every second (settle, window and MONITOR alike) the harness also reads commandstats, the workers' probes (SIGUSR2) and pg_stat_database. The sweep's work comes in bursts (every idle run re-enqueued by one sweep); a burst is a second with more than the threshold shown of the workers' PG transactions, and the "whole sweep periods" rows average from the first burst seen to the last one (whole burst-to-burst periods, so they do not depend on where a 30 s window falls, and the server's publication lag cancels out).`,
  `Cleanup: cancelled every run (cancelOnWorkers, what \`baton cancel\` calls) in ${f1(r.cancelS)} s → ${JSON.stringify(r.statuses)}; SIGTERM to the workers (SIGKILL after 15 s); ${cleanupNotes.join("; ")}; Redis stopped.`,
  ...(r.errors.length ? [`Worker error lines: ${r.errors.length}, first: ${r.errors[0].slice(0, 300)}`] : ["No worker logged an error (failed job, worker error, sweep error)."]),
];
const doc = `## Idle cost of the recovery sweep (bench/sweep.mjs)\n\n${setup}\n\n${table}\n\n${detail.join("\n")}\n\n${attribution ? `### Where the commands come from\n\n${attribution}\n\n` : ""}### Method\n\n${method.map((x) => `- ${x}`).join("\n")}\n\nRun it with \`npm run bench:sweep\` (knobs at the top of bench/sweep.mjs).\n`;
process.stdout.write("\n" + doc);
const outFile = env.SWEEP_OUT ?? join(here, "results-sweep.md");
if (outFile !== "-") {
  writeFileSync(outFile, doc);
  log(`\nwritten to ${outFile}\n`);
}
