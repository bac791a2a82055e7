/**
 * `baton plan` shows the whole shape of a template (issue 15 item 7): routes (from → to, when,
 * max), for_each (over what, how many at a time), fallback stages at their level (after the stage
 * they back up), approvals and waits — in the text view and, extended, in `--json`. Through the
 * built CLI on real templates.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "baton-plan-"));

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function baton(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SHAPE = `
baton: 1
name: shape
stages:
  research: { value: "[1, 2, 3]" }
  fact_check:
    needs: [research]
    for_each: "research"
    concurrency: 2
    value: "item * 2"
  draft:
    needs: [fact_check]
    value: "$sum(fact_check)"
    on_error: { fallback: backup }
  backup: { value: "'backup text'" }
  review:
    needs: [draft]
    approval: { message: "Publish {{ draft }}?", timeout: 1h, on_timeout: approve }
  verify:
    needs: [review]
    value: "draft"
    routes:
      - { when: "verify < 5", goto: draft, max: 2 }
      - { when: "verify > 100", fail: "too big" }
  hold:
    needs: [verify]
    wait: { signal: go, timeout: 24h }
  nap:
    needs: [hold]
    sleep: 5m
`;

describe("baton plan", () => {
  let file = "";
  beforeAll(() => {
    file = join(dir, "shape.yaml");
    writeFileSync(file, SHAPE);
  });

  it("the text view shows for_each, fallbacks at their level, approvals, waits and every route", () => {
    const r = baton(["plan", file]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split("\n").map((l) => l.trimEnd());
    const stage = (id: string): string => (lines.find((l) => l.startsWith(`  ${id} `)) ?? "").replace(/\s+/g, " ").trim();
    expect(stage("fact_check")).toBe("fact_check value level 1 needs research · for_each research, 2 at a time");
    expect(stage("draft")).toBe("draft value level 2 needs fact_check · on_error: fallback backup");
    expect(stage("backup")).toBe("backup value level 3 fallback for draft (runs only when it fails)");
    expect(stage("review")).toBe("review approval level 3 needs draft · waits for a human approval (timeout 1h, then approve)");
    expect(stage("hold")).toBe("hold wait level 5 needs verify · waits for signal 'go' (timeout 24h, then fail)");
    expect(stage("nap")).toBe("nap sleep level 6 needs hold · sleeps 5m");
    const routes = lines.slice(lines.indexOf("routes:") + 1, lines.indexOf("routes:") + 3);
    expect(routes).toEqual([
      "  verify → draft  when verify < 5  (at most 2×, back)",
      '  verify → fail "too big"  when verify > 100',
    ]);
    expect(lines).toContain("  3: backup, review");
  });

  it("--json keeps its fields and adds routes, for_each, fallbacks and waits to the stages", () => {
    const r = baton(["plan", file, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as { name: string; hash: string; levels: string[][]; critical_path: string[]; stages: Record<string, unknown>[] };
    expect(Object.keys(d).sort()).toEqual(["critical_path", "hash", "levels", "name", "stages"]);
    const by = new Map(d.stages.map((s) => [s["id"] as string, s]));
    expect(by.get("research")).toEqual({ id: "research", kind: "value", deps: [], level: 0 });
    expect(by.get("fact_check")).toMatchObject({ deps: ["research"], level: 1, for_each: { over: "research", as: "item", concurrency: 2 } });
    expect(by.get("draft")).toMatchObject({ level: 2, on_error: { fallback: "backup" } });
    expect(by.get("backup")).toMatchObject({ deps: [], level: 3, fallback_for: ["draft"] });
    expect(by.get("review")).toMatchObject({ kind: "approval", wait: { approval: true, timeout_ms: 3_600_000, on_timeout: "approve" } });
    expect(by.get("hold")).toMatchObject({ kind: "wait", wait: { signal: "go", timeout_ms: 86_400_000, on_timeout: "fail" } });
    expect(by.get("nap")).toMatchObject({ kind: "sleep", wait: { sleep_ms: 300_000 } });
    expect(by.get("verify")).toMatchObject({
      routes: [{ when: "verify < 5", goto: "draft", max: 2, backward: true }, { when: "verify > 100", fail: "too big", max: null }],
    });
    expect(d.levels[3]).toEqual(["backup", "review"]);
    expect(d.critical_path).toEqual(["research", "fact_check", "draft", "review", "verify", "hold", "nap"]);
  });

  it("a fallback of a fallback sits after the stage it backs up too", () => {
    const f = join(dir, "chain.yaml");
    writeFileSync(f, `
baton: 1
name: chain
stages:
  a: { value: "1" }
  b: { needs: [a], value: "a", on_error: { fallback: fb1 } }
  fb1: { value: "2", on_error: { fallback: fb2 } }
  fb2: { value: "3" }
`);
    const r = baton(["plan", f, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as { stages: { id: string; level: number }[] };
    expect(d.stages.map((s) => [s.id, s.level])).toEqual([["a", 0], ["b", 1], ["fb1", 2], ["fb2", 3]]);
  });
});
