/**
 * Summarise a V8 .cpuprofile (from BENCH_CPU_PROF=1): self and inclusive time per function
 * and self time per file, as % of the profile's samples.
 *   node bench/profile-summary.mjs bench/profiles/baton-mem.chain.cpuprofile [top=30] [filter]
 * `filter` (a substring of the URL, e.g. "/dist/") limits the per-function lists.
 */
import { readFileSync } from "node:fs";

const [file, topArg, filter] = process.argv.slice(2);
const top = Number(topArg || 30);
const prof = JSON.parse(readFileSync(file, "utf8"));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const short = (url) => url.replace(/^file:\/\//, "").replace(/^.*\/node_modules\//, "nm:").replace(/^.*\/work\/main\//, "");
const fnKey = (n) => {
  const cf = n.callFrame;
  return `${cf.functionName || "(anonymous)"} ${short(cf.url)}:${cf.lineNumber + 1}`;
};

const self = new Map();
const incl = new Map();
const fileSelf = new Map();
let total = 0;
// Samples taken while the in-process profiler itself was starting are not the workload's.
// So are the harness's per-repetition setup and teardown (opening/closing stores).
const SKIP = new Set(["beforeRep", "afterRep", "checkOutput"]);
const underInspector = (n) => {
  for (let id = n.id; id !== undefined; id = parent.get(id)) {
    const cf = byId.get(id).callFrame;
    if (cf.url === "node:inspector" || (SKIP.has(cf.functionName) && cf.url.includes("/bench/"))) return true;
  }
  return false;
};
for (let i = 0; i < prof.samples.length; i++) {
  const dt = prof.timeDeltas[i] ?? 0;
  const n = byId.get(prof.samples[i]);
  if (underInspector(n)) continue;
  total += dt;
  const k = fnKey(n);
  self.set(k, (self.get(k) ?? 0) + dt);
  const f = n.callFrame.url ? short(n.callFrame.url) : `(${n.callFrame.functionName})`;
  fileSelf.set(f, (fileSelf.get(f) ?? 0) + dt);
  const seen = new Set();
  for (let id = n.id; id !== undefined; id = parent.get(id)) {
    const kk = fnKey(byId.get(id));
    if (seen.has(kk)) continue;
    seen.add(kk);
    incl.set(kk, (incl.get(kk) ?? 0) + dt);
  }
}
const pct = (v) => ((100 * v) / total).toFixed(1).padStart(5) + "%";
const list = (m, title, f = () => true) => {
  console.log(`\n${title}`);
  [...m].filter(([k]) => f(k)).sort((a, b) => b[1] - a[1]).slice(0, top).forEach(([k, v]) => console.log(`${pct(v)}  ${k}`));
};
console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled`);
const keep = (k) => !filter || k.includes(filter);
list(fileSelf, "self time by file");
list(self, "self time by function", keep);
list(incl, "inclusive time by function", keep);
