#!/usr/bin/env node
/**
 * Build the CommonJS copy of the package (`require("baton")`, `require("baton/testing")`):
 * every ESM module tsc wrote under dist/ (except the CLI, which stays ESM) is transformed by
 * esbuild into dist/cjs/ at the same relative path, with the declarations copied beside it;
 * dist/cjs/package.json says `"type": "commonjs"`, so the `.js`/`.d.ts` files there are
 * CommonJS to Node and TypeScript. `require()` of ESM is not available on Node 20 without a
 * flag, hence a real CommonJS build rather than a CommonJS entry that loads the ESM one.
 *
 * `import.meta.url` becomes the URL of the module's ESM twin (dist/x/y.js for dist/cjs/x/y.js),
 * so files found relative to a module (schema/template.schema.json, the UI's assets,
 * template-validator.cjs) are the same ones either way. Dynamic `import()` stays an import
 * (it loads ESM-only dependencies from CommonJS too).
 *
 * Runs after `tsc -p tsconfig.build.json` in `npm run build`.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const final = join(dist, "cjs");
// Written beside it, then swapped in: a build running while something reads dist/cjs (another
// build, a test packing the package) leaves it whole for all but a moment.
const out = join(dist, `cjs.tmp-${process.pid}`);
const started = Date.now();
/** Not part of the library: the command line (ESM only) and this build's own output. */
const SKIP = new Set([join(dist, "cli"), final, out, join(dist, "ui", "client")]);

function* walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (!SKIP.has(p) && !e.name.startsWith("cjs.tmp-")) yield* walk(p);
    } else yield p;
  }
}

rmSync(out, { recursive: true, force: true });
let files = 0;
const jobs = [];
for (const file of walk(dist)) {
  const rel = relative(dist, file);
  const target = join(out, rel);
  if (file.endsWith(".d.ts")) {
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(file, target);
    continue;
  }
  // Library modules only: the UI's browser bundle (dist/ui/app.js) is not a module of the package.
  if (!file.endsWith(".js") || rel === join("ui", "app.js")) continue;
  const twin = relative(dirname(target), file).split(sep).join("/");
  jobs.push(
    transform(readFileSync(file, "utf8"), {
      loader: "js",
      format: "cjs",
      platform: "node",
      target: "node20",
      sourcefile: rel,
      define: { "import.meta.url": "__batonModuleUrl" },
      banner: `"use strict";\nvar __batonModuleUrl = require("node:url").pathToFileURL(require("node:path").join(__dirname, ${JSON.stringify(twin)})).href;`,
      logLevel: "error",
    }).then((r) => {
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, r.code);
      files++;
    }),
  );
}
await Promise.all(jobs);
writeFileSync(join(out, "package.json"), JSON.stringify({ type: "commonjs" }, null, 2) + "\n");
rmSync(final, { recursive: true, force: true });
renameSync(out, final);
process.stdout.write(`build-cjs: ${files} modules to dist/cjs in ${Date.now() - started} ms\n`);
