/**
 * Workload shapes shared by every contender. A workload is a DAG of stages (ids + deps),
 * optionally with one for_each stage, run `runs` times with `conc` runs in flight at once.
 *
 * Stage semantics (function contenders): every stage returns a small object `{ v }` with
 * v = (its position) + the sum of its deps' v; a for_each item returns `{ v: item }` and the
 * for_each stage's output is the array of item outputs. YAML `value:` stages pass values
 * through (simple paths) and build arrays/objects instead (see baton.mjs).
 */
const int = (name, dflt) => {
  const v = process.env[name];
  return v === undefined || v === "" ? dflt : Number.parseInt(v, 10);
};

export const QUICK = process.env.BENCH_QUICK === "1";

export function config() {
  return {
    chainN: int("BENCH_CHAIN_N", 200),
    fanN: int("BENCH_FAN_N", 200),
    diamondWidth: int("BENCH_DIAMOND_WIDTH", 8),
    diamondRuns: int("BENCH_DIAMOND_RUNS", QUICK ? 100 : 500),
    diamondConc: int("BENCH_DIAMOND_CONC", 50),
    reps: int("BENCH_REPS", QUICK ? 2 : 7),
    warmup: int("BENCH_WARMUP", QUICK ? 1 : 3),
    /** Keep warming up / measuring until this much time has passed (fast contenders get many repetitions). */
    warmupMs: int("BENCH_WARMUP_MS", QUICK ? 50 : 500),
    minMs: int("BENCH_MIN_MS", QUICK ? 100 : 2000),
    maxReps: int("BENCH_MAX_REPS", 200),
  };
}

/** @returns {{ id: string, title: string, stages: {id: string, deps: string[], forEach?: number}[], runs: number, conc: number, executions: number }[]} */
export function workloads(cfg = config()) {
  const chain = [];
  for (let i = 0; i < cfg.chainN; i++) chain.push({ id: `s${i}`, deps: i === 0 ? [] : [`s${i - 1}`] });

  const fan = [{ id: "root", deps: [] }];
  for (let i = 0; i < cfg.fanN; i++) fan.push({ id: `m${i}`, deps: ["root"] });
  fan.push({ id: "sink", deps: fan.slice(1).map((s) => s.id) });

  // for_each: root returns the item list, `each` runs once per item, sink needs `each`.
  const each = [
    { id: "root", deps: [] },
    { id: "each", deps: ["root"], forEach: cfg.fanN },
    { id: "sink", deps: ["each"] },
  ];

  const diamond = [{ id: "root", deps: [] }];
  for (let i = 0; i < cfg.diamondWidth; i++) diamond.push({ id: `d${i}`, deps: ["root"] });
  diamond.push({ id: "sink", deps: diamond.slice(1).map((s) => s.id) });

  const all = [
    { id: "chain", title: `chain ${cfg.chainN}`, stages: chain, runs: 1, conc: 1 },
    { id: "fan", title: `fan 1→${cfg.fanN}→1 (stages)`, stages: fan, runs: 1, conc: 1 },
    { id: "foreach", title: `fan 1→${cfg.fanN}→1 (for_each)`, stages: each, runs: 1, conc: 1 },
    { id: "diamond", title: `diamond 1→${cfg.diamondWidth}→1 ×${cfg.diamondRuns} (${cfg.diamondConc} at once)`, stages: diamond, runs: cfg.diamondRuns, conc: cfg.diamondConc },
  ];
  for (const w of all) {
    const perRun = w.stages.reduce((n, s) => n + (s.forEach ?? 1), 0);
    w.executions = perRun * w.runs;
  }
  return all;
}

/**
 * The plain-JS semantics of every stage of a workload: `fns[i](depOutputs)` (or `(item)` for a
 * for_each stage). The root also carries the for_each item list when the workload has one.
 */
export function stageFns(w) {
  const fe = w.stages.find((s) => s.forEach !== undefined);
  const items = fe ? forEachItems(fe.forEach) : undefined;
  return w.stages.map((stage, pos) => {
    if (stage.forEach !== undefined) return (item) => ({ v: item });
    if (stage.deps.length === 0) return items ? () => ({ v: pos, items }) : () => ({ v: pos });
    return (depOutputs) => {
      let v = pos;
      for (const o of depOutputs) v += Array.isArray(o) ? o.length : o.v;
      return { v };
    };
  });
}

/** Items a for_each stage iterates over (the root's output carries them). */
export function forEachItems(n) {
  return Array.from({ length: n }, (_, i) => i);
}

/** Run `total` async jobs, `conc` at a time. */
export async function pool(total, conc, job) {
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(conc, total) }, worker));
}
