/**
 * Storage failures of the SQLite store said as a person needs them (issue 13.11): which file,
 * what failed, why, and what to do — instead of "internal error: database or disk is full".
 * A full disk (SQLITE_FULL, ENOSPC), a read-only file or filesystem (SQLITE_READONLY, EROFS,
 * SQLITE_CANTOPEN on a read-only directory), an I/O error (SQLITE_IOERR) and a lock held
 * longer than the busy timeout (SQLITE_BUSY) become a {@link StoreIOError}; anything else is
 * passed through unchanged.
 */
import { accessSync, constants } from "node:fs";
import { dirname } from "node:path";

/** The busy timeout of a SQLite connection: how long a write waits for another process's lock. */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;

/** What a storage failure was, as a short reason. */
export type StoreIOProblem = "full" | "readonly" | "io" | "busy" | "cantopen";

/** A write (or open) of the run database that failed for a reason outside Baton. */
export class StoreIOError extends Error {
  override readonly name = "StoreIOError";
  constructor(
    message: string,
    /** The database file. */
    readonly file: string,
    /** What was being done: "opening", "appending events", … */
    readonly operation: string,
    readonly problem: StoreIOProblem,
    /** The SQLite or errno code (SQLITE_FULL, ENOSPC, …). */
    readonly code: string,
    /** The run the operation was for, when it was for one. */
    readonly runId: string | undefined,
    /** Whether the run was touched (so `baton resume` continues it); false when nothing was stored. */
    readonly resumable: boolean,
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
  }
}

const problemOf = (code: string): StoreIOProblem | undefined => {
  if (code === "SQLITE_FULL" || code === "ENOSPC" || code === "EDQUOT" || code === "EFBIG") return "full";
  if (code.startsWith("SQLITE_READONLY") || code === "EROFS") return "readonly";
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) return "busy";
  if (code.startsWith("SQLITE_IOERR") || code === "EIO") return "io";
  if (code.startsWith("SQLITE_CANTOPEN")) return "cantopen";
  return undefined;
};

/** Why a directory cannot be written, if it cannot ("read-only filesystem", "permission denied"). */
function unwritable(dir: string): string | undefined {
  try {
    accessSync(dir, constants.W_OK);
    return undefined;
  } catch (err) {
    const c = (err as NodeJS.ErrnoException).code;
    return c === "EROFS" ? "its directory is on a read-only filesystem" : c === "EACCES" || c === "EPERM" ? "its directory is not writable" : c === "ENOENT" ? "its directory does not exist" : undefined;
  }
}

/**
 * `err` as a {@link StoreIOError} when it is a storage failure, else `err` itself.
 *
 * @param file - the database file
 * @param operation - what was being done ("appending events", "opening")
 * @param runId - the run it was for, if any
 * @param resumable - whether the run exists already (false for creating it, or opening)
 * @example
 * try { tx() } catch (err) { throw storeIOError(err, "/x/baton.db", "appending events", "run1", true) }
 * // → "cannot write the run database /x/baton.db while appending events for run run1: the disk is full (SQLITE_FULL: …); free some space …, then continue it with `baton resume run1`"
 */
export function storeIOError(err: unknown, file: string, operation: string, runId?: string, resumable = runId !== undefined): unknown {
  if (err instanceof StoreIOError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return err;
  let problem = problemOf(code);
  if (problem === undefined) return err;
  const detail = (err as Error).message;
  let why: string;
  let fix: string;
  const where = file === "" || file === ":memory:" ? "the in-memory run database" : `the run database ${file}`;
  const dirNote = file && file !== ":memory:" ? unwritable(dirname(file)) : undefined;
  if (problem === "cantopen" && dirNote?.includes("read-only")) problem = "readonly";
  switch (problem) {
    case "full":
      why = "the disk is full";
      fix = "free some space (or point --db at another disk)";
      break;
    case "readonly":
      why = dirNote ?? "the file or its filesystem is read-only";
      fix = "make it writable (or point --db at a writable place)";
      break;
    case "busy":
      why = `another process held its lock for more than ${SQLITE_BUSY_TIMEOUT_MS / 1000} s`;
      fix = "wait for the other process (baton ui, a worker, another run)";
      break;
    case "io":
      why = "the operating system reported an I/O error";
      fix = "check the disk (dmesg) and that the file is not on a failing or network mount";
      break;
    case "cantopen":
      why = dirNote ?? "SQLite could not open it";
      fix = "check the path and its permissions";
      break;
  }
  const next = runId !== undefined && resumable ? `then continue it with \`baton resume ${runId}\`` : "then run the command again (nothing was stored)";
  const opening = problem === "cantopen" || operation === "opening";
  const what = opening ? "" : ` while ${operation}${runId !== undefined ? ` for run ${runId}` : ""}`;
  const message = `${opening ? "cannot open" : "cannot write"} ${where}${what}: ${why} (${code}: ${detail}); ${fix}, ${next}`;
  return new StoreIOError(message, file, operation, problem, code, runId, resumable, { cause: err });
}
