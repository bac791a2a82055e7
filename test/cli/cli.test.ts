/** The CLI end to end, as a user runs it: real processes, a real SQLite file. */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist/cli/main.js");
const FIX = resolve("test/fixtures/cli");
const dir = mkdtempSync(join(tmpdir(), "baton-cli-"));
const db = join(dir, "cli.db");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

function baton(args: string[], opts: { db?: string } = {}) {
  const r = spawnSync(process.execPath, [CLI, "--db", opts.db ?? db, ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("validate and plan", () => {
  it("validate: 0 for a good template, 1 with FILE:LINE:COL lines for a bad one", () => {
    expect(baton(["validate", "examples/research-report.yaml"]).code).toBe(0);
    const bad = baton(["validate", "test/fixtures/templates/cycles.yaml"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^test\/fixtures\/templates\/cycles\.yaml:\d+:\d+: dependency cycle: a → b → c → a$/m);
  });

  it("plan --json: stages, dependencies, levels and the critical path", () => {
    const r = baton(["plan", "examples/research-report.yaml", "--json"]);
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.levels).toEqual([["research"], ["analyze", "fact_check"], ["draft"], ["verify"]]);
    expect(plan.critical_path).toEqual(["research", "analyze", "draft", "verify"]);
    expect(plan.stages.find((s: { id: string }) => s.id === "draft").deps).toEqual(["analyze", "fact_check"]);
    expect(plan.hash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("run, runs, trace", () => {
  it("runs the example: exit 0, one JSON document, the route back and the retry in the trace", () => {
    const r = baton(["run", "examples/research-report.yaml", "--input", "topic=tides", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(Object.keys(doc).sort()).toEqual(["duration_ms", "id", "output", "pipeline", "status"]);
    expect(doc.status).toBe("succeeded");
    expect(doc.output.score).toBe(1);
    expect(doc.output.citations).toHaveLength(5);

    const runs = JSON.parse(baton(["runs", "--json"]).stdout);
    expect(runs[0]).toMatchObject({ id: doc.id, pipeline: "research-report", status: "succeeded" });
    expect(Object.keys(runs[0]).sort()).toEqual(["ended_at", "id", "pipeline", "started_at", "status"]);

    const trace = JSON.parse(baton(["trace", doc.id.slice(0, 10), "--json"]).stdout);
    expect(Object.keys(trace).sort()).toEqual(["assembly", "decisions", "errors", "run", "stages"]);
    expect(trace.run).toMatchObject({ id: doc.id, status: "succeeded", inputs: { topic: "tides", depth: 5 }, tokens: { input: 0, output: 0 }, cost_usd: 0 });
    expect(trace.run.started_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const research = trace.stages.filter((s: { stage: string }) => s.stage === "research");
    expect(research.map((s: { visit: number }) => s.visit)).toEqual([1, 2]);
    const analyze = trace.stages.find((s: { stage: string }) => s.stage === "analyze");
    expect(analyze.attempts.map((a: { status: string }) => a.status)).toEqual(["failed", "succeeded"]);
    expect(analyze.attempts[0].retry_in_ms).toBeGreaterThanOrEqual(0);
    expect(trace.stages.filter((s: { stage: string; item?: number }) => s.stage === "fact_check" && s.item !== undefined)).toHaveLength(10);
    const route = trace.decisions.find((d: { kind: string; taken?: boolean }) => d.kind === "route" && d.taken);
    expect(route.expression).toContain("$count(fact_check[verified = false])");
    expect(route.read.fact_check).toHaveLength(5);
    expect(trace.errors.every((e: { recovered: boolean }) => e.recovered)).toBe(true);
    expect(trace.assembly.read.sort()).toEqual(["draft", "verify"]);

    const human = baton(["trace", doc.id]);
    expect(human.stdout).toContain("research #2");
    expect(human.stdout).not.toContain("\u001b[");
  });

  it("a failing run exits 1 with the error in the JSON", () => {
    const r = baton(["run", join(FIX, "fails.yaml"), "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "failed", error: { stage: "bad", message: "boom: the handler failed" } });
  });

  it("an escalating route pauses the run: exit 3, status waiting", () => {
    const r = baton(["run", join(FIX, "escalates.yaml"), "--json"]);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "waiting", error: { stage: "review", message: "score below 0.5: a human should look" } });
  });

  it("a 5 MB stage output is stored and read back", () => {
    const r = baton(["run", join(FIX, "big.yaml"), "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).output).toBe(5 * 1024 * 1024);
  });
});

describe("user errors", () => {
  it("usage errors exit 2; user errors print one line without a stack; --debug shows it", () => {
    expect(baton(["run"]).code).toBe(2);
    expect(baton(["frobnicate"]).code).toBe(2);
    const badInput = baton(["run", "examples/research-report.yaml", "--input", "depth=five"]);
    expect(badInput.code).toBe(2);
    expect(badInput.stderr.trim()).toBe(`baton: input 'depth': expected integer, got "five" — pass --input depth=5`);
    const noEq = baton(["run", "examples/research-report.yaml", "--input", "depth"]);
    expect(noEq.stderr.trim()).toBe("baton: --input depth: write it as name=value");
    const unknown = baton(["trace", "zzzzzz"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim().split("\n")).toHaveLength(1);
    expect(unknown.stderr).not.toMatch(/\n\s+at /);
    const debug = baton(["--debug", "trace", "zzzzzz"]);
    expect(debug.stderr).toMatch(/RunNotFoundError[^\n]*\n\s+at /);
    const missing = baton(["run", "nope.yaml"]);
    expect(missing.stderr.trim()).toBe("nope.yaml:1:1: cannot read the template: no such file");
    expect(missing.code).toBe(1);
  });
});

describe("cancel and resume across processes", () => {
  it("baton cancel stops a run driven by another process (exit 130 there); resume finishes it", async () => {
    const cdb = join(dir, "cancel.db");
    const child = spawn(process.execPath, [CLI, "--db", cdb, "run", join(FIX, "slow.yaml"), "--json"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((res) => child.on("exit", (c) => res(c)));
    let id: string | undefined;
    for (let i = 0; i < 60 && !id; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const runs = baton(["runs", "--json"], { db: cdb });
      if (runs.code === 0) id = JSON.parse(runs.stdout)[0]?.id;
    }
    expect(id).toBeDefined();
    const c = baton(["cancel", id!], { db: cdb });
    expect(c.stdout.trim()).toBe(`run ${id} cancelled`);
    expect(await exited).toBe(130);
    expect(JSON.parse(out).status).toBe("cancelled");
    const resumed = baton(["resume", id!, "--json"], { db: cdb });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout).output).toBe(20);
  });

  it("resume uses the plan recorded at start, not the template as edited since", async () => {
    const edb = join(dir, "edit.db");
    const tpl = join(FIX, "edit-copy.yaml");
    copyFileSync(join(FIX, "slow.yaml"), tpl);
    const child = spawn(process.execPath, [CLI, "--db", edb, "run", tpl, "--json"], { stdio: "ignore" });
    const exited = new Promise((r) => child.on("exit", r));
    // Kill it once the run is recorded (it then has ~1.8 s of stages to go), not after a guessed sleep.
    let id: string | undefined;
    for (let i = 0; i < 200 && !id; i++) {
      const runs = baton(["runs", "--json"], { db: edb });
      if (runs.code === 0) id = JSON.parse(runs.stdout)[0]?.id;
      if (!id) await new Promise((r) => setTimeout(r, 50));
    }
    expect(id, "the run was never recorded").toBeDefined();
    child.kill("SIGKILL");
    await exited;
    writeFileSync(tpl, readFileSync(tpl, "utf8").replace('value: "wait * 10"', 'value: "wait * 1000"'));
    expect(JSON.parse(baton(["runs", "--json"], { db: edb }).stdout)[0]).toMatchObject({ id, status: "running" });
    const resumed = baton(["resume", id!, "--json"], { db: edb });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout).output).toBe(20);
  });
});

describe("approvals from the command line", () => {
  it("run pauses (exit 3); approve --data in a new process continues it; reject fails the stage", async () => {
    const adb = join(dir, "approve.db");
    const tpl = join(FIX, "approve.yaml");
    writeFileSync(tpl, `baton: 1
name: approve-cli
stages:
  draft: { value: "'v1'" }
  review: { needs: [draft], approval: { message: "Publish {{ draft }}?" } }
  publish: { value: "{ 'text': draft, 'review': review }" }
output: publish
`);
    const first = baton(["run", tpl, "--json"], { db: adb });
    expect(first.code).toBe(3);
    const id = JSON.parse(first.stdout).id;
    expect(first.stderr).toContain(`answer it with: baton approve ${id} review`);
    const wrong = baton(["approve", id, "draft"], { db: adb });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim()).toBe("baton: stage 'draft' is not waiting for a decision (waiting: review)");
    const ok = baton(["approve", id, "review", "--data", '{"ok":true}', "--comment", "lgtm", "--json"], { db: adb });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ status: "succeeded", output: { text: "v1", review: { ok: true } } });
    const trace = JSON.parse(baton(["trace", id, "--json"], { db: adb }).stdout);
    expect(trace.decisions.find((d: { kind: string }) => d.kind === "approval")).toMatchObject({ stage: "review", taken: true, comment: "lgtm", result: { ok: true } });

    const second = JSON.parse(baton(["run", tpl, "--json"], { db: adb }).stdout).id;
    const no = baton(["reject", second, "review", "--comment", "not now", "--json"], { db: adb });
    expect(JSON.parse(no.stdout)).toMatchObject({ status: "failed", error: { stage: "review" } });
    expect(JSON.parse(no.stdout).error.message).toMatch(/rejected by .*: not now/);
    expect(baton(["approve", second, "review", "--data", "{nope"], { db: adb }).code).toBe(2);
  });
});

describe("rerun", () => {
  it("baton rerun RUN --from STAGE reuses upstream outputs; --input overrides what the re-run stages see", () => {
    const rdb = join(dir, "rerun.db");
    const first = JSON.parse(baton(["run", "examples/research-report.yaml", "--input", "topic=tides", "--json"], { db: rdb }).stdout);
    const r = baton(["rerun", first.id.slice(0, 8), "--from", "draft", "--input", "topic=waves", "--json"], { db: rdb });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("reusing research, analyze, fact_check");
    const out = JSON.parse(r.stdout);
    expect(out.output.topic).toBe("waves");
    expect(out.output.citations).toEqual(first.output.citations); // research was reused, not re-run
    const trace = JSON.parse(baton(["trace", out.id, "--json"], { db: rdb }).stdout);
    expect(trace.stages.filter((s: { reused_from?: string }) => s.reused_from === first.id).map((s: { stage: string }) => s.stage).sort()).toEqual(["analyze", "fact_check", "research"]);
    expect(baton(["rerun", first.id, "--from", "drat"], { db: rdb }).stderr.trim()).toMatch(/^baton: no stage 'drat' in 'research-report': rerun --from one of research, analyze, fact_check, draft, verify$/);
  });
});
