/**
 * The store conformance suite, written once and run against every adapter of the port.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { BatonEvent, RunStarted } from "../../src/engine/events.js";
import { ConflictError, RunNotFoundError } from "../../src/store/port.js";
import type { Store } from "../../src/store/port.js";

/** 2026-01-01T00:00:00.000Z */
export const T0 = Date.UTC(2026, 0, 1);

/** Small builders of valid events. */
export const ev = {
  started: (runId: string, at = T0, extra: Partial<RunStarted> = {}): RunStarted => ({
    type: "run_started",
    at,
    run_id: runId,
    pipeline: "p",
    plan_hash: "h1",
    source: { format: "yaml", text: "stages: []" },
    inputs: { topic: "tides" },
    seed: 42,
    ...extra,
  }),
  stageStarted: (stage: string, at = T0 + 1): BatonEvent => ({
    type: "stage_started",
    at,
    stage,
    visit: 1,
    attempt: 1,
    queued_ms: 0,
  }),
  succeeded: (stage: string, output: unknown, at = T0 + 2, input?: unknown): BatonEvent => ({
    type: "stage_succeeded",
    at,
    stage,
    visit: 1,
    attempt: 1,
    ...(input !== undefined ? { input } : {}),
    output,
  }),
  waiting: (at = T0 + 3): BatonEvent => ({ type: "run_waiting", at, stage: "approve", message: "ok?" }),
  resumed: (at = T0 + 4): BatonEvent => ({ type: "run_resumed", at }),
  finished: (status: "succeeded" | "failed" | "cancelled", at = T0 + 5, output?: unknown): BatonEvent => ({
    type: "run_finished",
    at,
    status,
    ...(output !== undefined ? { output } : {}),
  }),
};

/** Create run `id` (pipeline `pipeline`, started at `at`) with just its run_started event. */
export async function newRun(store: Store, id: string, at = T0, pipeline = "p", parentId?: string): Promise<number> {
  return store.create(
    { id, pipeline, planHash: "h1", ...(parentId !== undefined ? { parentId } : {}) },
    [ev.started(id, at, { pipeline, ...(parentId !== undefined ? { parent_id: parentId } : {}) })],
  );
}

/** Register the conformance suite for the adapter `name`; `make` returns a fresh, empty store. */
export function storeConformance(name: string, make: () => Promise<Store> | Store): void {
  describe(`${name} store conformance`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      vi.useRealTimers();
      await store.close();
    });

    describe("create, append, load", () => {
      it("creates a run and loads its row and log", async () => {
        const events = [ev.started("r1"), ev.stageStarted("a")];
        expect(await store.create({ id: "r1", pipeline: "p", planHash: "h1" }, events)).toBe(2);
        const { run, events: loaded } = await store.load("r1");
        expect(run).toEqual({
          id: "r1",
          pipeline: "p",
          planHash: "h1",
          status: "running",
          startedAt: "2026-01-01T00:00:00.000Z",
          seq: 2,
        });
        expect(loaded).toEqual(events);
        expect(await store.get("r1")).toEqual(run);
      });

      it("keeps the parent id", async () => {
        await newRun(store, "parent");
        await newRun(store, "child", T0 + 10, "p", "parent");
        expect((await store.get("child"))?.parentId).toBe("parent");
        expect((await store.get("parent"))?.parentId).toBeUndefined();
      });

      it("refuses a duplicate id and a log that does not start with run_started", async () => {
        await newRun(store, "r1");
        await expect(newRun(store, "r1")).rejects.toThrow(/already exists/);
        await expect(store.create({ id: "r2", pipeline: "p", planHash: "h" }, [ev.stageStarted("a")])).rejects.toThrow(
          /run_started/,
        );
        await expect(store.create({ id: "r3", pipeline: "p", planHash: "h" }, [])).rejects.toThrow(/run_started/);
        expect(await store.get("r2")).toBeUndefined();
      });

      it("numbers events 1, 2, … and keeps their order and content", async () => {
        expect(await newRun(store, "r1")).toBe(1);
        expect(await store.append("r1", [ev.stageStarted("a")], 1)).toBe(2);
        const batch = [ev.succeeded("a", { text: "hi", n: [1, 2, { deep: null }] }), ev.stageStarted("b", T0 + 3)];
        expect(await store.append("r1", batch, 2)).toBe(4);
        const { run, events } = await store.load("r1");
        expect(run.seq).toBe(4);
        expect(events.map((e) => e.type)).toEqual(["run_started", "stage_started", "stage_succeeded", "stage_started"]);
        expect(events[2]).toEqual(batch[0]);
        expect(events[3]).toEqual(batch[1]);
      });

      it("treats an empty append as a sequence check", async () => {
        await newRun(store, "r1");
        expect(await store.append("r1", [], 1)).toBe(1);
        await expect(store.append("r1", [], 0)).rejects.toBeInstanceOf(ConflictError);
      });

      it("hands out copies of the log", async () => {
        await newRun(store, "r1");
        const first = await store.load("r1");
        first.events.push(ev.stageStarted("x"));
        (await store.eventsAfter("r1", 0)).pop();
        expect((await store.load("r1")).events).toHaveLength(1);
      });

      it("round-trips payloads, including large ones and ones shaped like blob references", async () => {
        await newRun(store, "r1");
        const big = { text: "x".repeat(100_000), list: Array.from({ length: 500 }, (_, i) => ({ i, s: "é✓" })) };
        const refLike = { $blob: "0".repeat(64) };
        await store.append("r1", [ev.succeeded("a", big, T0 + 2, refLike), ev.succeeded("b", refLike), ev.finished("succeeded", T0 + 9, big)], 1);
        const { events } = await store.load("r1");
        expect(events[1]).toEqual(ev.succeeded("a", big, T0 + 2, refLike));
        expect(events[2]).toEqual(ev.succeeded("b", refLike));
        expect(events[3]).toEqual(ev.finished("succeeded", T0 + 9, big));
      });
    });

    describe("optimistic concurrency", () => {
      it("throws ConflictError on a stale expectedSeq and writes nothing", async () => {
        await newRun(store, "r1");
        await store.append("r1", [ev.stageStarted("a")], 1);
        const err = await store.append("r1", [ev.finished("failed")], 1).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ConflictError);
        expect(err).toMatchObject({ name: "ConflictError", runId: "r1", expectedSeq: 1, actualSeq: 2 });
        const { run, events } = await store.load("r1");
        expect(run.seq).toBe(2);
        expect(run.status).toBe("running");
        expect(run.endedAt).toBeUndefined();
        expect(events).toHaveLength(2);
      });

      it("throws ConflictError on a sequence number from the future", async () => {
        await newRun(store, "r1");
        await expect(store.append("r1", [ev.stageStarted("a")], 5)).rejects.toMatchObject({ actualSeq: 1 });
        expect((await store.load("r1")).events).toHaveLength(1);
      });

      it("lets exactly one of two appenders with the same expectedSeq win", async () => {
        await newRun(store, "r1");
        const results = await Promise.allSettled([
          store.append("r1", [ev.stageStarted("a")], 1),
          store.append("r1", [ev.stageStarted("b")], 1),
        ]);
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        const rejected = results.filter((r) => r.status === "rejected");
        expect(rejected).toHaveLength(1);
        expect((rejected[0] as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
        expect((await store.load("r1")).events).toHaveLength(2);
      });
    });

    describe("unknown runs", () => {
      it("throws RunNotFoundError where a run is required", async () => {
        await expect(store.append("nope", [ev.stageStarted("a")], 0)).rejects.toBeInstanceOf(RunNotFoundError);
        await expect(store.load("nope")).rejects.toBeInstanceOf(RunNotFoundError);
        await expect(store.eventsAfter("nope", 0)).rejects.toBeInstanceOf(RunNotFoundError);
        await expect(store.claim("nope", "me", 1000)).rejects.toBeInstanceOf(RunNotFoundError);
        await expect(store.signal("nope", "cancel")).rejects.toBeInstanceOf(RunNotFoundError);
        await expect(store.takeSignals("nope")).rejects.toBeInstanceOf(RunNotFoundError);
        await expect(store.load("nope")).rejects.toMatchObject({ name: "RunNotFoundError", runId: "nope" });
      });

      it("answers undefined or does nothing where a run is optional", async () => {
        expect(await store.get("nope")).toBeUndefined();
        expect(await store.leaseHolder("nope")).toBeUndefined();
        await expect(store.release("nope", "me")).resolves.toBeUndefined();
      });
    });

    describe("run status from events", () => {
      it("follows run_waiting, run_resumed and run_finished", async () => {
        await newRun(store, "r1");
        await store.append("r1", [ev.waiting()], 1);
        expect(await store.get("r1")).toMatchObject({ status: "waiting", seq: 2 });
        await store.append("r1", [ev.resumed()], 2);
        expect(await store.get("r1")).toMatchObject({ status: "running", seq: 3 });
        await store.append("r1", [ev.stageStarted("a"), ev.finished("succeeded", T0 + 60_000)], 3);
        const run = await store.get("r1");
        expect(run).toMatchObject({ status: "succeeded", seq: 5, endedAt: "2026-01-01T00:01:00.000Z" });
      });

      it("clears endedAt when a finished run resumes, and the last event of a batch wins", async () => {
        await newRun(store, "r1");
        await store.append("r1", [ev.finished("failed")], 1);
        expect((await store.get("r1"))?.endedAt).toBeDefined();
        await store.append("r1", [ev.resumed()], 2);
        const resumed = await store.get("r1");
        expect(resumed?.status).toBe("running");
        expect(resumed).not.toHaveProperty("endedAt");
        await store.append("r1", [ev.waiting(), ev.resumed(), ev.finished("cancelled", T0 + 7)], 3);
        expect(await store.get("r1")).toMatchObject({ status: "cancelled", endedAt: new Date(T0 + 7).toISOString() });
      });

      it("derives the status of a run created with a finished log", async () => {
        await store.create({ id: "r1", pipeline: "p", planHash: "h" }, [ev.started("r1"), ev.finished("succeeded", T0 + 1)]);
        expect(await store.get("r1")).toMatchObject({ status: "succeeded", endedAt: new Date(T0 + 1).toISOString() });
      });
    });

    describe("list", () => {
      it("lists newest first, ties broken by id descending", async () => {
        await newRun(store, "b", T0 + 10);
        await newRun(store, "a", T0 + 20);
        await newRun(store, "c", T0 + 10);
        await newRun(store, "d", T0);
        expect((await store.list()).map((r) => r.id)).toEqual(["a", "c", "b", "d"]);
      });

      it("filters by status and pipeline and applies the limit", async () => {
        await newRun(store, "r1", T0 + 1, "alpha");
        await newRun(store, "r2", T0 + 2, "beta");
        await newRun(store, "r3", T0 + 3, "alpha");
        await newRun(store, "r4", T0 + 4, "alpha");
        await store.append("r1", [ev.finished("succeeded")], 1);
        await store.append("r3", [ev.waiting()], 1);
        const ids = async (f: Parameters<Store["list"]>[0]) => (await store.list(f)).map((r) => r.id);
        expect(await ids({ status: "running" })).toEqual(["r4", "r2"]);
        expect(await ids({ status: "succeeded" })).toEqual(["r1"]);
        expect(await ids({ pipeline: "alpha" })).toEqual(["r4", "r3", "r1"]);
        expect(await ids({ pipeline: "alpha", status: "waiting" })).toEqual(["r3"]);
        expect(await ids({ pipeline: "gamma" })).toEqual([]);
        expect(await ids({ limit: 2 })).toEqual(["r4", "r3"]);
        expect(await ids({ pipeline: "alpha", limit: 1 })).toEqual(["r4"]);
      });

      it("returns at most 100 runs by default", async () => {
        for (let i = 0; i < 105; i++) await newRun(store, `run-${String(i).padStart(3, "0")}`, T0 + i);
        const runs = await store.list();
        expect(runs).toHaveLength(100);
        expect(runs[0]?.id).toBe("run-104");
      });
    });

    describe("resolveId", () => {
      beforeEach(async () => {
        for (const id of ["ab", "abcd1111", "abcd2222", "abcd2233", "ffff0000"]) await newRun(store, id);
      });

      it("resolves an exact id first, even a short one or one that prefixes others", async () => {
        expect(await store.resolveId("ab")).toBe("ab");
        expect(await store.resolveId("abcd1111")).toBe("abcd1111");
      });

      it("resolves a unique prefix of at least 4 characters", async () => {
        expect(await store.resolveId("ffff")).toBe("ffff0000");
        expect(await store.resolveId("abcd11")).toBe("abcd1111");
        await expect(store.resolveId("fff")).rejects.toBeInstanceOf(RunNotFoundError);
      });

      it("reports an ambiguous prefix with the number of matches", async () => {
        await expect(store.resolveId("abcd")).rejects.toThrow("run id prefix 'abcd' matches 3 runs: give more characters");
        await expect(store.resolveId("abcd22")).rejects.toThrow(/matches 2 runs/);
      });

      it("a prefix of a parent run names the parent, not its child runs (PARENT~stage…)", async () => {
        await newRun(store, "eeee0000~sub", T0, "p", "eeee0000");
        await newRun(store, "eeee0000~sub~deeper", T0, "p", "eeee0000~sub");
        await newRun(store, "eeee0000");
        expect(await store.resolveId("eeee")).toBe("eeee0000");
        expect(await store.resolveId("eeee0000~s")).toBe("eeee0000~sub");
        await newRun(store, "eeee1111");
        await expect(store.resolveId("eeee")).rejects.toThrow(/matches 4 runs/); // two parents
        expect(await store.resolveId("eeee0")).toBe("eeee0000");
      });

      it("throws RunNotFoundError for an unknown prefix", async () => {
        await expect(store.resolveId("zzzz")).rejects.toBeInstanceOf(RunNotFoundError);
        await expect(store.resolveId("ABCD")).rejects.toBeInstanceOf(RunNotFoundError);
      });
    });

    describe("lease", () => {
      beforeEach(async () => {
        await newRun(store, "r1");
        vi.useFakeTimers({ toFake: ["Date"] });
        vi.setSystemTime(T0);
      });

      it("claims a free run, renews for the same owner and refuses others while live", async () => {
        expect(await store.leaseHolder("r1")).toBeUndefined();
        expect(await store.claim("r1", "a", 1000)).toBe(true);
        expect(await store.leaseHolder("r1")).toBe("a");
        vi.setSystemTime(T0 + 900);
        expect(await store.claim("r1", "b", 1000)).toBe(false);
        expect(await store.claim("r1", "a", 1000)).toBe(true); // renewed until T0 + 1900
        vi.setSystemTime(T0 + 1500);
        expect(await store.claim("r1", "b", 1000)).toBe(false);
        expect(await store.leaseHolder("r1")).toBe("a");
      });

      it("lets another owner steal an expired lease", async () => {
        expect(await store.claim("r1", "a", 1000)).toBe(true);
        vi.setSystemTime(T0 + 1000);
        expect(await store.claim("r1", "b", 1000)).toBe(false); // expires strictly after lease_until
        vi.setSystemTime(T0 + 1001);
        expect(await store.leaseHolder("r1")).toBeUndefined();
        expect(await store.claim("r1", "b", 1000)).toBe(true);
        expect(await store.leaseHolder("r1")).toBe("b");
        expect(await store.claim("r1", "a", 1000)).toBe(false);
      });

      it("releases only for the holder", async () => {
        await store.claim("r1", "a", 1000);
        await store.release("r1", "b");
        expect(await store.leaseHolder("r1")).toBe("a");
        await store.release("r1", "a");
        expect(await store.leaseHolder("r1")).toBeUndefined();
        expect(await store.claim("r1", "b", 1000)).toBe(true);
      });
    });

    describe("signals", () => {
      it("hands out each signal once, oldest first", async () => {
        await newRun(store, "r1");
        await newRun(store, "r2");
        expect(await store.takeSignals("r1")).toEqual([]);
        await store.signal("r1", "approve", { by: "ann", note: "fine" });
        await store.signal("r2", "cancel");
        await store.signal("r1", "cancel");
        const taken = await store.takeSignals("r1");
        expect(taken.map((s) => [s.runId, s.kind])).toEqual([
          ["r1", "approve"],
          ["r1", "cancel"],
        ]);
        expect(taken[0]?.data).toEqual({ by: "ann", note: "fine" });
        expect(taken[1]).not.toHaveProperty("data");
        expect(taken[0]!.id).toBeLessThan(taken[1]!.id);
        expect(new Date(taken[0]!.at).toISOString()).toBe(taken[0]!.at);
        expect(await store.takeSignals("r1")).toEqual([]);
        await store.signal("r1", "again", 3);
        expect((await store.takeSignals("r1")).map((s) => [s.kind, s.data])).toEqual([["again", 3]]);
        expect((await store.takeSignals("r2")).map((s) => s.kind)).toEqual(["cancel"]);
      });
    });

    describe("records", () => {
      it("puts, gets, lists in key order by prefix, and deletes", async () => {
        expect(await store.getRecord("pipeline", "a")).toBeUndefined();
        expect(await store.putRecord("pipeline", "b@2", { v: 2 })).toEqual({ created: true, value: { v: 2 } });
        expect(await store.putRecord("pipeline", "a@1", { v: 1, nested: [1, "x", null] })).toEqual({ created: true, value: { v: 1, nested: [1, "x", null] } });
        expect(await store.putRecord("pipeline", "b@1", "text")).toEqual({ created: true, value: "text" });
        await store.putRecord("token", "b@9", 9); // another kind: kept apart
        const got = await store.getRecord("pipeline", "a@1");
        expect(got?.value).toEqual({ v: 1, nested: [1, "x", null] });
        expect(new Date(got!.at).toISOString()).toBe(got!.at);
        expect((await store.listRecords("pipeline")).map((r) => r.key)).toEqual(["a@1", "b@1", "b@2"]);
        expect((await store.listRecords("pipeline", { prefix: "b@" })).map((r) => [r.key, r.value])).toEqual([["b@1", "text"], ["b@2", { v: 2 }]]);
        expect((await store.listRecords("pipeline", { limit: 1 })).map((r) => r.key)).toEqual(["a@1"]);
        // A prefix is literal: no LIKE wildcards.
        await store.putRecord("pipeline", "b%x", 0);
        await store.putRecord("pipeline", "b_y", 0);
        expect((await store.listRecords("pipeline", { prefix: "b%" })).map((r) => r.key)).toEqual(["b%x"]);
        expect((await store.listRecords("pipeline", { prefix: "b_" })).map((r) => r.key)).toEqual(["b_y"]);
        expect(await store.putRecord("pipeline", "a@1", { v: 10 })).toEqual({ created: false, value: { v: 10 } });
        expect((await store.getRecord("pipeline", "a@1"))?.value).toEqual({ v: 10 });
        expect(await store.deleteRecord("pipeline", "a@1")).toBe(true);
        expect(await store.deleteRecord("pipeline", "a@1")).toBe(false);
        expect(await store.getRecord("pipeline", "a@1")).toBeUndefined();
        expect((await store.getRecord("token", "b@9"))?.value).toBe(9);
        expect(await store.listRecords("nothing")).toEqual([]);
      });

      it("ifAbsent keeps the first value, and of concurrent writers exactly one creates", async () => {
        expect(await store.putRecord("idem", "k", { run: "r1" }, { ifAbsent: true })).toEqual({ created: true, value: { run: "r1" } });
        expect(await store.putRecord("idem", "k", { run: "r2" }, { ifAbsent: true })).toEqual({ created: false, value: { run: "r1" } });
        const all = await Promise.all(Array.from({ length: 8 }, (_, i) => store.putRecord("idem", "race", { run: `x${i}` }, { ifAbsent: true })));
        expect(all.filter((r) => r.created)).toHaveLength(1);
        const winner = all.find((r) => r.created)!.value;
        for (const r of all) expect(r.value).toEqual(winner);
        expect((await store.getRecord("idem", "race"))?.value).toEqual(winner);
      });

      it("refuses empty kinds or keys and values that are not JSON", async () => {
        await expect(store.putRecord("", "k", 1)).rejects.toThrow(/kind must be a non-empty string/);
        await expect(store.putRecord("pipeline", "", 1)).rejects.toThrow(/key must be a non-empty string/);
        await expect(store.putRecord("pipeline", "k", undefined)).rejects.toThrow(/not JSON/);
        await expect(store.putRecord("pipeline", "k", { n: 1n })).rejects.toThrow(/not JSON/);
        expect(await store.getRecord("pipeline", "k")).toBeUndefined();
      });
    });

    describe("eventsAfter", () => {
      it("returns the events after a sequence number, in order", async () => {
        await newRun(store, "r1");
        await store.append("r1", [ev.stageStarted("a"), ev.succeeded("a", 1), ev.stageStarted("b")], 1);
        const all = (await store.load("r1")).events;
        expect(await store.eventsAfter("r1", 0)).toEqual(all);
        expect(await store.eventsAfter("r1", 2)).toEqual(all.slice(2));
        expect(await store.eventsAfter("r1", 4)).toEqual([]);
        expect(await store.eventsAfter("r1", 10)).toEqual([]);
      });
    });
  });
}
