#!/usr/bin/env node
/**
 * Build the web UI: typecheck src/ui/client (its own tsconfig: DOM, no Node), bundle it with
 * esbuild into dist/ui/app.js, and copy index.html, app.css, favicon.svg and elkjs's layout
 * worker (elk-worker.js: the graph is laid out off the page's thread).
 * Runs after `tsc -p tsconfig.build.json` in `npm run build`; tsc also emits the client's
 * modules under dist/ui/client, which only the bundle needs, so they are removed.
 *
 *   node scripts/build-ui.mjs [--no-typecheck] [--sourcemap]
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const client = join(root, "src", "ui", "client");
const out = join(root, "dist", "ui");
const args = new Set(process.argv.slice(2));
const started = Date.now();

if (!args.has("--no-typecheck")) {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", join(client, "tsconfig.json")], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) {
    process.stderr.write("build-ui: the web client does not typecheck (see above)\n");
    process.exit(1);
  }
}

mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: [join(client, "main.ts")],
  outfile: join(out, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022", "chrome110", "firefox110", "safari16"],
  minify: true,
  sourcemap: args.has("--sourcemap") ? "inline" : false,
  legalComments: "eof",
  logLevel: "warning",
  metafile: true,
});
for (const f of ["index.html", "app.css", "favicon.svg"]) copyFileSync(join(client, f), join(out, f));
// The graph's layout runs in elkjs's own worker (see src/ui/client/dag.ts), served as /elk-worker.js.
copyFileSync(createRequire(import.meta.url).resolve("elkjs/lib/elk-worker.min.js"), join(out, "elk-worker.js"));
rmSync(join(out, "client"), { recursive: true, force: true });

const kb = Math.round(statSync(join(out, "app.js")).size / 1024);
process.stdout.write(`build-ui: ${relative(root, out)}/app.js (${kb} KB, ${Object.keys(result.metafile.inputs).length} modules) in ${Date.now() - started} ms\n`);
