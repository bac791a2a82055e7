/**
 * Issue 13.11: a full disk, a read-only database and a lock held past the busy timeout printed
 * "internal error … run with --debug" (or "try again"). The SQLite store now throws a
 * StoreIOError that names the file, what failed and `baton resume RUN`. The failures are
 * produced with SQLite's own switches, which work as root: `max_page_count` (SQLITE_FULL),
 * `query_only` (SQLITE_READONLY) and a second connection holding the write lock (SQLITE_BUSY).
 */
import Database from "better-sqlite3";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { definePipeline, execute } from "../../src/index.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { StoreIOError, storeIOError } from "../../src/store/sqlite-errors.js";
import { reportError } from "../../src/cli/errors.js";

const dir = mkdtempSync(join(tmpdir(), "baton-sqlite-errors-"));
let n = 0;
const open: SqliteStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

/** A store with one finished run in it; returns the run's id, seq and last event. */
async function storeWithRun(): Promise<{ store: SqliteStore; file: string; id: string; seq: number; last: BatonEvent }> {
  const file = join(dir, `s${++n}.db`);
  const store = SqliteStore.open(file);
  open.push(store);
  const p = definePipeline({ name: "io" }).stage("a", { run: () => 1 }).returns("a");
  const r = await execute(p, {}, { store, telemetry: false });
  const { run, events } = await store.load(r.id);
  return { store, file, id: r.id, seq: run.seq, last: events[events.length - 1]! };
}

const bigEvent = (last: BatonEvent): BatonEvent => ({ ...last, type: "stage_started", stage: "a", visit: 1, attempt: 9, note: "x".repeat(2_000_000) }) as unknown as BatonEvent;

async function thrown(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("SQLite storage failures say which file, what failed and how to continue", () => {
  it("a full disk (SQLITE_FULL): names the file and `baton resume RUN`", async () => {
    const { store, file, id, seq, last } = await storeWithRun();
    const pages = store.db.pragma("page_count", { simple: true }) as number;
    store.db.pragma(`max_page_count = ${pages + 2}`);
    const err = await thrown(store.append(id, [bigEvent(last)], seq));
    expect(err).toBeInstanceOf(StoreIOError);
    const e = err as StoreIOError;
    expect(e).toMatchObject({ code: "SQLITE_FULL", problem: "full", file, runId: id, resumable: true });
    expect(e.message).toBe(
      `cannot write the run database ${file} while appending events for run ${id}: the disk is full (SQLITE_FULL: database or disk is full); free some space (or point --db at another disk), then continue it with \`baton resume ${id}\``,
    );
    // Nothing half-written: the run's log is what it was.
    expect((await store.get(id))!.seq).toBe(seq);
  });

  it("a read-only database (SQLITE_READONLY)", async () => {
    const { store, file, id, seq, last } = await storeWithRun();
    store.db.pragma("query_only = ON");
    const err = (await thrown(store.append(id, [last], seq))) as StoreIOError;
    expect(err).toBeInstanceOf(StoreIOError);
    expect(err.code).toBe("SQLITE_READONLY");
    expect(err.message).toMatch(new RegExp(`^cannot write the run database ${file.replace(/[.\\/]/g, "\\$&")} while appending events for run ${id}: the file or its filesystem is read-only .*baton resume ${id}\`$`));
    const sig = (await thrown(store.signal(id, "approve", {}))) as StoreIOError;
    expect(sig.message).toMatch(/while storing a signal for run .*read-only/);
  });

  it("a lock held past the busy timeout (SQLITE_BUSY) says resume, not 'try again'", async () => {
    const { store, file, id, seq, last } = await storeWithRun();
    const other = new Database(file);
    other.exec("BEGIN IMMEDIATE");
    store.db.pragma("busy_timeout = 0"); // (the real timeout is 5 s; the message says so)
    try {
      const err = (await thrown(store.append(id, [last], seq))) as StoreIOError;
      expect(err).toBeInstanceOf(StoreIOError);
      expect(err.problem).toBe("busy");
      expect(err.message).toContain("another process held its lock for more than 5 s");
      expect(err.message).toContain(`then continue it with \`baton resume ${id}\``);
      expect(err.message).not.toMatch(/try again/);
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
  });

  it("creating a run that fails stores nothing: 'run the command again', not resume", () => {
    const e = storeIOError(Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" }), "/x/b.db", "creating the run", "r1", false) as StoreIOError;
    expect(e.message).toMatch(/while creating the run for run r1: the disk is full .*then run the command again \(nothing was stored\)$/);
  });

  it("errno ENOSPC / EROFS and I/O errors map too; other errors pass through unchanged", () => {
    expect((storeIOError(Object.assign(new Error("no space"), { code: "ENOSPC" }), "/x/b.db", "opening") as StoreIOError).problem).toBe("full");
    expect((storeIOError(Object.assign(new Error("ro"), { code: "EROFS" }), "/x/b.db", "opening") as StoreIOError).message).toMatch(/^cannot open the run database \/x\/b\.db: .*EROFS/);
    expect((storeIOError(Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR_WRITE" }), "/x/b.db", "appending events", "r") as StoreIOError).message).toMatch(/I\/O error .*baton resume r/);
    const plain = new Error("boom");
    expect(storeIOError(plain, "/x/b.db", "opening")).toBe(plain);
  });

  it("the CLI prints the StoreIOError as one line (no 'internal error', no --debug hint); a raw SQLITE_BUSY says resume", () => {
    const lines: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((s: string) => (lines.push(s), true)) as typeof process.stderr.write;
    try {
      const e = storeIOError(Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" }), "/x/b.db", "appending events", "r1");
      expect(reportError(e, false)).toBe(1);
      expect(reportError(Object.assign(new Error("database is locked"), { code: "SQLITE_BUSY" }), false)).toBe(1);
      expect(reportError(Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", path: "/x/out.json" }), false)).toBe(1);
    } finally {
      process.stderr.write = write;
    }
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^baton: cannot write the run database \/x\/b\.db .*baton resume r1`\n$/);
    expect(lines[1]).toMatch(/more than 5 s: once it is done, continue with `baton resume RUN`/);
    expect(lines[2]).toMatch(/^baton: cannot write \/x\/out\.json: the disk is full \(ENOSPC\)/);
    for (const l of lines) expect(l).not.toMatch(/internal error|--debug|try again/);
  });
});
