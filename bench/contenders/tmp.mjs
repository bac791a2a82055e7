import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(process.env.BENCH_TMPDIR ?? tmpdir(), "baton-bench-"));
let n = 0;
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

/** A fresh path for a SQLite file (nothing is created). */
export function tempDb(prefix) {
  return join(dir, `${prefix}-${process.pid}-${++n}.db`);
}

export function removeDb(file) {
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) rmSync(f, { force: true });
}
