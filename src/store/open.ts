/**
 * Pick a store adapter from a user-facing spec (`--db`, `--store`, `BATON_DB`).
 */
import { join } from "node:path";
import { MemoryStore } from "./memory.js";
import type { Store } from "./port.js";
import { SqliteStore } from "./sqlite.js";
import type { SqliteStoreOptions } from "./sqlite.js";

/** Options of {@link openStore}; they apply to the SQLite store and are ignored by the others. */
export type OpenStoreOptions = SqliteStoreOptions;

/** Where the embedded store lives when nothing else is said: `.baton/baton.db` under the working directory. */
export function defaultStorePath(cwd: string = process.cwd()): string {
  return join(cwd, ".baton", "baton.db");
}

/**
 * Open the store named by `spec`:
 * - undefined (or empty): `process.env.BATON_DB`, else `.baton/baton.db` under `process.cwd()`;
 * - `"memory:"` or `":memory:"`: a {@link MemoryStore};
 * - `postgres://…` / `postgresql://…`: not available yet (throws);
 * - anything else: a {@link SqliteStore} at that path (parent directories are created).
 */
export function openStore(spec?: string, opts?: OpenStoreOptions): Store {
  const target = spec !== undefined && spec !== "" ? spec : process.env["BATON_DB"] || defaultStorePath();
  if (target === "memory:" || target === ":memory:") return new MemoryStore();
  if (/^postgres(ql)?:\/\//i.test(target)) {
    throw new Error("PostgreSQL stores come with distributed mode: use a SQLite path for now");
  }
  return SqliteStore.open(target, opts);
}
