/**
 * Memory of a run whose stages return large distinct outputs (issue 14: every stage output
 * stayed in memory for the whole run; 300 distinct 1 MB outputs → 450 MB). Not a test:
 *   npm run build && node --expose-gc bench/outputs-memory.mjs [path to a build's dist/index.js]
 * A chain of STAGES (default 300) TS stages, each returning a fresh 1 MB string and reading only
 * its predecessor, run once against a SQLite store in a temp file (the log is on disk; what
 * stays in memory is what the run holds). Prints the peak JS heap sampled after every append
 * (after a GC: `--expose-gc`), the heap at the end, and the process's peak RSS.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const which = process.argv[2] ?? new URL("../dist/index.js", import.meta.url).href;
const { definePipeline, execute, SqliteStore } = await import(which.startsWith("file:") ? which : `file://${which}`);
const STAGES = Number(process.env.STAGES || 300);
const MB = 1 << 20;
let p = definePipeline({ name: "big-outputs" });
for (let i = 0; i < STAGES; i++) {
  const prev = i === 0 ? undefined : `s${i - 1}`;
  // A distinct 1 MB string per stage (it reads its predecessor's length, so it needs it).
  p = p.stage(`s${i}`, { ...(prev ? { needs: [prev] } : {}), run: (ctx) => String.fromCharCode(97 + (i % 26)).repeat(MB) + (prev ? ctx.outputs[prev].length : 0) });
}
p = p.returns(`s${STAGES - 1}`);
const dir = mkdtempSync(join(tmpdir(), "baton-outmem-"));
const store = SqliteStore.open(join(dir, "runs.db"));
const gc = globalThis.gc ?? (() => {});
gc();
const base = process.memoryUsage().heapUsed;
let peak = 0;
let appends = 0;
const t0 = performance.now();
const r = await execute(p, {}, {
  store,
  onEvents: () => {
    // Sample every 10th append after a GC: what the run still holds, not garbage not yet collected.
    if (++appends % 10 !== 0) return;
    gc();
    peak = Math.max(peak, process.memoryUsage().heapUsed - base);
  },
});
const ms = performance.now() - t0;
gc();
const end = process.memoryUsage().heapUsed - base;
await store.close();
rmSync(dir, { recursive: true, force: true });
if (r.status !== "succeeded") throw new Error(`run ${r.status}: ${JSON.stringify(r.error)}`);
console.log(`${STAGES} stages × 1 MB distinct outputs, SQLite store: peak heap held by the run ${(peak / MB).toFixed(0)} MB, after the run ${(end / MB).toFixed(0)} MB, peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB, ${(ms / 1000).toFixed(1)} s`);
