// Micro-benchmarks (not a test; CI does not run it):  npm run bench:micro
//
// The timings the unit suite used to assert (issue 10 item 6: wall-clock limits fail on loaded CI
// machines, so tests assert behaviour and the figures live here). Prints a markdown table:
//   - compiling a 200- and a 2,000-stage template (a plain chain, and the mixed agent/value/run
//     template with routes and retries test/template/compile.test.ts compiles);
//   - building the trace of a 10,000-item for_each and of a 2,000-stage chain (real run logs);
//   - MemoryStore.append, validateInputs with its cached validator;
//   - compiling mutated copies of the example templates (the fuzz cases of test/reliability);
//   - how long a runaway expression runs before the 1000 ms time bound stops it.
// Knobs (env): MICRO_QUICK=1 (fewer repetitions), MICRO_REPS (timed repetitions, default 15).
// Loads Baton from dist/ (npm run build first; the npm script does).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { compileSource, execute, MemoryStore, validateInputs, loadPlanFile, TemplateError } from "../dist/index.js";
import { buildTrace } from "../dist/trace/index.js";
import { compileExpr } from "../dist/expr/index.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const QUICK = process.env.MICRO_QUICK === "1";
const REPS = Number(process.env.MICRO_REPS || (QUICK ? 5 : 15));
const WARMUP = QUICK ? 1 : 3;

const rows = [];
function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { min: s[0], p50: q(0.5), p90: q(0.9), max: s[s.length - 1], n: s.length };
}
const f = (ms) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3));
function row(name, st, unit = "ms", note = "") {
  rows.push(`| ${name} | ${f(st.p50)} | ${f(st.p90)} | ${f(st.min)} | ${f(st.max)} | ${unit} | ${st.n} | ${note} |`);
  process.stderr.write(`  ${name}: p50 ${f(st.p50)} ${unit}\n`);
}
/** Time `fn` (sync or async) WARMUP + REPS times; the timed figures in ms. */
async function time(fn, reps = REPS, warmup = WARMUP) {
  for (let i = 0; i < warmup; i++) await fn(i);
  const out = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push(performance.now() - t0);
  }
  return out;
}

const opts = { file: "bench.yaml", format: "yaml", baseDir: "/base" };

// ---- template compile -------------------------------------------------------------------
/** A chain of value stages: s_i reads s_{i-1}. */
function chain(n, prefix = "s") {
  const lines = ["baton: 1", "name: chain", "stages:", `  ${prefix}0: { value: "1" }`];
  for (let i = 1; i < n; i++) lines.push(`  ${prefix}${i}: { value: "${prefix}${i - 1} + 1" }`);
  return lines.join("\n");
}
/** The mixed template of test/template/compile.test.ts: agent, value (retried) and run stages with routes. */
function mixed(n, prefix = "s") {
  const lines = ["baton: 1", "name: big", "inputs:", "  topic: { type: string }", "agents:", "  w: { model: 'mock:echo' }", "stages:"];
  for (let i = 0; i < n; i++) {
    const reads = i === 0 ? "inputs.topic" : `${prefix}${i - 1}.text & ${prefix}${i >> 1}.text`;
    if (i % 3 === 0) lines.push(`  ${prefix}${i}:`, "    agent: w", `    prompt: "Step ${i}: {{ ${reads} }} and {{ inputs.topic }}"`);
    else if (i % 3 === 1) lines.push(`  ${prefix}${i}:`, `    value: "${reads}"`, "    retry: { attempts: 2, delay: 1s }");
    else lines.push(`  ${prefix}${i}:`, `    run: ./x.ts#f${i}`, `    input: { a: "{{ ${reads} }}" }`, "    routes:", `      - when: "${prefix}${i}.ok = false"`, `        goto: ${prefix}${i - 1}`);
  }
  return lines.join("\n");
}
for (const [kind, make] of [["chain", chain], ["mixed", mixed]]) {
  for (const n of [200, 2000]) {
    // A different prefix per repetition, so no cache keyed by text helps.
    const texts = Array.from({ length: REPS + WARMUP }, (_, i) => make(n, `p${i}_`));
    const ms = await time((i) => {
      const plan = compileSource(texts[i % texts.length], opts);
      if (plan.stages.length !== n) throw new Error(`compiled ${plan.stages.length} stages, expected ${n}`);
    }, n >= 2000 ? Math.max(3, Math.ceil(REPS / 3)) : REPS);
    row(`compile a ${n.toLocaleString("en")}-stage ${kind} template`, stats(ms), "ms", kind === "mixed" && n === 200 ? "the unit test used to assert p50 < 100 ms" : "");
  }
}

// ---- trace build ------------------------------------------------------------------------
async function logOf(text) {
  const plan = compileSource(text, { format: "yaml", baseDir: root });
  const log = [];
  const r = await execute({ name: plan.name, plan, parseInputs: (x) => x }, {}, { store: new MemoryStore(), onEvents: (_id, es) => log.push(...es) });
  if (r.status !== "succeeded") throw new Error(`bench run ${plan.name} ${r.status}: ${r.error?.message}`);
  return { plan, log };
}
{
  const items = QUICK ? 2_000 : 10_000;
  const { plan, log } = await logOf(`baton: 1\nname: fan\nstages:\n  list: { value: "[1..${items}]" }\n  each: { for_each: list, value: "item * 2" }\noutput: "$count(each)"\n`);
  const ms = await time(() => {
    const t = buildTrace(log, plan);
    if (t.stages.length < items) throw new Error(`trace has ${t.stages.length} entries`);
  });
  row(`build the trace of a ${items.toLocaleString("en")}-item for_each (${log.length.toLocaleString("en")} events)`, stats(ms), "ms", "the unit test used to assert < 500 ms");
}
{
  const n = QUICK ? 500 : 2000;
  const { plan, log } = await logOf(chain(n));
  const ms = await time(() => buildTrace(log, plan));
  row(`build the trace of a ${n.toLocaleString("en")}-stage chain (${log.length.toLocaleString("en")} events)`, stats(ms));
}

// ---- store and inputs -------------------------------------------------------------------
{
  const n = 100_000;
  const e = { type: "stage_started", at: 0, stage: "a", visit: 1, attempt: 1, queued_ms: 0 };
  const ms = await time(async () => {
    const store = new MemoryStore();
    await store.create({ id: "r1", pipeline: "p", planHash: "h1" }, [{ type: "run_started", at: 0, run_id: "r1", pipeline: "p", plan_hash: "h1", source: { format: "ts" }, inputs: {}, seed: 1 }]);
    for (let seq = 1; seq <= n; seq++) await store.append("r1", [e], seq);
  }, QUICK ? 3 : 7, 1);
  row("MemoryStore.append (one event, in sequence)", stats(ms.map((x) => (x * 1e6) / n / 1e3)), "µs", "the unit test used to assert < 5 µs");
}
{
  const plan = loadPlanFile(join(root, "test/fixtures/templates/research-report.yaml"));
  const n = 1000;
  const ms = await time(() => {
    for (let i = 0; i < n; i++) validateInputs(plan, { topic: "t", depth: String(i + 1) });
  });
  row("validateInputs (cached validator), per call", stats(ms.map((x) => (x / n) * 1e3)), "µs", "the unit test used to assert 1,000 calls < 500 ms");
}

// ---- fuzz cases -------------------------------------------------------------------------
{
  // Mutated copies of the example templates (delete / duplicate / swap lines, flip a character,
  // truncate), from a fixed seed: the compile time of each case.
  let seed = 0x9e3779b9;
  const rnd = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const pick = (n) => Math.floor(rnd() * n);
  const bases = ["examples/research-report.yaml", "examples/research-report-llm.yaml"].map((p) => readFileSync(join(root, p), "utf8"));
  const cases = QUICK ? 200 : 1000;
  const ms = [];
  let errors = 0;
  for (let c = 0; c < cases; c++) {
    const lines = bases[c % bases.length].split("\n");
    for (let m = 1 + pick(4); m > 0; m--) {
      const at = pick(lines.length);
      const op = pick(5);
      if (op === 0) lines.splice(at, 1);
      else if (op === 1) lines.splice(at, 0, lines[at] ?? "");
      else if (op === 2) { const b = pick(lines.length); [lines[at], lines[b]] = [lines[b], lines[at]]; }
      else if (op === 3 && lines[at]) { const s = lines[at]; const k = pick(s.length); lines[at] = s.slice(0, k) + ":{}[]-# '\"|>&*!$"[pick(17)] + s.slice(k + 1); }
      else lines.length = Math.max(1, at);
    }
    const text = lines.join("\n");
    const t0 = performance.now();
    try {
      compileSource(text, { file: "fuzz.yaml", format: "yaml", baseDir: join(root, "examples") });
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      errors++;
    }
    ms.push(performance.now() - t0);
  }
  row(`compile a mutated example template (${cases} cases, ${errors} rejected)`, stats(ms), "ms", "the fuzz test used to assert each < 1 s");
}

// ---- expression time bound --------------------------------------------------------------
{
  const e = compileExpr("($loop := function($n) { $loop($n + 1) }; $loop(0))");
  const ms = await time(async () => {
    const err = await Promise.resolve().then(() => e.evaluateAsync({})).then(() => undefined, (x) => x);
    if (!/ran for more than/.test(err?.message ?? "")) throw new Error(`runaway expression ended with ${err?.message ?? "a value"}`);
  }, QUICK ? 2 : 3, 0);
  row("a runaway expression, until its time bound stops it", stats(ms), "ms", "bound 1000 ms; unit tests used to assert < 3 s / < 5 s");
}

console.log(`\n| measurement | p50 | p90 | min | max | unit | reps | note |\n|---|---:|---:|---:|---:|---|---:|---|`);
for (const r of rows) console.log(r);
