/**
 * The cron scheduler of `baton serve` on a simulated clock: fires start runs of the registered
 * pipeline's latest version, each fire once (across ticks, restarts and servers sharing a
 * store), missed fires follow the trigger's catch-up policy.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Runtime } from "../../src/runtime/runtime.js";
import { planFromSource } from "../../src/api/run.js";
import { Scheduler, CRON_STATE_KIND } from "../../src/serve/scheduler.js";
import { deploy } from "../../src/registry/pipelines.js";
import { MemoryStore } from "../../src/store/memory.js";
import { RunStarter } from "../../src/ui/runs.js";

const T = (iso: string): number => Date.parse(iso);

function template(catchUp: string): string {
  const dir = mkdtempSync(join(tmpdir(), "baton-cron-"));
  const file = join(dir, "hourly.yaml");
  writeFileSync(file, `baton: 1
name: hourly
inputs:
  n: { type: integer, default: 0 }
triggers:
  - cron: "0 * * * *"
    catch_up: ${catchUp}
    inputs: { n: 7 }
stages:
  double: { value: "inputs.n * 2" }
output: double
`);
  return file;
}

const runtimes: Runtime[] = [];
afterEach(async () => {
  for (const r of runtimes.splice(0)) await r.close();
});

function scheduler(store: MemoryStore, clock: { now: number }): Scheduler {
  const runtime = new Runtime({ store, loadPlan: planFromSource });
  runtimes.push(runtime);
  return new Scheduler({ store, starter: new RunStarter(store, () => runtime), now: () => clock.now });
}

describe("cron scheduler", () => {
  it("starts one run per fire with the trigger's inputs, and a second server sharing the store starts none", async () => {
    const store = new MemoryStore();
    const clock = { now: T("2026-03-01T00:10:00Z") };
    await deploy(store, template("latest"), { now: () => clock.now });
    const a = scheduler(store, clock);
    const b = scheduler(store, clock);
    expect(await a.tick()).toEqual([]);
    clock.now = T("2026-03-01T00:59:59Z");
    expect(await a.tick()).toEqual([]);
    clock.now = T("2026-03-01T01:00:02Z");
    const [fired, ...more] = await a.tick();
    expect(more).toEqual([]);
    expect(fired).toMatchObject({ pipeline: "hourly", trigger: 0, fire: "2026-03-01T01:00:00.000Z", deduplicated: false });
    // The other server's first tick sees the same fire (its state says so too): deduplicated by the fire's key.
    await store.deleteRecord(CRON_STATE_KIND, "hourly:0");
    const again = await b.tick();
    expect(again).toMatchObject([{ id: fired!.id, deduplicated: true }]);
    expect(await a.tick()).toEqual([]);
    const runs = await store.list({ pipeline: "hourly" });
    expect(runs).toHaveLength(1);
    const { events } = await store.load(fired!.id);
    expect(events[0]).toMatchObject({ type: "run_started", inputs: { n: 7 } });
  });

  it("after downtime: latest starts one run for the newest missed fire; a restarted scheduler goes on from the recorded state", async () => {
    const store = new MemoryStore();
    const clock = { now: T("2026-03-01T00:10:00Z") };
    await deploy(store, template("latest"), { now: () => clock.now });
    expect(await scheduler(store, clock).tick()).toEqual([]);
    clock.now = T("2026-03-01T05:30:00Z"); // down from 00:10 to 05:30: five fires missed
    const fired = await scheduler(store, clock).tick();
    expect(fired.map((f) => f.fire)).toEqual(["2026-03-01T05:00:00.000Z"]);
    clock.now = T("2026-03-01T07:10:00Z");
    expect((await scheduler(store, clock).tick()).map((f) => f.fire)).toEqual(["2026-03-01T07:00:00.000Z"]);
  });

  it("after downtime: all starts every missed fire, oldest first; none starts none that is older than the grace", async () => {
    const all = new MemoryStore();
    const clock = { now: T("2026-03-01T00:10:00Z") };
    await deploy(all, template("all"), { now: () => clock.now });
    clock.now = T("2026-03-01T04:00:30Z");
    expect((await scheduler(all, clock).tick()).map((f) => f.fire.slice(11, 16))).toEqual(["01:00", "02:00", "03:00", "04:00"]);
    expect(await all.list({ pipeline: "hourly" })).toHaveLength(4);

    const none = new MemoryStore();
    clock.now = T("2026-03-01T00:10:00Z");
    await deploy(none, template("none"), { now: () => clock.now });
    clock.now = T("2026-03-01T04:05:00Z");
    expect(await scheduler(none, clock).tick()).toEqual([]);
    clock.now = T("2026-03-01T05:00:20Z");
    expect((await scheduler(none, clock).tick()).map((f) => f.fire)).toEqual(["2026-03-01T05:00:00.000Z"]);
  });

  it("a run started by a fire finishes with the trigger's inputs", async () => {
    const store = new MemoryStore();
    const clock = { now: T("2026-03-01T00:59:00Z") };
    await deploy(store, template("latest"), { now: () => clock.now });
    const runtime = new Runtime({ store, loadPlan: planFromSource });
    runtimes.push(runtime);
    const s = new Scheduler({ store, starter: new RunStarter(store, () => runtime), now: () => clock.now });
    clock.now = T("2026-03-01T01:00:01Z");
    const [f] = await s.tick();
    const { events } = await store.load(f!.id);
    // value: stages finish within the start's first step
    for (let i = 0; i < 50 && !(await store.load(f!.id)).events.some((e) => e.type === "run_finished"); i++) await new Promise((r) => setTimeout(r, 10));
    const fin = (await store.load(f!.id)).events.find((e) => e.type === "run_finished");
    expect(events[0]?.type).toBe("run_started");
    expect(fin).toMatchObject({ status: "succeeded", output: 14 });
  });
});
