/**
 * Numbers from the stored events of a set of runs (all `at`s come from Date.now() on this one
 * machine, so they are comparable across worker processes):
 * - wall: first submit → the last `run_finished.at`; stages/s = `stage_succeeded` events ÷ wall
 * - hop: `stage_started.at` of a stage minus the latest `stage_succeeded.at` among its deps
 *   (dependency done → dependent started: append, `advance` job, sync, decide, append)
 * - exec: `stage_succeeded.at` minus `stage_started.at` of the same attempt (`exec` job pickup,
 *   sync, the attempt itself)
 * - first: `run_started.at` → the root's `stage_started.at` (submit → first stage)
 */
export function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

const mean = (a) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);

/** @param {{ id: string, events: any[] }[]} runs @param {Map<string, string[]>} deps */
export function measure(runs, deps, t0) {
  const hops = [];
  const execs = [];
  const firsts = [];
  const runMs = [];
  let stages = 0;
  let end = 0;
  const statuses = {};
  for (const { events } of runs) {
    const done = new Map(); // stage id → stage_succeeded.at
    const started = new Map(); // stage id → stage_started.at (last attempt)
    let runStart = 0;
    for (const e of events) {
      if (e.item !== undefined || e.fallback_for !== undefined) continue;
      if (e.type === "run_started") runStart = e.at;
      else if (e.type === "stage_started") started.set(e.stage, e.at);
      else if (e.type === "stage_succeeded") {
        done.set(e.stage, e.at);
        stages++;
      } else if (e.type === "run_finished") {
        end = Math.max(end, e.at);
        runMs.push(e.at - runStart);
        statuses[e.status] = (statuses[e.status] ?? 0) + 1;
      }
    }
    for (const [stage, at] of started) {
      const ds = deps.get(stage) ?? [];
      if (ds.length === 0) firsts.push(at - runStart);
      else {
        let latest = -Infinity;
        for (const d of ds) latest = Math.max(latest, done.get(d) ?? -Infinity);
        if (Number.isFinite(latest)) hops.push(at - latest);
      }
      const fin = done.get(stage);
      if (fin !== undefined) execs.push(fin - at);
    }
  }
  const inOrder = { hops: [...hops], execs: [...execs] };
  const sort = (a) => a.sort((x, y) => x - y);
  sort(hops);
  sort(execs);
  sort(firsts);
  sort(runMs);
  const wallMs = end - t0;
  return {
    runs: runs.length, statuses, stages, wallMs, stagesPerS: stages / (wallMs / 1000),
    hopP50: pct(hops, 50), hopP99: pct(hops, 99), hopMean: mean(hops), hopN: hops.length,
    execP50: pct(execs, 50), execP99: pct(execs, 99), execMean: mean(execs),
    ...(process.env.DIST_DUMP === "1" ? { raw: inOrder } : {}),
    firstP50: pct(firsts, 50), runP50: pct(runMs, 50), runMax: runMs[runMs.length - 1],
  };
}
