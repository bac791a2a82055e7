/**
 * `baton ui`: the web trace viewer's server (node:http, no framework). It serves the built web
 * app (dist/ui: index.html, app.js, app.css) and the JSON API under /api/ (see the README, "Web UI").
 *
 * Local by default: it binds 127.0.0.1, refuses requests whose Host is not this machine (DNS
 * rebinding) and JSON-less or cross-origin writes (CSRF). Any other bind address requires a
 * token; with a token every /api route requires `Authorization: Bearer TOKEN` (the event
 * stream, which EventSource cannot give headers, also accepts `?token=TOKEN`).
 *
 * Tokens: the static `token` (an admin principal named "token"), the per-user `localToken` of
 * `baton ui`/`baton serve` (src/auth/local-token.ts, an admin principal named "local") and, with
 * `storeTokens`, the scoped tokens of `baton token create` (src/auth/tokens.ts). Every /api
 * request needs one whose scopes cover the route (401 without, 403 short of scope). Tokenless
 * use is explicit, `auth: "none"` (`--no-auth`), and loopback only: requests without a token
 * then pass as the admin principal "local" while neither `token` nor a store token exists.
 * `GET /healthz` needs nothing. With `hooks` (`baton serve`), `/hooks/...` goes to it before any
 * Host, Origin or token check: webhook deliveries come from elsewhere and carry a signature.
 */
import { existsSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Runner } from "./runs.js";
import { UserError } from "../base/errors.js";
import type { Store } from "../store/port.js";
import { Api } from "./api.js";
import { anyToken, hasScope, requiredScope, TokenAuth, type Principal } from "../auth/tokens.js";
import { bearerOf, hostnameOf, isLoopback, securityHeaders, sendJson, setPrincipal, tokenMatches } from "./http.js";

/** Options of {@link startUi}. */
export interface UiOptions {
  /** The run store to show. */
  readonly store: Store;
  /** TCP port; 0 picks a free one. @default 4500 */
  readonly port?: number;
  /** Interface to bind. Anything but a loopback address requires `token`. @default "127.0.0.1" */
  readonly host?: string;
  /** Bearer token every /api route then requires (an admin principal named "token"). @default none */
  readonly token?: string;
  /**
   * The per-user UI token (`loadLocalToken()`, src/auth/local-token.ts): accepted as the admin
   * principal "local". It does not by itself allow a non-loopback `host` (that needs `token` or
   * a store token).
   * @default none
   */
  readonly localToken?: string;
  /**
   * `"none"`: tokenless local use (`baton ui --no-auth`), loopback `host` only — a request
   * without a token passes as the admin principal "local" while no `token` is set and the store
   * holds no token. Otherwise at least one of `token`, `localToken`, `storeTokens` is required.
   * @default "token"
   */
  readonly auth?: "token" | "none";
  /**
   * Also accept the scoped tokens stored by `baton token create` (records of kind "token").
   * Once the store holds one, every /api request needs a token; a non-loopback `host` is
   * allowed without `token` when the store holds one at start.
   * @default false
   */
  readonly storeTokens?: boolean;
  /** Webhook triggers: requests under `/hooks/` (signed deliveries, no token). @default none (404) */
  readonly hooks?: { handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> };
  /** Starts, answers and cancels runs; without it the UI is read-only. */
  readonly runtime?: Runner;
  /** Let `POST /api/runs { template: PATH }` read template files under `root` (`baton ui` passes its directory). @default refused: runs start from registered pipelines */
  readonly templates?: { readonly root: string };
  /** Directory of the built web app. @default dist/ui of this package */
  readonly assets?: string;
  /** How often event streams poll the store, in ms. @default 200 */
  readonly pollMs?: number;
  /** Heartbeat interval of event streams, in ms. @default 15000 */
  readonly heartbeatMs?: number;
}

/** A running UI server. */
export interface UiServer {
  /** Base URL, e.g. `http://127.0.0.1:4500/`. */
  readonly url: string;
  readonly port: number;
  /** Stop listening and end open connections (event streams included). */
  close(): Promise<void>;
}

/** Files of the built web app, by URL path. */
const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
  "/favicon.svg": { file: "favicon.svg", type: "image/svg+xml" },
  /** The graph's layout engine (elkjs), run as a Web Worker by the app. */
  "/elk-worker.js": { file: "elk-worker.js", type: "text/javascript; charset=utf-8" },
};

/** The static `token`: an admin. */
const STATIC_PRINCIPAL: Principal = Object.freeze({ id: "token", name: "token", scopes: Object.freeze(["admin"] as const) });
/** The per-user token, or tokenless loopback use (`auth: "none"`): local use, an admin. */
const LOCAL_PRINCIPAL: Principal = Object.freeze({ id: "local", name: "local", scopes: Object.freeze(["admin"] as const) });

/** dist/ui next to this module when it runs from dist, else the package's dist/ui (running from src). */
function defaultAssets(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return existsSync(join(here, "index.html")) ? here : join(here, "..", "..", "dist", "ui");
}

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Baton</title>
<p>The web app is not built. Run <code>npm run build</code> (or <code>node scripts/build-ui.mjs</code>) in the Baton package, then reload.</p>
<p>The JSON API works meanwhile: <a href="/api/runs">/api/runs</a>.</p>`;

/**
 * Start the UI server.
 *
 * @throws {@link UserError} when `host` is not a loopback address and no token is given, when
 *   no way to authenticate is given (nor `auth: "none"`), or the port is taken.
 * @example
 * const ui = await startUi({ store: openStore(), runtime, port: 4500, localToken: loadLocalToken().token });
 * console.log(ui.url); // http://127.0.0.1:4500/
 * await ui.close();
 */
export async function startUi(o: UiOptions): Promise<UiServer> {
  const host = o.host ?? "127.0.0.1";
  const token = o.token === "" ? undefined : o.token;
  const localToken = o.localToken === "" ? undefined : o.localToken;
  const storeTokens = o.storeTokens === true;
  if (!isLoopback(host) && token === undefined && !(storeTokens && (await anyToken(o.store)))) {
    const create = storeTokens ? ", create one with `baton token create --name NAME --scope read`" : "";
    throw new UserError(`binding ${host} would expose runs to the network without a password: set a token with --token TOKEN (or BATON_UI_TOKEN)${create}, or keep the default --host 127.0.0.1`, 2);
  }
  const open = o.auth === "none";
  if (open && !isLoopback(host)) {
    throw new UserError(`--no-auth is for a loopback bind only: binding ${host} without tokens would let anyone who can reach it start, approve and cancel runs; drop --no-auth (a token is then required), or keep the default --host 127.0.0.1`, 2);
  }
  if (!open && token === undefined && localToken === undefined && !storeTokens) {
    throw new UserError("startUi needs a way to tell who calls: give token, localToken or storeTokens, or auth: \"none\" for tokenless use on loopback", 2);
  }
  const auth = storeTokens ? new TokenAuth(o.store) : undefined;
  // With a token required of every request, any Host may be used (the server is meant to be reached from elsewhere).
  const anyHost = token !== undefined || (storeTokens && !isLoopback(host));
  const assets = o.assets ?? defaultAssets();
  const streams = new Set<ServerResponse>();
  const api = new Api({
    store: o.store, ...(o.runtime ? { runtime: o.runtime } : {}), ...(o.templates ? { templates: o.templates } : {}),
    stream: { pollMs: o.pollMs ?? 200, heartbeatMs: o.heartbeatMs ?? 15_000, open: streams },
  });
  const cache = new Map<string, Buffer>();

  const serveAsset = (req: IncomingMessage, res: ServerResponse, path: string): void => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain" }).end("method not allowed\n");
      return;
    }
    // Every other path is a page of the app (/runs/ID): the app routes it.
    const asset = ASSETS[path] ?? (path.startsWith("/runs") || path === "/index.html" ? ASSETS["/"]! : undefined);
    if (asset === undefined) {
      res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end("not found\n");
      return;
    }
    const file = join(assets, asset.file);
    let body = cache.get(file);
    if (body === undefined) {
      if (!existsSync(file)) {
        if (asset.file === "index.html") {
          res.writeHead(503, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" }).end(NOT_BUILT);
        } else res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end("not found: the web app is not built\n");
        return;
      }
      body = readFileSync(file);
      cache.set(file, body);
    }
    res.writeHead(200, { "Content-Type": asset.type, "Content-Length": body.length, "Cache-Control": "no-cache" });
    res.end(req.method === "HEAD" ? undefined : body);
  };

  /** Host (DNS rebinding) and Origin (cross-site writes) checks; a reason string when refused. */
  const refused = (req: IncomingMessage): string | undefined => {
    const hostHeader = req.headers.host;
    if (hostHeader === undefined) return "a Host header is required";
    const name = hostnameOf(hostHeader);
    if (!anyHost && !isLoopback(name) && name !== host.toLowerCase()) return `requests for host '${name}' are refused: open the UI at its loopback address`;
    const origin = req.headers.origin;
    if (origin !== undefined && req.method !== "GET" && req.method !== "HEAD") {
      let originHost: string;
      try {
        originHost = new URL(origin).host.toLowerCase();
      } catch {
        return `bad Origin '${origin}'`;
      }
      if (originHost !== hostHeader.toLowerCase()) return `cross-origin requests (from ${origin}) are refused`;
    }
    return undefined;
  };

  /**
   * Who a request comes from: the static token, the per-user token ("local"), a store token,
   * or (`auth: "none"`, no token anywhere) "local"; a 401 reason when none.
   */
  const principalOfRequest = async (req: IncomingMessage, url: URL): Promise<Principal | string> => {
    // EventSource cannot send headers: the stream alone also takes ?token=.
    const presented = bearerOf(req) ?? (/\/stream$/.test(url.pathname) ? (url.searchParams.get("token") ?? undefined) : undefined);
    if (token !== undefined && tokenMatches(presented, token)) return STATIC_PRINCIPAL;
    if (localToken !== undefined && tokenMatches(presented, localToken)) return LOCAL_PRINCIPAL;
    const found = auth === undefined ? undefined : await auth.verify(presented);
    if (found !== undefined) return found;
    if (open && token === undefined && !(auth !== undefined && (await auth.any()))) return LOCAL_PRINCIPAL;
    return presented === undefined || presented === ""
      ? localToken !== undefined
        ? "this server requires a token: open the URL it printed at start (it carries ?token=), or send 'Authorization: Bearer TOKEN' with the token of your ui-token file (~/.config/baton/ui-token)"
        : "this server requires a token: send 'Authorization: Bearer TOKEN' (open the UI as /?token=TOKEN)"
      : "this token is not valid (unknown, revoked or expired): send 'Authorization: Bearer TOKEN' with a current token (baton token list)";
  };

  /** Authenticate an /api request and check its scope, then hand it to the API. */
  const serveApi = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    let who: Principal | string;
    try {
      who = await principalOfRequest(req, url);
    } catch (err) {
      sendJson(res, 503, { error: `cannot check the token now (the store failed: ${(err as Error).message}); try again` });
      return;
    }
    if (typeof who === "string") {
      sendJson(res, 401, { error: who }, { "WWW-Authenticate": 'Bearer realm="baton"' });
      return;
    }
    const method = req.method ?? "GET";
    const needed = requiredScope(method, url.pathname) ?? "admin";
    if (!hasScope(who.scopes, needed)) {
      sendJson(res, 403, { error: `this token (${who.name}) has scopes ${who.scopes.join(", ")}; ${method} ${url.pathname} needs '${needed}'` });
      return;
    }
    setPrincipal(req, who);
    await api.handle(req, res, url);
  };

  const server = createServer((req, res) => {
    securityHeaders(res);
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      sendJson(res, 400, { error: "bad request URL" });
      return;
    }
    if (url.pathname === "/healthz") {
      if (req.method === "GET" || req.method === "HEAD") sendJson(res, 200, { ok: true });
      else sendJson(res, 405, { error: `${req.method} is not allowed on /healthz: use GET` }, { Allow: "GET, HEAD" });
      return;
    }
    if (o.hooks && url.pathname.startsWith("/hooks/")) {
      void o.hooks.handle(req, res, url);
      return;
    }
    const why = refused(req);
    if (why !== undefined) {
      sendJson(res, 403, { error: why });
      return;
    }
    if (!url.pathname.startsWith("/api/") && url.pathname !== "/api") {
      serveAsset(req, res, url.pathname);
      return;
    }
    void serveApi(req, res, url);
  });
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off("listening", onListening);
      if (err.code === "EADDRINUSE") reject(new UserError(`port ${o.port ?? 4500} on ${host} is in use: pick another with --port`, 1));
      else if (err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND") reject(new UserError(`cannot bind ${host}: it is not an address of this machine`, 1));
      else if (err.code === "EACCES") reject(new UserError(`not allowed to bind port ${o.port ?? 4500}: use a port above 1023`, 1));
      else reject(err);
    };
    const onListening = (): void => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(o.port ?? 4500, host);
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/`,
    port,
    close: async () => {
      for (const res of streams) res.end();
      streams.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
