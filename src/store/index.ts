/**
 * The event-log store: the port, its adapters and the spec-based opener.
 */
export { ConflictError, LIVE_TEXT_MAX, RunNotFoundError, liveExecKey, liveKey, liveTail, parseLiveKey } from "./port.js";
export type { LiveExec, LiveText, RunFilter, RunRecord, RunSignal, RunStatus, Store } from "./port.js";
export { LiveWriter } from "./live.js";
export type { LiveWriterOptions } from "./live.js";
export { MemoryStore } from "./memory.js";
export { BLOB_MIN_BYTES } from "./payload.js";
export { SqliteStore } from "./sqlite.js";
export type { SqliteStoreOptions } from "./sqlite.js";
export { SQLITE_MIGRATIONS } from "./sqlite-migrations.js";
export { CommitOutcomeUnknownError, PostgresStore } from "./postgres.js";
export type { MigrationResult, PostgresStoreOptions } from "./postgres.js";
export { POSTGRES_MIGRATIONS } from "./postgres-migrations.js";
export { defaultStorePath, isPostgresSpec, openStore, openStoreAsync, resolveStoreSpec } from "./open.js";
export type { OpenStoreOptions } from "./open.js";
