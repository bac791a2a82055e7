/**
 * How `baton ui` and `baton serve` authenticate, from their flags: a static `--token` (or
 * `BATON_UI_TOKEN`), else the per-user UI token (src/auth/local-token.ts, generated once);
 * `--no-auth` is tokenless local use, loopback only, with a warning.
 */
import { loadLocalToken, localTokenPath } from "../auth/local-token.js";
import { UserError } from "../base/errors.js";
import { isLoopback } from "../ui/http.js";

/** What the command passes to `startUi`/`startServe`, and what it prints. */
export interface UiAuth {
  readonly token?: string;
  readonly localToken?: string;
  readonly auth?: "none";
  /** The static token came from BATON_UI_TOKEN (not shown in the URL). */
  readonly fromEnv: boolean;
  /** The per-user token's file, when it is used. */
  readonly file?: string;
  /** One line for stderr (the token file was just created, or --no-auth). */
  readonly note?: string;
}

/**
 * Map `--token`, `--no-auth` and `--host` onto the server's auth options.
 *
 * @throws {@link UserError} (exit 2) for `--no-auth` with a non-loopback host or with a token,
 *   and for a token file others can read (see `loadLocalToken`).
 * @example
 * const a = uiAuth("baton ui", { host: "127.0.0.1", auth: true });
 * // { localToken: "…", file: "/home/me/.config/baton/ui-token", fromEnv: false }
 */
export function uiAuth(command: string, o: { host: string; token?: string; auth?: boolean }, env: NodeJS.ProcessEnv = process.env): UiAuth {
  const fromEnv = o.token === undefined && !!env["BATON_UI_TOKEN"];
  const token = o.token ?? (env["BATON_UI_TOKEN"] || undefined);
  if (o.auth === false) {
    if (!isLoopback(o.host)) {
      throw new UserError(`${command} --no-auth is for a loopback bind only: on ${o.host} anyone who can reach it could start, approve and cancel runs; drop --no-auth (a token is then required) or keep --host 127.0.0.1`, 2);
    }
    if (token !== undefined) throw new UserError(`${command}: --no-auth and a token (${fromEnv ? "BATON_UI_TOKEN" : "--token"}) exclude each other: drop one`, 2);
    return { auth: "none", fromEnv: false, note: `${command}: --no-auth: no token is asked for; every user and process on this machine can start, approve and cancel runs here` };
  }
  if (token !== undefined) return { token, fromEnv };
  const local = loadLocalToken(localTokenPath(env));
  return {
    localToken: local.token, file: local.file, fromEnv: false,
    ...(local.created ? { note: `${command}: wrote a new UI token to ${local.file} (mode 0600)` } : {}),
  };
}
