/**
 * Makespan under provider rate limits (not a test; CI does not run it):  npm run bench:makespan
 *
 * Two workloads, each N runs of the seed pipeline (examples/research-report-llm.yaml: research →
 * analyze + fact_check ×5 → draft → verify, with its routes back) started at once in ONE Runtime
 * against a fake OpenAI-compatible provider that enforces rpm and tpm over a 60 s sliding window
 * with 429 + Retry-After. Agents reply after a per-stage latency distribution with realistic
 * usage (bench/makespan/provider.mjs).
 *   short   50 runs at 170 rpm / 94,000 tpm: ≈ 3 windows of work (≈ 3 min)
 *   long    150 runs at the same limits: ≈ 9 windows (≈ 9 min) — the rate-bound workload on which
 *           the previous grant policy was 1.20–1.29× the lower bound (issue 14 item 4)
 * Modes, each in a fresh process with a fresh provider:
 *   pools         Baton with a pool matching the provider (`limits: { llm: { rpm, tpm } }`), its
 *                 grant policy (src/runtime/pools.ts: paced, older runs first, critical path
 *                 within a run, aging)
 *   pools-before  the same pool with the policy before issue 14.4 (bursts; remaining critical
 *                 path + waiting time across runs), patched in by the worker
 *   pools-off     no pool: retries with backoff on 429s only (what users of other engines get)
 *   pools-fifo    the same pool, paced, waiters served first come, first served
 * Reports makespan ÷ lower bound, LB = max(critical path, tokens ÷ tpm, requests ÷ rpm) from the
 * work the provider served in the `pools` mode, the 429s received and the machine's load (1-min
 * load average when the mode started → ended); prints a markdown table and writes it to
 * bench/results-makespan.md.
 *
 * Knobs (env):
 *   MAKESPAN_QUICK=1        smoke run: short 20 runs, long 60 runs, rpm 100, tpm 56000, timescale 6 (≈ 5 min)
 *   MAKESPAN_WORKLOADS      comma-separated subset of short,long (default both)
 *   MAKESPAN_RUNS / MAKESPAN_LONG_RUNS  runs of the short / long workload (default 50 / 150)
 *   MAKESPAN_RPM / _TPM     the provider's limits, also the pool's (default 170 / 94000)
 *   MAKESPAN_TIMESCALE      virtual time runs this many times faster than real time (default 3;
 *                           see bench/makespan/clock.mjs — real CPU time counts that many times)
 *   MAKESPAN_DEPTH          sources per run (default 5)
 *   MAKESPAN_ATTEMPTS       retry attempts of every stage (default 10), MAKESPAN_MAX_DELAY (e.g. 60s)
 *   MAKESPAN_STAGE_TIMEOUT / MAKESPAN_RUN_TIMEOUT  override the seed's (2m / 20m)
 *   MAKESPAN_MODES          comma-separated subset of pools,pools-before,pools-off,pools-fifo
 *                           ("none": only the MAKESPAN_EXPERIMENT rows)
 *   MAKESPAN_EXPERIMENT     comma-separated (combine with +); each adds a pools row with a change
 *                           that is not Baton's behaviour (the worker patches the pool):
 *                           before (the previous grant policy), stamp-at-release (window slots
 *                           dated at the response, not the grant)
 *   MAKESPAN_PROBE=1        record grant → provider-arrival delays (printed per mode)
 *   MAKESPAN_OUT            where to write the table (default bench/results-makespan.md; "-" = nowhere)
 *   MAKESPAN_TIMEOUT_S      per mode (default 1500)
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { compileSource } from "../dist/index.js";
import { criticalPathMs, variantYaml } from "./makespan/pipeline.mjs";
import { STAGES } from "./makespan/provider.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const env = process.env;
const QUICK = env.MAKESPAN_QUICK === "1";
const num = (k, d) => (env[k] !== undefined && env[k] !== "" ? Number(env[k]) : d);
const base = {
  rpm: num("MAKESPAN_RPM", QUICK ? 100 : 170),
  tpm: num("MAKESPAN_TPM", QUICK ? 56000 : 94000),
  timescale: num("MAKESPAN_TIMESCALE", QUICK ? 6 : 3),
  depth: num("MAKESPAN_DEPTH", 5),
  attempts: num("MAKESPAN_ATTEMPTS", 10),
  ...(env.MAKESPAN_MAX_DELAY ? { maxDelay: env.MAKESPAN_MAX_DELAY } : {}),
  ...(env.MAKESPAN_STAGE_TIMEOUT ? { stageTimeout: env.MAKESPAN_STAGE_TIMEOUT } : {}),
  ...(env.MAKESPAN_RUN_TIMEOUT ? { runTimeout: env.MAKESPAN_RUN_TIMEOUT } : {}),
  probe: env.MAKESPAN_PROBE === "1",
};
const WORKLOADS = [
  { id: "short", runs: num("MAKESPAN_RUNS", QUICK ? 20 : 50) },
  { id: "long", runs: num("MAKESPAN_LONG_RUNS", QUICK ? 60 : 150) },
];
const wantW = env.MAKESPAN_WORKLOADS?.split(",").map((s) => s.trim()).filter(Boolean);
const workloads = WORKLOADS.filter((w) => !wantW?.length || wantW.includes(w.id));
if (wantW?.some((w) => !WORKLOADS.some((x) => x.id === w))) throw new Error(`MAKESPAN_WORKLOADS: one of short, long (got '${env.MAKESPAN_WORKLOADS}')`);
const MODES = [
  { id: "pools", label: "Baton, pools matching the provider (its grant policy)" },
  { id: "pools-before", worker: "pools", experiment: "before", label: "Baton, pools matching the provider, the grant policy before issue 14.4 (bursts, critical path across runs)" },
  { id: "pools-off", label: "Baton, pools off (retry with backoff on 429s only)" },
  { id: "pools-fifo", label: "Baton, pools matching the provider, paced, FIFO instead of older runs first" },
];
const want = env.MAKESPAN_MODES?.split(",").map((s) => s.trim()).filter(Boolean);
const modes = MODES.filter((m) => !want?.length || want.includes(m.id));
const EXPERIMENTS = {
  before: "experiment: pools, the grant policy before issue 14.4",
  "stamp-at-release": "experiment: pools, window slots dated at the response, not the grant",
};
for (const x of env.MAKESPAN_EXPERIMENT?.split(",").map((s) => s.trim()).filter(Boolean) ?? []) {
  const parts = x.split("+");
  const bad = parts.find((p) => !EXPERIMENTS[p]);
  if (bad) throw new Error(`MAKESPAN_EXPERIMENT: unknown experiment '${bad}' (${Object.keys(EXPERIMENTS).join(", ")}; combine with +)`);
  modes.push({ id: `pools+${x}`, worker: "pools", label: parts.map((p) => EXPERIMENTS[p]).join("; ").replace(/; experiment: pools,/g, ";"), experiment: x });
}
const timeoutS = num("MAKESPAN_TIMEOUT_S", 1500);

function child(mode, cfg) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(here, "makespan", "worker.mjs"), mode.worker ?? mode.id], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...env, MAKESPAN_CFG: JSON.stringify({ ...cfg, ...(mode.experiment ? { experiment: mode.experiment } : {}) }) },
    });
    let out = "";
    let err = "";
    let sdkWarnings = 0;
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutS * 1000);
    p.on("close", (code, signal) => {
      clearTimeout(timer);
      // The AI SDK warns once per call that the system prompt travels in `messages`: count, don't print.
      const lines = err.split("\n").filter((l) => {
        if (l.startsWith("AI SDK Warning: System messages")) return void sdkWarnings++;
        return l.trim() !== "";
      });
      const line = out.split("\n").find((l) => l.startsWith("RESULT "));
      if (line) return resolve({ ...JSON.parse(line.slice(7)), sdkWarnings, stderr: lines.slice(0, 10) });
      const why = signal === "SIGKILL" ? `timed out after ${timeoutS} s` : (lines.find((l) => /Error/.test(l)) ?? `exit ${code}`);
      resolve({ mode: mode.id, error: why, stderr: lines.slice(0, 20) });
    });
  });
}

const s1 = (ms) => (ms / 1000).toFixed(1);
const t0 = Date.now();
const ok = (b) => (b ? " ✅" : " ❌");
const TARGET = 1.05;
let md = "";
md += "| workload | mode | makespan | ÷ LB | ÷ window LB | 429s received | requests sent | runs succeeded | mean run time | runs started by | load (1-min avg) |\n";
md += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
const notesW = [];
const cpuNotes = [];
let failed = false;
for (const wl of workloads) {
  const cfg = { ...base, runs: wl.runs };
  const results = [];
  process.stderr.write(`makespan ${wl.id}: ${cfg.runs} runs, rpm ${cfg.rpm}, tpm ${cfg.tpm}, timescale ${cfg.timescale}× (load ${loadavg()[0].toFixed(2)})\n`);
  for (const m of modes) {
    process.stderr.write(`  ${m.id.padEnd(28)} `);
    const r = await child(m, cfg);
    results.push({ ...r, id: m.id, label: m.label, experiment: m.experiment });
    if (r.error) {
      process.stderr.write(`ERROR ${r.error}\n${r.stderr.map((l) => `      ${l}`).join("\n")}\n`);
      continue;
    }
    const kinds = Object.entries(r.failedBy).map(([k, n]) => `${n} ${k}`).join(", ");
    process.stderr.write(`makespan ${s1(r.makespanMs)} s (runs started by ${s1(r.startedMs)} s), ${r.stats.rateLimited} × 429, ${r.succeeded}/${r.runs} runs succeeded (wall ${s1(r.wallMs)} s, load ${r.load.map((l) => l.toFixed(2)).join(" → ")})${kinds ? `; failed attempts: ${kinds}` : ""}\n`);
    for (const f of r.failures) process.stderr.write(`      FAILED ${f}\n`);
    for (const f of r.otherFailures ?? []) process.stderr.write(`      stage failure: ${f}\n`);
    for (const l of r.stderr) process.stderr.write(`      stderr: ${l}\n`);
    if (r.probe) {
      process.stderr.write(`      probe: grant → arrival p50 ${r.probe.deltaP50} ms, p99 ${r.probe.deltaP99} ms, max ${r.probe.deltaMax} ms (virtual); 429s at ${JSON.stringify(r.probe.rejectedAt.slice(0, 12))} s\n`);
      process.stderr.write(`      probe: grants per 5 s ${JSON.stringify(r.probe.hist)}; picks not FIFO ${r.probe.order.notFifo}/${r.probe.order.picks}\n`);
    }
  }
  // ---- lower bound (from the pools run's served work; the same for every mode) ----
  const ref = results.find((r) => r.id === "pools" && !r.error) ?? results.find((r) => !r.error);
  if (!ref) {
    md += `| ${wl.id} | no mode finished | | | | | | | | | |\n`;
    failed = true;
    continue;
  }
  const plan = compileSource(variantYaml({ pools: true, rpm: cfg.rpm, tpm: cfg.tpm, attempts: cfg.attempts }), { format: "yaml", baseDir: here });
  const cp = criticalPathMs(plan, cfg.runs, cfg.depth);
  const N = ref.served.requests;
  const T = ref.served.tokens;
  const lbReq = (N / cfg.rpm) * 60_000;
  const lbTok = (T / cfg.tpm) * 60_000;
  const LB = Math.max(cp.worst, lbReq, lbTok);
  // With a 60 s sliding window a provider admits up to rpm requests at once: the k-th request
  // (0-based) cannot go before 60 s × floor(k / rpm); likewise for tokens.
  const minLatency = Math.min(...Object.values(STAGES).map((s) => s.latency[0]));
  const wlb = Math.max(cp.worst, 60_000 * Math.floor((N - 1) / cfg.rpm) + minLatency, 60_000 * (Math.ceil(T / cfg.tpm) - 1));
  for (const r of results) {
    if (r.error) {
      md += `| ${wl.id} | ${r.label} | error: ${r.error.slice(0, 80)} | | | | | | | | |\n`;
      failed = true;
      continue;
    }
    if (r.succeeded !== r.runs) failed = true;
    const ratio = r.makespanMs / LB;
    const target = r.id === "pools";
    md += `| ${wl.id} (${cfg.runs} runs) | ${r.label} | ${s1(r.makespanMs)} s | **${ratio.toFixed(2)}×**${target ? ok(ratio <= TARGET) : ""} | ${(r.makespanMs / wlb).toFixed(2)}× | ${r.stats.rateLimited}${target ? ok(r.stats.rateLimited === 0) : ""} | ${r.requests} | ${r.succeeded}/${r.runs}${r.succeeded === r.runs ? "" : " ❌"} | ${s1(r.meanRunMs)} s | ${s1(r.startedMs)} s | ${r.load.map((l) => l.toFixed(1)).join(" → ")} |\n`;
  }
  notesW.push(`${wl.id}: ${cfg.runs} runs; LB = max(critical path ${s1(cp.worst)} s, tokens ÷ tpm = ${T.toLocaleString("en-US")} ÷ ${cfg.tpm.toLocaleString("en-US")}/min = ${s1(lbTok)} s, requests ÷ rpm = ${N} ÷ ${cfg.rpm}/min = ${s1(lbReq)} s) = **${s1(LB)} s**; window LB ${s1(wlb)} s (${(N / cfg.rpm).toFixed(2)} windows of requests, ${(T / cfg.tpm).toFixed(2)} of tokens).`);
  cpuNotes.push(`${wl.id} ${results.filter((r) => !r.error).map((r) => (r.cpuMs / 1000).toFixed(1)).join(" / ")} s (≈ ${(ref.cpuMs / ref.requests).toFixed(1)} ms per call)`);
}

const cpu = cpus();
const setup = `Node ${process.version}, ${cpu.length} × ${cpu[0]?.model.trim() ?? "?"}; ${QUICK ? "MAKESPAN_QUICK; " : ""}${new Date().toISOString().slice(0, 10)}; ` +
  `total ${((Date.now() - t0) / 1000).toFixed(0)} s wall; load average ${loadavg().map((l) => l.toFixed(2)).join(", ")} at the end (other work on the machine: virtual time amplifies its delays ${base.timescale}×).`;
const lat = Object.entries(STAGES).map(([id, s]) => `${id} ${s.latency[0]}–${s.latency[1]} ms`).join(", ");
const notes = [
  `Each workload: N runs of the seed pipeline (examples/research-report-llm.yaml, depth ${base.depth}), all started at t = 0 in one Runtime (MemoryStore); every tenth run's first sources fail the fact-check (verify routes back to research), every fifth run's first draft scores 0.6 (verify routes back to draft). Provider: the fake from baton/testing in its own process, ${base.rpm} rpm and ${base.tpm.toLocaleString("en-US")} tpm over a 60 s sliding window, 429 + Retry-After beyond them; pools modes declare the same limits (\`limit: llm\` on every agent).`,
  `Agent latency, uniform per stage: ${lat}. Usage as a provider counts it: prompt tokens = the o200k count of the messages, completion tokens = the count of the reply (${Object.entries(STAGES).map(([id, s]) => `${id} ${s.completion[0]}–${s.completion[1]}`).join(", ")}); \`max_tokens\` per agent set just above its largest reply (${Object.values(STAGES).map((s) => `${s.agent} ${s.maxTokens}`).join(", ")}). Replies, latencies and usage are a function of the prompt (seeded), so every mode gets the same work.`,
  ...notesW.map((n) => `Lower bounds, ${n}`),
  `LB is from the work served in the pools mode (the same in every mode: only 429s differ). Critical path: the longest chain of mean latencies (fact_check: 2 waves of its concurrency 3), doubled for a run that routes back to research. Window LB: with a 60 s sliding window the provider admits up to rpm requests (tpm tokens) at once, so the k-th request cannot go before 60 s × ⌊k ÷ rpm⌋ (tokens likewise); a paced pool does not try to beat the fluid LB that way.`,
  `429s received: the provider's count of requests it refused. Requests sent: every request the provider saw (served + refused). Mean run time: start → finish of a run, averaged over the runs. Runs started by: when the last run had been started (starting N runs is real CPU work, × the timescale; it counts in the makespan). Load: the machine's 1-minute load average (2 cores) when the mode started → ended. Every stage retries up to ${base.attempts} attempts (exponential backoff from 500 ms, full jitter, Retry-After honoured) in every mode.`,
  base.timescale === 1
    ? `Real time (MAKESPAN_TIMESCALE=1). Baton's CPU per mode: ${cpuNotes.join("; ")}.`
    : `Time is virtual, compressed ${base.timescale}× (MAKESPAN_TIMESCALE): Baton, its pools and the provider share a clock running ${base.timescale}× faster than real time, and timers in both processes are shortened ${base.timescale}× (bench/makespan/clock.mjs), so 60 s windows, latencies, Retry-After, backoff and timeouts keep their proportions. Real CPU time (and any wait for a core on a loaded machine) counts ${base.timescale}×. Baton's CPU per mode: ${cpuNotes.join("; ")}.`,
];
const doc = `## Makespan under rate limits\n\n${setup}\n\n${md}\n${notes.map((n) => `- ${n}`).join("\n")}\n\nRun it with \`npm run bench:makespan\` (\`MAKESPAN_QUICK=1 npm run bench:makespan\` for a smoke run; knobs at the top of bench/makespan.mjs).\n`;
process.stdout.write("\n" + doc);
if (failed) process.exitCode = 1;
const outFile = env.MAKESPAN_OUT ?? join(here, "results-makespan.md");
if (outFile !== "-") {
  writeFileSync(outFile, doc);
  process.stderr.write(`\nwritten to ${outFile}\n`);
}
