/**
 * Pick a store adapter from a user-facing spec (`--db`, `--store`, `BATON_STORE`, `BATON_DB`).
 */
import { dirname, join } from "node:path";
import { findUp } from "../base/project.js";
import { MemoryStore } from "./memory.js";
import type { Store } from "./port.js";
import type { PostgresStoreOptions } from "./postgres.js";
import { SqliteStore } from "./sqlite.js";
import type { SqliteStoreOptions } from "./sqlite.js";

/**
 * Options of {@link openStore} / {@link openStoreAsync}: the SQLite ones apply to a SQLite
 * store, the PostgreSQL ones to a PostgreSQL store; the others ignore them.
 */
export type OpenStoreOptions = SqliteStoreOptions & PostgresStoreOptions;

/**
 * Where the embedded store lives when nothing else is said: `.baton/baton.db` in the project
 * root — the nearest directory from `cwd` upward that has a `.baton/` directory (as git finds
 * `.git`, so commands work from a subdirectory) — else under `cwd` itself (created on first use).
 */
export function defaultStorePath(cwd: string = process.cwd()): string {
  const found = findUp([".baton"], cwd, true);
  return join(found === undefined ? cwd : dirname(found), ".baton", "baton.db");
}

/** Whether `spec` names a PostgreSQL store (`postgres://…` or `postgresql://…`). */
export function isPostgresSpec(spec: string): boolean {
  return /^postgres(ql)?:\/\//i.test(spec);
}

/**
 * The store a spec names, with the defaults filled in: `spec` if given (non-empty), else
 * `BATON_STORE`, else `BATON_DB`, else {@link defaultStorePath} (the nearest `.baton/` upward from `process.cwd()`).
 */
export function resolveStoreSpec(spec?: string): string {
  if (spec !== undefined && spec !== "") return spec;
  return process.env["BATON_STORE"] || process.env["BATON_DB"] || defaultStorePath();
}

/**
 * Open the store named by `spec` (defaults: {@link resolveStoreSpec}):
 * - `"memory:"` or `":memory:"`: a {@link MemoryStore};
 * - `postgres://…` / `postgresql://…`: throws — connecting is asynchronous, use {@link openStoreAsync};
 * - anything else: a {@link SqliteStore} at that path (parent directories are created).
 */
export function openStore(spec?: string, opts?: OpenStoreOptions): Store {
  const target = resolveStoreSpec(spec);
  if (target === "memory:" || target === ":memory:") return new MemoryStore();
  if (isPostgresSpec(target)) {
    throw new Error(
      "openStore cannot open a PostgreSQL store (postgres://…): connecting and migrating are asynchronous; " +
        "use `await openStoreAsync(spec)` instead",
    );
  }
  return SqliteStore.open(target, opts);
}

/**
 * Open the store named by `spec` (defaults: {@link resolveStoreSpec}), any kind:
 * `postgres://…` / `postgresql://…` connects a {@link PostgresStore} (applying pending
 * migrations); everything else as {@link openStore}.
 */
export async function openStoreAsync(spec?: string, opts?: OpenStoreOptions): Promise<Store> {
  const target = resolveStoreSpec(spec);
  if (isPostgresSpec(target)) {
    const pgOpts: { -readonly [K in keyof PostgresStoreOptions]: PostgresStoreOptions[K] } = {};
    if (opts?.schema !== undefined) pgOpts.schema = opts.schema;
    if (opts?.max !== undefined) pgOpts.max = opts.max;
    if (opts?.now !== undefined) pgOpts.now = opts.now;
    // `?schema=NAME` in the URL picks the schema (several Batons, or tests, in one database).
    const url = new URL(target);
    const schema = url.searchParams.get("schema");
    if (schema !== null) {
      url.searchParams.delete("schema");
      pgOpts.schema ??= schema;
    }
    // Loaded on demand: `pg` costs ~50 ms of startup that SQLite users need not pay.
    const { PostgresStore } = await import("./postgres.js");
    return PostgresStore.connect(schema !== null ? url.toString() : target, pgOpts);
  }
  return openStore(target, opts);
}
