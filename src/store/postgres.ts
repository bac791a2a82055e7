/**
 * The shared event-log store: PostgreSQL through a `pg` pool, for `baton worker`s on many
 * machines (SPEC §6). Same tables and semantics as the SQLite store: the run row follows its
 * events (status.ts), large payloads are stored once in `blobs` (payload.ts), appends check
 * the run's `seq` and write in one transaction. Lease times come from the database's clock, so
 * workers with skewed clocks agree on who holds a run.
 *
 * Connection loss (a restarted server, `pg_terminate_backend`, a dropped TCP connection) is
 * survived as follows: the pool drops dead connections and opens new ones, and an operation
 * that failed because its connection died is tried once more on a fresh connection when that
 * cannot write twice — reads, idempotent writes (claim, release), and transactions whose
 * COMMIT had not been sent. A connection lost while COMMIT was in flight leaves the outcome
 * unknown: that surfaces as {@link CommitOutcomeUnknownError}, never as a silent retry.
 */
import { Client, Pool } from "pg";
import type { ClientBase, ClientConfig, PoolClient, QueryResult, QueryResultRow } from "pg";
import type { BatonEvent } from "../engine/events.js";
import { encodeEvent, parseStored, restoreBlobs } from "./payload.js";
import { ConflictError, RunNotFoundError, checkRecordKey, liveTail, pickByPrefix, recordJson } from "./port.js";
import type { LiveText, RunFilter, RunRecord, RunSignal, RunStatus, Store, StoredRecord } from "./port.js";
import { POSTGRES_MIGRATIONS } from "./postgres-migrations.js";
import { rowChange } from "./status.js";

/** Options of {@link PostgresStore.connect}. */
export interface PostgresStoreOptions {
  /**
   * The schema that holds Baton's tables: created if missing and set as every connection's
   * `search_path`. Lowercase letters, digits and `_`. Default: the server's `search_path`
   * (usually `public`).
   */
  readonly schema?: string;
  /** Connections in the pool. @default 10 */
  readonly max?: number;
  /**
   * `normal` (default): commits do not wait for the WAL to reach disk (`synchronous_commit =
   * off`): a crash of the PostgreSQL server or its machine may lose the last transitions
   * committed in the ~0.6 s before it (the database stays consistent; those stages run again,
   * at-least-once, with the same idempotency keys) — the same trade as the SQLite default.
   * `full`: every transition is on disk before Baton acts on it.
   */
  readonly durability?: "normal" | "full";
  /**
   * Take lease and signal times (epoch ms) from this function instead of the database's
   * `clock_timestamp()`: for tests on a simulated clock. Leave it unset in production.
   */
  readonly now?: () => number;
}

/** What {@link PostgresStore.connect} found and did: the schema version and the migrations it applied. */
export interface MigrationResult {
  /** The schema version after connecting (= number of migrations applied, ever). */
  readonly version: number;
  /** Versions applied by this connect (empty when the schema was up to date). */
  readonly applied: readonly number[];
}

/**
 * A transaction's COMMIT was sent but its connection died before the answer came: it may or
 * may not have been written. Not retryable as is: reload the run (its `seq` tells) first.
 */
export class CommitOutcomeUnknownError extends Error {
  override readonly name = "CommitOutcomeUnknownError";
  readonly retryable = false;
  constructor(what: string, cause: unknown) {
    super(
      `the connection to PostgreSQL was lost while committing ${what}: it may or may not have been written; ` +
        `check before trying again (a run's sequence number tells whether an append landed)`,
      { cause },
    );
  }
}

/** Key of the advisory lock that serializes migrations (any constant; "baton" in ASCII). */
export const MIGRATION_LOCK_KEY = 0x6261746f6e;

/** The database's clock in epoch ms, or the `$n` parameter when it is set (see {@link PostgresStoreOptions.now}). */
const nowMs = (param: string): string =>
  `coalesce(${param}::bigint, floor(extract(epoch from clock_timestamp()) * 1000)::bigint)`;

const RUN_COLS = "id, pipeline, plan_hash, status, started_at, ended_at, seq, parent_id";

interface RunRow {
  id: string;
  pipeline: string;
  plan_hash: string;
  status: RunStatus;
  /** bigint: pg returns it as a string. */
  started_at: string;
  ended_at: string | null;
  seq: number;
  parent_id: string | null;
}

interface SignalRow {
  id: string;
  run_id: string;
  kind: string;
  data: string | null;
  at: string;
}

/** Anything that runs a parameterized statement: the pool or one connection. */
interface Db {
  query<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
}

function toRecord(row: RunRow): RunRecord {
  return {
    id: row.id,
    pipeline: row.pipeline,
    planHash: row.plan_hash,
    status: row.status,
    startedAt: new Date(Number(row.started_at)).toISOString(),
    ...(row.ended_at !== null ? { endedAt: new Date(Number(row.ended_at)).toISOString() } : {}),
    seq: row.seq,
    ...(row.parent_id !== null ? { parentId: row.parent_id } : {}),
  };
}

/** SQLSTATEs that mean the session is gone (admin/crash shutdown, cannot connect now, connection exceptions). */
const LOST_SQLSTATES = new Set(["57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006"]);
const LOST_ERRNOS = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ENOTCONN", "EHOSTUNREACH", "ENETUNREACH"]);

/** Whether `err` says the connection died (as opposed to an error the server reported for a statement). */
export function isConnectionLost(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && (LOST_SQLSTATES.has(code) || LOST_ERRNOS.has(code))) return true;
  const message = (err as { message?: unknown }).message;
  return (
    typeof message === "string" &&
    /^(Connection terminated unexpectedly|Client has encountered a connection error and is not queryable|Connection terminated due to connection timeout)/.test(
      message,
    )
  );
}

/** `url` with its password masked, for error messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@/]*@/i, "$1***@");
}

/** Split the `options` query parameter (startup options, e.g. `-c statement_timeout=5s`) off a connection URL. */
function takeOptions(url: string): { url: string; options?: string } {
  const q = url.indexOf("?");
  if (q < 0) return { url };
  let options: string | undefined;
  const keep = url
    .slice(q + 1)
    .split("&")
    .filter((param) => {
      if (!param.startsWith("options=")) return true;
      options = decodeURIComponent(param.slice("options=".length).replace(/\+/g, " "));
      return false;
    });
  return { url: url.slice(0, q) + (keep.length > 0 ? `?${keep.join("&")}` : ""), ...(options !== undefined ? { options } : {}) };
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The PostgreSQL adapter of the {@link Store} port. Create it with {@link PostgresStore.connect}. */
export class PostgresStore implements Store {
  readonly shared = true;
  /** The pool (diagnostics and tests; do not write through it). */
  readonly pool: Pool;
  private migrated: MigrationResult = { version: 0, applied: [] };
  /** The last error of an idle pooled connection (the pool has replaced it); for diagnostics. */
  lastIdleError: Error | undefined;
  private readonly config: ClientConfig;
  private readonly now: (() => number) | undefined;
  private readonly label: string;
  private closed = false;

  /**
   * Connect to the database at `url` (`postgres://user:pass@host:port/db`), creating
   * `opts.schema` if needed, and apply pending migrations (idempotent; safe against
   * concurrent connects: they wait on an advisory lock and find the work done).
   */
  static async connect(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
    if (opts.schema !== undefined && !SCHEMA_NAME.test(opts.schema)) {
      throw new Error(
        `PostgreSQL schema name '${opts.schema}' is not allowed: use 1 to 63 lowercase letters, digits and _, starting with a letter or _`,
      );
    }
    if (opts.max !== undefined && !(Number.isInteger(opts.max) && opts.max >= 1)) {
      throw new Error(`PostgreSQL pool size must be a whole number from 1 up, got ${String(opts.max)}`);
    }
    const config: ClientConfig = { connectionString: url, keepAlive: true, connectionTimeoutMillis: 15_000 };
    const startup = [
      ...(opts.schema !== undefined ? [`-c search_path=${opts.schema}`] : []),
      ...(opts.durability === "full" ? [] : ["-c synchronous_commit=off"]),
    ];
    if (startup.length > 0) {
      // Startup options set search_path (and the commit mode) on every connection, pooled or
      // not, without a round trip. pg lets the URL's `options` override ours: move them in front.
      const split = takeOptions(url);
      config.connectionString = split.url;
      const given = split.options ?? process.env["PGOPTIONS"];
      config.options = `${given ? `${given} ` : ""}${startup.join(" ")}`;
    }
    const store = new PostgresStore(new Pool({ ...config, max: opts.max ?? 10 }), config, opts, url);
    try {
      store.migrated = await store.migrate(opts.schema);
    } catch (err) {
      await store.close();
      const code = (err as { code?: unknown }).code;
      if (isConnectionLost(err) || code === "ENOTFOUND") {
        throw new Error(
          `cannot connect to PostgreSQL at ${store.label}: ${(err as Error).message}; is the server running, and is --store / BATON_STORE right?`,
          { cause: err },
        );
      }
      if (typeof code === "string" && (code.startsWith("28") || code === "3D000")) {
        throw new Error(`PostgreSQL at ${store.label} refused the connection: ${(err as Error).message}`, { cause: err });
      }
      throw err;
    }
    return store;
  }

  private constructor(pool: Pool, config: ClientConfig, opts: PostgresStoreOptions, url: string) {
    this.pool = pool;
    this.config = config;
    this.now = opts.now;
    this.label = redactUrl(url) + (opts.schema !== undefined ? ` (schema ${opts.schema})` : "");
    // An idle connection that dies (server restart, pg_terminate_backend) is dropped by the
    // pool, which emits it here; without a listener the process would crash.
    pool.on("error", (err) => {
      this.lastIdleError = err;
    });
  }

  /** The schema version after connecting, and the migrations this connect applied. */
  get migration(): MigrationResult {
    return this.migrated;
  }

  async create(
    run: { id: string; pipeline: string; planHash: string; parentId?: string },
    events: readonly BatonEvent[],
  ): Promise<number> {
    const first = events[0];
    if (first?.type !== "run_started") throw new Error(`run ${run.id}: the first event must be run_started`);
    if (first.run_id !== run.id) throw new Error(`run ${run.id}: its run_started event names run ${first.run_id}`);
    const change = rowChange(events);
    const batch = encodeBatch(events);
    await this.transaction(`the creation of run ${run.id}`, async (db) => {
      try {
        await db.query(
          `INSERT INTO runs (id, pipeline, plan_hash, status, started_at, ended_at, seq, parent_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [run.id, run.pipeline, run.planHash, change.status ?? "running", first.at, change.endedAt ?? null, events.length, run.parentId ?? null],
        );
      } catch (err) {
        if ((err as { code?: unknown }).code === "23505") throw new Error(`run ${run.id} already exists`);
        throw err;
      }
      await db.query(
        `INSERT INTO events (run_id, seq, type, at, data)
         SELECT $1, e.ord, e.type, e.at, e.data
         FROM unnest($2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS e (type, at, data, ord)`,
        [run.id, batch.types, batch.ats, batch.data],
      );
      await putBlobs(db, batch.blobs);
    });
    return events.length;
  }

  async append(runId: string, events: readonly BatonEvent[], expectedSeq: number): Promise<number> {
    const seq = expectedSeq + events.length;
    const change = rowChange(events);
    const batch = encodeBatch(events);
    // The sequence check, the run row and the events in one statement: events are inserted
    // only when the UPDATE matched (it locks the row, so a concurrent appender waits and then
    // finds seq changed). Without blobs that one statement is the whole transaction.
    const sql = `WITH bump AS (
           UPDATE runs SET seq = $2, status = coalesce($3::text, status),
             ended_at = CASE WHEN $4::boolean THEN $5::bigint ELSE ended_at END
           WHERE id = $1 AND seq = $6
           RETURNING id
         ), ins AS (
           INSERT INTO events (run_id, seq, type, at, data)
           SELECT bump.id, $6 + e.ord, e.type, e.at, e.data
           FROM bump, unnest($7::text[], $8::bigint[], $9::text[]) WITH ORDINALITY AS e (type, at, data, ord)
         )${
           // A finished run has no live text any more (streams of its turns are over).
           typeof change.endedAt === "number" ? ", unlive AS (DELETE FROM live_text WHERE run_id IN (SELECT id FROM bump))" : ""
         }
         SELECT count(*)::int AS n FROM bump`;
    const params = [runId, seq, change.status ?? null, change.endedAt !== undefined, change.endedAt ?? null, expectedSeq, batch.types, batch.ats, batch.data];
    const conflict = async (db: Db): Promise<never> => {
      // A new statement sees what committed meanwhile (READ COMMITTED).
      const actual = await db.query<{ seq: number }>("SELECT seq FROM runs WHERE id = $1", [runId]);
      const row = actual.rows[0];
      if (row === undefined) throw new RunNotFoundError(runId);
      throw new ConflictError(runId, expectedSeq, row.seq);
    };
    if (batch.blobs.size === 0) {
      this.checkOpen();
      let bumped;
      try {
        bumped = await this.pool.query<{ n: number }>(sql, params);
      } catch (err) {
        if (!isConnectionLost(err) || this.closed) throw err;
        // The statement may or may not have run: the log tells (our events at our sequence numbers).
        if (await this.landed(runId, expectedSeq, batch.data)) return seq;
        const again = await this.pool.query<{ n: number }>(sql, params).catch((e2: unknown) => {
          throw isConnectionLost(e2) ? new CommitOutcomeUnknownError(`an append to run ${runId}`, e2) : e2;
        });
        if (again.rows[0]?.n !== 1) return conflict(this.pool);
        return seq;
      }
      if (bumped.rows[0]?.n !== 1) return conflict(this.pool);
      return seq;
    }
    return this.transaction(`an append to run ${runId}`, async (db) => {
      const bumped = await db.query<{ n: number }>(sql, params);
      if (bumped.rows[0]?.n !== 1) return conflict(db);
      await putBlobs(db, batch.blobs);
      return seq;
    });
  }

  /** Whether an append whose outcome is unknown landed: the events after `expectedSeq` are exactly these. */
  private async landed(runId: string, expectedSeq: number, data: readonly string[]): Promise<boolean> {
    const client = await this.freshClient();
    try {
      const { rows } = await client.query<{ data: string }>("SELECT data FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3", [runId, expectedSeq, data.length]);
      return rows.length === data.length && rows.every((r, i) => r.data === data[i]);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async load(runId: string): Promise<{ run: RunRecord; events: BatonEvent[] }> {
    return this.read(async (db) => {
      // One statement, one snapshot: the row's seq and the events agree.
      const { rows } = await db.query<RunRow & { data: string | null }>(
        `SELECT r.id, r.pipeline, r.plan_hash, r.status, r.started_at, r.ended_at, r.seq, r.parent_id, e.data
         FROM runs r LEFT JOIN events e ON e.run_id = r.id
         WHERE r.id = $1 ORDER BY e.seq`,
        [runId],
      );
      const first = rows[0];
      if (first === undefined) throw new RunNotFoundError(runId);
      const data = first.data === null ? [] : rows.map((r) => r.data as string);
      return { run: toRecord(first), events: await decodeAll(db, data) };
    });
  }

  async eventsAfter(runId: string, afterSeq: number): Promise<BatonEvent[]> {
    return this.read(async (db) => {
      const { rows } = await db.query<{ data: string | null }>(
        `SELECT e.data FROM runs r LEFT JOIN events e ON e.run_id = r.id AND e.seq > $2
         WHERE r.id = $1 ORDER BY e.seq`,
        [runId, afterSeq],
      );
      if (rows.length === 0) throw new RunNotFoundError(runId);
      const data = rows[0]?.data === null ? [] : rows.map((r) => r.data as string);
      return decodeAll(db, data);
    });
  }

  async get(runId: string): Promise<RunRecord | undefined> {
    const { rows } = await this.query<RunRow>(`SELECT ${RUN_COLS} FROM runs WHERE id = $1`, [runId]);
    return rows[0] === undefined ? undefined : toRecord(rows[0]);
  }

  async list(filter?: RunFilter): Promise<RunRecord[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    if (filter?.status !== undefined) where.push(`status = $${values.push(filter.status)}`);
    if (filter?.pipeline !== undefined) where.push(`pipeline = $${values.push(filter.pipeline)}`);
    const limit = filter?.limit ?? 100;
    // A negative limit means none, as in SQLite.
    const limitParam = `$${values.push(limit < 0 ? null : Math.floor(limit))}::bigint`;
    const { rows } = await this.query<RunRow>(
      `SELECT ${RUN_COLS} FROM runs ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
       ORDER BY started_at DESC, id DESC LIMIT ${limitParam}`,
      values,
    );
    return rows.map(toRecord);
  }

  async resolveId(prefix: string): Promise<string> {
    if (prefix.length < 4) {
      const { rows } = await this.query<{ id: string }>("SELECT id FROM runs WHERE id = $1", [prefix]);
      if (rows[0] === undefined) throw new RunNotFoundError(prefix);
      return prefix;
    }
    // The exact id first (it may prefix others); else every match (a parent and its children
    // resolve to the parent, see pickByPrefix), at most 1,000 of them, and their count.
    const pattern = prefix.replace(/[\\%_]/g, (c) => "\\" + c) + "%";
    const { rows } = await this.query<{ id: string; n: string }>(
      `SELECT id, count(*) OVER () AS n FROM runs WHERE id LIKE $2
       ORDER BY id = $1 DESC, id LIMIT 1000`,
      [prefix, pattern],
    );
    if (rows[0]?.id === prefix) return prefix;
    return pickByPrefix(prefix, rows.map((r) => r.id), Number(rows[0]?.n ?? 0));
  }

  async claim(runId: string, owner: string, ttlMs: number): Promise<boolean> {
    // Idempotent for `owner` (a repeat renews), so it may be retried after a lost connection.
    const { rows } = await this.query<{ claimed: boolean; found: boolean }>(
      `WITH now AS (SELECT ${nowMs("$4")} AS ms),
       upd AS (
         UPDATE runs SET lease_owner = $2, lease_until = (SELECT ms FROM now) + $3::bigint
         WHERE id = $1 AND (lease_owner IS NULL OR lease_until < (SELECT ms FROM now) OR lease_owner = $2)
         RETURNING 1
       )
       SELECT EXISTS (SELECT 1 FROM upd) AS claimed, EXISTS (SELECT 1 FROM runs WHERE id = $1) AS found`,
      [runId, owner, Math.round(ttlMs), this.clock()],
    );
    const row = rows[0];
    if (row?.claimed === true) return true;
    if (row?.found !== true) throw new RunNotFoundError(runId);
    return false;
  }

  async release(runId: string, owner: string): Promise<void> {
    await this.query("UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2", [runId, owner]);
  }

  async leaseHolder(runId: string): Promise<string | undefined> {
    const { rows } = await this.query<{ lease_owner: string }>(
      `SELECT lease_owner FROM runs WHERE id = $1 AND lease_owner IS NOT NULL AND lease_until >= ${nowMs("$2")}`,
      [runId, this.clock()],
    );
    return rows[0]?.lease_owner;
  }

  async signal(runId: string, kind: string, data?: unknown): Promise<void> {
    const json = data === undefined ? null : (JSON.stringify(data) ?? null);
    await this.transaction(`a '${kind}' signal to run ${runId}`, async (db) => {
      try {
        await db.query(`INSERT INTO signals (run_id, kind, data, at) VALUES ($1, $2, $3, ${nowMs("$4")})`, [
          runId,
          kind,
          json,
          this.clock(),
        ]);
      } catch (err) {
        if ((err as { code?: unknown }).code === "23503") throw new RunNotFoundError(runId);
        throw err;
      }
    });
  }

  async takeSignals(runId: string): Promise<RunSignal[]> {
    const rows = await this.transaction(`taking the signals of run ${runId}`, async (db) => {
      // One row with id NULL when there is nothing to take; found says whether the run exists.
      const result = await db.query<{ [K in keyof SignalRow]: SignalRow[K] | null } & { found: boolean }>(
        `WITH taken AS (
           UPDATE signals SET taken = true WHERE run_id = $1 AND NOT taken
           RETURNING id, run_id, kind, data, at
         )
         SELECT t.id, t.run_id, t.kind, t.data, t.at, EXISTS (SELECT 1 FROM runs WHERE id = $1) AS found
         FROM (VALUES (1)) AS one LEFT JOIN taken t ON true
         ORDER BY t.id`,
        [runId],
      );
      return result.rows;
    });
    if (rows[0]?.found !== true) throw new RunNotFoundError(runId);
    return rows
      .filter((r): r is SignalRow & { found: boolean } => r.id !== null)
      .map((r) => ({
        id: Number(r.id),
        runId: r.run_id,
        kind: r.kind,
        ...(r.data !== null ? { data: JSON.parse(r.data) as unknown } : {}),
        at: new Date(Number(r.at)).toISOString(),
      }));
  }

  async putLive(runId: string, key: string, text: string | undefined): Promise<void> {
    // Idempotent either way, so a lost connection is retried (see read()).
    if (text === undefined) {
      await this.query("DELETE FROM live_text WHERE run_id = $1 AND key = $2", [runId, key]);
      return;
    }
    // Only for a run that exists and has not finished: a late write cannot outlive its run.
    await this.query(
      `INSERT INTO live_text (run_id, key, text, at)
       SELECT $1, $2, $3, ${nowMs("$4")} WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND ended_at IS NULL)
       ON CONFLICT (run_id, key) DO UPDATE SET text = excluded.text, at = excluded.at`,
      [runId, key, liveTail(text), this.clock()],
    );
  }

  async live(runId: string): Promise<Record<string, LiveText>> {
    const { rows } = await this.query<{ key: string; text: string; at: string }>("SELECT key, text, at FROM live_text WHERE run_id = $1 ORDER BY key", [runId]);
    const out: Record<string, LiveText> = {};
    for (const r of rows) out[r.key] = { text: r.text, at: Number(r.at) };
    return out;
  }

  async putRecord(kind: string, key: string, value: unknown, o: { ifAbsent?: boolean } = {}): Promise<{ created: boolean; value: unknown }> {
    checkRecordKey(kind, key);
    const data = recordJson(kind, key, value);
    if (o.ifAbsent) {
      // Of concurrent inserts of one key exactly one returns a row; the others read the winner's.
      const ins = await this.query<{ key: string }>(
        `INSERT INTO records (kind, key, data, at) VALUES ($1, $2, $3, ${nowMs("$4")}) ON CONFLICT (kind, key) DO NOTHING RETURNING key`,
        [kind, key, data, this.clock()],
      );
      if (ins.rows.length === 1) return { created: true, value: JSON.parse(data) };
      const { rows } = await this.query<{ data: string }>("SELECT data FROM records WHERE kind = $1 AND key = $2", [kind, key]);
      if (rows[0] === undefined) return this.putRecord(kind, key, value, o); // deleted in between: try again
      return { created: false, value: JSON.parse(rows[0].data) };
    }
    const { rows } = await this.query<{ created: boolean }>(
      `INSERT INTO records (kind, key, data, at) VALUES ($1, $2, $3, ${nowMs("$4")})
       ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, at = excluded.at RETURNING (xmax = 0) AS created`,
      [kind, key, data, this.clock()],
    );
    return { created: rows[0]?.created === true, value: JSON.parse(data) };
  }

  async getRecord(kind: string, key: string): Promise<StoredRecord | undefined> {
    const { rows } = await this.query<{ key: string; data: string; at: string }>("SELECT key, data, at FROM records WHERE kind = $1 AND key = $2", [kind, key]);
    const r = rows[0];
    return r ? { key: r.key, value: JSON.parse(r.data), at: new Date(Number(r.at)).toISOString() } : undefined;
  }

  async listRecords(kind: string, o: { prefix?: string; limit?: number } = {}): Promise<StoredRecord[]> {
    const { rows } = await this.query<{ key: string; data: string; at: string }>(
      "SELECT key, data, at FROM records WHERE kind = $1 AND left(key, length($2)) = $2 ORDER BY key LIMIT $3",
      [kind, o.prefix ?? "", o.limit ?? null],
    );
    return rows.map((r) => ({ key: r.key, value: JSON.parse(r.data), at: new Date(Number(r.at)).toISOString() }));
  }

  async deleteRecord(kind: string, key: string): Promise<boolean> {
    const { rowCount } = await this.query("DELETE FROM records WHERE kind = $1 AND key = $2", [kind, key]);
    return (rowCount ?? 0) > 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  /** The schema version recorded in `baton_migrations` (0 before any migration). */
  async schemaVersion(): Promise<number> {
    const { rows } = await this.query<{ v: number }>("SELECT coalesce(max(version), 0)::int AS v FROM baton_migrations");
    return rows[0]?.v ?? 0;
  }

  /** The injected clock's time, or null for the database's. */
  private clock(): number | null {
    return this.now === undefined ? null : Math.round(this.now());
  }

  /**
   * Apply pending migrations in one transaction holding the migration advisory lock: a
   * concurrent connect waits for it, then finds them applied. DDL is transactional in
   * PostgreSQL, so a failed migration leaves nothing behind.
   */
  private async migrate(schema: string | undefined): Promise<MigrationResult> {
    return this.transaction("the schema migrations", async (db) => {
      await db.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
      if (schema !== undefined) {
        await db.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
        await db.query(`SET LOCAL search_path TO ${schema}`);
      }
      await db.query(
        `CREATE TABLE IF NOT EXISTS baton_migrations (
           version    integer     PRIMARY KEY,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
      const { rows } = await db.query<{ v: number }>("SELECT coalesce(max(version), 0)::int AS v FROM baton_migrations");
      const current = rows[0]?.v ?? 0;
      if (current > POSTGRES_MIGRATIONS.length) {
        throw new Error(
          `the PostgreSQL store at ${this.label} has schema version ${current}, newer than this Baton knows (${POSTGRES_MIGRATIONS.length}): upgrade Baton`,
        );
      }
      const applied: number[] = [];
      for (let v = current + 1; v <= POSTGRES_MIGRATIONS.length; v++) {
        await db.query(POSTGRES_MIGRATIONS[v - 1] as string);
        await db.query("INSERT INTO baton_migrations (version) VALUES ($1)", [v]);
        applied.push(v);
      }
      return { version: Math.max(current, POSTGRES_MIGRATIONS.length), applied };
    });
  }

  /** One statement outside a transaction; retried once on a fresh connection if the connection died. */
  private async query<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>> {
    return this.read((db) => db.query<R>(text, values));
  }

  /**
   * Run `op` (reads, or writes that are harmless to repeat) on the pool; if a connection died
   * under it, run it once more on a fresh connection of its own (other pooled connections may
   * be dead too and not known to be yet).
   */
  private async read<T>(op: (db: Db) => Promise<T>): Promise<T> {
    this.checkOpen();
    try {
      return await op(this.pool);
    } catch (err) {
      if (!isConnectionLost(err) || this.closed) throw err;
      const client = await this.freshClient();
      try {
        return await op(client);
      } finally {
        await client.end().catch(() => undefined);
      }
    }
  }

  /**
   * Run `fn` in a transaction on one connection. If the connection dies before COMMIT is sent,
   * nothing was written (the server rolls the transaction back): try once more on a fresh
   * connection. If it dies while COMMIT is in flight, throw {@link CommitOutcomeUnknownError}.
   * Any other error rolls back and is thrown as is.
   */
  private async transaction<T>(what: string, fn: (db: Db) => Promise<T>): Promise<T> {
    this.checkOpen();
    for (let attempt = 1; ; attempt++) {
      const retry = attempt === 1 && !this.closed;
      let conn: { db: ClientBase; done: (err?: Error) => Promise<void> };
      try {
        conn = attempt === 1 ? await this.checkout() : await this.fresh();
      } catch (err) {
        if (retry && isConnectionLost(err)) continue;
        throw err;
      }
      let commitSent = false;
      try {
        await conn.db.query("BEGIN");
        const result = await fn(conn.db);
        commitSent = true;
        await conn.db.query("COMMIT");
        await conn.done();
        return result;
      } catch (err) {
        if (isConnectionLost(err)) {
          await conn.done(err as Error);
          if (commitSent) throw new CommitOutcomeUnknownError(what, err);
          if (retry) continue;
          throw err;
        }
        try {
          await conn.db.query("ROLLBACK");
          await conn.done();
        } catch (rollbackErr) {
          await conn.done(rollbackErr as Error);
        }
        throw err;
      }
    }
  }

  /** A pooled connection, with an error listener while it is checked out. */
  private async checkout(): Promise<{ db: ClientBase; done: (err?: Error) => Promise<void> }> {
    const client: PoolClient = await this.pool.connect();
    const onError = (): void => undefined; // the failing query rejects; this only keeps the process alive
    client.on("error", onError);
    return {
      db: client,
      done: async (err) => {
        client.removeListener("error", onError);
        client.release(err ?? false); // an error destroys the connection instead of pooling it
      },
    };
  }

  /** A new connection outside the pool, closed when done. */
  private async fresh(): Promise<{ db: ClientBase; done: (err?: Error) => Promise<void> }> {
    const client = await this.freshClient();
    return { db: client, done: () => client.end().catch(() => undefined) };
  }

  private async freshClient(): Promise<Client> {
    const client = new Client(this.config);
    client.on("error", () => undefined); // the failing query rejects; this only keeps the process alive
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    return client;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`the PostgreSQL store at ${this.label} is closed`);
  }
}

/** Events encoded for one multi-row INSERT, and the blobs they reference. */
interface EncodedBatch {
  types: string[];
  ats: number[];
  data: string[];
  /** hash → JSON */
  blobs: Map<string, string>;
}

function encodeBatch(events: readonly BatonEvent[]): EncodedBatch {
  const batch: EncodedBatch = { types: [], ats: [], data: [], blobs: new Map() };
  for (const e of events) {
    batch.types.push(e.type);
    batch.ats.push(e.at);
    batch.data.push(encodeEvent(e, (hash, json) => void batch.blobs.set(hash, json)));
  }
  return batch;
}

/**
 * Store blobs not stored yet. Asks first which exist, so a payload seen before is not sent
 * again; inserts in hash order (concurrent transactions lock the keys in the same order).
 */
async function putBlobs(db: Db, blobs: ReadonlyMap<string, string>): Promise<void> {
  if (blobs.size === 0) return;
  const { rows } = await db.query<{ hash: string }>("SELECT hash FROM blobs WHERE hash = ANY($1::text[])", [[...blobs.keys()]]);
  const have = new Set(rows.map((r) => r.hash));
  const missing = [...blobs.keys()].filter((h) => !have.has(h)).sort();
  if (missing.length === 0) return;
  await db.query(
    `INSERT INTO blobs (hash, data) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (hash) DO NOTHING`,
    [missing, missing.map((h) => blobs.get(h) as string)],
  );
}

/** Parse stored events and put their blobs back, fetching all referenced blobs in one query. */
async function decodeAll(db: Db, data: readonly string[]): Promise<BatonEvent[]> {
  const parsed = data.map(parseStored);
  const refs = new Set(parsed.flatMap((p) => p.refs));
  if (refs.size === 0) return parsed.map((p) => p.event);
  const { rows } = await db.query<{ hash: string; data: string }>("SELECT hash, data FROM blobs WHERE hash = ANY($1::text[])", [[...refs]]);
  const blobs = new Map(rows.map((r) => [r.hash, r.data]));
  return parsed.map((p) => (p.refs.length === 0 ? p.event : restoreBlobs(p.event, (h) => blobs.get(h))));
}
