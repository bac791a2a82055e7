/**
 * Distributed-mode benchmark (SPEC §6; not a test, CI does not run it):  npm run bench:distributed
 *
 * For 1, 2 and 4 `baton worker` processes (`node dist/cli/main.js --store PG worker --queue
 * REDIS --concurrency 16`) sharing one PostgreSQL schema (fresh per configuration) and one Redis
 * db (FLUSHDB first), runs workloads of no-op `value:` stages submitted with `submitRun`:
 *   chain  DIST_RUNS runs (default 200) of a DIST_CHAIN-stage chain (default 10), all at once
 *   fan    DIST_FAN_RUNS runs (default 4) of 1 → DIST_FAN (default 200) → 1, all at once
 *   latency  one run of a DIST_LATENCY_CHAIN-stage chain (default 200) alone: the hop latency of
 *          an unloaded system (under the saturating workloads a hop mostly measures queueing:
 *          by Little's law, runs in flight ÷ stages/s)
 * and reads the numbers back from the stored events (bench/distributed/measure.mjs): stages/s
 * (executed stages ÷ first submit → last run_finished) and the hop latency (a stage's
 * stage_started.at − its latest dependency's stage_succeeded.at), p50/p99. Prints a markdown
 * table and writes bench/results-distributed.md. Workers are killed at the end and on error.
 *
 * Knobs (env):
 *   DIST_QUICK=1           smoke run: workers 1,2; 20 chain runs; 1 fan run of 1→50→1; latency chain 50
 *   DIST_WORKERS=1,2,4     worker process counts
 *   DIST_WORKLOADS=chain,fan,latency
 *   DIST_CONCURRENCY=16    --concurrency of each worker
 *   DIST_RUNS, DIST_CHAIN, DIST_FAN_RUNS, DIST_FAN
 *   DIST_STORE             PostgreSQL URL (default postgres://postgres@127.0.0.1:5432/test);
 *                          a schema bench_dist_<pid>_w<N> is created per configuration and dropped after
 *   DIST_QUEUE             Redis URL (default redis://127.0.0.1:6379/12; FLUSHDB'd before each configuration)
 *   DIST_CPU_PROF=1        run worker #1 of every configuration under `node --cpu-prof` into
 *                          bench/distributed/profiles/ (summarise with bench/profile-summary.mjs)
 *   DIST_COUNT=1           preload bench/distributed/count.mjs into the workers and print, per workload,
 *                          PostgreSQL statements, BullMQ scripts and Redis commands per stage
 *   DIST_BATON=PATH        use another build's dist/ directory (node_modules/ and schema/ next to it) for
 *                          the workers and the submitter, to measure a change to src/ before making it
 *   DIST_WORKER_ARGS       extra args for `baton worker` (e.g. "--lock-ms 30000")
 *   DIST_SUBMIT=paused     submit each batch while the `advance` queue is paused (BullMQ Queue.pause) and
 *                          start the clock when it resumes: measures the workers without the
 *                          submitter's cost (submitRun opens a Redis connection per call) competing
 *                          for the CPUs; "submit→first stage" then includes the pause
 *   DIST_TIMEOUT_S=120     per workload
 *   DIST_OUT               where to write the table (default bench/results-distributed.md; "-" = nowhere)
 */
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import pg from "pg";
import { chain, fan } from "./distributed/workloads.mjs";
import { measure } from "./distributed/measure.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const env = process.env;
// DIST_BATON: another build's dist/ directory (with node_modules and schema/ next to it) to compare a change.
const distDir = env.DIST_BATON ? resolve(env.DIST_BATON) : join(root, "dist");
const load = (p) => import(pathToFileURL(join(distDir, p)).href);
const { compileSource } = await load("index.js");
const { openStoreAsync } = await load("store/open.js");
const { submitRun } = await load("distributed/submit.js");
const { redisConnection, ADVANCE } = await load("distributed/worker.js");
const QUICK = env.DIST_QUICK === "1";
const num = (k, d) => (env[k] !== undefined && env[k] !== "" ? Number(env[k]) : d);
const list = (k, d) => (env[k] ? env[k].split(",").map((s) => s.trim()).filter(Boolean) : d);
const cfg = {
  workers: list("DIST_WORKERS", QUICK ? ["1", "2"] : ["1", "2", "4"]).map(Number),
  workloads: list("DIST_WORKLOADS", ["chain", "fan", "latency"]),
  concurrency: num("DIST_CONCURRENCY", 16),
  runs: num("DIST_RUNS", QUICK ? 20 : 200),
  chain: num("DIST_CHAIN", 10),
  fanRuns: num("DIST_FAN_RUNS", QUICK ? 1 : 4),
  fan: num("DIST_FAN", QUICK ? 50 : 200),
  latency: num("DIST_LATENCY_CHAIN", QUICK ? 50 : 200),
  store: env.DIST_STORE || "postgres://postgres@127.0.0.1:5432/test",
  queue: env.DIST_QUEUE || "redis://127.0.0.1:6379/12",
  prof: env.DIST_CPU_PROF === "1",
  count: env.DIST_COUNT === "1",
  workerArgs: env.DIST_WORKER_ARGS ? env.DIST_WORKER_ARGS.split(/\s+/).filter(Boolean) : [],
  timeoutS: num("DIST_TIMEOUT_S", 120),
  paused: env.DIST_SUBMIT === "paused",
};
const TARGET = { workers: 4, stagesPerS: 1000, hopP50: 5 };
const profDir = join(here, "distributed", "profiles");
// The workers' PostgreSQL connections carry this application_name, so their backends' CPU can be told apart.
const WORKER_APP = `baton-bench-worker-${process.pid}`;

// ---- child processes: always killed, whatever happens ----
const children = new Set();
const killAll = (sig = "SIGKILL") => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) { try { c.kill(sig); } catch { /* gone */ } }
};
process.on("exit", () => killAll());
let currentSchema; // dropped on the way out, even when interrupted
let admin;
let redis;
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => {
  killAll();
  const bye = () => process.exit(130);
  setTimeout(bye, 3000).unref();
  Promise.allSettled([
    currentSchema && admin ? admin.query(`DROP SCHEMA IF EXISTS ${currentSchema} CASCADE`) : undefined,
    redis?.flushdb(),
  ]).then(bye);
});
process.on("uncaughtException", (err) => { killAll(); console.error(err); process.exit(1); });
process.on("unhandledRejection", (err) => { killAll(); console.error(err); process.exit(1); });

function startWorker(storeUrl, i, tag) {
  const nodeArgs = [];
  if (cfg.count) nodeArgs.push("--import", join(here, "distributed", "count.mjs"));
  if (cfg.prof && i === 0) {
    mkdirSync(profDir, { recursive: true });
    nodeArgs.push("--cpu-prof", "--cpu-prof-dir", profDir, "--cpu-prof-name", `worker.${tag}.cpuprofile`);
  }
  const args = [...nodeArgs, join(distDir, "cli/main.js"), "--store", storeUrl, "worker", "--queue", cfg.queue, "--concurrency", String(cfg.concurrency), ...cfg.workerArgs];
  const p = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "ignore", "pipe"], env: { ...env, PGAPPNAME: WORKER_APP } });
  children.add(p);
  const w = { p, log: "", errors: 0 };
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${i} not ready after 30 s:\n${w.log}`)), 30_000);
    p.stderr.on("data", (d) => {
      w.log += d;
      if (w.log.length > 200_000) w.log = w.log.slice(-100_000);
      if (/ ready /.test(w.log)) { clearTimeout(timer); resolve(); }
    });
    p.on("exit", (code, sig) => { clearTimeout(timer); reject(new Error(`worker ${i} exited (${code ?? sig}) before ready:\n${w.log}`)); });
  });
  return { w, ready };
}

async function stopWorkers(ws) {
  await Promise.all(ws.map(({ p }) => new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    const t = setTimeout(() => p.kill("SIGKILL"), 15_000);
    p.on("exit", () => { clearTimeout(t); children.delete(p); resolve(); });
    p.kill("SIGTERM");
  })));
}

/** Per-process CPU seconds (Linux /proc utime + stime; nothing elsewhere). */
function cpuOf(pids) {
  const out = new Map();
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8");
      const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
      out.set(String(pid), (Number(rest[11]) + Number(rest[12])) / 100); // fields 14, 15 in USER_HZ
    } catch { /* gone or not Linux */ }
  }
  return out;
}
function pidsNamed(re) {
  try {
    return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).filter((d) => {
      try { return re.test(readFileSync(`/proc/${d}/comm`, "utf8").trim()); } catch { return false; }
    });
  } catch { return []; }
}
/** Per-process read/write syscalls (Linux /proc/PID/io). */
function ioOf(pids, field) {
  const out = new Map();
  for (const pid of pids) {
    try {
      const m = readFileSync(`/proc/${pid}/io`, "utf8").match(new RegExp(`^${field}: (\\d+)`, "m"));
      if (m) out.set(String(pid), Number(m[1]));
    } catch { /* gone or not Linux */ }
  }
  return out;
}
/** The PostgreSQL backends serving the workers (they connect with application_name WORKER_APP). */
async function workerBackends() {
  const { rows } = await admin.query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", [WORKER_APP]);
  return rows.map((r) => r.pid);
}
async function cpuSnapshot(ws) {
  const harness = process.cpuUsage();
  return {
    workers: cpuOf(ws.map((w) => w.p.pid)),
    postgres: cpuOf(await workerBackends()),
    redis: cpuOf(pidsNamed(/^redis-server/)),
    harness: new Map([["self", (harness.user + harness.system) / 1e6]]),
    syscw: ioOf(ws.map((w) => w.p.pid), "syscw"),
    syscr: ioOf(ws.map((w) => w.p.pid), "syscr"),
  };
}
/** CPU seconds between two snapshots (processes that ended in between are not counted). */
const cpuDiff = (a, b) => Object.fromEntries(Object.keys(a).map((k) => {
  let s = 0;
  for (const [pid, v] of b[k]) s += v - (a[k].get(pid) ?? 0);
  return [k, s];
}));
/** Ask every worker for its counters (DIST_COUNT=1) and sum them. */
async function counters(ws) {
  const lines = await Promise.all(ws.map((w) => new Promise((resolve) => {
    const from = w.log.length;
    const check = () => {
      const at = w.log.indexOf("COUNTS ", from);
      const end = at >= 0 ? w.log.indexOf("\n", at) : -1;
      if (end >= 0) return resolve(JSON.parse(w.log.slice(at + 7, end)));
      setTimeout(check, 10);
    };
    w.p.kill("SIGUSR2");
    check();
  })));
  const sum = {};
  for (const c of lines) for (const [kind, m] of Object.entries(c)) for (const [k, v] of Object.entries(m)) {
    sum[kind] ??= {};
    sum[kind][k] = (sum[kind][k] ?? 0) + v;
  }
  return sum;
}
function countsPerStage(a, b, stages) {
  const out = {};
  for (const [kind, m] of Object.entries(b)) {
    const rows = Object.entries(m).map(([k, v]) => [k, (v - (a[kind]?.[k] ?? 0)) / stages]).filter(([, v]) => v > 0).sort((x, y) => y[1] - x[1]);
    out[kind] = { total: rows.reduce((t, [, v]) => t + v, 0), ...Object.fromEntries(rows) };
  }
  return out;
}

/** Submit `n` runs of `plan` (at most 32 submissions in flight), wait until none runs, load their events. */
async function runBatch(store, connection, plan, n) {
  const gate = cfg.paused ? new Queue(ADVANCE, { connection }) : undefined;
  await gate?.pause();
  let t0 = Date.now();
  const ids = [];
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(32, n) }, async () => {
    while (next < n) {
      next++;
      ids.push((await submitRun(store, connection, plan, {})).id);
    }
  }));
  const submitMs = Date.now() - t0;
  if (gate) {
    t0 = Date.now();
    await gate.resume();
    await gate.close();
  }
  const deadline = Date.now() + cfg.timeoutS * 1000;
  const want = new Set(ids);
  for (;;) {
    const running = (await store.list({ status: "running", limit: 1000 })).filter((r) => want.has(r.id));
    if (running.length === 0) break;
    if (Date.now() > deadline) throw new Error(`${running.length} of ${n} runs still running after ${cfg.timeoutS} s (e.g. ${running[0].id})`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const runs = [];
  for (const id of ids) runs.push({ id, events: (await store.load(id)).events });
  return { t0, submitMs, runs };
}

const WORKLOADS = {
  chain: () => ({ ...chain(cfg.chain), runs: cfg.runs, title: `chain ${cfg.chain} × ${cfg.runs} runs` }),
  fan: () => ({ ...fan(cfg.fan), runs: cfg.fanRuns, title: `fan 1→${cfg.fan}→1 × ${cfg.fanRuns} run${cfg.fanRuns > 1 ? "s" : ""}` }),
  latency: () => ({ ...chain(cfg.latency), runs: 1, title: `chain ${cfg.latency} × 1 run (unloaded)` }),
};

const results = [];
const tStart = Date.now();
const loadAtStart = loadavg()[0];
admin = new pg.Client({ connectionString: cfg.store });
await admin.connect();
// Schemas left behind by runs that were killed outright (their process is gone).
for (const { nspname } of (await admin.query("SELECT nspname FROM pg_namespace WHERE nspname ~ '^bench_dist_[0-9]+_w[0-9]+$'")).rows) {
  const pid = Number(nspname.split("_")[2]);
  let alive = true;
  try { process.kill(pid, 0); } catch { alive = false; }
  if (!alive) await admin.query(`DROP SCHEMA IF EXISTS ${nspname} CASCADE`);
}
redis = new Redis(cfg.queue, { maxRetriesPerRequest: null });
redis.on("error", () => undefined); // reconnects by itself; a restarted Redis is reported per workload
const redisRunId = async () => (await redis.info("server").catch(() => "")).match(/^run_id:(\w+)/m)?.[1];
const connection = redisConnection(cfg.queue);
const plans = Object.fromEntries(cfg.workloads.map((id) => {
  const w = WORKLOADS[id]();
  return [id, { ...w, plan: compileSource(w.yaml, { format: "yaml", baseDir: here }) }];
}));
const warm = compileSource(chain(3).yaml, { format: "yaml", baseDir: here });

try {
  for (const n of cfg.workers) {
    const schema = `bench_dist_${process.pid}_w${n}`;
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    currentSchema = schema;
    await redis.flushdb();
    const u = new URL(cfg.store);
    u.searchParams.set("schema", schema);
    const storeUrl = u.toString();
    const store = await openStoreAsync(storeUrl); // creates the schema and migrates before the workers connect
    const started = Array.from({ length: n }, (_, i) => startWorker(storeUrl, i, `w${n}`));
    const ws = started.map((s) => s.w);
    try {
      await Promise.all(started.map((s) => s.ready));
      // Warm-up (not measured): connections, JIT, BullMQ scripts.
      await runBatch(store, connection, warm, 4 * n);
      for (const id of cfg.workloads) {
        const w = plans[id];
        process.stderr.write(`  ${String(n).padStart(2)} worker${n > 1 ? "s" : " "}  ${w.title.padEnd(24)} `);
        const countsBefore = cfg.count ? await counters(ws) : undefined;
        const before = await cpuSnapshot(ws);
        const redisBefore = await redisRunId();
        const { t0, submitMs, runs } = await runBatch(store, connection, w.plan, w.runs);
        const cpu = cpuDiff(before, await cpuSnapshot(ws)); // includes the harness's polling and loading
        const m = measure(runs, w.deps, t0);
        const redisRestarted = redisBefore !== (await redisRunId());
        const counts = cfg.count ? countsPerStage(countsBefore, await counters(ws), m.stages) : undefined;
        const bad = Object.entries(m.statuses).filter(([s]) => s !== "succeeded");
        if (m.stages !== w.runs * w.stages || bad.length) throw new Error(`${w.title}: ${m.stages} of ${w.runs * w.stages} stages succeeded; run statuses ${JSON.stringify(m.statuses)}`);
        if (counts) {
          const f = (o) => Object.entries(o).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");
          process.stderr.write(`\n    per stage: PG ${f(counts.pg)}\n               BullMQ scripts ${f(counts.script)}\n               Redis commands ${f(counts.redis)}\n`);
        }
        if (m.raw) process.stderr.write(`\n    hops ${JSON.stringify(m.raw.hops)}\n    execs ${JSON.stringify(m.raw.execs)}\n`);
        results.push({ workers: n, workload: id, title: w.title, submitMs, cpu, redisRestarted, ...m });
        if (redisRestarted) process.stderr.write("    ⚠ Redis restarted during this workload (not by this benchmark): jobs were lost and recovered by the sweep\n");
        process.stderr.write(`${m.stagesPerS.toFixed(0).padStart(5)} stages/s  hop p50 ${m.hopP50} ms p99 ${m.hopP99} ms mean ${m.hopMean.toFixed(1)}  exec p50 ${m.execP50} ms mean ${m.execMean.toFixed(1)}  (${(m.wallMs / 1000).toFixed(2)} s, submit ${submitMs} ms; CPU ms/stage: ${cpuPerStage(cpu, m.stages)})\n`);
      }
    } finally {
      await stopWorkers(ws);
      const failed = ws.map((w) => (w.log.match(/failed:|worker error/g) ?? []).length).reduce((a, b) => a + b, 0);
      if (failed) process.stderr.write(`  (workers logged ${failed} failed jobs / errors; first: ${ws.map((w) => w.log.split("\n").find((l) => /failed:|worker error/.test(l))).find(Boolean)})\n`);
      await store.close();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      currentSchema = undefined;
    }
  }
} finally {
  killAll();
  await redis.flushdb().catch(() => undefined);
  redis.disconnect();
  await admin.end();
}

// ---- report ----
function cpuPerStage(cpu, stages) {
  const f = (k) => ((cpu[k] * 1000) / stages).toFixed(2);
  return `workers ${f("workers")}, PG ${f("postgres")}, Redis ${f("redis")}; worker syscalls/stage: ${(cpu.syscw / stages).toFixed(1)} writes, ${(cpu.syscr / stages).toFixed(1)} reads`;
}
const ms = (x) => (Number.isFinite(x) ? String(x) : "–");
let md = "| workers | workload | stages | wall s (submit s) | stages/s | hop p50 ms | hop p99 ms | exec p50 / p99 ms | submit→first stage p50 ms | run p50 ms | CPU ms per stage: workers / PG / Redis | CPU-bound ceiling, stages/s |\n";
md += "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n";
for (const r of results) {
  // The throughput target applies to the saturating workloads, the hop target to the unloaded one.
  const t = r.workers === TARGET.workers;
  const mark = (ok, kind) => (t && (kind === "hop") === (r.workload === "latency") ? (ok ? " ✅" : " ❌") : "");
  md += `| ${r.workers} | ${r.title}${r.redisRestarted ? " ⚠ Redis restarted meanwhile" : ""} | ${r.stages} | ${(r.wallMs / 1000).toFixed(2)} (${(r.submitMs / 1000).toFixed(2)}) | **${r.stagesPerS.toFixed(0)}**${mark(r.stagesPerS >= TARGET.stagesPerS, "rate")} | **${ms(r.hopP50)}**${mark(r.hopP50 <= TARGET.hopP50, "hop")} | ${ms(r.hopP99)} | ${ms(r.execP50)} / ${ms(r.execP99)} | ${ms(r.firstP50)} | ${ms(r.runP50)} | ${["workers", "postgres", "redis"].map((k) => ((r.cpu[k] * 1000) / r.stages).toFixed(2)).join(" / ")} | ${((cpus().length * r.stages) / (r.cpu.workers + r.cpu.postgres + r.cpu.redis)).toFixed(0)} |\n`;
}
const cpu = cpus();
const setup = `${env.DIST_BATON ? `**Baton from ${env.DIST_BATON}**; ` : ""}${cfg.paused ? "**DIST_SUBMIT=paused** (submission not timed); " : ""}Node ${process.version}, ${cpu.length} × ${cpu[0]?.model.trim() ?? "?"} (shared by the workers, PostgreSQL, Redis and the harness); ` +
  `${QUICK ? "DIST_QUICK; " : ""}worker --concurrency ${cfg.concurrency}; 1-min load average before the run ${loadAtStart.toFixed(1)}; ${new Date().toISOString().slice(0, 10)}; total ${((Date.now() - tStart) / 1000).toFixed(0)} s.`;
const notes = [
  `Target (issue 6): with ${TARGET.workers} workers ≥ ${TARGET.stagesPerS} stages/s (checked on the saturating chain and fan workloads) and hop p50 ≤ ${TARGET.hopP50} ms (checked on the unloaded chain: under saturation a hop is mostly queueing, ≈ runs in flight ÷ stages/s by Little's law) (✅ met, ❌ missed).`,
  "Each configuration: a fresh PostgreSQL schema, a flushed Redis db, N `baton worker` processes, a warm-up batch (4 × N runs of a 3-stage chain, not measured); then each workload's runs are submitted at once with `submitRun` (≤ 32 in flight) from the harness process.",
  "All stages are no-op `value:` stages: the worker advancing a run evaluates them inside its step (pure expressions need no job round trip), so a hop is one engine step; `run:`, `agent:` and `http:` stages go through `exec` jobs.",
  "CPU ms per stage: CPU time (Linux /proc utime + stime) during the workload of the worker processes, the PostgreSQL backends serving them (not the submitter's, nor WAL writer/checkpointer) and the whole Redis server, ÷ stages; the machine has " + cpus().length + " CPUs, so at most " + cpus().length + " CPU-seconds per second are available to all of them together.",
  "CPU-bound ceiling = CPUs ÷ (workers + PG + Redis CPU per stage): the most stages/s this machine could give at that cost per stage even with nothing else running (the submitter's own CPU not counted).",
  "The machine is shared: other processes (other builds, tests, benchmarks) may run meanwhile — see the load average above; the CPU-per-stage columns are much less sensitive to that than stages/s.",
  "stages/s = `stage_succeeded` events ÷ (first submit → last `run_finished.at`). hop = a stage's `stage_started.at` − the latest `stage_succeeded.at` among its dependencies. exec = `stage_started.at` → `stage_succeeded.at` of the same stage (exec-job pickup, sync, attempt). All times from the stored events (one clock: one machine).",
];
const doc = `## Distributed benchmark\n\n${setup}\n\n${md}\n${notes.map((x) => `- ${x}`).join("\n")}\n\nRun it with \`npm run bench:distributed\` (\`DIST_QUICK=1 npm run bench:distributed\` for a smoke run; knobs at the top of bench/distributed.mjs). Where the time goes and measured fixes: bench/distributed/findings.md.\n`;
process.stdout.write("\n" + doc);
const outFile = env.DIST_OUT ?? join(here, "results-distributed.md");
if (outFile !== "-") {
  writeFileSync(outFile, doc);
  process.stderr.write(`\nwritten to ${outFile}\n`);
}
