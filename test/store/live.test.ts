/**
 * Live turn text (Store.putLive / Store.live) on every adapter, and the coalescing writer that
 * feeds it (LiveWriter): at most one write per interval per run under a burst, keys cleared when
 * their turn is recorded or their attempt ends, everything deleted when the run stops.
 *
 * PostgreSQL at $BATON_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test): when it
 * is unreachable the PostgreSQL tests FAIL saying so (never skip).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { LiveWriter } from "../../src/store/live.js";
import { MemoryStore } from "../../src/store/memory.js";
import { LIVE_TEXT_MAX, liveKey, liveTail, parseLiveKey, type Store } from "../../src/store/port.js";
import { PostgresStore, redactUrl } from "../../src/store/postgres.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { T0, ev, newRun } from "./conformance.js";

const PG_URL = process.env["BATON_TEST_POSTGRES"] || "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `baton_live_${process.pid}_${randomBytes(4).toString("hex")}`;
const admin = new pg.Pool({ connectionString: PG_URL, max: 2, connectionTimeoutMillis: 5_000 });
admin.on("error", () => undefined);
const unreachable: string | undefined = await admin.query("SELECT 1").then(
  () => undefined,
  (err: unknown) => (err as Error).message || String(err),
);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "baton-live-"));
let n = 0;

afterAll(async () => {
  if (unreachable === undefined) await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await admin.end();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Two handles on one store (a second process's view), or the same one when the store is private. */
interface Pair {
  readonly a: Store;
  readonly b: Store;
}

const adapters: [string, () => Promise<Pair>][] = [
  ["memory", async () => {
    const s = new MemoryStore();
    return { a: s, b: s };
  }],
  ["sqlite", async () => {
    const file = path.join(dir, `t${++n}`, "baton.db");
    return { a: SqliteStore.open(file), b: SqliteStore.open(file) };
  }],
  ["postgres", async () => {
    if (unreachable !== undefined) {
      throw new Error(
        `PostgreSQL is not reachable at ${redactUrl(PG_URL)} (${unreachable}): the live-text tests need it. ` +
          "Start it (127.0.0.1:5432, trust auth, database test) or point BATON_TEST_POSTGRES at a server.",
      );
    }
    const a = await PostgresStore.connect(PG_URL, { schema: SCHEMA });
    await admin.query(`TRUNCATE ${SCHEMA}.runs, ${SCHEMA}.events, ${SCHEMA}.blobs, ${SCHEMA}.signals, ${SCHEMA}.live_text RESTART IDENTITY CASCADE`);
    const b = await PostgresStore.connect(PG_URL, { schema: SCHEMA });
    return { a, b };
  }],
];

const K1 = liveKey({ stage: "research", visit: 1 }, 1);
const K2 = liveKey({ stage: "fan", visit: 2, item: 3 }, 4);

for (const [name, make] of adapters) {
  describe(`${name} store: live text`, () => {
    let a: Store;
    let b: Store;
    beforeEach(async () => {
      ({ a, b } = await make());
    });
    afterEach(async () => {
      await a.close();
      if (b !== a) await b.close();
    });

    it("upserts, reads back from another handle, and deletes with undefined", async () => {
      await newRun(a, "r1");
      await newRun(a, "r2");
      expect(await b.live!("r1")).toEqual({});
      await a.putLive!("r1", K1, "Tides are");
      await a.putLive!("r1", K1, "Tides are caused");
      await a.putLive!("r1", K2, "héllo 🌊");
      await a.putLive!("r2", K1, "other run");
      const live = await b.live!("r1");
      expect(Object.keys(live).sort()).toEqual([K1, K2].sort());
      expect(live[K1]?.text).toBe("Tides are caused");
      expect(live[K2]?.text).toBe("héllo 🌊");
      expect(typeof live[K1]?.at).toBe("number");
      expect(live[K1]!.at).toBeGreaterThan(0);
      await a.putLive!("r1", K1, undefined);
      expect(Object.keys(await b.live!("r1"))).toEqual([K2]);
      expect((await b.live!("r2"))[K1]?.text).toBe("other run");
      // Deleting what is not there is fine.
      await a.putLive!("r1", "nope#1:turn:1", undefined);
    });

    it(`keeps the last ${LIVE_TEXT_MAX} characters of a long text`, async () => {
      await newRun(a, "r1");
      const text = Array.from({ length: 3000 }, (_, i) => `w${i} `).join("");
      expect(text.length).toBeGreaterThan(LIVE_TEXT_MAX);
      await a.putLive!("r1", K1, text);
      const got = (await b.live!("r1"))[K1]!.text;
      expect(got).toHaveLength(LIVE_TEXT_MAX);
      expect(got).toBe(text.slice(-LIVE_TEXT_MAX));
    });

    it("ignores writes for unknown runs and reads none for them", async () => {
      await a.putLive!("ghost", K1, "boo");
      expect(await b.live!("ghost")).toEqual({});
    });

    it("drops a run's live text when it finishes, and ignores late writes; waiting keeps it, resuming takes writes again", async () => {
      await newRun(a, "r1");
      await a.putLive!("r1", K1, "x");
      let seq = await a.append("r1", [ev.waiting()], 1);
      expect(Object.keys(await b.live!("r1"))).toEqual([K1]);
      seq = await a.append("r1", [ev.resumed()], seq);
      await a.putLive!("r1", K2, "y");
      expect(Object.keys(await b.live!("r1")).sort()).toEqual([K1, K2].sort());
      seq = await a.append("r1", [ev.finished("succeeded", T0 + 9, "done")], seq);
      expect(await b.live!("r1")).toEqual({});
      await a.putLive!("r1", K1, "late");
      expect(await b.live!("r1")).toEqual({});
      // Resumed (a rerun of a failed run's stages, say): live again.
      await a.append("r1", [ev.resumed(T0 + 10)], seq);
      await a.putLive!("r1", K1, "again");
      expect((await b.live!("r1"))[K1]?.text).toBe("again");
    });

    it("leaves other runs' live text alone when one finishes", async () => {
      await newRun(a, "r1");
      await newRun(a, "r2");
      await a.putLive!("r1", K1, "one");
      await a.putLive!("r2", K1, "two");
      await a.append("r1", [ev.finished("failed")], 1);
      expect(await b.live!("r1")).toEqual({});
      expect((await b.live!("r2"))[K1]?.text).toBe("two");
    });
  });
}

describe("live keys", () => {
  it("name the execution and the turn, and parse back", () => {
    expect(liveKey({ stage: "research", visit: 1 }, 2)).toBe("research#1:turn:2");
    expect(liveKey({ stage: "fan", visit: 3, item: 0 }, 1)).toBe("fan#3[0]:turn:1");
    expect(parseLiveKey("research#1:turn:2")).toEqual({ stage: "research", visit: 1, turn: 2 });
    expect(parseLiveKey("fan#3[0]:turn:1")).toEqual({ stage: "fan", visit: 3, item: 0, turn: 1 });
    expect(parseLiveKey("a-b_c#12[7]:turn:10")).toEqual({ stage: "a-b_c", visit: 12, item: 7, turn: 10 });
    expect(parseLiveKey("nonsense")).toBeUndefined();
  });

  it("cut a long text at a character boundary", () => {
    const t = "🌊".repeat(10); // 20 UTF-16 units
    expect(liveTail(t, 5)).toBe("🌊🌊"); // 5 units would split a pair: 4 are kept
    expect(liveTail("abc", 5)).toBe("abc");
  });
});

/** A store that counts its live writes; `hold` makes them wait until released. */
function countingStore() {
  const writes: { run: string; key: string; text: string | undefined }[] = [];
  let held: (() => void)[] | undefined;
  return {
    writes,
    hold(): void {
      held = [];
    },
    release(): void {
      const h = held ?? [];
      held = undefined;
      for (const r of h) r();
    },
    async putLive(run: string, key: string, text: string | undefined): Promise<void> {
      writes.push({ run, key, text });
      if (held) await new Promise<void>((r) => held!.push(r));
    },
  };
}

/** A scheduler whose timers fire only when the test says so. */
function manualTimers() {
  const pending: { fn: () => void; ms: number; cancelled: boolean }[] = [];
  return {
    schedule: (fn: () => void, ms: number): (() => void) => {
      const t = { fn, ms, cancelled: false };
      pending.push(t);
      return () => void (t.cancelled = true);
    },
    /** Timers armed and not fired or cancelled. */
    get armed(): number {
      return pending.filter((t) => !t.cancelled).length;
    },
    /** Fire every armed timer (one interval passes). */
    fire(): number {
      const due = pending.splice(0).filter((t) => !t.cancelled);
      for (const t of due) t.fn();
      return due.length;
    },
  };
}

/** Let promise callbacks run (no time passes). */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
};

const turnRecorded = (stage: string, n: number, extra: Partial<{ visit: number; item: number; name: string }> = {}): BatonEvent => ({
  type: "step_recorded", at: T0, stage, visit: extra.visit ?? 1, ...(extra.item !== undefined ? { item: extra.item } : {}),
  attempt: 1, name: extra.name ?? `turn:${n}`, kind: "turn", started_at: T0, output: { n, text: "x", calls: [] },
});

describe("LiveWriter", () => {
  it("writes a burst of 1,000 deltas once per interval per run, with the whole text so far", async () => {
    const store = countingStore();
    const timers = manualTimers();
    const w = new LiveWriter(store, { schedule: timers.schedule, intervalMs: 250 });
    let text = "";
    for (let i = 0; i < 1000; i++) text = w.delta("r1", K1, `t${i} `);
    expect(text).toBe(Array.from({ length: 1000 }, (_, i) => `t${i} `).join(""));
    expect(store.writes).toHaveLength(0); // nothing before the interval has passed
    expect(timers.armed).toBe(1); // one timer for the run, however many deltas
    timers.fire();
    await settle();
    expect(store.writes).toEqual([{ run: "r1", key: K1, text: liveTail(text) }]);
    expect(timers.armed).toBe(0); // nothing new: nothing armed

    // Deltas spread over 10 intervals: at most one write per interval.
    let intervals = 0;
    for (let i = 0; i < 1000; i++) {
      w.delta("r1", K1, "x");
      if (i % 100 === 99) {
        intervals += timers.fire();
        await settle();
      }
      expect(timers.armed).toBeLessThanOrEqual(1);
    }
    expect(intervals).toBe(10);
    expect(store.writes).toHaveLength(1 + 10);
    expect(w.text("r1", K1)).toBe(text + "x".repeat(1000));
  });

  it("keeps one timer per run: two runs streaming two turns each flush separately, all keys in one flush", async () => {
    const store = countingStore();
    const timers = manualTimers();
    const w = new LiveWriter(store, { schedule: timers.schedule });
    for (let i = 0; i < 500; i++) {
      w.delta("r1", K1, "a");
      w.delta("r1", K2, "b");
      w.delta("r2", K1, "c");
    }
    expect(timers.armed).toBe(2);
    timers.fire();
    await settle();
    expect(store.writes.map((x) => `${x.run} ${x.key} ${x.text?.length}`).sort()).toEqual([`r1 ${K1} 500`, `r1 ${K2} 500`, `r2 ${K1} 500`].sort());
  });

  it("never has two writes of a run in flight: a slow store delays the next flush by an interval after it", async () => {
    const store = countingStore();
    const timers = manualTimers();
    const w = new LiveWriter(store, { schedule: timers.schedule });
    w.delta("r1", K1, "a");
    store.hold();
    timers.fire();
    expect(store.writes).toHaveLength(1);
    for (let i = 0; i < 100; i++) w.delta("r1", K1, "b");
    expect(timers.armed).toBe(0); // the write in flight comes first
    store.release();
    await settle();
    expect(store.writes).toHaveLength(1); // not at once: an interval after the last write
    expect(timers.armed).toBe(1);
    timers.fire();
    await settle();
    expect(store.writes).toHaveLength(2);
    expect(store.writes[1]?.text).toBe("a" + "b".repeat(100));
  });

  it("clears a key when its turn's step_recorded is appended, at once and once; a turn never written costs no write", async () => {
    const store = countingStore();
    const timers = manualTimers();
    const w = new LiveWriter(store, { schedule: timers.schedule });
    for (let i = 0; i < 1000; i++) w.delta("r1", K1, "x");
    timers.fire();
    await settle();
    expect(store.writes).toHaveLength(1);
    w.delta("r1", K1, "y"); // more text, not written yet
    w.observe("r1", [turnRecorded("research", 1)]);
    await settle();
    expect(store.writes).toHaveLength(2);
    expect(store.writes[1]).toEqual({ run: "r1", key: K1, text: undefined });
    expect(w.text("r1", K1)).toBeUndefined();
    timers.fire(); // the pending flush of "y" went with the clear
    await settle();
    expect(store.writes).toHaveLength(2);
    expect(w.size).toBe(0);

    // A turn that ends before its first flush: no write at all.
    for (let i = 0; i < 10; i++) w.delta("r1", liveKey({ stage: "research", visit: 1 }, 2), "z");
    w.observe("r1", [turnRecorded("research", 2)]);
    timers.fire();
    await settle();
    expect(store.writes).toHaveLength(2);
  });

  it("clears a for_each item's turn and a ctx.agent turn by their names", async () => {
    const store = countingStore();
    const timers = manualTimers();
    const w = new LiveWriter(store, { schedule: timers.schedule });
    w.delta("r1", K2, "x"); // fan#2[3]:turn:4
    const nested = liveKey({ stage: "research", visit: 1 }, 2);
    w.delta("r1", nested, "y");
    timers.fire();
    await settle();
    w.observe("r1", [turnRecorded("fan", 4, { visit: 2, item: 3 }), turnRecorded("research", 2, { name: "agent:helper/turn:2" })]);
    await settle();
    expect(store.writes.slice(2).map((x) => [x.key, x.text]).sort()).toEqual([[K2, undefined], [nested, undefined]].sort());
  });

  it("clears an execution's turns when its attempt fails, so a retry streams from empty", async () => {
    const store = countingStore();
    const timers = manualTimers();
    const w = new LiveWriter(store, { schedule: timers.schedule });
    w.delta("r1", K1, "half a repl");
    w.delta("r1", liveKey({ stage: "other", visit: 1 }, 1), "keep");
    timers.fire();
    await settle();
    const failed: BatonEvent = { type: "stage_failed", at: T0, stage: "research", visit: 1, attempt: 1, error: { kind: "network", message: "boom", retryable: true } } as BatonEvent;
    w.observe("r1", [failed]);
    await settle();
    expect(store.writes.at(-1)).toEqual({ run: "r1", key: K1, text: undefined });
    expect(w.delta("r1", K1, "fresh")).toBe("fresh");
    expect(w.text("r1", liveKey({ stage: "other", visit: 1 }, 1))).toBe("keep");
  });

  it("deletes everything it wrote for a run when the run stops here, and takes no more text for it meanwhile", async () => {
    const store = countingStore();
    const timers = manualTimers();
    const w = new LiveWriter(store, { schedule: timers.schedule });
    w.delta("r1", K1, "a");
    w.delta("r1", K2, "b");
    timers.fire();
    await settle();
    w.delta("r1", K1, "c");
    await w.stop("r1");
    expect(store.writes.slice(2).map((x) => [x.key, x.text]).sort()).toEqual([[K1, undefined], [K2, undefined]].sort());
    expect(timers.armed).toBe(0);
    expect(w.size).toBe(0);
  });

  it("against real stores: a reader sees the text, then nothing once the turn is recorded", async () => {
    const file = path.join(dir, `w${++n}`, "baton.db");
    const writerStore = SqliteStore.open(file);
    const reader = SqliteStore.open(file);
    try {
      await newRun(writerStore, "r1");
      const timers = manualTimers();
      const w = new LiveWriter(writerStore, { schedule: timers.schedule });
      for (let i = 0; i < 1000; i++) w.delta("r1", K1, "x");
      timers.fire();
      await settle();
      expect((await reader.live("r1"))[K1]?.text).toBe("x".repeat(1000));
      w.observe("r1", [turnRecorded("research", 1)]);
      await settle();
      expect(await reader.live("r1")).toEqual({});
    } finally {
      await writerStore.close();
      await reader.close();
    }
  });

  it("without a store only accumulates the text (in-process listeners)", () => {
    const timers = manualTimers();
    const w = new LiveWriter(undefined, { schedule: timers.schedule });
    expect(w.delta("r1", K1, "a")).toBe("a");
    expect(w.delta("r1", K1, "b")).toBe("ab");
    expect(timers.armed).toBe(0);
    w.observe("r1", [turnRecorded("research", 1)]);
    expect(w.text("r1", K1)).toBeUndefined();
  });
});
