// Client render time of the web UI's run graph (issue 15.5; not a test, CI does not run it):
//   node bench/ui-render.mjs            (npm run build first: loads Baton from dist/)
//
// Runs a 200-stage chain (s010–s012 sent back twice by a route) and a 5-stage one with the real
// runtime into a temp SQLite store, serves them with `startUi`, and opens each run page in
// Debian's headless Chromium (/usr/bin/chromium via playwright-core; never a downloaded
// browser), BENCH_N times (default 5) in a fresh page each. Per run it reports the medians of
//   to graph   navigation start → every node in the DOM (fetching the run included)
//   graph      the client's own "baton:graph" measure: layout (elkjs) + drawing the SVG
//   fcp        first contentful paint (the page itself, for scale)
// UI_ASSETS=DIR serves another build of the web app (e.g. an older commit's, built with
// scripts/build-ui.mjs) for a before/after on the same machine in the same run conditions;
// builds without the "baton:graph" measure report only "to graph".
//
// Then, because page loads are wall-clock figures that a loaded machine inflates, the layout
// alone in this process (the client's dag.ts bundled for Node by esbuild, elkjs in this
// thread): the 200-stage run's graph laid out in one row (as before issue 15.5) and wrapped
// into rows (now), interleaved BENCH_LAYOUT_N times (default 6), in CPU ms of this process.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { SqliteStore } from "../dist/index.js";
import { planFromSource } from "../dist/api/run.js";
import { Runtime } from "../dist/runtime/runtime.js";
import { loadPlanFile, validateInputs } from "../dist/template/index.js";
import { startUi } from "../dist/ui/server.js";

const N = Number(process.env.BENCH_N || 5);
const id = (i) => `s${String(i).padStart(3, "0")}`;
function chain(n) {
  const lines = ["baton: 1", `name: chain-${n}`, "stages:", `  ${id(0)}: { value: "1" }`];
  for (let i = 1; i < n; i++) {
    if (i === 12 && n > 12) lines.push(`  ${id(i)}:`, `    value: "${id(i - 1)} + 1"`, "    routes:", `      - { when: "true", goto: ${id(10)}, max: 2 }`);
    else lines.push(`  ${id(i)}: { value: "${id(i - 1)} + 1" }`);
  }
  lines.push(`output: ${id(n - 1)}`);
  return `${lines.join("\n")}\n`;
}

const dir = mkdtempSync(join(tmpdir(), "baton-bench-ui-"));
const store = SqliteStore.open(join(dir, "ui.db"));
const runtime = new Runtime({ store, loadPlan: planFromSource });
const runs = {};
for (const n of [200, 5]) {
  const file = join(dir, `chain-${n}.yaml`);
  writeFileSync(file, chain(n));
  const plan = loadPlanFile(file);
  const h = await runtime.start(plan, validateInputs(plan, {}), { seed: 1 });
  await h.done;
  runs[n] = h.id;
}
const ui = await startUi({ store, port: 0, auth: "none", ...(process.env.UI_ASSETS ? { assets: process.env.UI_ASSETS } : {}) });
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"] });
const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
const load = loadavg()[0].toFixed(1);
process.stdout.write(`ui-render: ${N} page loads per run, Chromium 1440×900, load average ${load}${process.env.UI_ASSETS ? `, assets ${process.env.UI_ASSETS}` : ""}\n`);
for (const n of [200, 5]) {
  const toGraph = [];
  const graph = [];
  const fcp = [];
  for (let i = 0; i < N; i++) {
    const page = await context.newPage();
    await page.goto(`${ui.url}runs/${runs[n]}`);
    const at = await page.waitForFunction((n) => (document.querySelectorAll(".node").length === n ? performance.now() : false), n, { polling: "raf", timeout: 120_000 });
    toGraph.push(await at.jsonValue());
    const m = await page.evaluate(() => performance.getEntriesByName("baton:graph")[0]?.duration ?? null);
    if (m !== null) graph.push(m);
    const p = await page.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null);
    if (p !== null) fcp.push(p);
    await page.close();
  }
  process.stdout.write(`  chain of ${String(n).padStart(3)}: to graph ${median(toGraph).toFixed(0)} ms · graph ${graph.length ? `${median(graph).toFixed(0)} ms` : "—"} · fcp ${fcp.length ? `${median(fcp).toFixed(0)} ms` : "—"}  (to graph, each: ${toGraph.map((x) => x.toFixed(0)).join(", ")})\n`);
}
await browser.close();

// Layout alone: one row vs wrapped, interleaved, CPU time.
const { build } = await import("esbuild");
const bundled = await build({
  stdin: { contents: 'export { dagModel, layout, useLayoutEngine } from "./dag.js";', resolveDir: join(process.cwd(), "src/ui/client"), sourcefile: "bench-entry.ts", loader: "ts" },
  bundle: true, format: "esm", platform: "node", write: false, logLevel: "warning",
});
const modFile = join(dir, "dag.mjs");
writeFileSync(modFile, bundled.outputFiles[0].text);
const { dagModel, layout, useLayoutEngine } = await import(modFile);
const { default: ElkBundled } = await import("elkjs/lib/elk.bundled.js");
useLayoutEngine(new ElkBundled()); // in this thread, as the worker runs it
const detail = await (await fetch(`${ui.url}api/runs/${runs[200]}`)).json();
const model = dagModel(detail.plan, detail.trace);
const LN = Number(process.env.BENCH_LAYOUT_N || 6);
const cpu = { row: [], wrapped: [] };
for (let i = 0; i < LN + 1; i++) {
  for (const kind of ["row", "wrapped"]) {
    // A different isolated node each time: a new cache key, the same work.
    const m = { nodes: [...model.nodes, { ...model.nodes[0], id: `zz${kind}${i}`, level: 0, visits: 1, visitStatuses: [] }], edges: model.edges };
    const c0 = process.cpuUsage();
    await layout(m, kind === "wrapped" ? { wrapWidth: 1000 } : {});
    const c = process.cpuUsage(c0);
    if (i > 0) cpu[kind].push((c.user + c.system) / 1000); // the first round warms the JIT up
  }
}
process.stdout.write(`  layout of the 200-stage graph (CPU ms, median of ${LN}): one row ${median(cpu.row).toFixed(0)} · wrapped ${median(cpu.wrapped).toFixed(0)} (ratio ${(median(cpu.wrapped) / median(cpu.row)).toFixed(2)})\n`);
await ui.close();
await runtime.close();
await store.close();
