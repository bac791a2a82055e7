/**
 * Instructions per stage execution, counted by callgrind (repeatable on a loaded machine, where
 * wall-clock µs are not): runs one contender × workload twice under valgrind, with W warm-up
 * repetitions and then R1, resp. R2, more; (I(R2) − I(R1)) / ((R2 − R1) × executions) is the
 * cost of one stage execution in steady state (startup, imports and warm-up cancel out).
 *
 *   node bench/instructions.mjs [contender=baton-mem] [workload=chain]      (prints one line)
 *   INSTR_BATON=<path to dist/index.js> … (another build, as BENCH_BATON in bench/run.mjs)
 * Knobs: INSTR_WARMUP (default 30), INSTR_R1 (5), INSTR_R2 (25). Needs valgrind.
 * The child mode (`--child contender workload reps`) is what valgrind runs.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);

if (args[0] === "--child") {
  const [, contenderId, workloadId, repsArg] = args;
  const { CONTENDERS } = await import("./contenders/index.mjs");
  const { config, pool, workloads } = await import("./workloads.mjs");
  const w = workloads(config()).find((x) => x.id === workloadId);
  const c = CONTENDERS.find((x) => x.id === contenderId);
  if (!w || !c) throw new Error(`unknown contender or workload: ${contenderId} ${workloadId}`);
  const impl = await (await c.load()).create(w, c.opts);
  const reps = Number(process.env.INSTR_WARMUP || 30) + Number(repsArg);
  for (let r = 0; r < reps; r++) {
    await impl.beforeRep();
    await pool(w.runs, w.conc, (i) => impl.run(i));
    await impl.afterRep();
  }
  process.stdout.write(`EXECUTIONS ${w.executions}\n`);
  process.exit(0);
}

const [contender = "baton-mem", workload = "chain"] = args;
const r1 = Number(process.env.INSTR_R1 || 5);
const r2 = Number(process.env.INSTR_R2 || 25);

function count(reps) {
  const out = join(tmpdir(), `baton-callgrind-${process.pid}-${reps}.out`);
  const env = { ...process.env, ...(process.env.INSTR_BATON ? { BENCH_BATON: process.env.INSTR_BATON } : {}) };
  const stdout = execFileSync("valgrind", [
    "--tool=callgrind", `--callgrind-out-file=${out}`, "--smc-check=all-non-file", "--dump-instr=no", "--compress-strings=no",
    process.execPath, "--single-threaded", join(here, "instructions.mjs"), "--child", contender, workload, String(reps),
  ], { env, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], maxBuffer: 1 << 26 });
  const text = readFileSync(out, "utf8");
  rmSync(out, { force: true });
  const m = /^summary:\s+(\d+)/m.exec(text) ?? /^totals:\s+(\d+)/m.exec(text);
  if (!m) throw new Error("no callgrind summary line");
  const ex = /EXECUTIONS (\d+)/.exec(stdout);
  return { instr: Number(m[1]), executions: Number(ex?.[1] ?? NaN) };
}

const a = count(r1);
const b = count(r2);
const perStage = (b.instr - a.instr) / ((r2 - r1) * a.executions);
console.log(`${contender} ${workload}: ${(perStage / 1000).toFixed(2)} k instructions per stage execution (callgrind; ${r2 - r1} repetitions × ${a.executions} executions)`);
