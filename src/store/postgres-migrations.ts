/**
 * Schema migrations of the PostgreSQL store, numbered by position: migration `i` (0-based) is
 * version `i + 1`, recorded as a row of `baton_migrations` when applied. Pending migrations are
 * applied on connect in one transaction that holds an advisory lock (see postgres.ts), so
 * concurrent connects apply each exactly once.
 *
 * Append-only: never edit or reorder a released entry; add a new one at the end instead.
 *
 * Tables mirror the SQLite store's (sqlite-migrations.ts); times are bigint epoch
 * milliseconds. Run ids use the "C" collation so ordering and prefix matching are bytewise,
 * as in SQLite, and `LIKE 'prefix%'` can use the primary key index.
 */
export const POSTGRES_MIGRATIONS: readonly string[] = [
  // 1: runs, events, blobs, signals.
  `
  CREATE TABLE runs (
    id          text    COLLATE "C" PRIMARY KEY,
    pipeline    text    NOT NULL,
    plan_hash   text    NOT NULL,
    status      text    NOT NULL
                CHECK (status IN ('running', 'waiting', 'succeeded', 'failed', 'cancelled')),
    started_at  bigint  NOT NULL,
    ended_at    bigint,
    seq         integer NOT NULL,
    parent_id   text    COLLATE "C",
    lease_owner text,
    lease_until bigint
  );
  CREATE INDEX runs_newest ON runs (started_at DESC, id DESC);
  CREATE INDEX runs_status ON runs (status, started_at DESC, id DESC);
  CREATE INDEX runs_pipeline ON runs (pipeline, started_at DESC, id DESC);
  CREATE INDEX runs_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;

  CREATE TABLE events (
    run_id text    COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    integer NOT NULL,
    type   text    NOT NULL,
    at     bigint  NOT NULL,
    data   text    NOT NULL,
    PRIMARY KEY (run_id, seq)
  );

  -- Large payloads, stored once by the sha256 of their JSON (TOAST compresses them).
  CREATE TABLE blobs (
    hash text PRIMARY KEY,
    data text NOT NULL
  );

  CREATE TABLE signals (
    id     bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text    COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind   text    NOT NULL,
    data   text,
    at     bigint  NOT NULL,
    taken  boolean NOT NULL DEFAULT false
  );
  CREATE INDEX signals_pending ON signals (run_id, id) WHERE NOT taken;
  `,
  // 2: live_text — the text of model turns while they stream (ephemeral, not the log; see
  // Store.putLive). UNLOGGED: rewritten several times a second, worthless after a crash.
  `
  CREATE UNLOGGED TABLE IF NOT EXISTS live_text (
    run_id text   COLLATE "C" NOT NULL,
    key    text   NOT NULL,
    text   text   NOT NULL,
    at     bigint NOT NULL,
    PRIMARY KEY (run_id, key)
  );
  `,
  // 3: records — small JSON documents beside the runs (pipelines, tokens, idempotency keys, trigger state; see Store.putRecord).
  `
  CREATE TABLE IF NOT EXISTS records (
    kind text   COLLATE "C" NOT NULL,
    key  text   COLLATE "C" NOT NULL,
    data text   NOT NULL,
    at   bigint NOT NULL,
    PRIMARY KEY (kind, key)
  );
  `,
];
