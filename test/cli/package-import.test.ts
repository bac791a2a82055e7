/**
 * Stage files can import the package (issue 15.1), through the built CLI:
 * - a `run:` module next to a template, in a directory without Baton installed, imports
 *   `baton` (ESM `import`, CommonJS `require`, TypeScript through tsx) and gets the running
 *   Baton's own package: its NonRetryableError fails the run without retries;
 * - a CommonJS project that `npm install`s the packed package (offline, from the tarball)
 *   can `require("baton")` and `import("baton")`, TypeScript resolves types for both, and a
 *   project's own installed `baton` is the one its stage modules get.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist/cli/main.js");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  if (!existsSync(resolve("dist/cjs/index.js"))) throw new Error("dist/cjs is missing: run `npm run build` first (scripts/build-cjs.mjs)");
});

function dirWith(files: Record<string, string>): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "baton-import-")));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

function baton(args: string[], cwd: string, cli = CLI, db = join(cwd, "runs.db")) {
  const r = spawnSync(process.execPath, [cli, "--db", db, ...args], { encoding: "utf8", cwd, env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A template whose one stage runs `module#go` with 3 attempts. */
const template = (module: string): string => `baton: 1\nname: imports\nstages:\n  a:\n    run: ${module}#go\n    retry: { attempts: 3, delay: 10ms }\n`;

const ESM_STAGE = "import { NonRetryableError } from \"baton\";\nimport { startFakeOpenAI } from \"baton/testing\";\nexport async function go() {\n  if (typeof startFakeOpenAI !== \"function\") throw new Error(\"baton/testing did not load\");\n  throw new NonRetryableError(\"refused on purpose\");\n}\n";
const CJS_STAGE = "const { NonRetryableError } = require(\"baton\");\nconst { startFakeOpenAI } = require(\"baton/testing\");\nexports.go = async () => {\n  if (typeof startFakeOpenAI !== \"function\") throw new Error(\"baton/testing did not load\");\n  throw new NonRetryableError(\"refused on purpose\");\n};\n";
const TS_STAGE = "import { NonRetryableError, type StageContext } from \"baton\";\nexport async function go(_ctx: StageContext): Promise<never> {\n  throw new NonRetryableError(\"refused on purpose\");\n}\n";

/** Run the template in `dir` and check: failed at once with the handler's non-retryable error, one attempt. */
function expectRefusedWithoutRetry(dir: string, file = "t.yaml"): void {
  const r = baton(["run", file, "--json"], dir);
  expect(r.stderr).not.toContain("Cannot find");
  expect(r.code, r.stderr).toBe(1);
  const result = JSON.parse(r.stdout) as { id: string; status: string; error: { message: string; stage: string } };
  expect(result).toMatchObject({ status: "failed", error: { stage: "a", message: "refused on purpose" } });
  const trace = JSON.parse(baton(["trace", result.id, "--json"], dir).stdout) as { stages: { attempts: unknown[] }[] };
  expect(trace.stages[0]!.attempts).toHaveLength(1);
}

describe("run: modules import the running Baton when the project has none", () => {
  it.each([
    ["no package.json, .mjs (import)", { "stage.mjs": ESM_STAGE }, "./stage.mjs"],
    ["no package.json, .cjs (require)", { "stage.cjs": CJS_STAGE }, "./stage.cjs"],
    ["no package.json, .ts (tsx)", { "stage.ts": TS_STAGE }, "./stage.ts"],
    ["ESM project, .js (import)", { "package.json": "{\"type\":\"module\"}", "stage.js": ESM_STAGE }, "./stage.js"],
    ["ESM project, .ts (tsx)", { "package.json": "{\"type\":\"module\"}", "stage.ts": TS_STAGE }, "./stage.ts"],
    ["CommonJS project, .js (require)", { "package.json": "{\"type\":\"commonjs\"}", "stage.js": CJS_STAGE }, "./stage.js"],
    ["CommonJS project, .ts (tsx)", { "package.json": "{\"type\":\"commonjs\"}", "stage.ts": TS_STAGE }, "./stage.ts"],
    ["CommonJS project, .mjs (import)", { "package.json": "{\"type\":\"commonjs\"}", "stage.mjs": ESM_STAGE }, "./stage.mjs"],
  ])("%s: NonRetryableError fails the run without retries", (_name, files, module) => {
    expectRefusedWithoutRetry(dirWith({ "t.yaml": template(module), ...files }));
  });

  it("baton validate loads such a module too (ok)", () => {
    const dir = dirWith({ "t.yaml": template("./stage.mjs"), "stage.mjs": ESM_STAGE, "stage.cjs": CJS_STAGE, "t2.yaml": template("./stage.cjs") });
    const r = baton(["validate", "t.yaml", "t2.yaml"], dir);
    expect(r.code, r.stderr).toBe(0);
  });

  it("only baton and baton/testing are answered: another missing package is still an error", () => {
    const dir = dirWith({ "t.yaml": template("./stage.mjs"), "stage.mjs": "import x from \"baton/internal\";\nexport const go = () => x;\n" });
    const r = baton(["validate", "t.yaml"], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("t.yaml:5:10: stage 'a': could not load run module ./stage.mjs: it imports a part of 'baton' that is not one of its entry points: import from 'baton' or 'baton/testing'");
  });
});

/** The packed package, installed offline into a CommonJS project: npm ci from a lockfile that names the tarball and this checkout's locked dependencies (their tarballs are in npm's cache: no registry). */
function installPacked(): string {
  const work = realpathSync(mkdtempSync(join(tmpdir(), "baton-pack-")));
  // Packed from a copy: other builds rewrite dist/ in this checkout while the test runs.
  const src = join(work, "src");
  for (const p of ["package.json", "README.md", "schema", "dist"]) cpSync(p, join(src, p), { recursive: true });
  execFileSync("npm", ["pack", "--pack-destination", work, "--ignore-scripts", "--silent"], { cwd: src, encoding: "utf8" });
  const tgz = join(work, readdirSync(work).find((f) => f.endsWith(".tgz"))!);
  const proj = join(work, "proj");
  mkdirSync(proj);
  const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { version: string; license: string; dependencies: Record<string, string>; engines: unknown };
  const lock = JSON.parse(readFileSync("package-lock.json", "utf8")) as { packages: Record<string, { dev?: boolean }> };
  const spec = `file:${relative(proj, tgz)}`;
  const packages: Record<string, unknown> = {
    "": { name: "proj", version: "1.0.0", dependencies: { baton: spec } },
    "node_modules/baton": { version: pkg.version, resolved: spec, integrity: `sha512-${createHash("sha512").update(readFileSync(tgz)).digest("base64")}`, license: pkg.license, dependencies: pkg.dependencies, engines: pkg.engines },
  };
  for (const [k, v] of Object.entries(lock.packages)) if (k !== "" && !v.dev) packages[k] = v;
  // `npm init -y` makes a CommonJS project: "type": "commonjs".
  writeFileSync(join(proj, "package.json"), JSON.stringify({ name: "proj", version: "1.0.0", type: "commonjs", dependencies: { baton: spec } }, null, 2));
  writeFileSync(join(proj, "package-lock.json"), JSON.stringify({ name: "proj", version: "1.0.0", lockfileVersion: 3, requires: true, packages }, null, 2));
  execFileSync("npm", ["ci", "--offline", "--ignore-scripts", "--no-audit", "--no-fund", "--silent"], { cwd: proj, encoding: "utf8" });
  return proj;
}

describe("the packed package in a CommonJS project", () => {
  let proj: string;
  beforeAll(() => {
    proj = installPacked();
  }, 600_000);

  it("require(\"baton\") and require(\"baton/testing\") work, and a pipeline runs from CommonJS", () => {
    writeFileSync(join(proj, "use.cjs"), [
      "const { definePipeline, execute, NonRetryableError, loadPlanFile } = require(\"baton\");",
      "const { startFakeOpenAI } = require(\"baton/testing\");",
      "(async () => {",
      "  const p = definePipeline({ name: \"cjs\" }).stage(\"a\", { run: async () => { throw new NonRetryableError(\"no\"); }, retry: { attempts: 3 } });",
      "  const r = await execute(p, {});",
      "  const plan = loadPlanFile(\"t.yaml\");",
      "  console.log(JSON.stringify({ status: r.status, message: r.error.message, fake: typeof startFakeOpenAI, stages: plan.stages.length, from: require.resolve(\"baton\") }));",
      "})();",
    ].join("\n"));
    writeFileSync(join(proj, "t.yaml"), template("./stage.js"));
    const out = JSON.parse(execFileSync(process.execPath, ["use.cjs"], { cwd: proj, encoding: "utf8" })) as Record<string, unknown>;
    expect(out).toEqual({ status: "failed", message: "no", fake: "function", stages: 1, from: join(proj, "node_modules", "baton", "dist", "cjs", "index.js") });
  });

  it("import(\"baton\") works from ESM in the same project", () => {
    writeFileSync(join(proj, "use.mjs"), "import { NonRetryableError, compileSource } from \"baton\";\nimport { startFakeOpenAI } from \"baton/testing\";\nconsole.log(JSON.stringify({ e: new NonRetryableError(\"x\").retryable, c: typeof compileSource, f: typeof startFakeOpenAI, from: import.meta.resolve(\"baton\") }));\n");
    const out = JSON.parse(execFileSync(process.execPath, ["use.mjs"], { cwd: proj, encoding: "utf8" })) as Record<string, unknown>;
    expect(out).toEqual({ e: false, c: "function", f: "function", from: `file://${join(proj, "node_modules", "baton", "dist", "index.js")}` });
  });

  it("TypeScript resolves the types for require (dist/cjs) and for import (dist)", () => {
    const wrong = "const n: number = new NonRetryableError(\"x\");\nexport {};\n";
    writeFileSync(join(proj, "a.cts"), `import { NonRetryableError } from "baton";\n${wrong}`);
    writeFileSync(join(proj, "b.mts"), `import { NonRetryableError } from "baton";\n${wrong}`);
    const tsc = resolve("node_modules/typescript/bin/tsc");
    const r = spawnSync(process.execPath, [tsc, "--noEmit", "--strict", "--skipLibCheck", "--module", "node16", "--moduleResolution", "node16", "--typeRoots", resolve("node_modules/@types"), "--types", "node", "--explainFiles", "a.cts", "b.mts"], { cwd: proj, encoding: "utf8" });
    // Both files see the real declaration (not `any`), so both assignments are type errors.
    expect(r.stdout).toMatch(/a\.cts\(2,7\): error TS2322: Type 'NonRetryableError' is not assignable to type 'number'/);
    expect(r.stdout).toMatch(/b\.mts\(2,7\): error TS2322: Type 'NonRetryableError' is not assignable to type 'number'/);
    expect(r.stdout).toContain("node_modules/baton/dist/cjs/index.d.ts");
    expect(r.stdout).toMatch(/node_modules\/baton\/dist\/index\.d\.ts/);
  });

  it("a project's own installed baton is the one its stage modules get (the running CLI's is only the fallback)", () => {
    writeFileSync(join(proj, "stage.js"), "exports.go = () => require.resolve(\"baton\");\n");
    writeFileSync(join(proj, "own.yaml"), "baton: 1\nname: own\nstages:\n  a:\n    run: ./stage.js#go\n");
    const r = baton(["run", "own.yaml", "--json"], proj);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).output).toEqual({ a: join(proj, "node_modules", "baton", "dist", "cjs", "index.js") });
    // The installed CLI runs too (an in-memory store: the install skipped better-sqlite3's native build), and its stage modules import its own package.
    writeFileSync(join(proj, "stage.js"), CJS_STAGE);
    const again = baton(["run", "t.yaml", "--json"], proj, join(proj, "node_modules", "baton", "dist", "cli", "main.js"), "memory:");
    expect(again.code, again.stderr).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: "failed", error: { message: "refused on purpose" } });
  });
});
