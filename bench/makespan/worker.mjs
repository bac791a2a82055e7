/**
 * One mode of the makespan benchmark (bench/makespan.mjs starts it; settings in MAKESPAN_CFG):
 *   node bench/makespan/worker.mjs <pools|pools-off|pools-fifo>
 *
 * This process is Baton: ONE Runtime (MemoryStore) that starts every run of the seed pipeline
 * variant at once and waits for all of them. The provider is a fresh fake server in a child
 * process (server.mjs: rpm/tpm over 60 s windows, 429 + Retry-After). Prints `RESULT {json}`.
 * Times are virtual (clock.mjs: compressed by cfg.timescale).
 */
import { fork } from "node:child_process";
import { writeSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { virtualClock, warpTimers } from "./clock.mjs";

const mode = process.argv[2];
const cfg = JSON.parse(process.env.MAKESPAN_CFG ?? "{}");
const S = cfg.timescale ?? 1;
const epoch = Date.now();
warpTimers(S);
const clock = virtualClock(S, epoch);
const vnow = clock.now;

const { Runtime, MemoryStore, compileSource, validateInputs } = await import("../../dist/index.js");
const { Pools } = await import("../../dist/runtime/pools.js");
const { variantYaml, SEED } = await import("./pipeline.mjs");

const here = dirname(fileURLToPath(import.meta.url));
const pools = mode !== "pools-off";
const order = mode === "pools-fifo" ? "fifo" : "critical-path";
const loadStart = loadavg()[0];

// ---- provider (its own process, same virtual clock) ----
const server = fork(join(here, "server.mjs"), [], {
  env: { ...process.env, MAKESPAN_CFG: JSON.stringify({ ...cfg, epoch }) },
  stdio: ["ignore", "inherit", "inherit", "ipc"],
});
const fromServer = () => new Promise((resolve, reject) => {
  server.once("message", resolve);
  server.once("exit", (code) => reject(new Error(`provider process exited (${code})`)));
});
const { url } = await fromServer();
process.env.REPORT_MODEL = `openai-compatible:${cfg.model ?? "gpt-4o-mini"}`;
process.env.REPORT_BASE_URL = url;
process.env.REPORT_API_KEY = "bench";

// ---- plan and runtime ----
const yaml = variantYaml({ pools, rpm: cfg.rpm, tpm: cfg.tpm, attempts: cfg.attempts, maxDelay: cfg.maxDelay, stageTimeout: cfg.stageTimeout, runTimeout: cfg.runTimeout });
const plan = compileSource(yaml, { format: "yaml", baseDir: process.cwd(), file: SEED.replace(/\.yaml$/, `.bench-${mode}.yaml`) });
let t0 = 0;
const failedBy = {};
const otherFailures = [];
const rejectedAt = [];
let poolWaitMs = 0;
const runtime = new Runtime({
  store: new MemoryStore(),
  now: vnow,
  pools: new Pools(clock.poolClock, {}, order),
  onEvents: (_id, events) => {
    for (const e of events) {
      if (e.type === "stage_failed") {
        const m = /Rate limit reached for (requests|tokens)/.exec(e.error?.message ?? "");
        const k = (e.error?.kind ?? "?") + (m ? `:${m[1]}` : "");
        failedBy[k] = (failedBy[k] ?? 0) + 1;
        if (e.error?.kind === "rate_limited") rejectedAt.push(Math.round((e.at - t0) / 100) / 10);
        else if (otherFailures.length < 5) otherFailures.push(`${e.stage}: ${e.error?.message}`.slice(0, 300));
      }
      if ((e.type === "stage_succeeded" || e.type === "stage_failed") && e.pool_wait_ms !== undefined) poolWaitMs += e.pool_wait_ms;
    }
  },
});

// Probe (cfg.probe; reaches into the pool's internals): when the pool granted each call, to
// compare with when the provider got it; how often its pick was not the longest-waiting waiter.
const grants = [];
const probeOrder = { picks: 0, notFifo: 0, prio: {} };
if (pools) {
  runtime.pools.define(plan.limits);
  const pool = runtime.pools.get("llm");
  if (cfg.probe) {
    const acquire = pool.acquire.bind(pool);
    pool.acquire = async (req) => {
      const lease = await acquire(req);
      grants.push(vnow());
      return lease;
    };
    const best = pool.best.bind(pool);
    pool.best = (now) => {
      const w = best(now);
      if (w && pool.waiters.length > 1) {
        probeOrder.picks++;
        const oldest = pool.waiters.reduce((a, b) => (b.seq < a.seq ? b : a));
        if (oldest !== w) probeOrder.notFifo++;
        probeOrder.prio[w.req.label] = Math.round(w.req.priority);
      }
      return w;
    };
  }
  const x = new Set(cfg.experiment?.split("+") ?? []);
  if (x.has("before")) before(pool);
  if (x.has("stamp-at-release")) stampAtRelease(pool, vnow);
}

/**
 * Experiment (Baton's grant policy before issue 14.4): no pacing (a window's capacity goes as
 * soon as it frees, in bursts) and one score across runs: the stage's remaining critical path
 * plus the time it has waited (longest first), ties first come, first served.
 */
function before(pool) {
  pool.paced = () => undefined;
  pool.rank = function (a, b, now) {
    return b.req.priority + (now - b.since) - (a.req.priority + (now - a.since)) || a.seq - b.seq;
  };
}

/**
 * Experiment (not Baton's behaviour): a call's slot in the pool's window is dated when its
 * response arrives instead of when it was granted, so it leaves the pool's window only after it
 * has surely left the provider's (which dated it on arrival, between the two).
 */
function stampAtRelease(pool, now) {
  const grant = pool.grant.bind(pool);
  pool.grant = (w, t) => {
    const lease = grant(w, t);
    const entry = pool.sent[pool.sent.length - 1];
    const release = lease.release;
    return {
      ...lease,
      waitedMs: lease.waitedMs, reason: lease.reason, pool: lease.pool,
      release: (outcome) => {
        entry.at = Math.max(entry.at, now());
        pool.sent.sort((a, b) => a.at - b.at);
        release(outcome);
      },
    };
  };
}

// ---- warm-up: the agent stage's modules (AI SDK, providers, tokenizer) load on a process's
// first agent call; a long-lived process has them, and loading them here keeps that one-time
// cost (× the timescale in virtual time) out of the schedule being measured.
await import("../../dist/stages/agent.js");

// ---- the runs: all started at t = 0 ----
const depth = cfg.depth ?? 5;
t0 = vnow();
const wall0 = performance.now();
const cpu0 = process.cpuUsage();
const ends = [];
const handles = [];
// Runs are started one after the other with the event loop turning in between, as a server
// starting them on separate requests would: calls of the first runs go out while later runs are
// being started (starting one costs real CPU, × the timescale here).
for (let n = 0; n < cfg.runs; n++) {
  handles.push(await runtime.start(plan, validateInputs(plan, { topic: `topic ${n}`, depth })));
  await new Promise((r) => setImmediate(r));
}
const startedMs = vnow() - t0; // starting the runs (real CPU time, × the timescale)
const results = await Promise.all(handles.map((h) => h.done.then((r) => {
  ends.push(vnow() - t0);
  return r;
})));
const makespanMs = Math.max(...ends);
const wallMs = performance.now() - wall0;
const cpu = process.cpuUsage(cpu0);
const failures = results.filter((r) => r.status !== "succeeded").map((r) => `${r.id} ${r.status}: ${r.error?.stage ?? ""} ${r.error?.kind ?? ""} ${r.error?.message ?? ""}`.slice(0, 300));
ends.sort((a, b) => a - b);
const poolStats = runtime.pools.get("llm")?.stats();
await runtime.close();

server.send("stats");
const provider = await fromServer();
server.send("close");

let probe;
if (cfg.probe && provider.arrivals) {
  // i-th grant vs i-th arrival (both in time order): how long the call took to reach the provider.
  const d = provider.arrivals.map((a, i) => a - (grants[i] ?? a)).sort((a, b) => a - b);
  const hist = {};
  for (const g of grants) { const b = Math.floor((g - t0) / 5000) * 5; hist[b] = (hist[b] ?? 0) + 1; }
  probe = { order: { picks: probeOrder.picks, notFifo: probeOrder.notFifo, lastPriority: probeOrder.prio }, hist, grants: grants.length, arrivals: provider.arrivals.length, deltaP50: d[Math.floor(d.length / 2)], deltaP99: d[Math.floor(d.length * 0.99)], deltaMax: d.at(-1), rejectedAt };
}

const out = {
  mode, makespanMs, startedMs, wallMs, load: [loadStart, loadavg()[0]], timescale: S, cpuMs: (cpu.user + cpu.system) / 1000,
  meanRunMs: ends.reduce((a, b) => a + b, 0) / ends.length,
  p50RunMs: ends[Math.floor(ends.length * 0.5)],
  runs: results.length, succeeded: results.length - failures.length, failures,
  stats: provider.stats, requests: provider.requests, served: provider.served,
  failedBy, otherFailures, poolWaitMs,
  pool: poolStats ? { granted: poolStats.granted, rejected: poolStats.rejected, factor: poolStats.factor } : undefined,
  ...(probe ? { probe } : {}),
};
writeSync(1, `RESULT ${JSON.stringify(out)}\n`);
process.exit(0);
