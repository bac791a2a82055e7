/** One clear line per user error, no stack trace (unless --debug); exit codes per SPEC §4. */
import { ConflictError, RunNotFoundError } from "../store/port.js";
import { InputError, TemplateError } from "../template/index.js";
import { UserError } from "../base/errors.js";
import { StoreIOError } from "../store/sqlite-errors.js";

/** Print an error for a person and return the exit code. */
export function reportError(err: unknown, debug: boolean): number {
  const e = err as Error;
  let code = 1;
  let text: string;
  if (err instanceof TemplateError) {
    text = e.message; // one line per diagnostic: FILE:LINE:COL: message
  } else if (err instanceof InputError) {
    text = `baton: ${e.message}`;
    code = 2;
  } else if (err instanceof UserError) {
    text = `baton: ${e.message}`;
    code = err.exitCode;
  } else if (err instanceof RunNotFoundError || err instanceof ConflictError || /^run id prefix '.*' matches \d+ runs/.test(e?.message ?? "")) {
    text = `baton: ${e.message}`;
  } else if (e?.name === "CommitOutcomeUnknownError" || /^cannot connect to PostgreSQL|refused the connection/.test(e?.message ?? "")) {
    text = `baton: ${e.message}`;
  } else if (err instanceof StoreIOError) {
    text = `baton: ${e.message}`; // which file, what failed, why, and `baton resume RUN`
  } else if (e && typeof e === "object" && "code" in e && /^SQLITE_BUSY/.test(String((e as NodeJS.ErrnoException).code))) {
    text = "baton: the run database is locked by another process for more than 5 s: once it is done, continue with `baton resume RUN` (or run the command again if no run was started), or point --db at another file";
  } else if (e && typeof e === "object" && /^(ENOSPC|EROFS|EDQUOT)$/.test(String((e as NodeJS.ErrnoException).code))) {
    const x = e as NodeJS.ErrnoException;
    const why = x.code === "EROFS" ? "the filesystem is read-only" : "the disk is full";
    text = `baton: cannot write ${x.path ?? "a file"}: ${why} (${x.code}); ${x.code === "EROFS" ? "make it writable" : "free some space"}, then continue with \`baton resume RUN\` (or run the command again if no run was started)`;
  } else if (e && e.message && /^(ENOENT|EACCES|EISDIR)/.test((e as NodeJS.ErrnoException).code ?? "")) {
    text = `baton: ${e.message}`;
  } else {
    text = `baton: internal error: ${e?.message ?? String(err)}${debug ? "" : " (run with --debug for the stack trace)"}`;
  }
  process.stderr.write(text + "\n");
  if (debug && e?.stack) process.stderr.write(e.stack + "\n");
  return code;
}
