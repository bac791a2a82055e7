/** Sub-pipelines: child runs with their own trace; cancel and resume propagate. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it, vi } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { Runtime, SqliteStore } from "../../src/index.js";
import { loadPlanFile } from "../../src/template/index.js";
import { planFromSource } from "../../src/api/run.js";

const PARENT = resolve("test/fixtures/pipeline/parent.yaml");
const db = () => join(mkdtempSync(join(tmpdir(), "baton-pipe-")), "p.db");

describe("pipeline stages", () => {
  it("run the child template as a child run; its output is the stage output; the parent names the child", async () => {
    const store = SqliteStore.open(db());
    const events: { id: string; e: BatonEvent }[] = [];
    const rt = new Runtime({ store, loadPlan: planFromSource, onEvents: (id, es) => es.forEach((e) => events.push({ id, e })) });
    const r = await (await rt.start(loadPlanFile(PARENT), { ms: 10 })).done;
    expect(r).toMatchObject({ status: "succeeded", output: { sub: { doubled: 40, slow: 41 }, each: [2, 4] } });
    const runs = await store.list();
    const children = runs.filter((x) => x.parentId === r.id);
    expect(children.map((c) => c.id).sort()).toEqual([`${r.id}~each-i0`, `${r.id}~each-i1`, `${r.id}~sub`]);
    expect(children.every((c) => c.status === "succeeded" && c.pipeline === "child")).toBe(true);
    const subDone = events.find((x) => x.id === r.id && x.e.type === "stage_succeeded" && x.e.stage === "sub")!.e;
    expect((subDone as { child_run?: string }).child_run).toBe(`${r.id}~sub`);
    await rt.close();
    await store.close();
  });

  it("cancelling the parent cancels the child; resuming the parent resumes the same child", async () => {
    const file = db();
    let store = SqliteStore.open(file);
    let rt = new Runtime({ store, loadPlan: planFromSource });
    const h = await rt.start(loadPlanFile(PARENT), { ms: 1500 });
    // Cancel once the child is in its slow stage (its first stage done), not after a guessed sleep.
    const child = `${h.id}~sub`;
    const slowStarted = async (): Promise<boolean> =>
      (await store.get(child)) !== undefined && (await store.load(child)).events.some((e) => e.type === "stage_started" && e.stage === "slow");
    await vi.waitFor(async () => expect(await slowStarted()).toBe(true), { timeout: 10_000, interval: 5 });
    await rt.cancel(h.id);
    expect((await h.done).status).toBe("cancelled");
    await vi.waitFor(async () => expect((await store.get(child))?.status).toBe("cancelled"), { timeout: 10_000, interval: 10 });
    await rt.close();
    await store.close();

    store = SqliteStore.open(file);
    rt = new Runtime({ store, loadPlan: planFromSource });
    const r = await (await rt.resume(h.id)).done;
    expect(r).toMatchObject({ status: "succeeded", output: { sub: { doubled: 40, slow: 41 } } });
    const { events } = await store.load(`${h.id}~sub`);
    // The child's first stage completed before the cancel and did not run again.
    expect(events.filter((e) => e.type === "stage_started" && e.stage === "double")).toHaveLength(1);
    expect(events.some((e) => e.type === "run_resumed")).toBe(true);
    expect((await store.list()).filter((x) => x.id.startsWith(`${h.id}~sub`))).toHaveLength(1);
    await rt.close();
    await store.close();
  });
});
