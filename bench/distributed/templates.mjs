/**
 * YAML templates of `run:` stages for the distributed benchmark, generated for a given size.
 * `mod` is the path of bench/distributed/stages.mjs relative to the directory the YAML is
 * written to (run: modules resolve relative to the template's directory, SPEC §6).
 */
const q = (s) => JSON.stringify(s); // a JSON string is a valid YAML scalar

/** s0 → s1 → … → s{n-1}: each stage reads the previous one's output (its input). */
export function chainYaml(n, mod, name = `bench-chain-${n}`) {
  const lines = ["baton: 1", `name: ${name}`, "stages:"];
  for (let i = 0; i < n; i++) {
    lines.push(`  s${i}:`, `    run: ${q(`${mod}#step`)}`);
    if (i > 0) lines.push(`    input: ${q(`{{ s${i - 1} }}`)}`);
  }
  lines.push(`output: s${n - 1}`);
  return lines.join("\n") + "\n";
}

/**
 * A fan-out of `w` run: executions and a fan-in.
 * - shape "for_each": root (run: items) → fan (for_each root.items, concurrency w, run: step) → sink (run: step)
 * - shape "stages":   root (run: step) → m0 … m{w-1} (run: step, each reads root) → sink (run: step, reads all)
 */
export function fanYaml(w, mod, shape = "for_each", name = `bench-fan-${shape}-${w}`) {
  const lines = ["baton: 1", `name: ${name}`, "stages:"];
  if (shape === "for_each") {
    lines.push("  root:", `    run: ${q(`${mod}#items`)}`, `    input: { n: ${w} }`);
    lines.push("  fan:", "    for_each: root.items", `    concurrency: ${w}`, `    run: ${q(`${mod}#step`)}`, `    input: { v: ${q("{{ item }}")} }`);
    lines.push("  sink:", `    run: ${q(`${mod}#step`)}`, `    input: { v: ${q("{{ $count(fan) }}")} }`);
  } else if (shape === "stages") {
    lines.push("  root:", `    run: ${q(`${mod}#step`)}`);
    const mids = [];
    for (let i = 0; i < w; i++) {
      lines.push(`  m${i}:`, `    run: ${q(`${mod}#step`)}`, `    input: ${q("{{ root }}")}`);
      mids.push(`m${i}`);
    }
    lines.push("  sink:", `    run: ${q(`${mod}#step`)}`, `    input: { v: ${q(`{{ $count([${mids.join(", ")}]) }}`)} }`);
  } else throw new Error(`DIST_FAN_SHAPE must be for_each or stages, got '${shape}'`);
  lines.push("output: sink");
  return lines.join("\n") + "\n";
}
