/**
 * Orphan guard of the distributed benchmark. The harness spawns this first and tells it, one
 * line at a time on stdin, what it starts and what it has cleaned up:
 *   +PID / -PID                 a child process (worker, floor worker, submitter, redis-server)
 *   +schema URL NAME / -schema  a PostgreSQL schema to drop
 *   +dir PATH / -dir PATH       a temporary directory to remove
 * When its stdin closes — the harness exited, however it exited, even by SIGKILL — it kills
 * every PID still registered (SIGKILL), drops the schema, removes the directories, and exits.
 * It ignores SIGINT/SIGTERM (a Ctrl-C reaches the whole process group; the cleanup must still
 * run after the harness is gone).
 */
import { rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => undefined);
const pids = new Set();
const dirs = new Set();
let schema;
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const [op, ...rest] = line.trim().split(" ");
  if (/^\+\d+$/.test(op)) pids.add(Number(op.slice(1)));
  else if (/^-\d+$/.test(op)) pids.delete(Number(op.slice(1)));
  else if (op === "+schema") schema = { url: rest[0], name: rest[1] };
  else if (op === "-schema") schema = undefined;
  else if (op === "+dir") dirs.add(rest.join(" "));
  else if (op === "-dir") dirs.delete(rest.join(" "));
});
rl.on("close", async () => {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  if (schema && /^[a-z0-9_]+$/.test(schema.name)) {
    const require = createRequire(join(dirname(fileURLToPath(import.meta.url)), "..", "..", "package.json"));
    const pg = require("pg");
    const c = new pg.Client({ connectionString: schema.url, connectionTimeoutMillis: 5000 });
    setTimeout(() => process.exit(0), 10_000).unref();
    try {
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema.name} CASCADE`);
      process.stderr.write(`bench reaper: dropped schema ${schema.name} and killed ${pids.size} leftover process(es)\n`);
    } catch (err) {
      process.stderr.write(`bench reaper: could not drop schema ${schema.name}: ${err.message}\n`);
    } finally {
      await c.end().catch(() => undefined);
    }
  } else if (pids.size) process.stderr.write(`bench reaper: killed ${pids.size} leftover process(es)\n`);
  process.exit(0);
});
