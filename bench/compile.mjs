// Compile cost per stage (issue 14 item 2; not a test, CI does not run it):  npm run bench:compile
//
// Times `compileSource` in process (warm: after warm-up compiles, median of several) on YAML
// templates of 1, 200, 1,000 and 2,000 stages, two shapes:
//   - chain:  s_i reads s_{i-1}; even stages are `run:` stages with a `{{ }}` input, odd ones
//             `value:` expressions;
//   - fanout: one root, every other stage reads it (`run:` with `{{ s0.n }}` / `value:`).
// Each repetition uses a different stage-id prefix, so no cache keyed by expression text
// carries over between repetitions (the cost is that of a fresh template in a warm process).
// Times are CPU time of the process (user + system, so GC threads count), not wall time: a
// loaded CI box stretches wall time several-fold. Wall medians are printed alongside.
// Prints µs per stage, the marginal µs per added stage, and the per-stage ratio against the
// 200-stage template (1.0 = linear). Then the TypeScript builder: `definePipeline().stage()`
// × N (build only) and its `.plan` (compile) at 1,000, 4,000 and 8,000 stages.
// Knobs (env): COMPILE_REPS (timed repetitions, default 7), COMPILE_QUICK=1 (fewer, no 8,000),
// BATON_DIST (the built library's directory, default ../dist; `npm run build` first — the npm
// script does), BATON_BASELINE (another build's dist/: its YAML rows are timed in the same run,
// interleaved with this build's, and the table gets before/after columns). With
// BENCH_CPU_PROF=1 run it under `node --cpu-prof` and summarise the profile with
// bench/profile-summary.mjs.
// Ends with the target (≤ 50 µs per stage at 2,000 stages, linear in stages: the
// per-stage cost at 2,000 within 1.5× of that at 200) marked ✓ or ✗ for each shape, and the CPU
// time of `node -e 0` measured in the same run (≈ 80 ms on the idle machine: a larger
// figure says how much slower this machine, at its present load, runs everything).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(process.env.BATON_DIST ?? join(here, "..", "dist"));
const load = (dir, mod) => import(pathToFileURL(join(dir, mod)).href);
const { compileSource } = await load(dist, "template/index.js");
const { definePipeline } = await load(dist, "api/pipeline.js");
const baselineDir = process.env.BATON_BASELINE ? resolve(process.env.BATON_BASELINE) : undefined;
const baseline = baselineDir ? (await load(baselineDir, "template/index.js")).compileSource : undefined;
const TARGET_US = 50;

const QUICK = process.env.COMPILE_QUICK === "1";
const REPS = Number(process.env.COMPILE_REPS || (QUICK ? 3 : 7));
const WARMUP = QUICK ? 1 : 2;
const SIZES = [1, 200, 1000, 2000];
const TS_SIZES = QUICK ? [1000, 4000] : [1000, 4000, 8000];
const ONLY = process.env.COMPILE_ONLY; // "yaml" | "ts"

/** CPU time of this process in ms (user + system): steadier than wall time on a loaded machine. */
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

/** A chain: even stages run a module with a `{{ }}` input, odd ones are value expressions. */
function chain(n, p) {
  const lines = ["baton: 1", "name: chain", "stages:", `  ${p}0: { run: ./stages.mjs#start }`];
  for (let i = 1; i < n; i++) {
    if (i % 2 === 0) lines.push(`  ${p}${i}:`, `    run: ./stages.mjs#step`, `    input: { n: "{{ ${p}${i - 1}.n }}", label: "step ${i} after {{ ${p}${i - 1}.label }}" }`);
    else lines.push(`  ${p}${i}:`, `    value: "{ 'n': ${p}${i - 1}.n + 1, 'label': ${p}${i - 1}.label }"`);
  }
  return lines.join("\n") + "\n";
}

/** A fan-out: one root, every other stage reads it. */
function fanout(n, p) {
  const lines = ["baton: 1", "name: fanout", "stages:", `  ${p}0: { run: ./stages.mjs#start }`];
  for (let i = 1; i < n; i++) {
    if (i % 2 === 0) lines.push(`  ${p}${i}:`, `    run: ./stages.mjs#step`, `    input: { n: "{{ ${p}0.n }}", label: "leaf ${i} of {{ ${p}0.label }}" }`);
    else lines.push(`  ${p}${i}:`, `    value: "${p}0.n + ${i}"`);
  }
  return lines.join("\n") + "\n";
}

const opts = { file: "bench.yaml", format: "yaml", baseDir: "/base" };
const f1 = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const log = (s) => {
  console.log(s);
};

const verdicts = [];
if (ONLY !== "ts") {
  const builds = [["after", compileSource], ...(baseline ? [["before", baseline]] : [])];
  // Warm the JIT on both shapes first, so the small sizes are not measured cold.
  for (let i = 0; i < 3; i++) for (const make of [chain, fanout]) for (const [, compile] of builds) compile(make(500, `warm${i}_`), opts);
  if (baseline) {
    log(`before: ${baselineDir}; after: ${dist} (interleaved compile by compile)`);
    log("");
    log("| template | stages | before CPU µs/stage | after CPU µs/stage | after ÷ before | after marginal µs/stage | after per-stage ratio vs 200 |");
    log("|---|---:|---:|---:|---:|---:|---:|");
  } else {
    log("| template | stages | CPU ms | CPU µs/stage | marginal µs/stage | per-stage ratio vs 200 | wall ms |");
    log("|---|---:|---:|---:|---:|---:|---:|");
  }
  for (const [shape, make] of [["chain", chain], ["fanout", fanout]]) {
    const res = new Map(builds.map(([name]) => [name, new Map()]));
    const wall = new Map();
    for (const n of SIZES) {
      const reps = n >= 1000 ? Math.max(3, Math.ceil(REPS / 2)) : REPS;
      const texts = Array.from({ length: reps + WARMUP }, (_, i) => make(n, `p${i}_`));
      const ms = new Map(builds.map(([name]) => [name, []]));
      const walls = [];
      texts.forEach((text, i) => {
        // Alternate which build goes first: the second pays for the garbage the first left.
        for (const [name, compile] of i % 2 === 0 ? builds : [...builds].reverse()) {
          const w0 = performance.now();
          const c0 = cpu();
          // The baseline gets its own copy of the text (another prefix): no cache carries over.
          const plan = compile(name === "after" ? text : text.replaceAll(`p${i}_`, `b${i}_`), opts);
          const dt = cpu() - c0;
          const dw = performance.now() - w0;
          if (plan.stages.length !== n) throw new Error(`compiled ${plan.stages.length} stages, expected ${n}`);
          if (i >= WARMUP) {
            ms.get(name).push(dt);
            if (name === "after") walls.push(dw);
          }
        }
      });
      for (const [name] of builds) res.get(name).set(n, median(ms.get(name)));
      wall.set(n, median(walls));
    }
    const after = res.get("after");
    const base = after.get(1);
    const per200 = after.get(200) / 200;
    for (const n of SIZES) {
      const t = after.get(n);
      const marginal = n === 1 ? "" : f1(((t - base) * 1000) / (n - 1));
      const ratio = n === 1 ? "" : (t / n / per200).toFixed(2);
      if (baseline) {
        const b = res.get("before").get(n);
        log(`| ${shape} | ${n.toLocaleString("en")} | ${f1((b * 1000) / n)} | ${f1((t * 1000) / n)} | ${(t / b).toFixed(2)} | ${marginal} | ${ratio} |`);
      } else log(`| ${shape} | ${n.toLocaleString("en")} | ${f1(t)} | ${f1((t * 1000) / n)} | ${marginal} | ${ratio} | ${f1(wall.get(n))} |`);
    }
    const us = (after.get(2000) * 1000) / 2000;
    const linear = after.get(2000) / 2000 / per200;
    verdicts.push(`${shape}: ${f1(us)} µs/stage at 2,000 stages (target ≤ ${TARGET_US}) ${us <= TARGET_US ? "✓" : "✗"}; per-stage ratio 2,000 vs 200 ${linear.toFixed(2)} (linear: ≤ 1.5) ${linear <= 1.5 ? "✓" : "✗"}`);
  }
}

if (ONLY !== "yaml") {
  log("");
  log("| TS builder | stages | build CPU ms | build µs/stage | .plan CPU ms | .plan µs/stage |");
  log("|---|---:|---:|---:|---:|---:|");
  const fn = () => 1;
  for (const n of TS_SIZES) {
    const builds = [];
    const plans = [];
    const reps = QUICK || n >= 4000 ? 1 : 3;
    for (let r = 0; r < reps + (n >= 4000 ? 0 : 1); r++) {
      const t0 = cpu();
      let b = definePipeline({ name: `ts${r}`, baseDir: "/base" }).stage("s0", { run: fn });
      for (let i = 1; i < n; i++) b = b.stage(`s${i}`, { needs: [`s${i - 1}`], run: fn });
      const t1 = cpu();
      const plan = b.plan;
      const t2 = cpu();
      if (plan.stages.length !== n) throw new Error(`compiled ${plan.stages.length} stages, expected ${n}`);
      if (n >= 4000 || r > 0) {
        builds.push(t1 - t0);
        plans.push(t2 - t1);
      }
    }
    const b = median(builds);
    const p = median(plans);
    log(`| chain | ${n.toLocaleString("en")} | ${f1(b)} | ${f1((b * 1000) / n)} | ${f1(p)} | ${f1((p * 1000) / n)} |`);
  }
}

if (verdicts.length > 0) {
  // The floor, measured now: how much slower than the idle machine this one is.
  // (bench/fixtures/cpu-usage.mjs, as bench/startup.mjs measures it: the whole process's CPU time.)
  const dir = mkdtempSync(join(tmpdir(), "baton-compile-"));
  const file = join(dir, "cpu.txt");
  for (let i = 0; i < 5; i++) spawnSync(process.execPath, ["--import", join(here, "fixtures", "cpu-usage.mjs"), "-e", "0"], { env: { ...process.env, BATON_BENCH_CPU: file } });
  const floor = median(readFileSync(file, "utf8").trim().split("\n").map(Number));
  rmSync(dir, { recursive: true, force: true });
  log("");
  for (const v of verdicts) log(v);
  log(`node -e 0 took ${f1(floor)} ms of CPU in this run (≈ 80 ms on the issue's idle machine): this machine, at its present load, is about ${(floor / 80).toFixed(1)}× slower`);
}
