/**
 * Issue 13 items 5–7 through the real CLI, runtime and SQLite store: an expression that built
 * a 140M-character string killed Node (V8 fatal error, exit 133), left the run `running`, and
 * every `baton resume` crashed again; a backtracking regex blocked the process for minutes; a
 * 30,000-item `value:` for_each failed its cheap expression "after 1000 ms".
 * Now: the stage fails with a clear non-retryable `expression` error, the process exits
 * normally, and resuming a run that was killed before that stage fails it cleanly too.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";
import { formatDiagnostic, validateFile } from "../../src/template/index.js";

const CLI = resolve("dist/cli/main.js");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

interface Child { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Run the CLI; with `killWhen`, SIGKILL it as soon as that file exists. */
function runCli(args: string[], env: Record<string, string>, killWhen?: string): Promise<Child> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const poll = killWhen === undefined ? undefined : setInterval(() => existsSync(killWhen) && child.kill("SIGKILL"), 10);
    child.on("exit", (code, signal) => {
      if (poll) clearInterval(poll);
      res({ code, signal, stdout, stderr });
    });
  });
}

const PAD_ERROR =
  "expression `$length($pad('', 139999999 + gate, 'a'))` built a string of 140,000,000 characters; " +
  "expressions are limited to strings of 10,000,000 characters (about 10 MB)";

/** A gate stage (waits for a file), the report's three expressions behind and beside it. */
function writeTemplate(dir: string): string {
  writeFileSync(
    join(dir, "gate.mjs"),
    [
      'import { existsSync, writeFileSync } from "node:fs";',
      "export async function gate() {",
      '  writeFileSync(process.env.BATON_GATE + ".started", "");',
      "  while (!existsSync(process.env.BATON_GATE)) await new Promise((r) => setTimeout(r, 10));",
      "  return 1;",
      "}",
    ].join("\n"),
  );
  const file = join(dir, "bounds.yaml");
  writeFileSync(
    file,
    [
      "baton: 1",
      "name: expr-bounds",
      "stages:",
      "  gate: { run: ./gate.mjs#gate }",
      "  regex:",
      `    value: "$match('${"a".repeat(36)}!', /(a+)+$/)"`,
      "  many:",
      '    for_each: "[1..30000]"',
      '    value: "item * 2"',
      "  pad:",
      "    value: \"$length($pad('', 139999999 + gate, 'a'))\"",
      "    retry: { attempts: 3, delay: 1ms }",
      "output: \"{ 'n': $count(many), 'last': many[-1], 'regex': regex, 'pad': pad }\"",
    ].join("\n") + "\n",
  );
  return file;
}

async function events(db: string): Promise<{ id: string; status: string | undefined; types: { type: string; stage?: string }[] }> {
  const store = SqliteStore.open(db);
  try {
    const run = (await store.list())[0];
    if (run === undefined) throw new Error("no run in the store");
    const { events: evs } = await store.load(run.id);
    return { id: run.id, status: run.status, types: evs as unknown as { type: string; stage?: string }[] };
  } finally {
    await store.close();
  }
}

describe("expressions that used to kill or stall the process, end to end", () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-expr-bounds-"));
  const template = writeTemplate(dir);

  it("the stage fails with the clear expression error; the 30,000-item for_each and the regex succeed; the process exits normally", async () => {
    const gate = join(dir, "open.gate");
    writeFileSync(gate, "");
    const db = join(dir, "run.db");
    const r = await runCli(["--db", db, "run", template, "--json"], { BATON_GATE: gate });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.status).toBe("failed");
    expect(out.error).toMatchObject({ stage: "pad", kind: "expression" });
    expect(out.error.message).toContain(PAD_ERROR);
    const { types } = await events(db);
    // Non-retryable: one attempt although the stage allows three.
    expect(types.filter((e) => e.type === "stage_started" && e.stage === "pad")).toHaveLength(1);
    expect(types.some((e) => e.type === "stage_succeeded" && e.stage === "regex")).toBe(true);
    expect(types.some((e) => e.type === "stage_succeeded" && e.stage === "many")).toBe(true);
    expect(r.stderr).not.toMatch(/ran for more than/);
  }, 300_000);

  it("a run killed before the stage: resume fails the stage cleanly, and resuming again does not crash", async () => {
    const gate = join(dir, "kill.gate");
    const db = join(dir, "killed.db");
    const first = await runCli(["--db", db, "run", template, "--json"], { BATON_GATE: gate }, gate + ".started");
    expect(first.signal).toBe("SIGKILL");
    const before = await events(db);
    expect(before.status).toBe("running");
    writeFileSync(gate, "");
    const resumed = await runCli(["--db", db, "resume", before.id, "--json"], { BATON_GATE: gate });
    expect(resumed.signal, resumed.stderr).toBeNull();
    expect(resumed.code, resumed.stderr).toBe(1);
    expect(JSON.parse(resumed.stdout).error).toMatchObject({ stage: "pad", kind: "expression" });
    expect(JSON.parse(resumed.stdout).error.message).toContain(PAD_ERROR);
    expect((await events(db)).status).toBe("failed");
    const again = await runCli(["--db", db, "resume", before.id, "--json"], { BATON_GATE: gate });
    expect(again.signal, again.stderr).toBeNull();
    expect(again.code).not.toBe(133);
    expect((await events(db)).status).toBe("failed");
  }, 300_000);

  it("`baton validate` reports a regex RE2 cannot run at FILE:LINE:COL, like other expression errors", () => {
    const file = join(dir, "regex.yaml");
    writeFileSync(
      file,
      [
        "baton: 1",
        "name: rx",
        "inputs:",
        "  s: { type: string }",
        "stages:",
        "  a:",
        "    value: '$match(inputs.s, /(ab)\\1/)'",
        "  b:",
        "    value: '$contains(inputs.s, /x(?=y)/i)'",
      ].join("\n") + "\n",
    );
    expect(validateFile(file).map((d) => formatDiagnostic(d).replace(dir + "/", ""))).toEqual([
      expect.stringMatching(/^regex\.yaml:7:30: regex \/\(ab\)\\1\/ uses a backreference: expressions match with RE2, which runs in linear time/),
      expect.stringMatching(/^regex\.yaml:9:33: regex \/x\(\?=y\)\/ uses lookahead or lookbehind/),
    ]);
  });
});
