// Startup benchmark (not a test; CI does not run it):  npm run bench:startup
//
// Issue 14 item 1: every command loads only what it uses. Times whole processes, hyperfine-like:
// `node -e 0` (the floor), `baton --version`, `baton validate`, `baton plan`, `baton run` of a
// one-stage `value:` template (bench/fixtures/startup.yaml) and `baton runs`, interleaved round
// by round so machine load hits every command alike; reports the median wall time of each
// (spawnSync, stdout/stderr discarded) and its ratio to `node -e 0` measured in the same run, and
// the same for CPU time (user + system of the whole process, recorded at exit by a preloaded
// bench/fixtures/cpu-usage.mjs, which every command, `node -e 0` included, carries): on a loaded
// machine wall time mostly measures the wait for a core, CPU time what the command costs.
// Targets: validate and plan ≤ 2×, run ≤ 2.5×.
//
//   node bench/startup.mjs [--runs N] [--baseline OLD/dist/cli/main.js] [--out FILE] [--no-write]
//
// --baseline times a second build side by side (the "before" columns); the table is written to
// bench/results-startup.md unless --no-write. Loads Baton from dist/ (npm run build first).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const RUNS = Number(opt("--runs", process.env.STARTUP_RUNS ?? "15"));
const WARMUP = 2;
const baseline = opt("--baseline") ? resolve(opt("--baseline")) : undefined;
const outFile = resolve(root, opt("--out", "bench/results-startup.md"));
const template = join(root, "bench/fixtures/startup.yaml");
const work = mkdtempSync(join(tmpdir(), "baton-startup-"));
const cpuHook = join(root, "bench/fixtures/cpu-usage.mjs");
const cpuFile = join(work, "cpu.txt");

/** The commands timed, against one CLI build; `target` is the ratio the issue asks for. */
function cases(cli, tag) {
  const db = join(work, `${tag}.db`);
  return [
    { name: "baton --version", argv: [cli, "--version"] },
    { name: "baton validate", argv: [cli, "validate", template], target: 2 },
    { name: "baton plan", argv: [cli, "plan", template], target: 2 },
    { name: "baton run (one value: stage)", argv: [cli, "--db", db, "run", template], target: 2.5 },
    { name: "baton runs", argv: [cli, "--db", db, "runs", "--limit", "5"] },
  ];
}

const floor = { name: "node -e 0", argv: ["-e", "0"] };
const after = cases(join(root, "dist/cli/main.js"), "after");
const before = baseline ? cases(baseline, "before") : [];
const all = [floor, ...before, ...after];
// Run outside the repository (no .baton/ or baton config picked up) with OTel and queues unset.
const env = { ...process.env };
for (const k of Object.keys(env)) if (k.startsWith("OTEL_") || k.startsWith("BATON_")) delete env[k];

function once(c) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ["--import", cpuHook, ...c.argv], { cwd: work, env: { ...env, BATON_BENCH_CPU: cpuFile }, stdio: ["ignore", "ignore", "pipe"] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = Number(readFileSync(cpuFile, "utf8").trim().split("\n").pop());
  rmSync(cpuFile, { force: true });
  if (r.status !== 0 && !c.failed) {
    c.failed = `exit ${r.status}: ${String(r.stderr).trim().split("\n")[0]}`;
    process.stderr.write(`  ${c.name}: ${c.failed}\n`);
  }
  return { ms, cpu };
}

const times = new Map(all.map((c) => [c, []]));
const cpuTimes = new Map(all.map((c) => [c, []]));
const load = [loadavg()[0]];
for (let round = 0; round < WARMUP + RUNS; round++) {
  for (const c of all) {
    const { ms, cpu } = once(c);
    if (round >= WARMUP) {
      times.get(c).push(ms);
      cpuTimes.get(c).push(cpu);
    }
  }
  process.stderr.write(`\rround ${round + 1}/${WARMUP + RUNS}`);
}
process.stderr.write("\n");
rmSync(work, { recursive: true, force: true });

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
load.push(loadavg()[0]);
const note = (c) => (c.failed ? ` (${c.failed})` : "");

/** One markdown table of medians of `series` (wall or CPU ms) with ratios to node -e 0. */
function tableOf(series) {
  const med = new Map(all.map((c) => [c, median(series.get(c))]));
  const base = med.get(floor);
  const ms = (c) => `${med.get(c).toFixed(0)} ms`;
  const ratio = (c) => `${(med.get(c) / base).toFixed(2)}×`;
  const verdict = (c) => (c.target === undefined ? "" : med.get(c) / base <= c.target ? `≤ ${c.target}× ✓` : `≤ ${c.target}× ✗`);
  const lines = [];
  if (baseline) {
    lines.push("| command | before | before ÷ node | after | after ÷ node | target (after) |", "|---|---:|---:|---:|---:|---|");
    lines.push(`| node -e 0 | ${ms(floor)} | 1.00× | ${ms(floor)} | 1.00× | |`);
    after.forEach((c, i) => lines.push(`| ${c.name} | ${ms(before[i])}${note(before[i])} | ${ratio(before[i])} | ${ms(c)}${note(c)} | ${ratio(c)} | ${verdict(c)} |`));
  } else {
    lines.push("| command | median | ÷ node -e 0 | target |", "|---|---:|---:|---|");
    lines.push(`| node -e 0 | ${ms(floor)} | 1.00× | |`);
    for (const c of after) lines.push(`| ${c.name} | ${ms(c)}${note(c)} | ${ratio(c)} | ${verdict(c)} |`);
  }
  return lines.join("\n");
}
const table = `Wall time (median):\n\n${tableOf(times)}\n\nCPU time, user + system (median):\n\n${tableOf(cpuTimes)}`;
process.stdout.write(table + "\n");

if (!args.includes("--no-write")) {
  const cpu = cpus();
  const doc = [
    "# Startup benchmark (`npm run bench:startup`)",
    "",
    "Issue 14 item 1: every command loads only what it uses. Wall time of whole processes",
    "(`spawnSync`, output discarded), median of " + RUNS + " interleaved rounds after " + WARMUP + " warm-up rounds, on",
    `${cpu.length} × ${cpu[0]?.model ?? "?"}, Node ${process.version}, load average ${load.map((l) => l.toFixed(1)).join(" → ")} (other work on the machine); the template is`,
    "`bench/fixtures/startup.yaml` (one `value:` stage); `run` uses a SQLite store; ratios are to",
    "`node -e 0` measured in the same run.",
    ...(baseline ? ["", `*before*: the build given by --baseline (${baseline}); *after*: this build.`] : []),
    "",
    table,
    "",
    `Generated ${new Date().toISOString()} by \`node bench/startup.mjs${baseline ? " --baseline …" : ""}\`.`,
    "",
  ].join("\n");
  writeFileSync(outFile, doc);
  process.stderr.write(`wrote ${outFile}\n`);
}
