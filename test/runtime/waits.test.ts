/** Waiting with deadlines: approval timeouts, wait: stages and signals, durable sleep — across restarts, on a simulated clock. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { Runtime, SqliteStore } from "../../src/index.js";
import { compileSource } from "../../src/template/index.js";
import { planFromSource } from "../../src/api/run.js";

const dbFile = () => join(mkdtempSync(join(tmpdir(), "baton-waits-")), "w.db");
const plan = (text: string) => compileSource(text, { format: "yaml", baseDir: process.cwd() });
const T0 = Date.parse("2026-01-01T00:00:00Z");

const approvalPlan = (onTimeout?: string) => `
baton: 1
name: timed
stages:
  review:
    approval: { message: "ok?", timeout: 1h${onTimeout ? `, on_timeout: ${onTimeout}` : ""} }
  after: { value: "{ 'review': review }" }
output: after
`;

/** A process: a runtime over the store file with a clock the test moves. */
function proc(db: string, clock: { t: number }, events?: BatonEvent[]) {
  const store = SqliteStore.open(db);
  const rt = new Runtime({ store, loadPlan: planFromSource, now: () => clock.t, ...(events ? { onEvents: (_id: string, es: readonly BatonEvent[]) => void events.push(...es) } : {}) });
  return { store, rt, close: async () => { await rt.close(); await store.close(); } };
}

/** Let a driver finish the step it is in (a process stopping mid-run stops between steps). */
const settle = () => new Promise((r) => setTimeout(r, 30));

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
}

describe("approval timeout", () => {
  it("records its due_at; once it passed, a late answer is refused and a restarted process's resume records on_timeout (reject, the default)", async () => {
    const db = dbFile();
    const clock = { t: T0 };
    let p = proc(db, clock);
    const first = await (await p.rt.start(plan(approvalPlan()), {})).done;
    expect(first.status).toBe("waiting");
    const { events } = await p.store.load(first.id);
    expect(events.find((e) => e.type === "stage_waiting")).toMatchObject({ stage: "review", due_at: T0 + 3_600_000 });
    await p.close();

    clock.t = T0 + 3_600_000 + 1;
    p = proc(db, clock);
    await expect(p.rt.answer(first.id, "review", { approved: true })).rejects.toThrow(/too late/);
    const done = await (await p.rt.resume(first.id)).done;
    expect(done.status).toBe("failed");
    expect(done.error?.message).toContain("rejected by timeout: no answer within 1h");
    const log = (await p.store.load(first.id)).events;
    expect(log.find((e) => e.type === "approval")).toMatchObject({ approved: false, by: "timeout", at: clock.t });
    expect(log.some((e) => e.type === "approval" && e.by !== "timeout")).toBe(false);
    await p.close();
  });

  it("on_timeout: approve succeeds the stage; on_timeout: fail fails it with a timeout error", async () => {
    for (const [on, check] of [
      ["approve", (r: { status: string; output?: unknown }) => expect(r).toMatchObject({ status: "succeeded", output: { review: { approved: true, by: "timeout" } } })],
      ["fail", (r: { status: string; error?: { kind: string } }) => expect(r).toMatchObject({ status: "failed", error: { kind: "timeout" } })],
    ] as const) {
      const db = dbFile();
      const clock = { t: T0 };
      let p = proc(db, clock);
      const first = await (await p.rt.start(plan(approvalPlan(on)), {})).done;
      expect(first.status).toBe("waiting");
      await p.close();
      clock.t = T0 + 2 * 3_600_000;
      p = proc(db, clock);
      check((await (await p.rt.resume(first.id)).done) as never);
      await p.close();
    }
  });

  it("an answer before the deadline is taken as usual", async () => {
    const db = dbFile();
    const clock = { t: T0 };
    const p = proc(db, clock);
    const first = await (await p.rt.start(plan(approvalPlan("fail")), {})).done;
    clock.t = T0 + 60_000;
    const r = await p.rt.answer(first.id, "review", { approved: true, data: { ok: 1 } });
    expect(await r.handle!.done).toMatchObject({ status: "succeeded", output: { review: { ok: 1 } } });
    await p.close();
  });
});

const WAIT = `
baton: 1
name: signals
stages:
  gate: { approval: { message: "go?" } }
  review:
    needs: [gate]
    wait: { signal: review_done, timeout: 2h, on_timeout: continue }
  after: { value: "{ 'review': review }" }
output: after
`;

describe("wait: stages and signals", () => {
  it("a signal ends the wait and its data is the output; a signal for no wait: stage is refused", async () => {
    const db = dbFile();
    const clock = { t: T0 };
    const p = proc(db, clock);
    const first = await (await p.rt.start(plan(WAIT), {})).done;
    const r1 = await p.rt.answer(first.id, "gate", { approved: true });
    const paused = await r1.handle!.done;
    expect(paused).toMatchObject({ status: "waiting", error: { stage: "review" } });
    expect(paused.error?.message).toContain(`baton signal ${first.id} review_done`);
    await expect(p.rt.signal(first.id, "nope")).rejects.toThrow("has no wait: stage for signal 'nope' (its signals: review_done)");
    await expect(p.rt.answer(first.id, "review", { approved: true })).rejects.toThrow("waits for signal 'review_done'");
    const r2 = await p.rt.signal(first.id, "review_done", { data: { verdict: "lgtm" } });
    expect(await r2.handle!.done).toMatchObject({ status: "succeeded", output: { review: { verdict: "lgtm" } } });
    await p.close();
  });

  it("a signal sent before the stage waits is kept and taken when it does", async () => {
    const db = dbFile();
    const clock = { t: T0 };
    const events: BatonEvent[] = [];
    let p = proc(db, clock, events);
    const first = await (await p.rt.start(plan(WAIT), {})).done;
    expect(first.error?.stage).toBe("gate");
    const r1 = await p.rt.signal(first.id, "review_done", { data: 42 });
    expect(await r1.handle!.done).toMatchObject({ status: "waiting", error: { stage: "gate" } });
    await p.close();
    p = proc(db, clock, events);
    const r2 = await p.rt.answer(first.id, "gate", { approved: true });
    expect(await r2.handle!.done).toMatchObject({ status: "succeeded", output: { review: 42 } });
    const types = events.map((e) => e.type);
    expect(types.indexOf("signal")).toBeLessThan(types.findIndex((e, i) => e === "stage_waiting" && (events[i] as { stage: string }).stage === "review"));
    expect(events.find((e) => e.type === "approval" && e.stage === "review")).toMatchObject({ by: "signal", data: 42 });
    await p.close();
  });

  it("no signal by the deadline: on_timeout continue gives null (after a restart)", async () => {
    const db = dbFile();
    const clock = { t: T0 };
    let p = proc(db, clock);
    const first = await (await p.rt.start(plan(WAIT), {})).done;
    expect((await (await p.rt.answer(first.id, "gate", { approved: true })).handle!.done).status).toBe("waiting");
    await p.close();
    clock.t = T0 + 3 * 3_600_000;
    p = proc(db, clock);
    expect(await (await p.rt.resume(first.id)).done).toMatchObject({ status: "succeeded", output: { review: null } });
    await p.close();
  });
});

describe("durable sleep", () => {
  it("sleep: the run keeps running (not waiting); a restarted process resumes it and it fires once the time came", async () => {
    const db = dbFile();
    const clock = { t: T0 };
    const events: BatonEvent[] = [];
    let p = proc(db, clock, events);
    const h = await p.rt.start(plan(`
baton: 1
name: nap
stages:
  nap: { sleep: 10m }
  after: { value: "nap" }
output: after
`), {});
    await until(() => events.some((e) => e.type === "stage_waiting"));
    expect(events.find((e) => e.type === "stage_waiting")).toMatchObject({ stage: "nap", sleep: true, due_at: T0 + 600_000 });
    expect(events.some((e) => e.type === "run_waiting")).toBe(false);
    expect((await p.store.get(h.id))?.status).toBe("running");
    await settle();
    await p.close(); // the process stops mid-sleep

    clock.t = T0 + 5 * 60_000; // too early: the resumed run sleeps on
    p = proc(db, clock, events);
    await p.rt.resume(h.id);
    await until(() => events.filter((e) => e.type === "run_resumed").length === 1);
    await settle();
    expect(events.some((e) => e.type === "approval")).toBe(false);
    await p.close();

    clock.t = T0 + 11 * 60_000;
    p = proc(db, clock, events);
    const done = await (await p.rt.resume(h.id)).done;
    expect(done).toMatchObject({ status: "succeeded", output: { woke_at: new Date(T0 + 600_000).toISOString() } });
    expect(events.find((e) => e.type === "approval")).toMatchObject({ stage: "nap", by: "timer" });
    await p.close();
  });

  it("until: an expression's time; a bad value fails the stage clearly", async () => {
    const db = dbFile();
    const clock = { t: T0 };
    const events: BatonEvent[] = [];
    let p = proc(db, clock, events);
    const text = `
baton: 1
name: later
inputs: { at: { type: string } }
stages:
  wake: { until: "inputs.at" }
output: wake
`;
    const h = await p.rt.start(plan(text), { at: "2026-01-01T01:00:00Z" });
    await until(() => events.some((e) => e.type === "stage_waiting"));
    expect(events.find((e) => e.type === "stage_waiting")).toMatchObject({ sleep: true, due_at: Date.parse("2026-01-01T01:00:00Z") });
    await settle();
    await p.close();
    clock.t = T0 + 2 * 3_600_000;
    p = proc(db, clock);
    expect(await (await p.rt.resume(h.id)).done).toMatchObject({ status: "succeeded", output: { woke_at: "2026-01-01T01:00:00.000Z" } });
    const bad = await (await p.rt.start(plan(text), { at: "soon" })).done;
    expect(bad).toMatchObject({ status: "failed" });
    expect(bad.error?.message).toContain("until must give an ISO time or epoch ms, got \"soon\"");
    await p.close();
  });

  it("an approval timeout fires in the live process while other work keeps the run going", async () => {
    const store = SqliteStore.open(dbFile());
    const events: BatonEvent[] = [];
    const rt = new Runtime({ store, loadPlan: planFromSource, onEvents: (_id, es) => void events.push(...es) });
    const done = await (await rt.start(plan(`
baton: 1
name: live-timeout
stages:
  review: { approval: { message: "ok?", timeout: 30ms, on_timeout: approve } }
  nap: { sleep: 300ms }
  after: { value: "{ 'review': review, 'nap': nap }" }
output: after
`), {})).done;
    expect(done).toMatchObject({ status: "succeeded", output: { review: { approved: true, by: "timeout" } } });
    const answers = events.filter((e) => e.type === "approval").map((e) => (e as { stage: string; by?: string }).stage + ":" + (e as { by?: string }).by);
    expect(answers).toEqual(["review:timeout", "nap:timer"]);
    expect(events.some((e) => e.type === "run_waiting")).toBe(false);
    await rt.close();
    await store.close();
  });

  it("a short sleep fires in the live process (its driver's timer)", async () => {
    const store = SqliteStore.open(dbFile());
    const rt = new Runtime({ store, loadPlan: planFromSource });
    const done = await (await rt.start(plan(`
baton: 1
name: short
stages:
  nap: { sleep: 20ms }
  after: { value: "'woke'" }
output: after
`), {})).done;
    expect(done).toMatchObject({ status: "succeeded", output: "woke" });
    await rt.close();
    await store.close();
  });
});
