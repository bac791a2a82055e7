/**
 * `GET /api/runs` says what a waiting run waits for (issue 15.5): an approval with its deadline,
 * an escalating route, several stages at once (the run's own `waiting` first), and why a
 * cancelled run stopped. Runs made by the real runtime against a temp SQLite store.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { req, setup, startFile, type Env } from "./helpers.js";

let env: Env;
let dir: string;
beforeAll(async () => {
  env = await setup();
  dir = mkdtempSync(join(tmpdir(), "baton-ui-waits-"));
});
afterAll(async () => {
  await env?.close();
});

const write = (name: string, lines: string[]): string => {
  const file = join(dir, name);
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
};

async function row(id: string): Promise<{ status: string; error?: unknown; waiting_for?: Record<string, unknown>[] }> {
  const list = (await req(env.ui, "/api/runs")).json as { id: string; status: string }[];
  return list.find((r) => r.id === id)! as never;
}

describe("GET /api/runs: error and waiting_for", () => {
  it("an approval with a timeout: kind approval, its message and deadline", async () => {
    const h = await startFile(env.runtime, write("approval.yaml", ["baton: 1", "name: deadline", "stages:",
      '  ask: { approval: { message: "Ship it?", timeout: 2h, on_timeout: reject } }']));
    expect((await h.done).status).toBe("waiting");
    const r = await row(h.id);
    expect(r.waiting_for).toHaveLength(1);
    expect(r.waiting_for![0]).toMatchObject({ kind: "approval", stage: "ask", visit: 1, message: "Ship it?" });
    const due = Date.parse(r.waiting_for![0]!["due_at"] as string);
    const started = Date.parse(((await req(env.ui, `/api/runs/${h.id}`)).json as { run: { started_at: string } }).run.started_at);
    expect(due - started).toBeGreaterThanOrEqual(2 * 3600_000);
    expect(due - started).toBeLessThan(2 * 3600_000 + 60_000);
    expect(r.error).toBeUndefined();
  });

  it("an escalating route: kind escalation with the route's message; the stage itself succeeded", async () => {
    const h = await startFile(env.runtime, write("escalate.yaml", ["baton: 1", "name: escalates", "stages:",
      "  check:", '    value: "1"', "    routes:", '      - { when: "check = 1", escalate: "a human should look at check" }',
      '  after: { needs: [check], value: "2" }']));
    expect((await h.done).status).toBe("waiting");
    expect((await row(h.id)).waiting_for).toEqual([{ kind: "escalation", stage: "check", message: "a human should look at check" }]);
  });

  it("two stages waiting: one entry each, the run's own waiting first", async () => {
    const h = await startFile(env.runtime, write("two.yaml", ["baton: 1", "name: two-waits", "stages:",
      '  a: { approval: { message: "first?" } }', "  b: { wait: { signal: go } }"]));
    expect((await h.done).status).toBe("waiting");
    const r = await row(h.id);
    const detail = (await req(env.ui, `/api/runs/${h.id}`)).json as { run: { waiting: { stage: string } } };
    expect(r.waiting_for!.map((w) => `${w["kind"]}:${w["stage"]}`).sort()).toEqual(["approval:a", "signal:b"]);
    expect(r.waiting_for![0]!["stage"]).toBe(detail.run.waiting.stage);
    expect(r.waiting_for!.find((w) => w["kind"] === "signal")).toMatchObject({ signal: "go" });
  });

  it("a cancelled run: its error; a finished one: neither field", async () => {
    const h = await startFile(env.runtime, write("cancel.yaml", ["baton: 1", "name: cancels", "stages:", '  a: { approval: { message: "x" } }']));
    await h.done;
    await env.runtime.cancel(h.id, "changed my mind");
    const r = await row(h.id);
    expect(r.status).toBe("cancelled");
    expect(r.error).toMatchObject({ kind: "cancelled" });
    expect(r.waiting_for).toBeUndefined();
  });
});
