import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { MemoryStore } from "../../src/store/memory.js";
import { defaultStorePath, openStore, resolveStoreSpec } from "../../src/store/open.js";
import { ConflictError } from "../../src/store/port.js";
import { SQLITE_MIGRATIONS } from "../../src/store/sqlite-migrations.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { T0, ev, newRun, storeConformance } from "./conformance.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "baton-store-"));
let n = 0;
/** A fresh database file in this test file's temp directory. */
const freshPath = (): string => path.join(dir, `t${++n}`, "baton.db");

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

storeConformance("sqlite", () => SqliteStore.open(freshPath()));
storeConformance("sqlite :memory:", () => SqliteStore.open(":memory:"));

describe("SqliteStore", () => {
  const open: SqliteStore[] = [];
  const track = (s: SqliteStore): SqliteStore => (open.push(s), s);
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  const count = (s: SqliteStore, table: string): number =>
    s.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;

  it("round-trips a 5 MB output through the blob table", async () => {
    const store = track(SqliteStore.open(freshPath()));
    await newRun(store, "r1");
    const output = "é".repeat(5 * 1024 * 1024);
    await store.append("r1", [ev.succeeded("a", output)], 1);
    const { events } = await store.load("r1");
    expect(events[1]).toEqual(ev.succeeded("a", output));
    expect(count(store, "blobs")).toBe(1);
    const row = store.db.prepare("SELECT length(data) FROM events WHERE run_id = 'r1' AND seq = 2").pluck().get();
    expect(row).toBeLessThan(1000);
    expect(await store.eventsAfter("r1", 1)).toEqual([ev.succeeded("a", output)]);
  });

  it("stores identical large outputs of different runs once", async () => {
    const store = track(SqliteStore.open(freshPath()));
    const output = { text: "y".repeat(100 * 1024) };
    for (const id of ["r1", "r2"]) {
      await newRun(store, id);
      await store.append(id, [ev.succeeded("a", output)], 1);
    }
    expect(count(store, "blobs")).toBe(1);
    expect((await store.load("r2")).events[1]).toEqual(ev.succeeded("a", output));
  });

  it("moves every large payload field to blobs and puts it back", async () => {
    const store = track(SqliteStore.open(freshPath()));
    const big = (tag: string) => ({ tag, pad: "z".repeat(20_000) });
    const events: BatonEvent[] = [
      ev.started("r1", T0, { inputs: { doc: big("inputs") } }),
      ev.succeeded("a", big("output"), T0 + 1, big("input")),
      { type: "stage_failed", at: T0 + 2, stage: "b", visit: 1, attempt: 1, input: big("failed-input"),
        error: { kind: "handler", message: "boom", retryable: false } },
      { type: "stage_settled", at: T0 + 3, stage: "b", visit: 1, outcome: "fallback", output: big("settled") },
      { type: "decision", at: T0 + 4, stage: "c", visit: 1, kind: "for_each", expression: "$.items", read: {},
        result: null, items: [big("items")] },
      { type: "stage_completed", at: T0 + 5, stage: "c", visit: 1 },
      ev.finished("succeeded", T0 + 6, big("final")),
    ];
    await store.create({ id: "r1", pipeline: "p", planHash: "h1" }, events);
    expect(count(store, "blobs")).toBe(7);
    expect((await store.load("r1")).events).toEqual(events);
    // Small values and fields not in the list stay inline.
    await store.append("r1", [ev.succeeded("d", "small", T0 + 7, { small: true })], 7);
    expect(count(store, "blobs")).toBe(7);
  });

  it("round-trips arbitrary JSON payloads (property)", async () => {
    const store = track(SqliteStore.open(freshPath()));
    await newRun(store, "r1");
    let seq = 1;
    const payload = fc.oneof(fc.jsonValue(), fc.string({ minLength: 16_000, maxLength: 20_000 }));
    await fc.assert(
      fc.asyncProperty(payload, payload, async (input, output) => {
        const e = ev.succeeded("a", output, T0 + seq, input);
        seq = await store.append("r1", [e], seq);
        const [back] = await store.eventsAfter("r1", seq - 1);
        expect(back).toEqual(JSON.parse(JSON.stringify(e)));
      }),
      { numRuns: 200 },
    );
  });

  it("keeps everything across close and reopen", async () => {
    const file = freshPath();
    const a = SqliteStore.open(file);
    await newRun(a, "r1");
    await a.append("r1", [ev.succeeded("a", "w".repeat(50_000)), ev.waiting()], 1);
    await a.signal("r1", "approve", { ok: true });
    await a.claim("r1", "owner", 60_000);
    await a.close();
    const b = track(SqliteStore.open(file));
    const { run, events } = await b.load("r1");
    expect(run).toMatchObject({ status: "waiting", seq: 3 });
    expect(events[1]).toEqual(ev.succeeded("a", "w".repeat(50_000)));
    expect(await b.leaseHolder("r1")).toBe("owner");
    expect((await b.takeSignals("r1")).map((s) => s.data)).toEqual([{ ok: true }]);
    expect(b.db.pragma("user_version", { simple: true })).toBe(SQLITE_MIGRATIONS.length);
  });

  it("shares one file between two instances with optimistic concurrency", async () => {
    const file = freshPath();
    const a = track(SqliteStore.open(file));
    const b = track(SqliteStore.open(file));
    await newRun(a, "r1");
    expect((await b.load("r1")).run.seq).toBe(1);
    expect(await a.append("r1", [ev.stageStarted("from-a")], 1)).toBe(2);
    const err = await b.append("r1", [ev.stageStarted("from-b")], 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err).toMatchObject({ expectedSeq: 1, actualSeq: 2 });
    expect((await b.load("r1")).events.map((e) => (e as { stage?: string }).stage)).toEqual([undefined, "from-a"]);
    expect(await a.claim("r1", "a", 60_000)).toBe(true);
    expect(await b.claim("r1", "b", 60_000)).toBe(false);
    await b.signal("r1", "cancel");
    expect((await a.takeSignals("r1")).map((s) => s.kind)).toEqual(["cancel"]);
    expect(await b.takeSignals("r1")).toEqual([]);
  });

  it("uses WAL, synchronous NORMAL by default and FULL for durability full", () => {
    const normal = track(SqliteStore.open(freshPath()));
    const full = track(SqliteStore.open(freshPath(), { durability: "full" }));
    expect(normal.db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(normal.db.pragma("synchronous", { simple: true })).toBe(1);
    expect(full.db.pragma("synchronous", { simple: true })).toBe(2);
    expect(normal.db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(normal.db.pragma("busy_timeout", { simple: true })).toBe(5000);
  });

  it("refuses a database from a newer schema", async () => {
    const file = freshPath();
    const s = SqliteStore.open(file);
    s.db.pragma(`user_version = ${SQLITE_MIGRATIONS.length + 1}`);
    await s.close();
    expect(() => SqliteStore.open(file)).toThrow(/newer than this Baton knows/);
  });
});

describe("openStore", () => {
  it("opens memory, SQLite and sends PostgreSQL to openStoreAsync", async () => {
    expect(openStore("memory:")).toBeInstanceOf(MemoryStore);
    expect(openStore(":memory:")).toBeInstanceOf(MemoryStore);
    expect(() => openStore("postgres://u@h/db")).toThrow(/use `await openStoreAsync\(spec\)`/);
    expect(() => openStore("postgresql://u@h/db")).toThrow(/openStoreAsync/);
    const file = path.join(dir, "open", "deep", "x.db");
    const s = openStore(file, { durability: "full" });
    expect(s).toBeInstanceOf(SqliteStore);
    expect((s as SqliteStore).db.pragma("synchronous", { simple: true })).toBe(2);
    await s.close();
    expect(fs.existsSync(file)).toBe(true);
  });

  it("resolves a missing spec to BATON_STORE, then BATON_DB, then the default path", () => {
    const saved = { store: process.env["BATON_STORE"], db: process.env["BATON_DB"] };
    try {
      process.env["BATON_STORE"] = "postgres://h/db";
      process.env["BATON_DB"] = "/tmp/x.db";
      expect(resolveStoreSpec("given.db")).toBe("given.db");
      expect(resolveStoreSpec(undefined)).toBe("postgres://h/db");
      expect(resolveStoreSpec("")).toBe("postgres://h/db");
      expect(() => openStore()).toThrow(/openStoreAsync/);
      delete process.env["BATON_STORE"];
      expect(resolveStoreSpec()).toBe("/tmp/x.db");
      delete process.env["BATON_DB"];
      expect(resolveStoreSpec()).toBe(defaultStorePath());
    } finally {
      for (const [key, value] of [["BATON_STORE", saved.store], ["BATON_DB", saved.db]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });

  it("defaults to BATON_DB, else .baton/baton.db under the working directory", async () => {
    expect(defaultStorePath("/w")).toBe(path.join("/w", ".baton", "baton.db"));
    const saved = process.env["BATON_DB"];
    try {
      process.env["BATON_DB"] = "memory:";
      expect(openStore()).toBeInstanceOf(MemoryStore);
      const file = path.join(dir, "env", "b.db");
      process.env["BATON_DB"] = file;
      await openStore().close();
      expect(fs.existsSync(file)).toBe(true);
    } finally {
      if (saved === undefined) delete process.env["BATON_DB"];
      else process.env["BATON_DB"] = saved;
    }
  });
});
