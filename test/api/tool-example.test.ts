/** examples/tool-agent runs offline against the fake provider, as the README says. */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";

describe("examples/tool-agent", () => {
  it("node examples/tool-agent/run-offline.mjs --json: three turns, four tool calls, a JSON report", async () => {
    const db = join(mkdtempSync(join(tmpdir(), "baton-toolex-")), "baton.db");
    const r = spawnSync(process.execPath, [resolve("examples/tool-agent/run-offline.mjs"), "--json"], { encoding: "utf8", env: { ...process.env, BATON_DB: db } });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { id: string; status: string; output: { sources: string[]; summary: string } };
    expect(out.status).toBe("succeeded");
    expect(out.output.sources).toEqual(["https://tides.example/moon", "https://tides.example/spring"]);
    expect(r.stderr).toContain("the fake model answered 3 requests");
    const store = SqliteStore.open(db);
    try {
      const { events } = await store.load(out.id);
      const steps = events.filter((e) => e.type === "step_recorded").map((e) => (e as { name: string }).name);
      expect(steps.filter((n) => n.startsWith("turn:"))).toEqual(["turn:1", "turn:2", "turn:3"]);
      expect(steps.filter((n) => /^call:[^/]+$/.test(n)).sort()).toEqual(["call:read_1", "call:read_2", "call:search_1"]);
      expect(steps.filter((n) => n.endsWith("/fetch")).sort()).toEqual(["call:read_1/fetch", "call:read_2/fetch"]);
    } finally {
      await store.close();
    }
  });
});
