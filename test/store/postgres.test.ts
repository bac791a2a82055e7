/**
 * The PostgreSQL store against a real server: the conformance suite on a fresh schema of its
 * own (dropped afterwards), then what only a shared database has — racing instances,
 * concurrent migrations, the database clock, killed connections.
 *
 * Needs PostgreSQL at $BATON_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test).
 * When it is unreachable every test here FAILS with a message saying so: CI starts it.
 */
import { randomBytes } from "node:crypto";
import { Command } from "commander";
import fc from "fast-check";
import pg from "pg";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { registerMigrate } from "../../src/cli/commands/migrate.js";
import type { BatonEvent } from "../../src/engine/events.js";
import { openStore, openStoreAsync } from "../../src/store/open.js";
import { ConflictError } from "../../src/store/port.js";
import { POSTGRES_MIGRATIONS } from "../../src/store/postgres-migrations.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { CommitOutcomeUnknownError, PostgresStore, isConnectionLost, redactUrl } from "../../src/store/postgres.js";
import { T0, ev, newRun, storeConformance } from "./conformance.js";

const URL = process.env["BATON_TEST_POSTGRES"] || "postgres://postgres@127.0.0.1:5432/test";
const tag = `${process.pid}_${randomBytes(4).toString("hex")}`;
/** This file's schema; tests that need an empty database of their own make more (all dropped in afterAll). */
const SCHEMA = `baton_test_${tag}`;
const schemas = new Set<string>([SCHEMA]);
let nSchema = 0;
const freshSchema = (): string => {
  const s = `${SCHEMA}_${++nSchema}`;
  schemas.add(s);
  return s;
};

const admin = new pg.Pool({ connectionString: URL, max: 4, connectionTimeoutMillis: 5_000 });
admin.on("error", () => undefined);

/** Why PostgreSQL cannot be used, or undefined when it can. */
const unreachable: string | undefined = await admin.query("SELECT 1").then(
  () => undefined,
  (err: unknown) => (err as Error).message || String(err),
);

/** Fail (never skip) when the server is not there. */
function needPostgres(): void {
  if (unreachable !== undefined) {
    throw new Error(
      `PostgreSQL is not reachable at ${redactUrl(URL)} (${unreachable}): the PostgreSQL store tests need it. ` +
        "Start it (CI does: 127.0.0.1:5432, trust auth, database test) or point BATON_TEST_POSTGRES at a server.",
    );
  }
}

afterAll(async () => {
  if (unreachable === undefined) {
    for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  }
  await admin.end();
});

let nApp = 0;
/** `URL` with a unique application_name, so a test can find (and kill) that store's connections. */
function appUrl(): { url: string; app: string } {
  const app = `baton_test_${tag}_${++nApp}`;
  return { url: `${URL}${URL.includes("?") ? "&" : "?"}application_name=${app}`, app };
}

/** Connections of the stores using application name `app` (optionally only those matching `where`). */
async function backends(app: string, where = "true"): Promise<number[]> {
  const { rows } = await admin.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid() AND (${where})`,
    [app],
  );
  return rows.map((r) => r.pid);
}

async function kill(pids: readonly number[]): Promise<void> {
  if (pids.length > 0) await admin.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [pids]);
}

/** Poll until `f` returns a non-empty list. */
async function waitFor<T>(f: () => Promise<T[]>, what: string, ms = 10_000): Promise<T[]> {
  const until = Date.now() + ms;
  for (;;) {
    const got = await f();
    if (got.length > 0) return got;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function count(schema: string, table: string, where = "true"): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.${table} WHERE ${where}`);
  return rows[0]?.n ?? -1;
}

storeConformance("postgres", async () => {
  needPostgres();
  // Lease times from the (faked) client clock: the conformance suite simulates time. The
  // database clock is tested below.
  const store = await PostgresStore.connect(URL, { schema: SCHEMA, now: () => Date.now() });
  await admin.query(`TRUNCATE ${SCHEMA}.runs, ${SCHEMA}.events, ${SCHEMA}.blobs, ${SCHEMA}.signals RESTART IDENTITY CASCADE`);
  return store;
});

describe("PostgresStore", () => {
  const open: PostgresStore[] = [];
  async function connect(opts: { schema?: string; url?: string; now?: () => number } = {}): Promise<PostgresStore> {
    const store = await PostgresStore.connect(opts.url ?? URL, {
      schema: opts.schema ?? freshSchema(),
      ...(opts.now !== undefined ? { now: opts.now } : {}),
    });
    open.push(store);
    return store;
  }
  beforeEach(needPostgres);
  afterEach(async () => {
    vi.useRealTimers();
    for (const s of open.splice(0)) await s.close();
  });

  describe("migrations", () => {
    it("applies them exactly once when 4 stores connect to a fresh schema at once", async () => {
      const schema = freshSchema();
      const stores = await Promise.all([1, 2, 3, 4].map(() => connect({ schema })));
      const applied = stores.map((s) => s.migration.applied);
      expect(applied.filter((a) => a.length > 0)).toEqual([POSTGRES_MIGRATIONS.map((_, i) => i + 1)]);
      expect(stores.map((s) => s.migration.version)).toEqual([1, 2, 3, 4].map(() => POSTGRES_MIGRATIONS.length));
      const { rows } = await admin.query<{ version: number }>(`SELECT version FROM ${schema}.baton_migrations ORDER BY version`);
      expect(rows.map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((_, i) => i + 1));
      await newRun(stores[0]!, "r1");
      expect((await stores[3]!.load("r1")).run.seq).toBe(1);
      // Connecting again later is a no-op.
      const again = await connect({ schema });
      expect(again.migration).toEqual({ version: POSTGRES_MIGRATIONS.length, applied: [] });
      expect(await again.schemaVersion()).toBe(POSTGRES_MIGRATIONS.length);
    });

    it("refuses a schema newer than this Baton knows, and leaves it alone", async () => {
      const schema = freshSchema();
      await (await connect({ schema })).close();
      await admin.query(`INSERT INTO ${schema}.baton_migrations (version) VALUES ($1)`, [POSTGRES_MIGRATIONS.length + 1]);
      await expect(PostgresStore.connect(URL, { schema })).rejects.toThrow(/newer than this Baton knows.*upgrade Baton/);
      expect(await count(schema, "baton_migrations")).toBe(POSTGRES_MIGRATIONS.length + 1);
    });

    it("keeps its tables in the given schema only", async () => {
      const schema = freshSchema();
      await connect({ schema });
      const { rows } = await admin.query<{ table_name: string }>(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name",
        [schema],
      );
      expect(rows.map((r) => r.table_name)).toEqual(["baton_migrations", "blobs", "events", "live_text", "records", "runs", "signals"]);
    });

    it("keeps startup options given in the URL next to its search_path", async () => {
      const schema = freshSchema();
      const store = await connect({ schema, url: `${URL}${URL.includes("?") ? "&" : "?"}options=-c%20statement_timeout%3D12345` });
      const timeout = await store.pool.query<{ statement_timeout: string }>("SHOW statement_timeout");
      const path = await store.pool.query<{ search_path: string }>("SHOW search_path");
      expect(timeout.rows[0]?.statement_timeout).toBe("12345ms");
      expect(path.rows[0]?.search_path).toBe(schema);
    });

    it("rejects a schema name it would have to quote, and bad pool sizes", async () => {
      await expect(PostgresStore.connect(URL, { schema: "Bad-Name" })).rejects.toThrow(/schema name 'Bad-Name' is not allowed/);
      await expect(PostgresStore.connect(URL, { schema: "x; drop table runs" })).rejects.toThrow(/not allowed/);
      await expect(PostgresStore.connect(URL, { max: 0 })).rejects.toThrow(/pool size must be a whole number from 1 up, got 0/);
    });
  });

  describe("two instances on one database", () => {
    it("lets exactly one of two racing appends win and writes nothing of the other", async () => {
      const schema = freshSchema();
      const a = await connect({ schema });
      const b = await connect({ schema });
      const batch = (who: string, seq: number): BatonEvent[] => [
        ev.stageStarted(`${who}-${seq}`),
        ev.succeeded(`${who}-${seq}`, { who, pad: who.repeat(40_000) }),
        ev.stageStarted(`${who}-${seq}-next`),
      ];
      for (let round = 0; round < 20; round++) {
        const id = `race-${round}`;
        await newRun(a, id);
        const results = await Promise.allSettled([a.append(id, batch("a", round), 1), b.append(id, batch("b", round), 1)]);
        const won = results.findIndex((r) => r.status === "fulfilled");
        const lost = results.find((r) => r.status === "rejected");
        expect(won).toBeGreaterThanOrEqual(0);
        expect((results[won] as PromiseFulfilledResult<number>).value).toBe(4);
        expect(lost?.reason).toBeInstanceOf(ConflictError);
        expect(lost?.reason).toMatchObject({ runId: id, expectedSeq: 1, actualSeq: 4 });
        const winner = won === 0 ? "a" : "b";
        const { run, events } = await b.load(id);
        expect(run.seq).toBe(4);
        expect(events.slice(1)).toEqual(batch(winner, round));
        expect(await count(schema, "events", `run_id = '${id}'`)).toBe(4);
      }
      // Only the winners' payloads were stored: one blob per side that ever won.
      const winners = new Set<string>();
      for (let round = 0; round < 20; round++) {
        const e = (await a.load(`race-${round}`)).events[2] as { output: { who: string } };
        winners.add(e.output.who);
      }
      expect(await count(schema, "blobs")).toBe(winners.size);
    });

    it("shares leases and signals between instances", async () => {
      const schema = freshSchema();
      const a = await connect({ schema });
      const b = await connect({ schema });
      await newRun(a, "r1");
      expect(await a.claim("r1", "a", 60_000)).toBe(true);
      expect(await b.claim("r1", "b", 60_000)).toBe(false);
      expect(await b.leaseHolder("r1")).toBe("a");
      await b.signal("r1", "cancel", { why: "test" });
      expect(await a.takeSignals("r1")).toMatchObject([{ runId: "r1", kind: "cancel", data: { why: "test" } }]);
      expect(await b.takeSignals("r1")).toEqual([]);
    });

    it("hands each signal to exactly one of many concurrent takers", async () => {
      const schema = freshSchema();
      const stores = [await connect({ schema }), await connect({ schema }), await connect({ schema })];
      await newRun(stores[0]!, "r1");
      for (let i = 0; i < 30; i++) await stores[i % 3]!.signal("r1", `s${i}`);
      const taken = (await Promise.all([...stores, ...stores].map((s) => s.takeSignals("r1")))).flat();
      expect(taken.map((s) => s.kind).sort()).toEqual(Array.from({ length: 30 }, (_, i) => `s${i}`).sort());
    });
  });

  describe("payloads", () => {
    it("round-trips a 5 MB output through the blob table", async () => {
      const schema = freshSchema();
      const store = await connect({ schema });
      await newRun(store, "r1");
      const output = "é".repeat(5 * 1024 * 1024);
      await store.append("r1", [ev.succeeded("a", output)], 1);
      const { events } = await store.load("r1");
      expect(events[1]).toEqual(ev.succeeded("a", output));
      expect(await store.eventsAfter("r1", 1)).toEqual([ev.succeeded("a", output)]);
      expect(await count(schema, "blobs")).toBe(1);
      const { rows } = await admin.query<{ n: number }>(`SELECT length(data) AS n FROM ${schema}.events WHERE run_id = 'r1' AND seq = 2`);
      expect(rows[0]?.n).toBeLessThan(1000);
    });

    it("stores identical large payloads once, across runs and within a batch", async () => {
      const schema = freshSchema();
      const store = await connect({ schema });
      const output = { text: "y".repeat(100 * 1024) };
      for (const id of ["r1", "r2"]) {
        await newRun(store, id);
        await store.append(id, [ev.succeeded("a", output), ev.succeeded("b", output, T0 + 3, output)], 1);
      }
      expect(await count(schema, "blobs")).toBe(1);
      expect((await store.load("r2")).events[2]).toEqual(ev.succeeded("b", output, T0 + 3, output));
    });

    it("writes the same event and blob JSON as the SQLite store", async () => {
      const schema = freshSchema();
      const store = await connect({ schema });
      const lite = SqliteStore.open(":memory:");
      const big = { pad: "q".repeat(20_000) };
      const events: BatonEvent[] = [
        ev.started("r1", T0, { inputs: big }),
        ev.succeeded("a", { small: [1, "é"] }, T0 + 1, { $blob: "not a reference" }),
        ev.finished("succeeded", T0 + 2, big),
      ];
      for (const s of [store, lite]) await s.create({ id: "r1", pipeline: "p", planHash: "h" }, events);
      const pgEvents = await admin.query<{ type: string; at: string; data: string }>(`SELECT type, at, data FROM ${schema}.events ORDER BY seq`);
      const liteEvents = lite.db.prepare("SELECT type, at, data FROM events ORDER BY seq").all() as Array<{ type: string; at: number; data: string }>;
      expect(pgEvents.rows.map((r) => ({ ...r, at: Number(r.at) }))).toEqual(liteEvents);
      expect(liteEvents[0]?.data).toMatch(/"inputs":\{"\$blob":"[0-9a-f]{64}"\}/);
      const pgBlobs = await admin.query<{ hash: string; data: string }>(`SELECT hash, data FROM ${schema}.blobs ORDER BY hash`);
      expect(pgBlobs.rows).toEqual(lite.db.prepare("SELECT hash, data FROM blobs ORDER BY hash").all());
      expect(pgBlobs.rows).toHaveLength(2);
      await lite.close();
    });

    it("round-trips arbitrary JSON payloads (property)", async () => {
      const store = await connect();
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
        { numRuns: 100 },
      );
    });
  });

  describe("leases on the database clock", () => {
    it("ignores the client's clock", async () => {
      const schema = freshSchema();
      const store = await connect({ schema });
      await newRun(store, "r1");
      vi.useFakeTimers({ toFake: ["Date"] });
      vi.setSystemTime(Date.UTC(2000, 0, 1)); // the client thinks it is 2000
      expect(await store.claim("r1", "a", 60_000)).toBe(true);
      const { rows } = await admin.query<{ left: string }>(
        `SELECT lease_until - floor(extract(epoch from clock_timestamp()) * 1000)::bigint AS left
         FROM ${schema}.runs WHERE id = 'r1'`,
      );
      const left = Number(rows[0]?.left);
      expect(left).toBeGreaterThan(50_000);
      expect(left).toBeLessThanOrEqual(60_000);
      vi.setSystemTime(Date.UTC(2100, 0, 1)); // … and now that it is 2100: the lease is still live
      expect(await store.leaseHolder("r1")).toBe("a");
      expect(await store.claim("r1", "b", 60_000)).toBe(false);
    });

    it("expires a lease when the database's clock passes it", async () => {
      const store = await connect();
      await newRun(store, "r1");
      vi.useFakeTimers({ toFake: ["Date"] });
      vi.setSystemTime(Date.UTC(2100, 0, 1)); // a client clock far ahead must not expire it early
      expect(await store.claim("r1", "a", 300)).toBe(true);
      expect(await store.claim("r1", "b", 300)).toBe(false);
      expect(await store.leaseHolder("r1")).toBe("a");
      await new Promise((r) => setTimeout(r, 400)); // timers are real; only Date is faked
      expect(await store.leaseHolder("r1")).toBeUndefined();
      expect(await store.claim("r1", "b", 300)).toBe(true);
      expect(await store.leaseHolder("r1")).toBe("b");
    });

    it("stamps signals with the database's clock", async () => {
      const store = await connect();
      await newRun(store, "r1");
      vi.useFakeTimers({ toFake: ["Date"] });
      vi.setSystemTime(Date.UTC(2000, 0, 1));
      await store.signal("r1", "cancel");
      const [s] = await store.takeSignals("r1");
      vi.useRealTimers();
      expect(Math.abs(Date.parse(s!.at) - Date.now())).toBeLessThan(60_000);
    });
  });

  describe("lost connections", () => {
    it("recovers after every connection of the store is terminated", async () => {
      const { url, app } = appUrl();
      const store = await connect({ url });
      await newRun(store, "r1");
      let seq = 1;
      for (let round = 0; round < 3; round++) {
        // Open several pooled connections, then kill them all.
        await Promise.all([1, 2, 3, 4].map(() => store.get("r1")));
        const before = await backends(app);
        expect(before.length).toBeGreaterThan(0);
        await kill(before);
        // Immediately: reads, appends and the rest work (on new connections).
        expect((await store.get("r1"))?.seq).toBe(seq);
        seq = await store.append("r1", [ev.stageStarted(`s${round}`)], seq);
        expect((await store.load("r1")).events).toHaveLength(seq);
        expect(await store.list()).toHaveLength(1);
        expect(await store.claim("r1", "me", 60_000)).toBe(true);
        await store.signal("r1", "poke", round);
        expect((await store.takeSignals("r1")).map((s) => s.data)).toEqual([round]);
        const after = await backends(app);
        expect(after.some((pid) => before.includes(pid))).toBe(false);
      }
      expect(seq).toBe(4);
    });

    it("recovers when killed between operations without waiting (every operation)", async () => {
      const { url, app } = appUrl();
      const store = await connect({ url });
      await newRun(store, "r1");
      const ops: Array<() => Promise<unknown>> = [
        () => store.get("r1"),
        () => store.load("r1"),
        () => store.eventsAfter("r1", 0),
        () => store.list(),
        () => store.resolveId("r1"),
        () => store.append("r1", [], 1),
        () => store.claim("r1", "me", 1000),
        () => store.leaseHolder("r1"),
        () => store.release("r1", "me"),
        () => store.signal("r1", "x"),
        () => store.takeSignals("r1"),
        () => newRun(store, `r-${randomBytes(4).toString("hex")}`),
      ];
      for (const op of ops) {
        await kill(await backends(app));
        await expect(op()).resolves.not.toThrow();
      }
    });

    it("retries an append whose connection died before COMMIT, on a fresh connection", async () => {
      const { url, app } = appUrl();
      const schema = freshSchema();
      const store = await connect({ url, schema });
      await newRun(store, "r1");
      const locker = await admin.connect();
      try {
        // Hold the run's row so the append blocks inside its transaction, then kill it there.
        await locker.query("BEGIN");
        await locker.query(`SELECT 1 FROM ${schema}.runs WHERE id = 'r1' FOR UPDATE`);
        const appending = store.append("r1", [ev.stageStarted("a"), ev.succeeded("a", "z".repeat(30_000))], 1);
        const [blocked] = await waitFor(() => backends(app, "wait_event_type = 'Lock'"), "the append to block");
        await kill([blocked!]);
        // The retry blocks on the same lock from a new connection (the killed backend may still be
        // listed, waiting, for a moment after pg_terminate_backend returns: look past it).
        const [retry] = await waitFor(() => backends(app, `wait_event_type = 'Lock' AND pid <> ${blocked!}`), "the retried append to block");
        expect(retry).not.toBe(blocked);
        await locker.query("COMMIT");
        expect(await appending).toBe(3);
      } finally {
        await locker.query("ROLLBACK").catch(() => undefined);
        locker.release();
      }
      expect((await store.load("r1")).events).toHaveLength(3);
      expect(await count(schema, "events")).toBe(3);
      expect(await count(schema, "blobs")).toBe(1);
    });

    it("retries a claim whose connection died mid-statement (claims are idempotent)", async () => {
      const { url, app } = appUrl();
      const schema = freshSchema();
      const store = await connect({ url, schema });
      await newRun(store, "r1");
      const locker = await admin.connect();
      try {
        await locker.query("BEGIN");
        await locker.query(`SELECT 1 FROM ${schema}.runs WHERE id = 'r1' FOR UPDATE`);
        const claiming = store.claim("r1", "me", 60_000);
        const [blocked] = await waitFor(() => backends(app, "wait_event_type = 'Lock'"), "the claim to block");
        await kill([blocked!]);
        await waitFor(() => backends(app, `wait_event_type = 'Lock' AND pid <> ${blocked!}`), "the retried claim to block");
        await locker.query("COMMIT");
        expect(await claiming).toBe(true);
      } finally {
        await locker.query("ROLLBACK").catch(() => undefined);
        locker.release();
      }
      expect(await store.leaseHolder("r1")).toBe("me");
    });

    it("surfaces, and does not retry, an append (with a large payload: a transaction) whose connection died while COMMIT was in flight", async () => {
      const { url, app } = appUrl();
      const schema = freshSchema();
      const store = await connect({ url, schema });
      await newRun(store, "r1");
      // A deferred trigger makes COMMIT slow, so the test can kill the connection during it.
      await admin.query(`
        CREATE FUNCTION ${schema}.slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON ${schema}.events
          DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.run_id = 'r1')
          EXECUTE FUNCTION ${schema}.slow_commit();`);
      // A payload of a blob's size makes the append a transaction (events + blobs).
      const appending = store.append("r1", [ev.succeeded("a", { pad: "p".repeat(40_000) })], 1).catch((e: unknown) => e);
      const [committing] = await waitFor(
        () => backends(app, "wait_event = 'PgSleep' AND query = 'COMMIT'"),
        "the append to be committing",
      );
      await kill([committing!]);
      const err = await appending;
      expect(err).toBeInstanceOf(CommitOutcomeUnknownError);
      expect(err).toMatchObject({ retryable: false, message: expect.stringMatching(/while committing an append to run r1: it may or may not have been written/) });
      expect(isConnectionLost((err as Error).cause)).toBe(true);
      // Not retried: nobody is committing any more, and the killed transaction left nothing.
      expect(await backends(app, "wait_event = 'PgSleep'")).toEqual([]);
      expect((await store.get("r1"))?.seq).toBe(1);
      await admin.query(`DROP TRIGGER slow_commit ON ${schema}.events`);
      expect(await store.append("r1", [ev.stageStarted("a")], 1)).toBe(2);
    });

    it("an append (one statement) whose connection died mid-statement: the log tells it did not land, so it is sent once more", async () => {
      const { url, app } = appUrl();
      const schema = freshSchema();
      const store = await connect({ url, schema });
      await newRun(store, "r1");
      // The first insert sleeps (the sequence is not rolled back with the killed statement, so only once).
      await admin.query(`
        CREATE SEQUENCE ${schema}.once;
        CREATE FUNCTION ${schema}.slow_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF nextval('${schema}.once') = 1 THEN PERFORM pg_sleep(30); END IF; RETURN NULL; END $$;
        CREATE TRIGGER slow_once AFTER INSERT ON ${schema}.events FOR EACH ROW WHEN (NEW.run_id = 'r1')
          EXECUTE FUNCTION ${schema}.slow_once();`);
      const appending = store.append("r1", [ev.stageStarted("a")], 1);
      const [stmt] = await waitFor(() => backends(app, "wait_event = 'PgSleep'"), "the append to be running");
      await kill([stmt!]);
      expect(await appending).toBe(2);
      const { events } = await store.load("r1");
      expect(events.map((e) => e.type)).toEqual(["run_started", "stage_started"]);
      await admin.query(`DROP TRIGGER slow_once ON ${schema}.events`);
    });

    it("says where it tried when the server cannot be reached, without the password", async () => {
      const err = await PostgresStore.connect("postgres://baton:s3cret@127.0.0.1:1/nope").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/^cannot connect to PostgreSQL at postgres:\/\/baton:\*\*\*@127\.0\.0\.1:1\/nope: .*ECONNREFUSED.*is the server running/);
      expect((err as Error).message).not.toContain("s3cret");
      const db = URL.replace(/\/[^/?]*(\?|$)/, "/baton_no_such_db$1");
      await expect(PostgresStore.connect(db)).rejects.toThrow(/^PostgreSQL at .*baton_no_such_db refused the connection: database "baton_no_such_db" does not exist/);
    });
  });

  describe("close", () => {
    it("ends the pool; later calls say the store is closed; closing twice is fine", async () => {
      const { url, app } = appUrl();
      const store = await PostgresStore.connect(url, { schema: freshSchema() });
      await newRun(store, "r1");
      await store.close();
      await store.close();
      await expect(store.get("r1")).rejects.toThrow(/is closed/);
      await expect(store.append("r1", [], 1)).rejects.toThrow(/is closed/);
      await waitFor(async () => ((await backends(app)).length === 0 ? [true] : []), "the pool's connections to close");
    });
  });
});

describe("openStoreAsync and baton migrate", () => {
  beforeEach(needPostgres);
  const saved = { store: process.env["BATON_STORE"], db: process.env["BATON_DB"] };
  afterEach(() => {
    for (const [key, value] of [["BATON_STORE", saved.store], ["BATON_DB", saved.db]] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    vi.restoreAllMocks();
  });

  it("opens postgres:// and postgresql:// URLs as a PostgresStore; openStore points to it", async () => {
    const schema = freshSchema();
    for (const url of [URL, URL.replace(/^postgres:/, "postgresql:")]) {
      const store = await openStoreAsync(url, { schema });
      expect(store).toBeInstanceOf(PostgresStore);
      expect(store.shared).toBe(true);
      await store.close();
    }
    expect(() => openStore(URL)).toThrow(/use `await openStoreAsync\(spec\)`/);
  });

  it("defaults to BATON_STORE, then BATON_DB", async () => {
    const schema = freshSchema();
    process.env["BATON_STORE"] = URL;
    process.env["BATON_DB"] = "memory:";
    const store = await openStoreAsync(undefined, { schema });
    expect(store).toBeInstanceOf(PostgresStore);
    await store.close();
    expect(() => openStore()).toThrow(/openStoreAsync/);
    delete process.env["BATON_STORE"];
    const mem = await openStoreAsync();
    expect(mem.shared).toBe(false);
    await mem.close();
  });

  it("baton migrate --store URL applies the migrations once and prints the schema version", async () => {
    const schema = freshSchema();
    const out: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
    const migrate = async (): Promise<void> => {
      const program = new Command("baton").option("--db <path>").exitOverride();
      registerMigrate(program);
      await program.parseAsync(["migrate", "--store", URL, "--schema", schema], { from: "user" });
    };
    await migrate();
    await migrate();
    const n = POSTGRES_MIGRATIONS.length;
    expect(out).toEqual([
      `schema version ${n} (applied ${POSTGRES_MIGRATIONS.map((_, i) => i + 1).join(", ")})\n`,
      `schema version ${n} (up to date)\n`,
    ]);
    expect(await count(schema, "baton_migrations")).toBe(n);
  });
});
