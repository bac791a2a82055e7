/**
 * Workloads of the distributed benchmark: YAML templates of no-op `value:` stages (each still
 * goes through an `exec` job: `decide` emits `stage_started` + an `execute` effect, a worker
 * runs the attempt and appends `stage_succeeded`), and the dependency map used to compute hops.
 */
const q = (s) => JSON.stringify(s); // a JSON string is a valid YAML scalar

/** A chain s0 → s1 → … → s{n-1}: the root builds an object, each link passes it on (a simple path). */
export function chain(n) {
  const deps = new Map();
  const lines = ["baton: 1", `name: dist-chain-${n}`, "stages:"];
  for (let i = 0; i < n; i++) {
    lines.push(`  s${i}:`, `    value: ${i === 0 ? q(`{"v": 0}`) : `s${i - 1}`}`);
    deps.set(`s${i}`, i === 0 ? [] : [`s${i - 1}`]);
  }
  lines.push(`output: s${n - 1}`);
  return { yaml: lines.join("\n") + "\n", deps, stages: n };
}

/** root → m0 … m{w-1} → sink: the sink builds the array of the middle stages' outputs. */
export function fan(w) {
  const deps = new Map([["root", []]]);
  const lines = ["baton: 1", `name: dist-fan-${w}`, "stages:", "  root:", `    value: ${q(`{"v": 0}`)}`];
  const mids = [];
  for (let i = 0; i < w; i++) {
    lines.push(`  m${i}:`, "    value: root");
    deps.set(`m${i}`, ["root"]);
    mids.push(`m${i}`);
  }
  lines.push("  sink:", `    value: ${q(`[${mids.join(", ")}]`)}`);
  deps.set("sink", mids);
  lines.push("output: sink");
  return { yaml: lines.join("\n") + "\n", deps, stages: w + 2 };
}
