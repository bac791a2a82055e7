/**
 * One contender × one workload, in its own process (so peak RSS is its own):
 *   node --expose-gc bench/worker.mjs <contender> <workload>
 * Prints one line `RESULT {json}`.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { CONTENDERS } from "./contenders/index.mjs";
import { config, pool, workloads } from "./workloads.mjs";

const [contenderId, workloadId] = process.argv.slice(2);
const cfg = config();
const w = workloads(cfg).find((x) => x.id === workloadId);
const c = CONTENDERS.find((x) => x.id === contenderId);
if (!w || !c) throw new Error(`unknown contender or workload: ${contenderId} ${workloadId}`);

// BENCH_CPU_PROF=1: profile the timed repetitions only.
const profiling = process.env.BENCH_CPU_PROF === "1";
// Forced GC: "once" (default) before the timed repetitions, "each" before every repetition
// (a cold heap every time: slower, less like a long-running process), "0" never.
const gcMode = process.env.BENCH_GC || "once";
const gc = globalThis.gc ?? (() => {});
let session;
const rssStart = process.memoryUsage().rss;

// The reference output: what the floor computes (YAML variants say what they return).
const floor = await (await import("./contenders/floor.mjs")).create(w, { sqlite: false });
const reference = await floor.run(0);

const impl = await (await c.load()).create(w, c.opts);
const expected = impl.expected !== undefined ? impl.expected : reference;
const loadedRssMB = process.memoryUsage().rss / 2 ** 20;

async function rep() {
  await impl.beforeRep();
  if (gcMode === "each") gc();
  let first;
  const t0 = process.hrtime.bigint();
  await pool(w.runs, w.conc, async (i) => {
    const out = await impl.run(i);
    if (i === 0) first = out;
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  await impl.afterRep();
  checkOutput(first);
  return ms;
}

function checkOutput(out) {
  if (!isDeepStrictEqual(out, expected)) {
    throw new Error(`${contenderId}/${workloadId}: wrong output ${JSON.stringify(out)?.slice(0, 200)}, expected ${JSON.stringify(expected)?.slice(0, 200)}`);
  }
}

// Footprint: one warm-up repetition, a GC, one more; the process's peak RSS then is the
// contender's (comparable across contenders whatever the number of timed repetitions).
await rep();
gc();
await rep();
const footprintMB = process.resourceUsage().maxRSS / 1024;

// Warm-up: at least cfg.warmup repetitions and cfg.warmupMs; timed: at least cfg.reps and cfg.minMs.
let spent = 0;
for (let i = 0; i < cfg.maxReps && (i < cfg.warmup || spent < cfg.warmupMs); i++) spent += await rep();
if (gcMode === "once") gc();
if (profiling) {
  session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: Number(process.env.BENCH_PROF_INTERVAL_US || 100) });
  await session.post("Profiler.start");
}
const times = [];
spent = 0;
while (times.length < cfg.maxReps && (times.length < cfg.reps || spent < cfg.minMs)) {
  const ms = await rep();
  times.push(ms);
  spent += ms;
}

if (session) {
  const { profile } = await session.post("Profiler.stop");
  const dir = join(dirname(fileURLToPath(import.meta.url)), "profiles");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${contenderId}.${workloadId}.cpuprofile`), JSON.stringify(profile));
  session.disconnect();
}

const sorted = [...times].sort((a, b) => a - b);
function quantile(xs, q) {
  const pos = (xs.length - 1) * q;
  const lo = Math.floor(pos);
  return xs[lo] + (xs[Math.min(lo + 1, xs.length - 1)] - xs[lo]) * (pos - lo);
}
const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
const result = {
  contender: contenderId,
  workload: workloadId,
  executions: w.executions,
  timesMs: times,
  medianMs: median,
  usPerStage: (median * 1000) / w.executions,
  p25UsPerStage: (quantile(sorted, 0.25) * 1000) / w.executions,
  p75UsPerStage: (quantile(sorted, 0.75) * 1000) / w.executions,
  minUsPerStage: (sorted[0] * 1000) / w.executions,
  maxUsPerStage: (sorted[sorted.length - 1] * 1000) / w.executions,
  maxRssMB: footprintMB,
  maxRssEndMB: process.resourceUsage().maxRSS / 1024,
  startRssMB: rssStart / 2 ** 20,
  loadedRssMB,
};
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
// Don't wait for timers/handles a contender may leave behind.
process.exit(0);
