/**
 * Baton benchmark (not a test; CI does not run it):  npm run bench
 *
 * Runs every contender × workload in its own child process (peak RSS per contender), prints
 * markdown tables (µs per stage execution, peak RSS, ratios) and writes them to
 * bench/results.md. Knobs (env):
 *   BENCH_QUICK=1            smoke run: 2 repetitions, 100 diamond runs, short time budgets
 *   BENCH_REPS / BENCH_WARMUP  at least this many timed (default 7) / warm-up (default 3) repetitions
 *   BENCH_MIN_MS / BENCH_WARMUP_MS  …and keep going until this much time was spent (2000 / 500)
 *   BENCH_MAX_REPS           cap on either (default 200)
 *   BENCH_GC=once|each|0     forced GC (--expose-gc) before the timed repetitions (default
 *                            "once"), before every repetition, or never
 *   BENCH_CHAIN_N, BENCH_FAN_N, BENCH_DIAMOND_WIDTH, BENCH_DIAMOND_RUNS, BENCH_DIAMOND_CONC
 *   BENCH_CONTENDERS=floor,baton-mem,…   BENCH_WORKLOADS=chain,fan,foreach,diamond
 *   BENCH_CPU_PROF=1         profile the timed repetitions only (in-process inspector) into bench/profiles/
 *                            <contender>.<workload>.cpuprofile; summarise with bench/profile-summary.mjs
 *   BENCH_BATON=src          load Baton from src/ through tsx instead of dist/ (or a path to
 *                            another build's dist/index.js with ../schema next to it, to compare a change)
 *   BENCH_LG_DURABILITY      LangGraph checkpoint durability (default "sync")
 *   BENCH_TIMEOUT_S          per child (default 600)
 *   BENCH_OUT                where to write the tables (default bench/results.md; "-" = nowhere)
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CONTENDERS } from "./contenders/index.mjs";
import { config, QUICK, workloads } from "./workloads.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const cfg = config();
const pick = (list, env) => {
  const want = process.env[env]?.split(",").map((s) => s.trim()).filter(Boolean);
  return want?.length ? list.filter((x) => want.includes(x.id)) : list;
};
const ws = pick(workloads(cfg), "BENCH_WORKLOADS");
const cs = pick(CONTENDERS, "BENCH_CONTENDERS");
const timeoutS = Number(process.env.BENCH_TIMEOUT_S || 600);

function child(contender, workload) {
  const args = ["--expose-gc"];
  if (process.env.BENCH_BATON === "src") args.push("--import", "tsx");
  args.push(join(here, "worker.mjs"), contender, workload);
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: process.env });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutS * 1000);
    p.on("close", (code, signal) => {
      clearTimeout(timer);
      const line = out.split("\n").find((l) => l.startsWith("RESULT "));
      if (line) return resolve(JSON.parse(line.slice(7)));
      const why = signal === "SIGKILL" ? `timed out after ${timeoutS} s` : (err.trim().split("\n").find((l) => /Error/.test(l)) ?? `exit ${code}`);
      resolve({ contender, workload, error: why });
    });
  });
}

const results = new Map();
const key = (c, w) => `${c}/${w}`;
const t0 = Date.now();
for (const w of ws) {
  for (const c of cs) {
    process.stderr.write(`  ${w.id.padEnd(8)} ${c.id.padEnd(20)} `);
    const r = await child(c.id, w.id);
    results.set(key(c.id, w.id), r);
    process.stderr.write(r.error ? `ERROR ${r.error}\n` : `${fmt(r.usPerStage)} µs/stage  ${r.maxRssMB.toFixed(0)} MB  (${r.timesMs.length} reps)\n`);
  }
}

function fmt(us) {
  if (us === undefined || !Number.isFinite(us)) return "–";
  return us >= 100 ? us.toFixed(0) : us >= 10 ? us.toFixed(1) : us.toFixed(2);
}
const fmtInv = (x) => (x >= 10 ? x.toFixed(0) : x.toFixed(1));
const get = (c, w) => results.get(key(c, w));

// µs per stage execution.
const head = (first) => `| ${first} | ${ws.map((w) => w.title).join(" | ")} |\n|---|${ws.map(() => "---:").join("|")}|`;
let md = "";
md += `µs per stage execution: median over ≥ ${cfg.reps} timed repetitions (as many as fit in ${cfg.minMs / 1000} s, ≤ ${cfg.maxReps}) after ≥ ${cfg.warmup} warm-up ones; p25–p75 in brackets\n\n`;
md += head("contender") + "\n";
for (const c of cs) {
  md += `| ${c.label} | ${ws.map((w) => {
    const r = get(c.id, w.id);
    if (!r) return "";
    if (r.error) return `error: ${r.error.slice(0, 60)}`;
    return `**${fmt(r.usPerStage)}** [${fmt(r.p25UsPerStage)}–${fmt(r.p75UsPerStage)}]`;
  }).join(" | ")} |\n`;
}

md += `\nPeak RSS of the contender's process, MB (\`process.resourceUsage().maxRSS\` after one warm-up repetition, a GC and one more repetition; in brackets: RSS once the contender's modules are loaded and its graph/plan built, before any run; the harness alone is ≈ ${(get("floor", ws[0]?.id)?.startRssMB ?? 0).toFixed(0)} MB)\n\n`;
md += head("contender") + "\n";
for (const c of cs) md += `| ${c.label} | ${ws.map((w) => { const r = get(c.id, w.id); return r && !r.error ? `${r.maxRssMB.toFixed(0)} (${r.loadedRssMB.toFixed(0)})` : "–"; }).join(" | ")} |\n`;

const RATIOS = [
  ["Baton TS memory ÷ floor", "baton-mem", "floor", 5],
  ["Baton TS SQLite ÷ floor+SQLite", "baton-sqlite", "floor-sqlite", 3],
  ["Baton YAML value: memory ÷ floor", "yaml-value-mem", "floor", 5],
  ["Baton YAML value: SQLite ÷ floor+SQLite", "yaml-value-sqlite", "floor-sqlite", 3],
  ["Baton YAML run: memory ÷ floor", "yaml-run-mem", "floor", 5],
  ["Baton YAML run: SQLite ÷ floor+SQLite", "yaml-run-sqlite", "floor-sqlite", 3],
  ["Baton TS memory ÷ LangGraph (no checkpointer)", "baton-mem", "langgraph"],
  ["Baton TS memory ÷ LangGraph + MemorySaver", "baton-mem", "langgraph-memsaver"],
  ["Baton TS SQLite ÷ LangGraph + SqliteSaver", "baton-sqlite", "langgraph-sqlite"],
];
md += `\nRatios of µs per stage (target in brackets: ✅ met, ❌ missed; below 1 = Baton is faster, 1/N = N times faster)\n\n`;
md += head("ratio") + "\n";
for (const [label, a, b, target] of RATIOS) {
  if (!cs.some((c) => c.id === a) || !cs.some((c) => c.id === b)) continue;
  md += `| ${label}${target ? ` (≤ ${target}×)` : ""} | ${ws.map((w) => {
    const x = get(a, w.id);
    const y = get(b, w.id);
    if (!x || !y || x.error || y.error) return "–";
    const r = x.usPerStage / y.usPerStage;
    const s = r >= 10 ? r.toFixed(0) : r >= 0.1 ? r.toFixed(r >= 1 ? 1 : 2) : r.toPrecision(2);
    return `${s}×${r < 1 ? ` (1/${fmtInv(1 / r)})` : ""}${target ? (r <= target ? " ✅" : " ❌") : ""}`;
  }).join(" | ")} |\n`;
}

const cpu = cpus();
const setup = `Node ${process.version}, ${cpu.length} × ${cpu[0]?.model.trim() ?? "?"}; ${QUICK ? "BENCH_QUICK; " : ""}` +
  `one child process per contender × workload; ${new Date().toISOString().slice(0, 10)}; total ${((Date.now() - t0) / 1000).toFixed(0)} s.`;
const notes = [
  "A stage execution = one stage, or one for_each item (the 1→N→1 workloads count N + 2, the diamond 10 per run).",
  "Function stages return `{ v }` computed from their deps' outputs. YAML `value:` stages: roots build an object with JSONata, links are simple paths (`s12`, `root`: the fast path), fan-ins build an array (`[m0, …]`), the for_each sink is `$count(each)`. YAML `run:` stages call bench/fixtures/stage.mjs with `input: \"{{ dep }}\"`.",
  "SQLite contenders get a fresh temp file per repetition, opened before and closed after the timed part; one store (or checkpointer) per repetition is shared by its runs. Baton runs use `execute(pipeline, {}, { store })` (a Runtime per run, as the API does); the pipeline/plan is compiled once, outside the timed part.",
  `Timed repetitions run back to back in one process after the warm-up (steady state: GC cost lands in whichever repetition triggers it); BENCH_GC=${process.env.BENCH_GC || "once"}. A forced GC before every repetition (BENCH_GC=each) leaves a cold, shrunken heap and makes the allocation-heavy contenders look ≈ 2× slower.`,
  `LangGraph ${"1.4.18"}: one node and one channel per stage, an edge per dependency (a join for fan-ins), \`Send\` for for_each; checkpointed runs use \`durability: "${process.env.BENCH_LG_DURABILITY || "sync"}"\`; the SqliteSaver gets its own connection in WAL + synchronous=NORMAL.`,
];
const doc = `## Benchmark\n\n${setup}\n\n${md}\n${notes.map((n) => `- ${n}`).join("\n")}\n\nRun it with \`npm run bench\` (\`BENCH_QUICK=1 npm run bench\` for a smoke run; knobs at the top of bench/run.mjs).\n`;
process.stdout.write("\n" + doc);
const outFile = process.env.BENCH_OUT ?? join(here, "results.md");
if (outFile !== "-") {
  writeFileSync(outFile, doc);
  process.stderr.write(`\nwritten to ${outFile}\n`);
}
