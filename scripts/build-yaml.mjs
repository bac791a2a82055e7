#!/usr/bin/env node
/**
 * Bundle the `yaml` package into one file, dist/base/yaml.cjs (issue 14 item 1): from its
 * 73 CommonJS files, loading it cost ≈ 45 ms of CPU per process (most of it Node resolving,
 * reading and wrapping each file), one file loads in a fraction of that. src/base/yaml.ts
 * loads this file when it exists (else the package, e.g. running from src/), and only when it
 * is needed: a template outside the fast subset (src/template/yaml-fast.ts), a diagnostic's
 * position, a YAML --input-file. Same code, same version: the bundle is of node_modules/yaml.
 * Runs after `tsc -p tsconfig.build.json` in `npm run build`.
 *
 *   node scripts/build-yaml.mjs [OUT_FILE]
 */
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(process.argv[2] ?? join(root, "dist", "base", "yaml.cjs"));
const started = Date.now();
const require = createRequire(import.meta.url);
const entry = require.resolve("yaml"); // its "node" export: dist/index.js (CommonJS)
const { version } = JSON.parse(readFileSync(join(dirname(entry), "..", "package.json"), "utf8"));

mkdirSync(dirname(out), { recursive: true });
const result = await build({
  entryPoints: [entry],
  outfile: out,
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node20",
  minify: true,
  legalComments: "eof",
  banner: { js: `// yaml ${version} bundled by scripts/build-yaml.mjs: do not edit.` },
  logLevel: "warning",
  metafile: true,
});
const kb = Math.round(statSync(out).size / 1024);
process.stdout.write(`build-yaml: ${relative(root, out)} (yaml ${version}, ${Object.keys(result.metafile.inputs).length} files, ${kb} KB) in ${Date.now() - started} ms\n`);
