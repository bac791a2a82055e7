// Crash torture, distributed (issue 7 item 1): RUNS runs of the mixed pipeline submitted to 3
// `baton worker`s sharing PostgreSQL and Redis while a chaos loop SIGKILLs a random worker every
// 0.3–1.2 s and starts a fresh one. Every run must end with the uninterrupted output; no stage
// may succeed twice in the log. Run: npm run build && node bench/torture-distributed.mjs
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { openStoreAsync } from "../dist/store/open.js";
import { submitRun } from "../dist/distributed/submit.js";
import { redisConnection } from "../dist/distributed/worker.js";
import { loadPlanFile } from "../dist/template/index.js";

const RUNS = Number(process.env.TORTURE_RUNS ?? 200);
const PG = process.env.BATON_TEST_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `torture_${process.pid}`;
const STORE = `${PG}?schema=${schema}`;
const REDIS = "redis://127.0.0.1:6379/14";
const CLI = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "baton-dtorture-"));
const effects = join(dir, "fx");
writeFileSync(effects, "");
spawnSync("redis-cli", ["-u", REDIS, "flushdb"]);

const workers = new Set();
const startWorker = () => {
  const w = spawn(process.execPath, [CLI, "--store", STORE, "worker", "--queue", REDIS, "--lock-ms", "1000", "--sweep-ms", "1000", "--concurrency", "8"], { env: { ...process.env, BATON_EFFECTS: effects }, stdio: "ignore" });
  workers.add(w);
  w.on("exit", () => workers.delete(w));
};
for (let i = 0; i < 3; i++) startWorker();

const store = await openStoreAsync(STORE);
const plan = loadPlanFile(resolve("test/fixtures/kill/kill.yaml"));
const connection = redisConnection(REDIS);
const t0 = Date.now();
const ids = [];
for (let i = 0; i < RUNS; i++) ids.push((await submitRun(store, connection, plan, { n: 6 })).id);

let kills = 0;
let chaos = true;
(async () => {
  while (chaos) {
    await new Promise((r) => setTimeout(r, 300 + Math.random() * 900));
    if (!chaos) break;
    const list = [...workers];
    const victim = list[Math.floor(Math.random() * list.length)];
    if (victim) { victim.kill("SIGKILL"); kills++; }
    startWorker();
  }
})();

const deadline = Date.now() + 10 * 60_000;
let done = 0;
while (Date.now() < deadline) {
  const runs = await store.list({ limit: RUNS + 10 });
  done = runs.filter((r) => r.status !== "running").length;
  if (done >= RUNS) break;
  await new Promise((r) => setTimeout(r, 500));
}
chaos = false;
let wrong = 0, duplicates = 0, failed = 0;
for (const id of ids) {
  const { events } = await store.load(id);
  const fin = events.find((e) => e.type === "run_finished");
  if (!fin || fin.status !== "succeeded") { failed++; continue; }
  if (JSON.stringify(fin.output) !== JSON.stringify({ sum: 217, flaky: 16, join: [217, 16] })) wrong++;
  const ok = events.filter((e) => e.type === "stage_succeeded").map((e) => `${e.stage}:${e.visit}:${e.item ?? ""}`);
  duplicates += ok.length - new Set(ok).size;
}
for (const w of workers) w.kill("SIGKILL");
await store.close();
spawnSync("psql", [PG, "-qc", `drop schema if exists ${schema} cascade`]);
console.log(`| runs | worker kills | succeeded | wrong outputs | duplicate events | not finished/failed | time |
|---:|---:|---:|---:|---:|---:|---:|
| ${RUNS} | ${kills} | ${RUNS - failed} | ${wrong} | ${duplicates} | ${failed} | ${((Date.now() - t0) / 1000).toFixed(0)} s |`);
process.exit(wrong + duplicates + failed === 0 ? 0 : 1);
