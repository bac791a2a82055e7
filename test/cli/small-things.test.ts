/** Small things users expect from the CLI (issue 15 item 8), through the built CLI and a real SQLite file. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";

const CLI = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "baton-small-"));
const db = join(dir, "s.db");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

function baton(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(process.execPath, [CLI, "--db", db, ...args], { encoding: "utf8", env: { ...env, NO_COLOR: "1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("small things", () => {
  it("runs --status with an unknown status, or a bad --limit, is a usage error naming the valid values", () => {
    const bad = baton(["runs", "--status", "bogus"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--status must be one of running, waiting, succeeded, failed, cancelled, got 'bogus'");
    const limit = baton(["runs", "--limit", "zero"]);
    expect(limit.code).toBe(2);
    expect(limit.stderr).toContain("--limit must be a whole number from 1 up, got 'zero'");
    expect(baton(["runs", "--status", "waiting"]).code).toBe(0);
  });

  it("an approval without $USER and $USERNAME records the OS account's name", async () => {
    const run = baton(["run", "test/fixtures/cli/approve.yaml"]);
    expect(run.code).toBe(3);
    const id = /run (\S+) waiting/.exec(run.stderr)?.[1];
    expect(id).toBeDefined();
    const env = { ...process.env };
    delete env.USER;
    delete env.USERNAME;
    const ok = baton(["approve", id!, "review"], env);
    expect(ok.code, ok.stderr).toBe(0);
    const store = SqliteStore.open(db);
    try {
      const { events } = await store.load(id!);
      expect(events.find((e) => e.type === "approval")).toMatchObject({ approved: true, by: userInfo().username });
    } finally {
      await store.close();
    }
  });
});
