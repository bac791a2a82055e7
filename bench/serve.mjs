// `baton serve` over HTTP (not a test; CI does not run it):  npm run bench:serve
//
// One `startServe` process on the embedded SQLite store (a temp file, WAL, synchronous=NORMAL)
// and a registered one-stage `value:` pipeline; a client in the same process (fetch, keep-alive)
// sends N requests with C in flight and records each request's latency:
//   start        POST /api/runs { pipeline, inputs }                 (a new run each)
//   idempotent   POST /api/runs with a new idempotency key each      (put-if-absent + start)
//   replay       the same key again                                  (a record read, no run)
//   webhook      signed POST /hooks/bench with a new delivery id     (HMAC check + inputs expression + start)
//   read         GET /api/runs/ID                                    (the run's detail, from its log)
// Then the time until every started run has finished. Knobs: SERVE_N (default 400), SERVE_C
// (default 16). Loads Baton from dist/ (npm run build first).
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { SqliteStore } from "../dist/index.js";
import { planFromSource } from "../dist/api/run.js";
import { deploy } from "../dist/registry/pipelines.js";
import { startServe } from "../dist/serve/serve.js";

const N = Number(process.env.SERVE_N || 400);
const C = Number(process.env.SERVE_C || 16);
const SECRET = "bench-secret";
process.env.BATON_BENCH_HOOK_SECRET = SECRET;

const dir = mkdtempSync(join(tmpdir(), "baton-bench-serve-"));
writeFileSync(join(dir, "p.yaml"), `baton: 1
name: bench
inputs:
  n: { type: integer, default: 1 }
triggers:
  - webhook: { path: /hooks/bench, secret_env: BATON_BENCH_HOOK_SECRET, inputs: "{ 'n': body.n }" }
stages:
  double: { value: "inputs.n * 2" }
output: double
`);
const store = SqliteStore.open(join(dir, "baton.db"));
await deploy(store, join(dir, "p.yaml"));
const serving = await startServe({ store, loadPlan: planFromSource, port: 0, sweepMs: 60_000, concurrency: 64, auth: "none" }); // tokenless on loopback, as before
const url = serving.url;
const ids = [];

async function measure(name, request) {
  const lat = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: C }, async () => {
    for (let i = next++; i < N; i = next++) {
      const t = performance.now();
      const r = await request(i);
      lat.push(performance.now() - t);
      if (r.status >= 400) throw new Error(`${name}: ${r.status} ${await r.text()}`);
      const body = await r.json();
      if (body.id && !body.deduplicated && name !== "read") ids.push(body.id);
    }
  }));
  const s = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(1);
  return { name, rps: (N / s).toFixed(0), p50: q(0.5), p99: q(0.99) };
}

const json = { "Content-Type": "application/json" };
const post = (body, headers = {}) => fetch(`${url}api/runs`, { method: "POST", headers: { ...json, ...headers }, body: JSON.stringify(body) });
const rows = [];
rows.push(await measure("start", (i) => post({ pipeline: "bench", inputs: { n: i } })));
rows.push(await measure("idempotent", (i) => post({ pipeline: "bench", inputs: { n: i }, idempotency_key: `k-${i}` })));
rows.push(await measure("replay", (i) => post({ pipeline: "bench", inputs: { n: i }, idempotency_key: `k-${i}` })));
rows.push(await measure("webhook", (i) => {
  const body = JSON.stringify({ n: i });
  return fetch(`${url}hooks/bench`, {
    method: "POST", body,
    headers: { ...json, "X-Baton-Signature": `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`, "X-Baton-Delivery": `d-${i}` },
  });
}));
const first = ids[0];
rows.push(await measure("read", () => fetch(`${url}api/runs/${first}`)));

const t0 = performance.now();
for (const id of ids) {
  for (;;) {
    const r = await store.get(id);
    if (r && r.status !== "running") break;
    await new Promise((res) => setTimeout(res, 5));
  }
}
const drain = ((performance.now() - t0) / 1000).toFixed(2);
const failed = (await store.list({ status: "failed", limit: 10_000 })).length;

console.log(`baton serve, SQLite, ${N} requests per row, ${C} in flight (node ${process.version})`);
console.log("| request | req/s | p50 ms | p99 ms |\n|---|---|---|---|");
for (const r of rows) console.log(`| ${r.name} | ${r.rps} | ${r.p50} | ${r.p99} |`);
console.log(`${ids.length} runs started; all finished ${drain} s after the last request; ${failed} failed`);
await serving.close();
await store.close();
rmSync(dir, { recursive: true, force: true });
