/**
 * The web client's rendering functions in a blank Chromium page, for traces made by hand: the
 * stage panel (src/ui/client/panel.ts) bundled by esbuild as an IIFE that sets
 * `window.batonClient`, with the app's stylesheet, inside the run page's side column.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { build } from "esbuild";
import type { Page } from "playwright-core";

let bundled: Promise<string> | undefined;

/** The client's panel module, bundled once per test file. */
export function clientBundle(): Promise<string> {
  bundled ??= build({
    stdin: {
      contents: 'import { stagePanel } from "./panel.js";\n(globalThis as Record<string, unknown>).batonClient = { stagePanel };\n',
      resolveDir: resolve("src/ui/client"), sourcefile: "test-entry.ts", loader: "ts",
    },
    bundle: true, format: "iife", platform: "browser", target: ["chrome110"], write: false, logLevel: "warning",
  }).then((r) => r.outputFiles[0]!.text);
  return bundled;
}

/** Load the stylesheet and the bundle into `page`, with an empty side column `#panel` as on a run page. */
export async function panelPage(page: Page): Promise<void> {
  await page.setContent(`<!doctype html><html><head><meta charset="utf-8"><title>panel</title></head><body>
<div class="page run-page"><div class="run-grid"><div class="main-col"><section class="card"><div class="card-body">graph</div></section></div>
<aside class="side-col"><div class="card panel" id="panel"></div></aside></div></div></body></html>`);
  await page.addStyleTag({ content: readFileSync(resolve("src/ui/client/app.css"), "utf8") });
  await page.addScriptTag({ content: await clientBundle() });
}

/** Render the stage panel of `trace.stages[index]` into `#panel` (plan-less; `live`: a turn being written). */
export async function renderPanel(page: Page, trace: unknown, index: number, o: { live?: { turn: number; text: string }; agent?: boolean } = {}): Promise<void> {
  await page.evaluate(({ trace, index, o }) => {
    const t = trace as { stages: { stage: string }[] };
    const entry = t.stages[index]!;
    const plan = o.agent ? { name: "p", hash: "h", output: null, critical_path: [], stages: [{ id: entry.stage, kind: "agent", deps: [], level: 0, routes: [] }] } : null;
    const client = (globalThis as unknown as { batonClient: { stagePanel: (ctx: unknown, entry: unknown) => HTMLElement } }).batonClient;
    const el = client.stagePanel({ runId: "r1", trace, plan, onSelect: () => undefined, onAnswered: () => undefined, ...(o.live ? { live: o.live } : {}) }, entry);
    document.getElementById("panel")!.replaceChildren(el);
  }, { trace, index, o });
}
