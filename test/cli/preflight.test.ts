/**
 * `baton validate` and `baton run` check what a template needs beyond its text (issue 15.3):
 * the reproductions of the issue through the built CLI — a missing run: module, a missing
 * export, a missing sub-pipeline, a malformed URL, an unknown provider — all at once with
 * FILE:LINE:COL, and `run` refuses (exit 2) before recording a run.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, realpathSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";

const CLI = resolve("dist/cli/main.js");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

function dirWith(files: Record<string, string>): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "baton-cli-preflight-")));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function baton(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [CLI, "--db", join(cwd, "runs.db"), ...args], { encoding: "utf8", cwd, env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const BROKEN = [
  "baton: 1",
  "name: broken",
  "agents:",
  "  g: { model: \"google:gemini-2.0-flash\" }",
  "stages:",
  "  fetch:",
  "    run: ./fetch.mjs#fetch",
  "  shape:",
  "    run: ./shape.mjs#shape",
  "  child:",
  "    pipeline: ./child.yaml",
  "  call:",
  "    http: { url: \"https//example.com/api\" }",
  "  ask:",
  "    agent: g",
  "    prompt: \"{{ shape }}\"",
].join("\n");

describe("validate and run check what the template needs", () => {
  it("validate lists every problem with FILE:LINE:COL and exits 1", () => {
    const dir = dirWith({ "t.yaml": BROKEN, "shape.mjs": "export function reshape() { return 1; }\n" });
    const r = baton(["validate", "t.yaml"], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr.trimEnd().split("\n")).toEqual([
      "t.yaml:4:15: agent 'g': unknown provider 'google' in 'google:gemini-2.0-flash' (providers: openai, anthropic, openai-compatible, mock)",
      `t.yaml:7:10: stage 'fetch': run module ./fetch.mjs not found (looked for ${dir}/fetch.mjs): paths are relative to the template's directory`,
      "t.yaml:9:10: stage 'shape': ./shape.mjs has no exported function 'shape' (it exports: reshape); write run: ./shape.mjs#<name>",
      `t.yaml:11:15: stage 'child': sub-pipeline ./child.yaml not found (looked for ${dir}/child.yaml): paths are relative to the template's directory`,
      "t.yaml:13:18: stage 'call': http url 'https//example.com/api' is not a valid URL: write it as http://HOST/PATH or https://HOST/PATH",
      "5 errors",
    ]);
  });

  it("run refuses a template that cannot run with exit 2, before a run is recorded", async () => {
    const dir = dirWith({ "t.yaml": BROKEN, "shape.mjs": "export function reshape() { return 1; }\n" });
    const r = baton(["run", "t.yaml"], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("t.yaml:7:10: stage 'fetch': run module ./fetch.mjs not found");
    expect(r.stderr.trimEnd().split("\n").at(-1)).toBe("baton: t.yaml cannot run (5 problems above): fix them; baton validate t.yaml checks again");
    if (existsSync(join(dir, "runs.db"))) {
      const store = SqliteStore.open(join(dir, "runs.db"));
      try {
        expect(await store.list({})).toEqual([]);
      } finally {
        await store.close();
      }
    }
  });

  it("a module that cannot load: one line (which module, which stage, where, how to fix), no require stack", () => {
    const dir = dirWith({
      "t.yaml": "baton: 1\nname: t\nstages:\n  a:\n    run: ./uses-pkg.mjs#go\n  b:\n    run: ./typo.ts#go\n  c:\n    run: ./needs.cjs#go\n",
      "uses-pkg.mjs": "import pad from 'left-pad-never-installed';\nexport const go = () => pad('x', 3);\n",
      "typo.ts": "export function go(: number { return 1 }\n",
      "needs.cjs": "const x = require('@scope/never-installed/sub');\nexports.go = () => x;\n",
    });
    const r = baton(["validate", "t.yaml"], dir);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe("t.yaml:5:10: stage 'a': could not load run module ./uses-pkg.mjs: it imports 'left-pad-never-installed', which is not installed: install it in the project (npm install left-pad-never-installed)");
    expect(lines[1]).toMatch(/^t\.yaml:7:10: stage 'b': could not load run module \.\/typo\.ts: .*typo\.ts:1:\d+: ERROR: .+: fix it and check with baton validate$/);
    expect(lines[2]).toBe("t.yaml:9:10: stage 'c': could not load run module ./needs.cjs: it imports '@scope/never-installed/sub', which is not installed: install it in the project (npm install @scope/never-installed)");
    expect(r.stderr).not.toContain("Require stack");
  });

  it("a template that can run is ok (its run: module loaded once, for the check)", () => {
    const dir = dirWith({
      "t.yaml": "baton: 1\nname: fine\nstages:\n  a:\n    run: ./ok.mjs#go\n  b:\n    http: { url: \"http://127.0.0.1:9/{{ a }}\" }\n    if: \"false\"\n",
      "ok.mjs": "export const go = () => 'x';\n",
    });
    const v = baton(["validate", "t.yaml"], dir);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/^t\.yaml: ok \(2 stages, plan [0-9a-f]{12}\)\n$/);
    const r = baton(["run", "t.yaml", "--json"], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "succeeded" });
  });

  it("a module that fails to load later (approve after the code changed) names FILE:LINE:COL of its run: field too", () => {
    const dir = dirWith({
      "t.yaml": "baton: 1\nname: later\nstages:\n  review: { approval: { message: \"go?\" } }\n  publish:\n    needs: [review]\n    run: ./pub.mjs#publish\n",
      "pub.mjs": "export const publish = () => 'ok';\n",
    });
    const r = baton(["run", "t.yaml", "--json"], dir);
    expect(r.code, r.stderr).toBe(3);
    const id = (JSON.parse(r.stdout) as { id: string }).id;
    writeFileSync(join(dir, "pub.mjs"), "import pad from 'left-pad-never-installed';\nexport const publish = () => pad;\n");
    const a = baton(["approve", id, "review", "--allow-code-change", "--json"], dir);
    const result = JSON.parse(a.stdout) as { status: string; error: { stage: string; message: string } };
    expect(result.status).toBe("failed");
    expect(result.error.message).toBe("stage 'publish': t.yaml:7:10: could not load run module ./pub.mjs: it imports 'left-pad-never-installed', which is not installed: install it in the project (npm install left-pad-never-installed)");
  });
});
