/** `baton signal` end to end: real processes, a real SQLite file. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "baton-signal-"));
const db = join(dir, "s.db");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

function baton(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, "--db", db, ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("baton signal", () => {
  it("a run waits (exit 3) for its signal; a wrong name and bad --data are refused; the signal's data is the stage's output", () => {
    const run = baton(["run", "test/fixtures/cli/signal.yaml"]);
    expect(run.code).toBe(3);
    const id = /run (\S+) waiting/.exec(run.stderr)?.[1];
    expect(id).toBeDefined();
    expect(run.stderr).toContain(`waits for signal 'review_done': send it with baton signal ${id} review_done`);
    expect(run.stderr).not.toContain("baton approve");

    const wrong = baton(["signal", id!, "nope"]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("has no wait: stage for signal 'nope' (its signals: review_done)");
    expect(baton(["signal", id!, "review_done", "--data", "{bad"]).code).toBe(2);
    const approve = baton(["approve", id!, "review"]);
    expect(approve.code).toBe(2);
    expect(approve.stderr).toContain("waits for signal 'review_done'");

    const sent = baton(["signal", id!, "review_done", "--data", '{"verdict":"lgtm"}', "--json"]);
    expect(sent.stderr).toContain(`signal 'review_done' sent to run ${id}`);
    expect(sent.code).toBe(0);
    expect(JSON.parse(sent.stdout)).toMatchObject({ status: "succeeded", output: { draft: "v1", review: { verdict: "lgtm" } } });
    const again = baton(["signal", id!, "review_done"]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("already succeeded: it takes no signals");
  });
});
