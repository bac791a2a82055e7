// Load and scale (issue 7 item 6): 1,000 concurrent runs of a 10-stage pipeline in one process
// with the SQLite store; a for_each over 10,000 items; a 200-stage chain. Reports peak RSS, the
// longest event-loop block, and log bytes ÷ output bytes. Run: npm run build && node bench/load.mjs
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { definePipeline, Runtime, SqliteStore } from "../dist/index.js";

const quick = process.env.LOAD_QUICK === "1";
const RUNS = quick ? 100 : 1000;
const dir = mkdtempSync(join(tmpdir(), "baton-load-"));
let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
const loop = monitorEventLoopDelay({ resolution: 5 });

async function measure(name, fn) {
  loop.reset();
  loop.enable();
  const t0 = performance.now();
  const extra = await fn();
  const ms = performance.now() - t0;
  loop.disable();
  console.log(`| ${name} | ${(ms / 1000).toFixed(2)} s | ${(loop.max / 1e6).toFixed(1)} ms | ${(peakRss / 1048576).toFixed(0)} MB | ${extra} |`);
}

console.log("| workload | time | longest event-loop block | peak RSS (process) | notes |\n|---|---:|---:|---:|---|");

// 1,000 concurrent runs of a 10-stage diamond-ish pipeline (function stages with small outputs).
let p = definePipeline({ name: "ten" }).stage("s0", { run: () => ({ v: 0 }) });
for (let i = 1; i < 10; i++) p = p.stage(`s${i}`, { needs: [`s${Math.max(0, i - 2)}`], run: async (ctx) => ({ v: i, from: Object.keys(ctx.outputs) }) });
await measure(`${RUNS} concurrent runs × 10 stages (SQLite)`, async () => {
  const store = SqliteStore.open(join(dir, "load.db"));
  const rt = new Runtime({ store });
  const handles = await Promise.all(Array.from({ length: RUNS }, () => rt.start(p.plan, {})));
  const results = await Promise.all(handles.map((h) => h.done));
  const ok = results.filter((r) => r.status === "succeeded").length;
  await rt.close();
  await store.close();
  return `${ok}/${RUNS} succeeded; db ${(statSync(join(dir, "load.db")).size / 1048576).toFixed(1)} MB`;
});

// A for_each over 10,000 items.
const N = quick ? 1000 : 10_000;
await measure(`for_each over ${N} items (SQLite)`, async () => {
  const store = SqliteStore.open(join(dir, "fe.db"));
  const fe = definePipeline({ name: "fe" }).stage("list", { run: () => Array.from({ length: N }, (_, i) => i) })
    .stage("each", { for_each: "list", concurrency: 64, run: (ctx) => ({ i: ctx.index, payload: "x".repeat(200) }) }).stage("n", { needs: ["each"], value: "$count(each)" }).returns("n");
  const rt = new Runtime({ store });
  const r = await (await rt.start(fe.plan, {})).done;
  const { events } = await store.load(r.id);
  const outputBytes = events.reduce((a, e) => a + (e.type === "stage_succeeded" ? JSON.stringify(e.output).length : 0), 0);
  const logBytes = events.reduce((a, e) => a + JSON.stringify(e).length, 0);
  await rt.close();
  await store.close();
  return `output ${r.output}; log ${(logBytes / 1048576).toFixed(1)} MB ÷ outputs ${(outputBytes / 1048576).toFixed(1)} MB = ${(logBytes / outputBytes).toFixed(2)}`;
});

// A 200-stage chain: no step limit.
await measure("200-stage chain (SQLite)", async () => {
  const store = SqliteStore.open(join(dir, "chain.db"));
  let c = definePipeline({ name: "chain" }).stage("s0", { run: () => 0 });
  for (let i = 1; i < 200; i++) c = c.stage(`s${i}`, { needs: [`s${i - 1}`], run: (ctx) => ctx.outputs[`s${i - 1}`] + 1 });
  const rt = new Runtime({ store });
  const r = await (await rt.start(c.returns("s199").plan, {})).done;
  await rt.close();
  await store.close();
  return `output ${r.output}`;
});
clearInterval(sampler);
