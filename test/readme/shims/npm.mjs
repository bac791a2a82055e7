#!/usr/bin/env node
// `npm` on the README test's PATH. `npm run NAME` runs the package.json script of the copy under
// test, without its leading `npm run build &&` (the suite runs on a fresh build: `npm test`
// builds first). Installs and the test suite itself are not run here: a README block with
// `npm ci`, `npm install` or `npm test` is marked `<!-- not-run: … -->` and checked instead.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { delimiter, join } from "node:path";

const work = process.env.README_WORK;
const [cmd, name, ...rest] = process.argv.slice(2);
if (cmd !== "run" || !name) {
  process.stderr.write(`npm shim: the README test runs only \`npm run SCRIPT\`, not \`npm ${process.argv.slice(2).join(" ")}\`: mark the block <!-- not-run: REASON --> (README.md, Development)\n`);
  process.exit(97);
}
const scripts = JSON.parse(readFileSync(join(work, "package.json"), "utf8")).scripts ?? {};
const script = scripts[name];
if (typeof script !== "string") {
  process.stderr.write(`npm shim: package.json has no script "${name}"\n`);
  process.exit(1);
}
const body = script.replace(/^npm run build && /, "");
const extra = rest[0] === "--" ? rest.slice(1) : rest;
const line = [body, ...extra.map((a) => `'${a.replace(/'/g, "'\\''")}'`)].join(" ");
const child = spawn("sh", ["-c", line], {
  cwd: work,
  stdio: "inherit",
  env: { ...process.env, PATH: `${join(work, "node_modules/.bin")}${delimiter}${process.env.PATH}` },
});
child.on("exit", (code) => process.exit(code ?? 1));
