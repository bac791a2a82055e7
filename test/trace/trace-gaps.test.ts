/**
 * Trace gaps (issue 15 item 7), against real runs: the CLI (dist/cli/main.js) on templates written
 * here, over a real SQLite file, and logs recorded from real runs (test/fixtures/logs, written by
 * scripts/record-logs.mjs). Each case asserts the rendered lines of `baton trace` / `baton diff`.
 *  - a route whose `max` is used up leaves a mark (JSON and text);
 *  - the text trace shows human decisions: who, comment, data (approvals, signals, escalations, tool calls);
 *  - reused stages of a `rerun --from` show as reused, and `diff` compares what they stand for.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planFromSource } from "../../src/api/run.js";
import type { BatonEvent } from "../../src/engine/events.js";
import { buildTrace, renderTrace, type Trace } from "../../src/trace/index.js";

const CLI = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "baton-trace-gaps-"));
const db = join(dir, "runs.db");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function baton(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, "--db", db, ...args], { cwd: dir, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** `baton run … --json`: the run id (any exit code: waiting runs exit 3). */
function runId(args: string[], env: Record<string, string> = {}): string {
  const r = baton([...args, "--json"], env);
  const doc = JSON.parse(r.stdout || "{}") as { id?: string };
  if (!doc.id) throw new Error(`no run id: exit ${r.code}: ${r.stderr}`);
  return doc.id;
}

const traceText = (id: string): string[] => baton(["trace", id]).stdout.split("\n");
const traceJson = (id: string): Trace => JSON.parse(baton(["trace", id, "--json"]).stdout) as Trace;

/** A log recorded from a real run, traced with its recorded plan as `baton trace` does. */
function recorded(name: string): { trace: Trace; lines: string[] } {
  const log = readFileSync(resolve("test/fixtures/logs", `${name}.jsonl`), "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as BatonEvent);
  const first = log[0];
  if (first?.type !== "run_started") throw new Error(`${name}.jsonl does not start with run_started`);
  const trace = buildTrace(log, planFromSource(first.source));
  return { trace, lines: renderTrace(trace, { color: false, width: 200 }).split("\n") };
}

/** The lines right under the first line starting with `head` (its indented block). */
function under(lines: readonly string[], head: string): string[] {
  const i = lines.findIndex((l) => l === head || l.startsWith(`${head} `));
  if (i < 0) throw new Error(`no line starting with ${JSON.stringify(head)} in:\n${lines.join("\n")}`);
  const out: string[] = [];
  for (let j = i + 1; j < lines.length && lines[j]!.startsWith("  "); j++) out.push(lines[j]!);
  return out;
}

const LOOP = `
baton: 1
name: loop
inputs:
  n: { type: number }
stages:
  draft: { value: "inputs.n" }
  verify:
    needs: [draft]
    value: "draft * 2"
    routes:
      - { when: "verify < 10", goto: draft, max: 2 }
  publish:
    needs: [verify]
    input: "{ 'v': verify }"
    value: "verify + 1"
`;

describe("a route whose max is used up", () => {
  let id = "";
  beforeAll(() => {
    id = runId(["run", write("loop.yaml", LOOP), "--input", "n=2"]);
  });

  it("the JSON trace records it as a route decision with exhausted: { taken, max } and where the run went on", () => {
    const ds = traceJson(id).decisions.filter((d) => d.stage === "verify");
    expect(ds.map((d) => [d.visit, d.taken])).toEqual([[1, true], [2, true], [3, false]]);
    expect(ds[2]).toMatchObject({ kind: "route", route: 0, goto: "draft", expression: "verify < 10", read: {}, result: null, taken: false, exhausted: { taken: 2, max: 2 }, continues_to: ["publish"] });
    expect(ds[0]!.exhausted).toBeUndefined();
  });

  it("the text trace shows it under the visit that could not take it", () => {
    const lines = traceText(id);
    expect(under(lines, "✓ verify #3")).toEqual(["  ◇ route verify → draft exhausted (2/2): continuing to publish (when: verify < 10, not evaluated)"]);
    expect(under(lines, "✓ verify #2")).toEqual(["  ◇ route → draft (when: verify < 10 read verify=4)"]);
  });

  it("a used-up route before one that is evaluated says the next route decides", () => {
    const t = write("two-routes.yaml", `
baton: 1
name: two-routes
stages:
  draft: { value: "1" }
  verify:
    needs: [draft]
    value: "draft * 2"
    routes:
      - { when: "verify < 10", goto: draft, max: 1 }
      - { when: "verify > 100", fail: "too big" }
`);
    const rid = runId(["run", t]);
    const ds = traceJson(rid).decisions.filter((d) => d.stage === "verify" && d.visit === 2);
    expect(ds.map((d) => [d.route, d.taken, d.exhausted ?? null])).toEqual([[0, false, { taken: 1, max: 1 }], [1, false, null]]);
    expect(ds[0]!.continues_to).toBeUndefined();
    expect(under(traceText(rid), "✓ verify #2")).toEqual([
      "  ◇ route verify → draft exhausted (1/1): the next route decides (when: verify < 10, not evaluated)",
      '  ◇ route → fail "too big" not taken (when: verify > 100 read verify=2)',
    ]);
  });

  it("in a log recorded from a real run (routes fixture: max 2, taken twice)", () => {
    const { trace, lines } = recorded("routes");
    expect(trace.decisions.filter((d) => d.exhausted !== undefined)).toMatchObject([{ stage: "check", visit: 3, route: 0, goto: "draft", exhausted: { taken: 2, max: 2 } }]);
    expect(under(lines, "✓ check #3")[0]).toMatch(/^ {2}◇ route check → draft exhausted \(2\/2\): continuing to /);
  });

  it("a rerun's reused stages decide no routes: nothing is marked exhausted on them", () => {
    expect(recorded("rerun").trace.decisions.filter((d) => d.exhausted !== undefined)).toEqual([]);
  });
});

describe("human decisions in the text trace", () => {
  const FLOW = `
baton: 1
name: human
stages:
  draft: { value: "'v1'" }
  review:
    needs: [draft]
    approval: { message: "Publish {{ draft }}?" }
  go:
    needs: [review]
    wait: { signal: go }
  publish: { value: "{ 'review': review, 'go': go }" }
output: publish
`;

  it("an approval: who, comment and the data given; a signal: its name, who sent it and its data", () => {
    const t = write("human.yaml", FLOW);
    const id = runId(["run", t]);
    baton(["signal", id, "go", "--data", '{"v":1}'], { USER: "bob" }); // sent early: kept until go waits for it
    const early = traceText(id);
    expect(early.filter((l) => l.startsWith("signal "))).toEqual([expect.stringMatching(/^signal 'go' from bob at \d{4}-\d\d-\d\dT[\d:.]+Z, not taken yet → \{"v":1\}$/)]);
    baton(["approve", id, "review", "--data", '{"ok":true}', "--comment", "ship it"], { USER: "alice" }); // go takes the signal
    const lines = traceText(id);
    expect(lines[0]).toMatch(/✓ succeeded/);
    expect(lines.filter((l) => l.startsWith("signal "))).toEqual([]);
    expect(traceJson(id).run.signals?.map((s) => [s.name, s.by, s.data, s.taken_by ?? null])).toEqual([["go", "bob", { v: 1 }, "go#1"]]);
    expect(under(lines, "✓ review")).toEqual(['  ◇ approved by alice: ship it → {"ok":true}']);
    expect(under(lines, "✓ go")).toEqual([`  ◇ signal 'go' from bob → {"v":1}`]);
    const go = traceJson(id).decisions.find((d) => d.stage === "go");
    expect(go).toMatchObject({ kind: "approval", by: "signal", signal: { name: "go", by: "bob" } });
  });

  it("a rejection: who and why", () => {
    const id = runId(["run", write("human2.yaml", FLOW)]);
    baton(["reject", id, "review", "--comment", "not yet"], { USER: "carol" });
    const lines = traceText(id);
    expect(lines[0]).toMatch(/✗ failed/);
    expect(under(lines, "✗ review")).toContain("  ◇ rejected by carol: not yet");
  });

  it("an escalation (on_error: escalate) answered with data, and an escalating route answered with a comment (recorded run)", () => {
    const { trace, lines } = recorded("escalation");
    // The stage stands on the human's output: it is not 'cancelled' at the end of the run.
    expect(trace.stages.find((s) => s.id === "risky#1")).toMatchObject({ status: "fallback", output: { manual: "value from a human" } });
    expect(under(lines, "⇢ risky")).toEqual([
      "  ✗ attempt 1  0ms  handler: broken: every attempt fails",
      "  ◇ escalated: stage 'risky' failed (handler: broken: every attempt fails): approve (optionally with the output to use) to continue, or reject to fail the run",
      '  ◇ approved by fixture → {"manual":"value from a human"}',
    ]);
    expect(under(lines, "✓ score")).toEqual([
      '  ◇ route → escalate "the score is low: check it" (when: score < 5 read score=3)',
      "  ◇ approved by fixture: low but fine",
    ]);
  });

  it("tool-call approvals: each call's answer, who and the comment (recorded run)", () => {
    const { lines } = recorded("tool-approval");
    const block = under(lines, "✓ report");
    expect(block).toContain("  ◇ call p1 approved by fixture: first edition ok");
    expect(block).toContain("  ◇ call p2 rejected by fixture: not the second edition");
  });
});

describe("reused stages of a rerun", () => {
  let a = "";
  let b = "";
  beforeAll(() => {
    const t = write("reuse.yaml", `
baton: 1
name: reuse
inputs:
  n: { type: number }
stages:
  prep:
    input: "{ 'n': inputs.n }"
    value: "inputs.n + 1"
  verify:
    needs: [prep]
    value: "prep * 2"
  publish:
    needs: [verify]
    value: "verify + 1"
`);
    a = runId(["run", t, "--input", "n=2"]);
    b = runId(["rerun", a, "--from", "verify"]);
  });

  it("the text trace shows them as reused, from which run", () => {
    const lines = traceText(b);
    expect(lines.find((l) => l.includes(" prep "))?.replace(/\s+/g, " ")).toBe(`↺ prep reused from run ${a}`);
    expect(lines).toContain(`rerun of run ${a} from 'verify' (↺ reused from it, not executed)`);
  });

  it("diff compares what the reused stage stands for: unchanged, not 'input → null, attempts 1 → 0'", () => {
    const d = JSON.parse(baton(["diff", a, b, "--json", "--all"]).stdout) as { stages: { key: string; changed: boolean; input?: unknown; attempts?: unknown; reused?: unknown }[] };
    const prep = d.stages.find((s) => s.key === "prep#1");
    expect(prep).toMatchObject({ changed: false, reused: [null, a] });
    expect(prep?.input).toBeUndefined();
    expect(prep?.attempts).toBeUndefined();
    const text = baton(["diff", a, b, "--all"]).stdout.split("\n");
    expect(text.find((l) => l.includes("prep#1"))).toMatch(/^ {2}= prep#1 {2}reused in B from A, unchanged$/);
    expect(baton(["diff", a, b]).stdout).not.toContain("prep#1");
    // The other way round: A is the rerun.
    expect(baton(["diff", b, a, "--all"]).stdout.split("\n").find((l) => l.includes("prep#1"))).toMatch(/^ {2}= prep#1 {2}reused in A from B, unchanged$/);
  });

  it("a reused output that differs from the other run's still shows as a change", () => {
    const c = runId(["run", join(dir, "reuse.yaml"), "--input", "n=5"]);
    const d = JSON.parse(baton(["diff", c, b, "--json"]).stdout) as { stages: { key: string; changed: boolean; output?: unknown; reused?: unknown }[] };
    expect(d.stages.find((s) => s.key === "prep#1")).toMatchObject({ changed: true, output: [{ path: "", op: "changed", a: 6, b: 3 }], reused: [null, a] });
  });
});
