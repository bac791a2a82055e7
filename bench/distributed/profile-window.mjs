/**
 * Where a worker's CPU went during the measured run only: a V8 .cpuprofile of a `baton worker`
 * (DIST_CPU_PROF=DIR npm run bench:distributed) restricted to the run's time span, which the
 * harness writes next to it (worker.<workload>-w<N>.window.json, CLOCK_MONOTONIC µs like the
 * profile's own timestamps). Prints self time by area (Baton's own modules by directory, pg,
 * ioredis, BullMQ, Node internals, GC, idle) and the top functions.
 *   node bench/distributed/profile-window.mjs DIR/worker.chain-w1.cpuprofile [top=25]
 */
import { existsSync, readFileSync } from "node:fs";

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write("usage: node bench/distributed/profile-window.mjs PROFILE.cpuprofile [top]\n");
  process.exit(2);
}
const top = Number(topArg || 25);
const prof = JSON.parse(readFileSync(file, "utf8"));
const winFile = file.replace(/\.cpuprofile$/, ".window.json");
const win = existsSync(winFile) ? JSON.parse(readFileSync(winFile, "utf8")) : { startUs: -Infinity, endUs: Infinity };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));

const area = (url, fn) => {
  if (!url) return `(${fn || "native"})`;
  const u = url.replace(/^file:\/\//, "");
  const nm = u.match(/\/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (nm) return `npm:${nm[1]}`;
  const d = u.match(/\/dist\/([^/]+)\//);
  if (d) return `baton:${d[1]}/`;
  if (u.startsWith("node:")) return `node:${u.slice(5).split("/").slice(0, 2).join("/")}`;
  return u.replace(/^.*\/work\/main\//, "");
};

const selfArea = new Map();
const selfFn = new Map();
let t = prof.startTime;
let total = 0;
for (let i = 0; i < prof.samples.length; i++) {
  t += prof.timeDeltas[i];
  if (t < win.startUs || t > win.endUs) continue;
  const dt = prof.timeDeltas[i + 1] ?? 0;
  const n = byId.get(prof.samples[i]);
  const cf = n.callFrame;
  const a = area(cf.url, cf.functionName);
  selfArea.set(a, (selfArea.get(a) ?? 0) + dt);
  const k = `${cf.functionName || "(anonymous)"} ${a}${cf.url ? `:${cf.lineNumber + 1}` : ""}`;
  selfFn.set(k, (selfFn.get(k) ?? 0) + dt);
  total += dt;
}
const idle = selfArea.get("((idle))") ?? 0;
const busy = total - idle;
const show = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)}%  ${(v / 1000).toFixed(0).padStart(6)} ms  ${k}`).join("\n");
process.stdout.write(`${file}: ${(total / 1000).toFixed(0)} ms in the run's window${win.run ? ` (run ${win.run})` : ""}, busy ${(busy / 1000).toFixed(0)} ms (${((100 * busy) / total).toFixed(0)}%)\n\nself time by area\n${show(selfArea, 30)}\n\nself time by function\n${show(selfFn, top)}\n`);
