/**
 * The embedded event-log store: one SQLite file (better-sqlite3, WAL). Every method completes
 * synchronously inside its promise. Large payloads are stored once in `blobs`, keyed by the
 * sha256 of their JSON, and put back on read, so callers never see blob references.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { rowChange } from "./status.js";
import type { BatonEvent } from "../engine/events.js";
import { decodeEvent, encodeEvent } from "./payload.js";
import { ConflictError, RunNotFoundError, checkRecordKey, liveTail, pickByPrefix, recordJson } from "./port.js";
import type { LiveText, RunFilter, RunRecord, RunSignal, RunStatus, Store, StoredRecord } from "./port.js";
import { SQLITE_MIGRATIONS } from "./sqlite-migrations.js";
import { SQLITE_BUSY_TIMEOUT_MS, storeIOError } from "./sqlite-errors.js";

/** Options of {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** "normal" (default): `synchronous=NORMAL`; "full": `synchronous=FULL`, fsync every commit. */
  readonly durability?: "normal" | "full";
}

/** The blob threshold, defined with the other payload rules in payload.ts (re-exported for existing importers). */
export { BLOB_MIN_BYTES } from "./payload.js";

interface RunRow {
  id: string;
  pipeline: string;
  plan_hash: string;
  status: RunStatus;
  started_at: number;
  ended_at: number | null;
  seq: number;
  parent_id: string | null;
}

interface SignalRow {
  id: number;
  run_id: string;
  kind: string;
  data: string | null;
  at: number;
}

function toRecord(row: RunRow): RunRecord {
  return {
    id: row.id,
    pipeline: row.pipeline,
    planHash: row.plan_hash,
    status: row.status,
    startedAt: new Date(row.started_at).toISOString(),
    ...(row.ended_at !== null ? { endedAt: new Date(row.ended_at).toISOString() } : {}),
    seq: row.seq,
    ...(row.parent_id !== null ? { parentId: row.parent_id } : {}),
  };
}

/** The SQLite adapter of the {@link Store} port. Create it with {@link SqliteStore.open}. */
export class SqliteStore implements Store {
  readonly shared = true;
  /** The underlying connection (diagnostics and tests; do not write through it). */
  readonly db: Database.Database;
  private readonly s: ReturnType<typeof prepareStatements>;
  private readonly createTx: (run: RunRow, events: readonly BatonEvent[]) => void;
  private readonly appendTx: (runId: string, events: readonly BatonEvent[], expectedSeq: number) => number;
  private readonly takeTx: (runId: string) => SignalRow[];

  /**
   * Open (creating if needed, with its parent directories) the store at `path`; ":memory:"
   * gives a private in-memory database. Applies pending migrations.
   */
  static open(path: string, opts?: SqliteStoreOptions): SqliteStore {
    // A full disk, a read-only filesystem or a held lock is said with the file (sqlite-errors.ts).
    try {
      if (path !== ":memory:" && path !== "") mkdirSync(dirname(path), { recursive: true });
      return new SqliteStore(new Database(path), opts);
    } catch (err) {
      throw storeIOError(err, path, "opening");
    }
  }

  /** Configure `db`, migrate it and prepare every statement. Prefer {@link SqliteStore.open}. */
  constructor(db: Database.Database, opts?: SqliteStoreOptions) {
    this.db = db;
    db.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${opts?.durability === "full" ? "FULL" : "NORMAL"}`);
    db.pragma("foreign_keys = ON");
    migrate(db);

    this.s = prepareStatements(db);

    const createTx = db.transaction((run: RunRow, events: readonly BatonEvent[]) => {
      this.s.insertRun.run(run);
      this.insertEvents(run.id, events, 0);
    });
    this.createTx = (run, events) => createTx.immediate(run, events);

    const appendTx = db.transaction((runId: string, events: readonly BatonEvent[], expectedSeq: number) => {
      const seq = expectedSeq + events.length;
      const change = rowChange(events);
      const info =
        change.status === undefined
          ? this.s.bumpSeq.run(seq, runId, expectedSeq)
          : this.s.bumpSeqStatus.run({
              seq,
              status: change.status,
              setEnded: change.endedAt === undefined ? 0 : 1,
              endedAt: change.endedAt ?? null,
              id: runId,
              expected: expectedSeq,
            });
      if (info.changes === 0) {
        const actual = this.s.getSeq.get(runId) as number | undefined;
        if (actual === undefined) throw new RunNotFoundError(runId);
        throw new ConflictError(runId, expectedSeq, actual);
      }
      this.insertEvents(runId, events, expectedSeq);
      // A finished run has no live text any more (streams of its turns are over).
      if (typeof change.endedAt === "number") this.s.clearLive.run(runId);
      return seq;
    });
    this.appendTx = (runId, events, expectedSeq) => appendTx.immediate(runId, events, expectedSeq);

    const takeTx = db.transaction((runId: string) => {
      const rows = this.s.pendingSignals.all(runId) as SignalRow[];
      const last = rows[rows.length - 1];
      if (last !== undefined) this.s.takeSignals.run(runId, last.id);
      return rows;
    });
    this.takeTx = (runId) => takeTx.immediate(runId);
  }

  async create(
    run: { id: string; pipeline: string; planHash: string; parentId?: string },
    events: readonly BatonEvent[],
  ): Promise<number> {
    const first = events[0];
    if (first?.type !== "run_started") throw new Error(`run ${run.id}: the first event must be run_started`);
    if (first.run_id !== run.id) throw new Error(`run ${run.id}: its run_started event names run ${first.run_id}`);
    const change = rowChange(events);
    const row: RunRow = {
      id: run.id,
      pipeline: run.pipeline,
      plan_hash: run.planHash,
      status: change.status ?? "running",
      started_at: first.at,
      ended_at: change.endedAt ?? null,
      seq: events.length,
      parent_id: run.parentId ?? null,
    };
    try {
      this.createTx(row, events);
    } catch (err) {
      if ((err as { code?: unknown }).code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
        throw new Error(`run ${run.id} already exists`);
      }
      throw storeIOError(err, this.db.name, "creating the run", run.id, false);
    }
    return events.length;
  }

  async append(runId: string, events: readonly BatonEvent[], expectedSeq: number): Promise<number> {
    return this.io("appending events", runId, () => this.appendTx(runId, events, expectedSeq));
  }

  /** Run a write; a storage failure (full disk, read-only, lock, I/O) is thrown as a StoreIOError naming the file. */
  private io<T>(operation: string, runId: string | undefined, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw storeIOError(err, this.db.name, operation, runId);
    }
  }

  async load(runId: string): Promise<{ run: RunRecord; events: BatonEvent[] }> {
    const row = this.s.getRun.get(runId) as RunRow | undefined;
    if (row === undefined) throw new RunNotFoundError(runId);
    const data = this.s.events.all(runId) as string[];
    return { run: toRecord(row), events: data.map((d) => this.decode(d)) };
  }

  async eventsAfter(runId: string, afterSeq: number): Promise<BatonEvent[]> {
    const data = this.s.eventsAfter.all(runId, afterSeq) as string[];
    if (data.length === 0 && this.s.getSeq.get(runId) === undefined) throw new RunNotFoundError(runId);
    return data.map((d) => this.decode(d));
  }

  async get(runId: string): Promise<RunRecord | undefined> {
    const row = this.s.getRun.get(runId) as RunRow | undefined;
    return row === undefined ? undefined : toRecord(row);
  }

  async list(filter?: RunFilter): Promise<RunRecord[]> {
    const limit = filter?.limit ?? 100;
    const { status, pipeline } = filter ?? {};
    const stmt =
      status !== undefined
        ? pipeline !== undefined
          ? this.s.list.both
          : this.s.list.status
        : pipeline !== undefined
          ? this.s.list.pipeline
          : this.s.list.all;
    const params: Record<string, unknown> = { limit };
    if (status !== undefined) params["status"] = status;
    if (pipeline !== undefined) params["pipeline"] = pipeline;
    return (stmt.all(params) as RunRow[]).map(toRecord);
  }

  async resolveId(prefix: string): Promise<string> {
    if (this.s.getSeq.get(prefix) !== undefined) return prefix;
    if (prefix.length < 4) throw new RunNotFoundError(prefix);
    const ids = this.s.byPrefix.all({ p: prefix }) as string[];
    return pickByPrefix(prefix, ids);
  }

  async claim(runId: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const info = this.io("claiming the lease", runId, () => this.s.claim.run({ id: runId, owner, until: now + ttlMs, now }));
    if (info.changes > 0) return true;
    if (this.s.getSeq.get(runId) === undefined) throw new RunNotFoundError(runId);
    return false;
  }

  async release(runId: string, owner: string): Promise<void> {
    this.s.release.run(runId, owner);
  }

  async leaseHolder(runId: string): Promise<string | undefined> {
    const row = this.s.lease.get(runId) as { lease_owner: string | null; lease_until: number | null } | undefined;
    if (row?.lease_owner == null || row.lease_until === null || row.lease_until < Date.now()) return undefined;
    return row.lease_owner;
  }

  async signal(runId: string, kind: string, data?: unknown): Promise<void> {
    const json = data === undefined ? null : (JSON.stringify(data) ?? null);
    try {
      this.s.insertSignal.run(runId, kind, json, Date.now());
    } catch (err) {
      if ((err as { code?: unknown }).code === "SQLITE_CONSTRAINT_FOREIGNKEY") throw new RunNotFoundError(runId);
      throw storeIOError(err, this.db.name, "storing a signal", runId);
    }
  }

  async takeSignals(runId: string): Promise<RunSignal[]> {
    const rows = this.io("taking signals", runId, () => this.takeTx(runId));
    if (rows.length === 0 && this.s.getSeq.get(runId) === undefined) throw new RunNotFoundError(runId);
    return rows.map((r) => ({
      id: r.id,
      runId: r.run_id,
      kind: r.kind,
      ...(r.data !== null ? { data: JSON.parse(r.data) as unknown } : {}),
      at: new Date(r.at).toISOString(),
    }));
  }

  async putLive(runId: string, key: string, text: string | undefined): Promise<void> {
    if (text === undefined) this.s.deleteLive.run(runId, key);
    else this.s.putLive.run({ run: runId, key, text: liveTail(text), at: Date.now() });
  }

  async live(runId: string): Promise<Record<string, LiveText>> {
    const out: Record<string, LiveText> = {};
    for (const r of this.s.live.all(runId) as { key: string; text: string; at: number }[]) out[r.key] = { text: r.text, at: r.at };
    return out;
  }

  async putRecord(kind: string, key: string, value: unknown, o: { ifAbsent?: boolean } = {}): Promise<{ created: boolean; value: unknown }> {
    checkRecordKey(kind, key);
    const data = recordJson(kind, key, value);
    // One statement either way: atomic against other processes on the same file.
    if (o.ifAbsent) {
      if (this.s.addRecord.run({ kind, key, data, at: Date.now() }).changes === 1) return { created: true, value: JSON.parse(data) };
      const had = this.s.getRecord.get(kind, key) as { data: string } | undefined;
      return { created: false, value: JSON.parse(had!.data) };
    }
    const created = this.s.getRecord.get(kind, key) === undefined;
    this.s.putRecord.run({ kind, key, data, at: Date.now() });
    return { created, value: JSON.parse(data) };
  }

  async getRecord(kind: string, key: string): Promise<StoredRecord | undefined> {
    const r = this.s.getRecord.get(kind, key) as { key: string; data: string; at: number } | undefined;
    return r ? { key: r.key, value: JSON.parse(r.data), at: new Date(r.at).toISOString() } : undefined;
  }

  async listRecords(kind: string, o: { prefix?: string; limit?: number } = {}): Promise<StoredRecord[]> {
    const rows = this.s.listRecords.all({ kind, prefix: o.prefix ?? "", limit: o.limit ?? -1 }) as { key: string; data: string; at: number }[];
    return rows.map((r) => ({ key: r.key, value: JSON.parse(r.data), at: new Date(r.at).toISOString() }));
  }

  async deleteRecord(kind: string, key: string): Promise<boolean> {
    return this.s.deleteRecord.run(kind, key).changes > 0;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  /** Insert `events` as seq first+1, first+2, … (inside the caller's transaction). */
  private insertEvents(runId: string, events: readonly BatonEvent[], first: number): void {
    let seq = first;
    for (const e of events) this.s.insertEvent.run(runId, ++seq, e.type, e.at, this.encode(e));
  }

  /** The event's JSON, with large payload fields moved to `blobs` (see payload.ts). */
  private encode(event: BatonEvent): string {
    return encodeEvent(event, (hash, json) => void this.s.insertBlob.run(hash, json));
  }

  /** Parse an event and put its blob-stored fields back. */
  private decode(data: string): BatonEvent {
    return decodeEvent(data, (hash) => this.s.getBlob.get(hash) as string | undefined);
  }
}

/** Every statement the store runs, prepared once per connection. */
function prepareStatements(db: Database.Database) {
  const runCols = "id, pipeline, plan_hash, status, started_at, ended_at, seq, parent_id";
  const order = "ORDER BY started_at DESC, id DESC LIMIT @limit";
  return {
    insertRun: db.prepare(
      `INSERT INTO runs (id, pipeline, plan_hash, status, started_at, ended_at, seq, parent_id)
       VALUES (@id, @pipeline, @plan_hash, @status, @started_at, @ended_at, @seq, @parent_id)`,
    ),
    insertEvent: db.prepare("INSERT INTO events (run_id, seq, type, at, data) VALUES (?, ?, ?, ?, ?)"),
    insertBlob: db.prepare("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)"),
    getBlob: db.prepare("SELECT data FROM blobs WHERE hash = ?").pluck(),
    bumpSeq: db.prepare("UPDATE runs SET seq = ? WHERE id = ? AND seq = ?"),
    bumpSeqStatus: db.prepare(
      `UPDATE runs SET seq = @seq, status = coalesce(@status, status),
         ended_at = CASE WHEN @setEnded THEN @endedAt ELSE ended_at END
       WHERE id = @id AND seq = @expected`,
    ),
    getSeq: db.prepare("SELECT seq FROM runs WHERE id = ?").pluck(),
    getRun: db.prepare(`SELECT ${runCols} FROM runs WHERE id = ?`),
    events: db.prepare("SELECT data FROM events WHERE run_id = ? ORDER BY seq").pluck(),
    eventsAfter: db.prepare("SELECT data FROM events WHERE run_id = ? AND seq > ? ORDER BY seq").pluck(),
    list: {
      all: db.prepare(`SELECT ${runCols} FROM runs ${order}`),
      status: db.prepare(`SELECT ${runCols} FROM runs WHERE status = @status ${order}`),
      pipeline: db.prepare(`SELECT ${runCols} FROM runs WHERE pipeline = @pipeline ${order}`),
      both: db.prepare(`SELECT ${runCols} FROM runs WHERE status = @status AND pipeline = @pipeline ${order}`),
    },
    byPrefix: db.prepare("SELECT id FROM runs WHERE substr(id, 1, length(@p)) = @p ORDER BY id").pluck(),
    claim: db.prepare(
      `UPDATE runs SET lease_owner = @owner, lease_until = @until
       WHERE id = @id AND (lease_owner IS NULL OR lease_until < @now OR lease_owner = @owner)`,
    ),
    release: db.prepare("UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?"),
    lease: db.prepare("SELECT lease_owner, lease_until FROM runs WHERE id = ?"),
    insertSignal: db.prepare("INSERT INTO signals (run_id, kind, data, at) VALUES (?, ?, ?, ?)"),
    pendingSignals: db.prepare("SELECT id, run_id, kind, data, at FROM signals WHERE run_id = ? AND taken = 0 ORDER BY id"),
    takeSignals: db.prepare("UPDATE signals SET taken = 1 WHERE run_id = ? AND taken = 0 AND id <= ?"),
    // Only for a run that exists and has not finished: a late write cannot outlive its run.
    putLive: db.prepare(
      `INSERT INTO live_text (run_id, key, text, at)
       SELECT @run, @key, @text, @at WHERE EXISTS (SELECT 1 FROM runs WHERE id = @run AND ended_at IS NULL)
       ON CONFLICT (run_id, key) DO UPDATE SET text = excluded.text, at = excluded.at`,
    ),
    deleteLive: db.prepare("DELETE FROM live_text WHERE run_id = ? AND key = ?"),
    clearLive: db.prepare("DELETE FROM live_text WHERE run_id = ?"),
    live: db.prepare("SELECT key, text, at FROM live_text WHERE run_id = ? ORDER BY key"),
    putRecord: db.prepare("INSERT INTO records (kind, key, data, at) VALUES (@kind, @key, @data, @at) ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, at = excluded.at"),
    addRecord: db.prepare("INSERT INTO records (kind, key, data, at) VALUES (@kind, @key, @data, @at) ON CONFLICT (kind, key) DO NOTHING"),
    getRecord: db.prepare("SELECT key, data, at FROM records WHERE kind = ? AND key = ?"),
    // Key order by code unit (BINARY collation); the prefix test is exact, unlike LIKE.
    listRecords: db.prepare("SELECT key, data, at FROM records WHERE kind = @kind AND substr(key, 1, length(@prefix)) = @prefix ORDER BY key LIMIT @limit"),
    deleteRecord: db.prepare("DELETE FROM records WHERE kind = ? AND key = ?"),
  };
}

/** Apply pending migrations, each in its own IMMEDIATE transaction (safe against a concurrent opener). */
function migrate(db: Database.Database): void {
  const version = (): number => db.pragma("user_version", { simple: true }) as number;
  if (version() > SQLITE_MIGRATIONS.length) {
    throw new Error(
      `this database has schema version ${version()}, newer than this Baton knows (${SQLITE_MIGRATIONS.length}): upgrade Baton`,
    );
  }
  for (let i = 0; i < SQLITE_MIGRATIONS.length; i++) {
    const step = db.transaction(() => {
      if (version() !== i) return;
      db.exec(SQLITE_MIGRATIONS[i] as string);
      db.pragma(`user_version = ${i + 1}`);
    });
    if (version() <= i) step.immediate();
  }
}
