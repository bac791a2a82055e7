// Crash torture (issue 7 item 1, embedded): RUNS runs of a mixed pipeline (parallel branches,
// for_each, a retried stage), each SIGKILLed at a random moment and resumed — some killed again
// while resuming. Every run must end with the uninterrupted output, and no stage that had
// completed may execute again. Run: npm run build && node bench/torture.mjs  (TORTURE_RUNS=50)
import { spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SqliteStore } from "../dist/store/sqlite.js";

const RUNS = Number(process.env.TORTURE_RUNS ?? 200);
const PARALLEL = Number(process.env.TORTURE_PARALLEL ?? 4);
const CLI = resolve("dist/cli/main.js");
const TEMPLATE = resolve("test/fixtures/kill/kill.yaml");
const EXPECTED = JSON.stringify({ sum: 217, flaky: 16, join: [217, 16] });
const dir = mkdtempSync(join(tmpdir(), "baton-torture-"));

/** Run the CLI; with killAfter, SIGKILL it that many ms after its first stage started. */
function cli(args, env, killAfter) {
  return new Promise((res) => {
    const c = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    let done = false;
    c.stdout.on("data", (d) => (out += d));
    let t;
    if (killAfter !== undefined) {
      const base = readFileSync(env.BATON_EFFECTS, "utf8").length;
      const poll = setInterval(() => {
        if (done) return clearInterval(poll);
        if (readFileSync(env.BATON_EFFECTS, "utf8").length > base) {
          clearInterval(poll);
          t = setTimeout(() => c.kill("SIGKILL"), killAfter);
        }
      }, 5);
    }
    c.on("exit", (code, signal) => { done = true; if (t) clearTimeout(t); res({ code, signal, out }); });
  });
}

async function succeededKeys(db, id) {
  const s = SqliteStore.open(db);
  try {
    const { events } = await s.load(id);
    return { keys: new Set(events.flatMap((e) => (e.type === "stage_succeeded" ? [`${e.stage}:${e.visit}:${e.item ?? ""}`] : []))), events };
  } finally { await s.close(); }
}

const stats = { runs: 0, kills: 0, killedBeforeStart: 0, finishedBeforeKill: 0, reruns: 0, duplicates: 0, wrongOutput: 0, failed: 0 };
async function one(n) {
  const db = join(dir, `r${n}.db`);
  const fx = join(dir, `r${n}.fx`);
  writeFileSync(fx, "");
  const env = { BATON_EFFECTS: fx };
  const first = await cli(["--db", db, "run", TEMPLATE, "--json"], env, Math.floor(Math.random() * 700));
  stats.runs++;
  if (first.code === 0) { stats.finishedBeforeKill++; return; }
  stats.kills++;
  const s = SqliteStore.open(db);
  const id = (await s.list())[0]?.id;
  await s.close();
  if (!id) { stats.killedBeforeStart++; return; }
  let rounds = Math.random() < 0.3 ? 2 : 1;
  let result;
  while (rounds-- > 0) {
    const { keys } = await succeededKeys(db, id);
    appendFileSync(fx, "RESUME\n");
    const r = await cli(["--db", db, "resume", id, "--json"], env, rounds > 0 ? Math.floor(Math.random() * 300) : undefined);
    if (rounds > 0 && r.code !== 0) stats.kills++;
    const after = readFileSync(fx, "utf8").split("RESUME\n").at(-1).split("\n").filter((l) => l.startsWith("start ")).map((l) => l.split(" ")[1]);
    for (const k of after) if (keys.has(k)) stats.reruns++;
    if (r.code === 0) { result = r; break; }
    if (rounds === 0) result = r;
  }
  if (!result || result.code !== 0) { stats.failed++; return; }
  if (JSON.stringify(JSON.parse(result.out).output) !== EXPECTED) stats.wrongOutput++;
  const { events } = await succeededKeys(db, id);
  const ok = events.filter((e) => e.type === "stage_succeeded").map((e) => `${e.stage}:${e.visit}:${e.item ?? ""}`);
  stats.duplicates += ok.length - new Set(ok).size;
}

const t0 = Date.now();
let next = 0;
await Promise.all(Array.from({ length: PARALLEL }, async () => { while (next < RUNS) await one(next++); }));
console.log(`| runs | kill points | killed before the run existed | finished before the kill | completed stages re-run | duplicate events | wrong outputs | failed |
|---:|---:|---:|---:|---:|---:|---:|---:|
| ${stats.runs} | ${stats.kills} | ${stats.killedBeforeStart} | ${stats.finishedBeforeKill} | ${stats.reruns} | ${stats.duplicates} | ${stats.wrongOutput} | ${stats.failed} |
(${((Date.now() - t0) / 1000).toFixed(0)} s)`);
process.exitCode = stats.reruns + stats.duplicates + stats.wrongOutput + stats.failed === 0 ? 0 : 1;
