/**
 * Issue 14 item 1: every command loads only what it uses. This asserts the *import graph* of
 * the built CLI, never a time (timings live in `npm run bench:startup`): each command is run
 * under test/fixtures/startup/record-loads.mjs, which writes every module the process loads
 * (ESM resolutions and CommonJS requires) to a file, and the packages and Baton modules in it
 * are checked.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const CLI = join(ROOT, "dist/cli/main.js");
const RECORDER = join(ROOT, "test/fixtures/startup/record-loads.mjs");
const ONE = join(ROOT, "test/fixtures/startup/one-stage.yaml");
const AGENT = join(ROOT, "test/fixtures/startup/agent-stage.yaml");

/** Packages no command that does not execute an agent, a queue, PostgreSQL or OTel may load. */
const HEAVY = [/^ai$/, /^@ai-sdk\//, /^bullmq$/, /^ioredis$/, /^pg$/, /^pg-/, /^@opentelemetry\//, /^@modelcontextprotocol\//];

let work: string;
beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  work = mkdtempSync(join(tmpdir(), "baton-startup-"));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Loads {
  /** npm packages loaded (by name, scoped ones as `@scope/name`). */
  readonly packages: ReadonlySet<string>;
  /** Baton's own modules loaded, relative to dist/ (`template/compile.js`). */
  readonly baton: ReadonlySet<string>;
  /** Every file loaded inside the given package (paths inside it). */
  files(pkg: string): string[];
  /** What the command printed on stdout and stderr. */
  readonly stdout: string;
  readonly stderr: string;
}

let n = 0;
/** Run the built CLI with `args` under the recorder; what it loaded. */
function loadsOf(args: string[], env: Record<string, string> = {}, status = 0): Loads {
  const out = join(work, `loads-${n++}.txt`);
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OTEL_") && !k.startsWith("BATON_") && k !== "NODE_OPTIONS"));
  const r = spawnSync(process.execPath, ["--import", RECORDER, CLI, "--db", join(work, "runs.db"), ...args], {
    cwd: work,
    encoding: "utf8",
    env: { ...clean, ...env, BATON_RECORD_LOADS: out, NO_COLOR: "1" },
  });
  expect(r.status, `baton ${args.join(" ")} exited ${r.status}: ${r.stderr}`).toBe(status);
  const lines = readFileSync(out, "utf8").split("\n").filter(Boolean);
  const paths = lines.map((l) => {
    const p = l.slice(4);
    return p.startsWith("file:") ? fileURLToPath(p) : p;
  });
  const packages = new Set<string>();
  const byPackage = new Map<string, string[]>();
  const baton = new Set<string>();
  const distDir = join(ROOT, "dist") + "/";
  for (const p of paths) {
    const at = p.lastIndexOf("/node_modules/");
    if (at >= 0) {
      const rest = p.slice(at + "/node_modules/".length).split("/");
      const name = rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
      packages.add(name);
      byPackage.set(name, [...(byPackage.get(name) ?? []), rest.slice(name.split("/").length).join("/")]);
    } else if (p.startsWith(distDir)) baton.add(p.slice(distDir.length));
  }
  return { packages, baton, files: (pkg) => byPackage.get(pkg) ?? [], stdout: r.stdout, stderr: r.stderr };
}

function heavyIn(loads: Loads): string[] {
  return [...loads.packages].filter((p) => HEAVY.some((re) => re.test(p))).sort();
}

describe("baton validate and plan load no provider, queue, database or telemetry code", () => {
  for (const [what, file] of [["a one-stage template", ONE], ["a template with an agent, inputs and an output schema", AGENT]] as const) {
    for (const command of ["validate", "plan"]) {
      it(`${command} of ${what}`, () => {
        const loads = loadsOf([command, file]);
        // The recorder works: what validate needs is seen (an ESM import and CommonJS inside a package).
        expect(loads.files("commander")).toContain("index.js");
        expect(loads.baton.has("template/compile.js")).toBe(true);
        expect(heavyIn(loads)).toEqual([]);
        // A valid template in the fast YAML subset needs no yaml package, and no regex no RE2 addon.
        expect(loads.packages.has("yaml")).toBe(false);
        expect(loads.baton.has("base/yaml.cjs")).toBe(false);
        expect(loads.packages.has("re2")).toBe(false);
        // Nor the store, the runtime, the trace, the UI, the scheduler or the distributed layer.
        expect(loads.packages.has("better-sqlite3")).toBe(false);
        const shell = [...loads.baton].filter((m) => /^(runtime|store\/(sqlite|postgres)\.js|distributed|ui|serve|trace|telemetry|agents\/(providers|mcp)|stages\/agent)\b/.test(m));
        expect(shell).toEqual([]);
      });
    }
  }

  it("the template schema's validator is the precompiled one: a template without JSON Schemas loads no ajv compiler", () => {
    expect(existsSync(join(ROOT, "dist/template/template-validator.cjs")), "npm run build writes dist/template/template-validator.cjs").toBe(true);
    const loads = loadsOf(["validate", ONE]);
    expect(loads.baton.has("template/template-validator.cjs")).toBe(true);
    expect(loads.files("ajv").filter((f) => !f.startsWith("dist/runtime/"))).toEqual([]);
  });

  it("a template with errors loads yaml for the positions, as one bundled file; a regex literal loads RE2", () => {
    expect(existsSync(join(ROOT, "dist/base/yaml.cjs")), "npm run build writes dist/base/yaml.cjs").toBe(true);
    const bad = join(work, "bad.yaml");
    writeFileSync(bad, "baton: 1\nname: bad\nstages:\n  a:\n    value: \"$match('ab', /a+/)\"\n    retires: 2\n");
    const loads = loadsOf(["validate", bad], {}, 1);
    expect(loads.stdout + loads.stderr).toContain("bad.yaml:6:5: unknown field 'retires'");
    expect(loads.baton.has("base/yaml.cjs")).toBe(true);
    expect(loads.packages.has("yaml")).toBe(false);
    expect(loads.packages.has("re2")).toBe(true);
    expect(heavyIn(loads)).toEqual([]);
  });

  it("--version loads no command module", () => {
    const loads = loadsOf(["--version"]);
    expect(heavyIn(loads)).toEqual([]);
    expect([...loads.baton].filter((m) => m.startsWith("cli/commands/") || m.startsWith("runtime/"))).toEqual([]);
  });
});

describe("baton run of a one-stage value: template", () => {
  it("loads the SQLite store and the runtime, but no queue, PostgreSQL, telemetry, provider or MCP code", () => {
    const loads = loadsOf(["run", ONE]);
    expect(loads.packages.has("better-sqlite3")).toBe(true);
    expect(loads.baton.has("runtime/runtime.js")).toBe(true);
    expect(heavyIn(loads)).toEqual([]);
    // Nor yaml (no baton.config.yaml here, a template in the fast subset) nor RE2 (no regex).
    expect(loads.packages.has("yaml")).toBe(false);
    expect(loads.packages.has("re2")).toBe(false);
    expect([...loads.baton].filter((m) => /^(distributed|ui|serve|store\/postgres)\b/.test(m))).toEqual([]);
  });

  it("runs and trace of the recorded run load no queue, PostgreSQL, telemetry, provider or MCP code", () => {
    const { id } = JSON.parse(loadsOf(["run", ONE, "--json"]).stdout) as { id: string };
    const runs = loadsOf(["runs"]);
    expect(runs.stdout).toContain(id);
    expect(heavyIn(runs)).toEqual([]);
    expect([...runs.baton].filter((m) => /^(runtime|distributed|ui|serve)\b/.test(m))).toEqual([]);
    const trace = loadsOf(["trace", id]);
    expect(heavyIn(trace)).toEqual([]);
  });
});
