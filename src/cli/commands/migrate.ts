/**
 * `baton migrate [--store URL]` (SPEC §6): apply the store's pending schema migrations and print
 * its schema version. Stores also migrate themselves on connect; this runs it explicitly (for a
 * deploy step, or to check a database before starting workers).
 */
import type { Command } from "commander";
import { isPostgresSpec, openStoreAsync, resolveStoreSpec } from "../../store/open.js";
import type { PostgresStore } from "../../store/postgres.js";
import { SqliteStore } from "../../store/sqlite.js";

/** Register `migrate` on the program. */
export function registerMigrate(program: Command): void {
  program
    .command("migrate")
    .description("apply the store's schema migrations and print its schema version")
    .option("--store <url>", "the store: postgres://… or a SQLite path (default: $BATON_STORE, then $BATON_DB)")
    .option("--schema <name>", "PostgreSQL schema for Baton's tables (default: the server's search_path)")
    .action(async (o: { store?: string; schema?: string }) => {
      // An explicit --store, else the global --db, else $BATON_STORE, $BATON_DB, .baton/baton.db.
      const target = resolveStoreSpec(o.store || program.opts<{ db?: string }>().db);
      if (target === "memory:" || target === ":memory:") {
        process.stdout.write("memory store: nothing to migrate\n");
        return;
      }
      const store = await openStoreAsync(target, o.schema !== undefined ? { schema: o.schema } : {});
      try {
        if (isPostgresSpec(target)) {
          const { version, applied } = (store as PostgresStore).migration;
          const did = applied.length === 0 ? "up to date" : `applied ${applied.join(", ")}`;
          process.stdout.write(`schema version ${version} (${did})\n`);
        } else if (store instanceof SqliteStore) {
          process.stdout.write(`schema version ${String(store.db.pragma("user_version", { simple: true }))}\n`);
        }
      } finally {
        await store.close();
      }
    });
}
