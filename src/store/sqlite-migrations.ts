/**
 * Schema migrations of the SQLite store, numbered by position: migration `i` (0-based) brings
 * the database to `PRAGMA user_version = i + 1`. Each is applied in its own transaction.
 *
 * Append-only: never edit or reorder a released entry; add a new one at the end instead.
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  // 1: runs, events, blobs, signals.
  `
  CREATE TABLE runs (
    id          TEXT    PRIMARY KEY,
    pipeline    TEXT    NOT NULL,
    plan_hash   TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    seq         INTEGER NOT NULL,
    parent_id   TEXT,
    lease_owner TEXT,
    lease_until INTEGER
  );
  CREATE INDEX runs_newest ON runs (started_at DESC, id DESC);
  CREATE INDEX runs_status ON runs (status, started_at DESC, id DESC);
  CREATE INDEX runs_pipeline ON runs (pipeline, started_at DESC, id DESC);
  CREATE INDEX runs_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;

  CREATE TABLE events (
    run_id TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    type   TEXT    NOT NULL,
    at     INTEGER NOT NULL,
    data   TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
  ) WITHOUT ROWID;

  -- Large payloads, stored once by the sha256 of their JSON. A rowid table: rows can be MBs.
  CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    data TEXT NOT NULL
  );

  CREATE TABLE signals (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind   TEXT    NOT NULL,
    data   TEXT,
    at     INTEGER NOT NULL,
    taken  INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX signals_pending ON signals (run_id, id) WHERE taken = 0;
  `,
  // 2: live_text — the text of model turns while they stream (ephemeral, not the log; see Store.putLive).
  `
  CREATE TABLE IF NOT EXISTS live_text (
    run_id TEXT    NOT NULL,
    key    TEXT    NOT NULL,
    text   TEXT    NOT NULL,
    at     INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)
  ) WITHOUT ROWID;
  `,
  // 3: records — small JSON documents beside the runs (pipelines, tokens, idempotency keys, trigger state; see Store.putRecord).
  `
  CREATE TABLE IF NOT EXISTS records (
    kind TEXT    NOT NULL,
    key  TEXT    NOT NULL,
    data TEXT    NOT NULL,
    at   INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
  ) WITHOUT ROWID;
  `,
];
