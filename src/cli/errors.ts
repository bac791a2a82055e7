/** One clear line per user error, no stack trace (unless --debug); exit codes per SPEC §4. */
import { ConflictError, RunNotFoundError } from "../store/port.js";
import { InputError, TemplateError } from "../template/index.js";
import { UserError } from "../base/errors.js";

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
  } else if (e && typeof e === "object" && "code" in e && (e as NodeJS.ErrnoException).code === "SQLITE_BUSY") {
    text = "baton: the run database is locked by another process for too long: try again, or point --db at another file";
  } else if (e && e.message && /^(ENOENT|EACCES|EISDIR)/.test((e as NodeJS.ErrnoException).code ?? "")) {
    text = `baton: ${e.message}`;
  } else {
    text = `baton: internal error: ${e?.message ?? String(err)}${debug ? "" : " (run with --debug for the stack trace)"}`;
  }
  process.stderr.write(text + "\n");
  if (debug && e?.stack) process.stderr.write(e.stack + "\n");
  return code;
}
