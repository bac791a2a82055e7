/**
 * Issue 13.12, `--input-file`: a JSON file went through the YAML parser (112 s and 3.8 GB for
 * 100 MB; a stack overflow past ~780 levels). JSON is now read with JSON.parse, and inputs
 * nested deeper than the store keeps are refused with the depth and the limit. Runs the built CLI.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "baton-input-file-"));
const db = join(dir, "in.db");
const deep = (n: number): string => '{"k":'.repeat(n - 1) + "{}" + "}".repeat(n - 1);

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  writeFileSync(join(dir, "t.yaml"), 'baton: 1\nname: inp\ninputs:\n  data: { type: object }\nstages:\n  a: { value: "$count($keys(inputs.data))" }\noutput: a\n');
});

function run(file: string, text: string) {
  writeFileSync(join(dir, file), text);
  const r = spawnSync(process.execPath, [CLI, "--db", db, "run", join(dir, "t.yaml"), "--input-file", join(dir, file), "--json"], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("--input-file", () => {
  it("a JSON file 900 levels deep (past the YAML parser's ~780) is read", () => {
    const r = run("d900.json", `{"data":${deep(900)}}`);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).output).toBe(1);
  });

  it("JSON is parsed as JSON: duplicate keys take the last value (the YAML parser refused them)", () => {
    const r = run("dup.json", '{"data": {"a": 1, "a": 2, "b": 3}}');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).output).toBe(2);
  });

  it("JSON in a file without the .json extension is read as JSON too; YAML still works", () => {
    expect(JSON.parse(run("dup.txt", '{"data": {"a": 1, "a": 2}}').stdout).output).toBe(1);
    const y = run("in.yaml", "data:\n  a: 1\n  b: 2\n");
    expect(y.code, y.stderr).toBe(0);
    expect(JSON.parse(y.stdout).output).toBe(2);
  });

  it("inputs nested 5,000 levels deep: exit 2, the depth and the limit (not a stack overflow)", () => {
    const r = run("d5000.json", `{"data":${deep(5000)}}`);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`baton: --input-file ${join(dir, "d5000.json")}: the inputs are nested 5,001 levels deep; at most 1,000 are stored: flatten them`);
  });

  it("YAML nested past the YAML parser's limit: exit 2, 'nested too deeply for YAML … write it as JSON'", () => {
    const r = run("deep.yaml", `data: ${"[".repeat(1200)}${"]".repeat(1200)}\n`);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^baton: --input-file .*deep\.yaml: nested too deeply for YAML \(.*\): write it as JSON in a \.json file \(at most 1,000 levels\)$/m);
  });

  it("invalid JSON in a .json file says so, with JSON's position", () => {
    const r = run("bad.json", '{"data": {"a": 1,}}');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^baton: --input-file .*bad\.json: invalid JSON: .*position/m);
  });

  it("a 5 MB JSON file is read (through JSON.parse, not the YAML parser)", () => {
    const items = Array.from({ length: 50_000 }, (_, i) => `"k${i}": {"v": ${i}, "s": "${"x".repeat(60)}"}`);
    const r = run("big.json", `{"data": {${items.join(",")}}}`);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).output).toBe(50_000);
  });
});

describe("approve --data", () => {
  it("--data nested 20,000 levels deep: exit 2 with the depth and the limit (was 'internal error: Maximum call stack size exceeded')", () => {
    const adb = join(dir, "approve.db");
    const cli = (args: string[]) => spawnSync(process.execPath, [CLI, "--db", adb, ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    const started = cli(["run", resolve("test/fixtures/cli/approve.yaml"), "--json"]);
    expect(started.status, started.stderr).toBe(3);
    const id = JSON.parse(started.stdout).id as string;
    const r = cli(["approve", id, "review", "--data", "[".repeat(20_000) + "]".repeat(20_000)]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe("baton: --data is nested 20,000 levels deep; at most 1,000 are stored: flatten it");
    const ok = cli(["approve", id, "review", "--data", '{"ok": [[1]]}', "--json"]);
    expect(ok.status, ok.stderr).toBe(0);
  });
});
