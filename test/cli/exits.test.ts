/**
 * Issue 13.10: a `process.exit(0)` in a `run:` handler made `baton run` exit 0 with no message
 * while the run stayed `running`. An exit while the run is unfinished now prints one line and
 * exits 4 (documented in src/cli/main.ts and docs-fragments/hardening.md). Runs the built CLI.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "baton-exits-"));
const db = join(dir, "exits.db");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  writeFileSync(
    join(dir, "exit.mjs"),
    [
      "export function quit() { process.exit(0); }",
      "export function quitLater() { return new Promise(() => setTimeout(() => process.exit(0), 20)); }",
      "export function never() { return new Promise(() => {}); }",
      "export function fine() { return 'fine'; }",
    ].join("\n"),
  );
  for (const [name, fn] of [["quit", "quit"], ["later", "quitLater"], ["never", "never"], ["fine", "fine"]]) {
    writeFileSync(join(dir, `${name}.yaml`), `baton: 1\nname: ${name}\nstages:\n  a: { run: ./exit.mjs#${fn} }\noutput: a\n`);
  }
});

function baton(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, "--db", db, ...args], { encoding: "utf8", cwd: dir, env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function statusOf(id: string): string {
  const runs = JSON.parse(baton(["runs", "--json"]).stdout) as { id: string; status: string }[];
  return runs.find((r) => r.id === id)!.status;
}

describe("an exit while the run is unfinished never reads as success", () => {
  for (const [name, why] of [
    ["quit", /a stage handler called process\.exit\(0\) while it was running/],
    ["later", /a stage handler called process\.exit\(0\) while it was running/],
    ["never", /the process ran out of work while a stage was still running/],
  ] as const) {
    it(`${name}: exit 4, one line naming the run and \`baton resume RUN\``, () => {
      const r = baton(["run", join(dir, `${name}.yaml`)]);
      expect(r.code, r.stderr).toBe(4);
      const m = /^baton: run (\S+) did not finish: (.*); it is still resumable: resume it with `baton resume (\S+)`$/m.exec(r.stderr);
      expect(m, r.stderr).not.toBeNull();
      expect(m![2]).toMatch(why);
      expect(m![3]).toBe(m![1]);
      expect(r.stderr.match(/did not finish/g)).toHaveLength(1);
      expect(r.stdout).toBe("");
      expect(statusOf(m![1]!)).toBe("running");
    });
  }

  it("--json: the same exit code and line (stdout stays empty, not a success document)", () => {
    const r = baton(["run", join(dir, "quit.yaml"), "--json"]);
    expect(r.code).toBe(4);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/did not finish: a stage handler called process\.exit\(0\)/);
  });

  it("a run that finishes still exits 0 with no such line", () => {
    const r = baton(["run", join(dir, "fine.yaml")]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/did not finish/);
  });
});
