/**
 * Code pinning (issue 12 item 6), end to end through the CLI: a run records the sha256 of its
 * `run:` modules; `approve`/`reject`/`resume` refuse a run whose modules changed or went missing,
 * `--allow-code-change` continues it with the new code and records `code_changed`.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openStoreAsync } from "../../src/store/open.js";
import type { BatonEvent } from "../../src/engine/events.js";

const CLI = resolve("dist/cli/main.js");
const root = mkdtempSync(join(tmpdir(), "baton-pin-"));

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

/** A project directory: the template at its root, its `run:` modules under stages/. */
function project(name: string, template: string, modules: Record<string, string>): string {
  const d = join(root, name);
  mkdirSync(join(d, "stages"), { recursive: true });
  writeFileSync(join(d, "pipe.yaml"), template);
  for (const [f, text] of Object.entries(modules)) writeFileSync(join(d, "stages", f), text);
  return d;
}

/** The CLI run from the project directory (the run's root), as a user runs it there. */
function baton(cwd: string, args: string[]) {
  const r = spawnSync(process.execPath, [CLI, "--db", join(cwd, "baton.db"), ...args], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function events(cwd: string, id: string): Promise<BatonEvent[]> {
  const store = await openStoreAsync(join(cwd, "baton.db"));
  try {
    return (await store.load(id)).events;
  } finally {
    await store.close();
  }
}

const sha = (text: string): string => createHash("sha256").update(text).digest("hex");

const APPROVAL = `baton: 1
name: pinned
stages:
  draft: { run: ./stages/draft.mjs#draft }
  review: { needs: [draft], approval: { message: "Publish {{ draft }}?" } }
  publish: { needs: [review], run: ./stages/publish.mjs#publish, input: { text: "{{ draft }}" } }
output: publish
`;
const DRAFT = `export const draft = () => "v1";\n`;
const PUBLISH_V1 = `export const publish = (ctx) => "published " + ctx.input.text + " by v1";\n`;
const PUBLISH_V2 = `export const publish = (ctx) => "published " + ctx.input.text + " by v2";\n`;

describe("code pinning from the command line", () => {
  it("a waiting run whose run: module was edited: approve refuses naming the file; --allow-code-change continues with the new code and records code_changed", async () => {
    const d = project("edited", APPROVAL, { "draft.mjs": DRAFT, "publish.mjs": PUBLISH_V1 });
    const first = baton(d, ["run", "pipe.yaml", "--json"]);
    expect(first.code, first.stderr).toBe(3);
    const id = JSON.parse(first.stdout).id as string;
    const started = (await events(d, id))[0]!;
    expect(started.type === "run_started" && started.code).toEqual({ "stages/draft.mjs": sha(DRAFT), "stages/publish.mjs": sha(PUBLISH_V1) });

    writeFileSync(join(d, "stages", "publish.mjs"), PUBLISH_V2);
    const refused = baton(d, ["approve", id, "review"]);
    expect(refused.code).toBe(1);
    const line = refused.stderr.trim();
    expect(line.split("\n")).toHaveLength(1);
    expect(line).toContain(`run ${id}: run: module stages/publish.mjs changed since the run started`);
    expect(line).toContain(`recorded sha256 ${sha(PUBLISH_V1).slice(0, 12)}, now ${sha(PUBLISH_V2).slice(0, 12)}`);
    expect(line).toContain("--allow-code-change");
    // Nothing was recorded: the run still waits, and the stage did not run.
    const still = await events(d, id);
    expect(still.some((e) => e.type === "approval" || e.type === "code_changed")).toBe(false);
    expect(baton(d, ["reject", id, "review"]).stderr).toContain("stages/publish.mjs changed");

    const ok = baton(d, ["approve", id, "review", "--allow-code-change", "--json"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ status: "succeeded", output: "published v1 by v2" });
    const log = await events(d, id);
    const changed = log.filter((e) => e.type === "code_changed");
    expect(changed).toHaveLength(1);
    expect(changed[0]).toMatchObject({ files: { "stages/publish.mjs": { from: sha(PUBLISH_V1), to: sha(PUBLISH_V2) } } });
    // Recorded before the answer, i.e. before anything ran with the new code.
    expect(log.findIndex((e) => e.type === "code_changed")).toBeLessThan(log.findIndex((e) => e.type === "approval"));
    const trace = JSON.parse(baton(d, ["trace", id, "--json"]).stdout);
    expect(trace.run.status).toBe("succeeded");
    expect(trace.run.code_changed).toEqual([expect.objectContaining({ files: { "stages/publish.mjs": { from: sha(PUBLISH_V1), to: sha(PUBLISH_V2) } } })]);
    expect(baton(d, ["trace", id]).stdout).toContain("code changed: stages/publish.mjs");
  });

  it("a run with a deleted run: module is refused; with --allow-code-change the stage fails as a missing module does", async () => {
    const d = project("deleted", APPROVAL, { "draft.mjs": DRAFT, "publish.mjs": PUBLISH_V1 });
    const first = baton(d, ["run", "pipe.yaml", "--json"]);
    expect(first.code, first.stderr).toBe(3);
    const id = JSON.parse(first.stdout).id as string;
    rmSync(join(d, "stages", "publish.mjs"));
    const refused = baton(d, ["approve", id, "review"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toMatch(new RegExp(`^baton: run ${id}: run: module stages/publish\\.mjs is missing since the run started \\(recorded sha256 ${sha(PUBLISH_V1).slice(0, 12)}, now missing\\).*--allow-code-change$`));
    const forced = baton(d, ["approve", id, "review", "--allow-code-change", "--json"]);
    expect(JSON.parse(forced.stdout)).toMatchObject({ status: "failed", error: { stage: "publish" } });
    const changed = (await events(d, id)).find((e) => e.type === "code_changed");
    expect(changed).toMatchObject({ files: { "stages/publish.mjs": { from: sha(PUBLISH_V1), to: null } } });
  });

  it("resume after kill -9 with the code unchanged continues; an edited module is refused until --allow-code-change", async () => {
    const slow = `export const slow = async (ctx) => { await new Promise((r) => setTimeout(r, ctx.input.ms)); return ctx.input.value; };\n`;
    const d = project("killed", `baton: 1
name: killed
stages:
  first: { run: ./stages/slow.mjs#slow, input: { ms: 200, value: 1 } }
  wait: { needs: [first], run: ./stages/slow.mjs#slow, input: { ms: 1500, value: "{{ first + 1 }}" } }
output: wait
`, { "slow.mjs": slow });
    const killRun = async (): Promise<string> => {
      const child = spawn(process.execPath, [CLI, "--db", join(d, "baton.db"), "run", "pipe.yaml", "--json"], { cwd: d, stdio: "ignore" });
      const exited = new Promise((r) => child.on("exit", r));
      let id: string | undefined;
      for (let i = 0; i < 200 && !id; i++) {
        const runs = baton(d, ["runs", "--json", "--status", "running"]);
        if (runs.code === 0) id = JSON.parse(runs.stdout)[0]?.id;
        if (!id) await new Promise((r) => setTimeout(r, 50));
      }
      expect(id, "the run was never recorded").toBeDefined();
      child.kill("SIGKILL");
      await exited;
      return id!;
    };
    const id = await killRun();
    const resumed = baton(d, ["resume", id, "--json"]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ status: "succeeded", output: 2 });
    expect((await events(d, id)).some((e) => e.type === "code_changed")).toBe(false);

    const again = await killRun();
    writeFileSync(join(d, "stages", "slow.mjs"), slow.replace("return ctx.input.value;", "return ctx.input.value * 100;"));
    const refused = baton(d, ["resume", again]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("run: module stages/slow.mjs changed since the run started");
    const forced = baton(d, ["resume", again, "--allow-code-change", "--json"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout).status).toBe("succeeded");
    expect((await events(d, again)).filter((e) => e.type === "code_changed")).toHaveLength(1);
  }, 30_000);

  it("baton signal to a run paused on a wait: stage refuses changed code too; --allow-code-change continues it", async () => {
    const d = project("signal", `baton: 1
name: pinned-signal
stages:
  review: { wait: { signal: go } }
  publish: { needs: [review], run: ./stages/publish.mjs#publish, input: { text: "{{ review.n }}" } }
output: publish
`, { "publish.mjs": PUBLISH_V1 });
    const first = baton(d, ["run", "pipe.yaml", "--json"]);
    expect(first.code, first.stderr).toBe(3);
    const id = JSON.parse(first.stdout).id as string;
    writeFileSync(join(d, "stages", "publish.mjs"), PUBLISH_V2);
    const no = baton(d, ["signal", id, "go", "--data", '{"n":"s1"}']);
    expect(no.code).toBe(1);
    expect(no.stderr).toContain(`run ${id}: run: module stages/publish.mjs changed since the run started`);
    expect((await events(d, id)).some((e) => e.type === "signal")).toBe(false);
    const yes = baton(d, ["signal", id, "go", "--data", '{"n":"s1"}', "--allow-code-change", "--json"]);
    expect(yes.code, yes.stderr).toBe(0);
    expect(JSON.parse(yes.stdout)).toMatchObject({ status: "succeeded", output: "published s1 by v2" });
    expect((await events(d, id)).filter((e) => e.type === "code_changed")).toHaveLength(1);
  });

  it("runs without run: modules record no code and continue as before; rerun pins the code it starts with", async () => {
    const d = project("plain", `baton: 1
name: plain
stages:
  draft: { value: "'v1'" }
  review: { needs: [draft], approval: { message: "ok?" } }
output: review
`, {});
    const first = baton(d, ["run", "pipe.yaml", "--json"]);
    const id = JSON.parse(first.stdout).id as string;
    const started = (await events(d, id))[0]!;
    expect(started.type === "run_started" && "code" in started).toBe(false);
    expect(baton(d, ["approve", id, "review"]).code).toBe(0);

    const e = project("fork", APPROVAL, { "draft.mjs": DRAFT, "publish.mjs": PUBLISH_V1 });
    const run = JSON.parse(baton(e, ["run", "pipe.yaml", "--json"]).stdout).id as string;
    writeFileSync(join(e, "stages", "publish.mjs"), PUBLISH_V2);
    const fork = baton(e, ["rerun", run, "--from", "review", "--json"]);
    expect(fork.code, fork.stderr).toBe(3);
    const forked = (await events(e, JSON.parse(fork.stdout).id))[0]!;
    expect(forked.type === "run_started" && forked.code?.["stages/publish.mjs"]).toBe(sha(PUBLISH_V2));
    expect(readFileSync(join(e, "stages", "publish.mjs"), "utf8")).toBe(PUBLISH_V2);
  });
});
