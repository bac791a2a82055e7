/** `baton diff RUN_A RUN_B`: the command over a real SQLite store (registered on a bare program). */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Pipeline } from "../../src/api/pipeline.js";
import { registerDiff } from "../../src/cli/commands/diff.js";
import { execute } from "../../src/index.js";
import { RunNotFoundError } from "../../src/store/port.js";
import { compileSource } from "../../src/template/index.js";
import type { RunDiff } from "../../src/trace/diff.js";

const TEMPLATE = `
baton: 1
name: loop
inputs:
  n: { type: number }
stages:
  draft: { value: "inputs.n" }
  check:
    needs: [draft]
    value: "draft * 2"
    routes:
      - { when: "check < 10", goto: draft, max: 1 }
output: "{ 'check': check }"
`;

const dir = mkdtempSync(join(tmpdir(), "baton-diff-"));
const db = join(dir, "runs.db");
let idA = "";
let idB = "";

function yaml(text: string): Pipeline<Record<string, unknown>, unknown> {
  const plan = compileSource(text, { format: "yaml", baseDir: process.cwd() });
  return { name: plan.name, plan, parseInputs: (r) => r as Record<string, unknown> };
}

/** Run `baton diff ARGS` in-process; returns stdout. */
async function diff(args: string[]): Promise<string> {
  const program = new Command("baton").exitOverride().option("--db <path>");
  registerDiff(program, () => program.opts<{ db?: string }>());
  let out = "";
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(["--db", db, "diff", ...args], { from: "user" });
  } finally {
    spy.mockRestore();
  }
  return out;
}

beforeAll(async () => {
  const p = yaml(TEMPLATE);
  const a = await execute(p, { n: 2 }, { store: db }); // 4 < 10: routes back once (and gets 4 again)
  const b = await execute(p, { n: 7 }, { store: db }); // 14: no route
  expect([a.status, b.status]).toEqual(["succeeded", "succeeded"]);
  idA = a.id;
  idB = b.id;
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("baton diff", () => {
  it("--json prints the RunDiff, with route targets from the plan recompiled from the log", async () => {
    const d = JSON.parse(await diff([idA.slice(0, 12), idB, "--json"])) as RunDiff;
    expect(d.a.id).toBe(idA);
    expect(d.b.id).toBe(idB);
    expect(d.same_plan).toBe(true);
    expect(d.inputs).toEqual([{ path: "n", op: "changed", a: 2, b: 7 }]);
    expect(d.output).toEqual([{ path: "check", op: "changed", a: 4, b: 14 }]);
    expect(d.stages.filter((s) => s.only_in === "a").map((s) => s.key)).toEqual(["draft#2", "check#2"]);
    expect(d.decisions[0]).toMatchObject({ stage: "check", visit: 1, kind: "route", route: 0, goto: "draft", a: { taken: true }, b: { taken: false } });
  });

  it("prints the text view without colour when stdout is not a TTY; --all lists unchanged stages", async () => {
    const text = await diff([idA, idB]);
    expect(text).not.toMatch(/\u001b\[/);
    expect(text).toMatch(new RegExp(`^A ${idA}  loop  succeeded`, "m"));
    expect(text).toContain("~ inputs.n: 2 → 7");
    expect(text).toContain("~ check#1 route 0 (→ draft): taken → not taken (read check=4 → check=14)");
    expect(text).toMatch(/^ {2}- draft#2 {2}only in A/m);
    const same = await diff([idA, idA]);
    expect(same).toMatch(/^stages: 0 changed, 4 unchanged$/m);
    expect(same).not.toMatch(/^ {2}= /m);
    expect(await diff([idA, idA, "--all"])).toMatch(/^ {2}= draft#1 /m);
  });

  it("an unknown run is the store's RunNotFoundError", async () => {
    await expect(diff([idA, "zzzz-no-such-run"])).rejects.toBeInstanceOf(RunNotFoundError);
  });
});
