/**
 * The per-user UI token of `baton ui` and `baton serve`: 32 random bytes (base64url), generated
 * once and kept in `$XDG_CONFIG_HOME/baton/ui-token` (else `~/.config/baton/ui-token`), a file
 * only its owner can read (0600, in a 0700 directory). Other accounts on the machine and
 * processes of other users cannot read it, so they cannot drive the UI's API; the servers
 * print their URL with `?token=` so the owner's browser just works.
 *
 * A file that others could read, or that another account owns, is refused (a token others may
 * know protects nothing), with the command that fixes it.
 */
import { randomBytes } from "node:crypto";
import { closeSync, fstatSync, linkSync, mkdirSync, openSync, readSync, statSync, unlinkSync, writeSync, constants } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { UserError } from "../base/errors.js";

/** Where the per-user token lives: `$XDG_CONFIG_HOME/baton/ui-token`, else `~/.config/baton/ui-token`. */
export function localTokenPath(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env["XDG_CONFIG_HOME"];
  const base = xdg !== undefined && xdg !== "" && xdg.startsWith("/") ? xdg : join(env["HOME"] || homedir(), ".config");
  return join(base, "baton", "ui-token");
}

/** What {@link loadLocalToken} found or made. */
export interface LocalToken {
  /** The token text (43 base64url characters when Baton generated it). */
  readonly token: string;
  /** The file it is kept in. */
  readonly file: string;
  /** Whether this call generated it. */
  readonly created: boolean;
}

const MAX_BYTES = 4096;
const uid = (): number | undefined => (typeof process.getuid === "function" ? process.getuid() : undefined);

/** Throws when a token file could be read or replaced by someone else. */
function checkFile(file: string, st: { mode: number; uid: number; isFile(): boolean }): void {
  if (!st.isFile()) throw new UserError(`${file} is not a regular file: remove it and Baton writes a new UI token there`, 2);
  const me = uid();
  if (me !== undefined && st.uid !== me) {
    throw new UserError(`${file} is owned by another account (uid ${st.uid}), so it may be known to others: remove it (rm ${file}) and Baton writes a new UI token`, 2);
  }
  // (Windows has no such mode bits: its ACLs keep a profile's files to their user.)
  if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
    throw new UserError(`${file} can be read by other users (mode ${(st.mode & 0o777).toString(8).padStart(3, "0")}): restrict it with \`chmod 600 ${file}\` (and, as it may be known, consider removing it so a new token is written)`, 2);
  }
}

/** Throws when the token's directory lets others replace the file (group/world-writable, or another account's). */
function checkDir(dir: string): void {
  const st = statSync(dir);
  const me = uid();
  if (me !== undefined && st.uid !== me) throw new UserError(`${dir} is owned by another account (uid ${st.uid}): the UI token must live in a directory of yours; set XDG_CONFIG_HOME to one`, 2);
  if (process.platform !== "win32" && (st.mode & 0o022) !== 0) throw new UserError(`${dir} can be written by other users (mode ${(st.mode & 0o777).toString(8).padStart(3, "0")}): restrict it with \`chmod 700 ${dir}\``, 2);
}

/** Read an existing token file (checked first), or undefined when there is none. */
function readExisting(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new UserError(`cannot read the UI token ${file}: ${(err as Error).message}`, 1);
  }
  try {
    // The opened file is what is checked (no swap between a check and the read).
    checkFile(file, fstatSync(fd));
    const buf = Buffer.alloc(MAX_BYTES + 1);
    const n = readSync(fd, buf, 0, buf.length, 0);
    if (n > MAX_BYTES) throw new UserError(`${file} is larger than ${MAX_BYTES} bytes, so it is not a UI token: remove it and Baton writes a new one`, 2);
    const token = buf.subarray(0, n).toString("utf8").trim();
    if (token.length < 16 || /\s/.test(token)) throw new UserError(`${file} does not hold a UI token (one line of at least 16 characters): remove it and Baton writes a new one`, 2);
    return token;
  } finally {
    closeSync(fd);
  }
}

/**
 * The per-user UI token: read from `file`, or generated (32 random bytes) and written there
 * with mode 0600 (its directory created 0700) when it does not exist yet. Concurrent first
 * starts agree on one token (written to a temporary file, then linked into place).
 *
 * @param file @default {@link localTokenPath}()
 * @throws {@link UserError} (exit 2) when the file is readable by others or owned by another
 *   account, with the `chmod 600 FILE` that fixes it.
 * @example
 * const { token } = loadLocalToken();
 * await startUi({ store, localToken: token }); // requests need `Authorization: Bearer ${token}`
 */
export function loadLocalToken(file: string = localTokenPath()): LocalToken {
  const existing = readExisting(file);
  if (existing !== undefined) return { token: existing, file, created: false };
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkDir(dir);
  const token = randomBytes(32).toString("base64url");
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    writeSync(fd, `${token}\n`);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file); // fails when another process wrote one meanwhile: theirs wins
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const theirs = readExisting(file);
    if (theirs !== undefined) return { token: theirs, file, created: false };
    throw err;
  } finally {
    unlinkSync(tmp);
  }
  return { token, file, created: true };
}
