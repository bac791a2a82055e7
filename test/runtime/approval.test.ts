/** Human decisions: approval stages, escalating routes, on_error escalate — across process restarts. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { Runtime, SqliteStore } from "../../src/index.js";
import { compileSource } from "../../src/template/index.js";
import { planFromSource } from "../../src/api/run.js";

const dbFile = () => join(mkdtempSync(join(tmpdir(), "baton-appr-")), "a.db");

function plan(text: string) {
  return compileSource(text, { format: "yaml", baseDir: process.cwd() });
}

const REVIEW = `
baton: 1
name: review
stages:
  draft: { value: "'text v1'" }
  side: { value: "'side done'" }
  review:
    needs: [draft]
    approval: { message: "Publish {{ draft }}?" }
  publish: { value: "{ 'text': draft, 'review': review, 'side': side }" }
output: publish
`;

describe("approval stages", () => {
  it("pause the run (waiting) once nothing else can progress; approve --data survives a restart and becomes the output", async () => {
    const db = dbFile();
    const events: BatonEvent[] = [];
    let store = SqliteStore.open(db);
    let rt = new Runtime({ store, loadPlan: planFromSource, onEvents: (_id, es) => events.push(...es) });
    const first = await (await rt.start(plan(REVIEW), {})).done;
    expect(first.status).toBe("waiting");
    expect(first.error).toMatchObject({ stage: "review", message: "Publish text v1?" });
    // The independent branch ran before the pause.
    expect(events.some((e) => e.type === "stage_succeeded" && e.stage === "side")).toBe(true);
    expect(events.find((e) => e.type === "stage_waiting")).toMatchObject({ stage: "review", message: "Publish text v1?" });
    await rt.close();
    await store.close();

    // A new process answers.
    store = SqliteStore.open(db);
    expect((await store.get(first.id))?.status).toBe("waiting");
    rt = new Runtime({ store, loadPlan: planFromSource });
    await expect(rt.answer(first.id, "draft", { approved: true })).rejects.toThrow("stage 'draft' is not waiting for a decision (waiting: review)");
    const r = await rt.answer(first.id, "review", { approved: true, data: { ok: true, by: "ana" } });
    const done = await r.handle!.done;
    expect(done).toMatchObject({ status: "succeeded", output: { text: "text v1", review: { ok: true, by: "ana" }, side: "side done" } });
    await rt.close();
    await store.close();
  });

  it("a rejection fails the stage (and the run, by default)", async () => {
    const store = SqliteStore.open(dbFile());
    const rt = new Runtime({ store, loadPlan: planFromSource });
    const first = await (await rt.start(plan(REVIEW), {})).done;
    const r = await rt.answer(first.id, "review", { approved: false, comment: "not yet", by: "bo" });
    const done = await r.handle!.done;
    expect(done.status).toBe("failed");
    expect(done.error).toMatchObject({ stage: "review", message: "rejected by bo: not yet" });
    await rt.close();
    await store.close();
  });
});

describe("escalations", () => {
  it("an escalating route holds the stage until a human answers; approved, the run continues", async () => {
    const store = SqliteStore.open(dbFile());
    const rt = new Runtime({ store, loadPlan: planFromSource });
    const p = plan(`
baton: 1
name: esc-route
stages:
  score: { value: "0.4" }
  gate: { value: "score", routes: [{ when: "gate < 0.5", escalate: "low score: check it" }] }
  after: { value: "gate * 2" }
output: after
`);
    const first = await (await rt.start(p, {})).done;
    expect(first).toMatchObject({ status: "waiting", error: { stage: "gate", message: "low score: check it" } });
    const done = await (await rt.answer(first.id, "gate", { approved: true })).handle!.done;
    expect(done).toMatchObject({ status: "succeeded", output: 0.8 });
    await rt.close();
    await store.close();
  });

  it("on_error escalate: a human's data stands in for the failed stage; a rejection fails the run", async () => {
    const text = `
baton: 1
name: esc-error
stages:
  fetch: { value: "$error('upstream down')", on_error: escalate }
  use: { value: "{ 'got': fetch }" }
output: use
`;
    const store = SqliteStore.open(dbFile());
    const rt = new Runtime({ store, loadPlan: planFromSource });
    const a = await (await rt.start(plan(text), {})).done;
    expect(a.status).toBe("waiting");
    expect(a.error?.message).toMatch(/stage 'fetch' failed .*upstream down.*approve/);
    const ok = await (await rt.answer(a.id, "fetch", { approved: true, data: [1, 2] })).handle!.done;
    expect(ok).toMatchObject({ status: "succeeded", output: { got: [1, 2] } });

    const b = await (await rt.start(plan(text), {})).done;
    const no = await (await rt.answer(b.id, "fetch", { approved: false })).handle!.done;
    expect(no.status).toBe("failed");
    expect(no.error).toMatchObject({ stage: "fetch", kind: "rejected" });
    await rt.close();
    await store.close();
  });
});
