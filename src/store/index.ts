/**
 * The event-log store: the port, its adapters and the spec-based opener.
 */
export { ConflictError, RunNotFoundError } from "./port.js";
export type { RunFilter, RunRecord, RunSignal, RunStatus, Store } from "./port.js";
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
