// Expression micro-benchmarks (not a test; CI does not run it):  npm run build && node bench/expr.mjs
//
// The hot paths of src/expr (issue 13 items 5-7 added the own-work time bound, size-bounded
// built-ins and RE2 regexes): prints a markdown table of
//   - the simple-path fast path (no JSONata), per evaluation;
//   - JSONata evaluations, one at a time and 30,000 at once (a `value:` for_each);
//   - $match with a regex, $pad/$join (bounded built-ins), compiling new expressions;
//   - how long a runaway expression runs before the time bound stops it, alone and beside
//     another runaway.
// Knobs (env): EXPR_REPS (timed repetitions, default 7). Loads Baton from dist/.
import { compileExpr } from "../dist/expr/index.js";

const REPS = Number(process.env.EXPR_REPS || 7);
const rows = [];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
async function bench(name, unit, perRep, fn) {
  await fn();
  const ms = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  const m = median(ms);
  const value = unit === "ns/eval" ? (m * 1e6) / perRep : unit === "evals/s" ? perRep / (m / 1000) : m;
  let note = "";
  if (unit === "ms") {
    const c0 = process.cpuUsage();
    await fn();
    const c = process.cpuUsage(c0);
    note = `CPU ${fmt((c.user + c.system) / 1000)} ms`;
  }
  rows.push(`| ${name} | ${fmt(value)} | ${unit} | ${note} |`);
  process.stderr.write(`  ${name}: ${fmt(value)} ${unit}\n`);
}

const scope = { research: { sources: [{ url: "a" }, { url: "b" }], summary: "s" }, inputs: { topic: "tides" }, item: 3 };
const fast = compileExpr("research.summary");
const N_FAST = 1_000_000;
await bench("fast path `research.summary`", "ns/eval", N_FAST, () => {
  for (let i = 0; i < N_FAST; i++) fast.evaluate(scope);
});

const cheap = compileExpr("item * 2");
const N_SEQ = 20_000;
await bench("JSONata `item * 2`, one at a time", "evals/s", N_SEQ, async () => {
  for (let i = 0; i < N_SEQ; i++) await cheap.evaluate({ item: i });
});
const N_CONC = 30_000;
await bench("JSONata `item * 2`, 30,000 at once", "evals/s", N_CONC, async () => {
  const rs = await Promise.allSettled(Array.from({ length: N_CONC }, (_, i) => cheap.evaluate({ item: i })));
  const bad = rs.filter((r) => r.status === "rejected");
  if (bad.length > 0) process.stderr.write(`    ${bad.length} of ${N_CONC} failed: ${bad[0].reason.message}\n`);
});
const mixed = compileExpr("$count(research.sources[url != 'x']) & ' sources on ' & inputs.topic");
await bench("JSONata count/filter/&", "evals/s", N_SEQ, async () => {
  for (let i = 0; i < N_SEQ; i++) await mixed.evaluate(scope);
});
const rx = compileExpr("$match(s, /(a+)+b/)");
const s = "a".repeat(36) + "b";
await bench("`$match(s, /(a+)+b/)` on 37 characters", "evals/s", 5000, async () => {
  for (let i = 0; i < 5000; i++) await rx.evaluate({ s });
});
const builders = compileExpr("$join([$pad(s, 40, '-'), $string(research)], '|')");
await bench("`$join([$pad(…), $string(…)])`", "evals/s", N_SEQ, async () => {
  for (let i = 0; i < N_SEQ; i++) await builders.evaluate({ s: "x", research: scope.research });
});
let k = 0;
await bench("compile a new expression", "ns/eval", 2000, () => {
  for (let i = 0; i < 2000; i++) compileExpr(`$count(a${k++}[x > ${i}]) & $pad(b, 3)`);
});
const runaway = compileExpr("($loop := function($n) { $loop($n + 1) }; $loop(0))");
await bench("a runaway expression, until the time bound stops it", "ms", 1, async () => {
  await Promise.resolve(runaway.evaluate({})).catch(() => {});
});
await bench("two runaway expressions at once, until both are stopped", "ms", 1, async () => {
  await Promise.allSettled([runaway.evaluate({}), runaway.evaluate({ x: 1 })]);
});

console.log(`| case (node ${process.version}) | figure | unit | note |\n|---|---:|---|---|\n${rows.join("\n")}`);
