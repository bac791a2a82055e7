/**
 * The UI's JSON API (documented in the README, "Web UI"): read runs and traces, follow a run as
 * server-sent events, start runs and answer or cancel them through a {@link Runtime}.
 * Thin: every route maps onto the store, the trace builder or the runtime.
 */
import { realpathSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { resolve as resolvePath, sep } from "node:path";
import { InputError, loadPlanFile, TemplateError, validateInputs } from "../template/index.js";
import { getPipeline, listPipelines, listVersions, planOf, TEMPLATE_MAX_BYTES } from "../registry/pipelines.js";
import { UserError } from "../base/errors.js";
import { isRunStatus, RUN_STATUSES } from "../base/result.js";
import { RunNotFoundError, type Store } from "../store/port.js";
import { buildTrace } from "../trace/index.js";
import { HttpError, objectBody, principalOf, readJson, sendJson } from "./http.js";
import { streamRun, type StreamOptions } from "./stream.js";
import { Views } from "./views.js";
import { openApiDocument } from "./openapi.js";
import { checkName, checkVersion, RunStarter, startRequest, type Runner } from "./runs.js";

export type { Runner } from "./runs.js";

/** What the API needs. */
export interface ApiContext {
  readonly store: Store;
  /** Starts, answers and cancels runs (a `Runtime`, or a runner handing runs to workers); without it the API is read-only (those routes answer 501). */
  readonly runtime?: Runner;
  readonly stream: StreamOptions;
  /**
   * Lets `POST /api/runs { template: PATH }` read template files under `root` (what `baton ui`
   * does for its own directory). Without it runs start only from registered pipelines.
   * @default undefined (template paths are refused)
   */
  readonly templates?: { readonly root: string };
}

/** `id`: the route's first capture (the run id), `arg` its second, if any (decoded). */
type Handler = (req: IncomingMessage, res: ServerResponse, url: URL, id: string, arg: string) => Promise<void>;

/**
 * Every route of the API as `METHOD PATH` (`{param}` is one path segment). The OpenAPI document
 * lists each of them (a test checks), and {@link Api} has exactly one handler per entry.
 */
export const API_ROUTES = [
  "GET /api/runs",
  "POST /api/runs",
  "GET /api/runs/{id}",
  "GET /api/runs/{id}/trace",
  "GET /api/runs/{id}/events",
  "GET /api/runs/{id}/messages/{ref}",
  "GET /api/runs/{id}/stream",
  "POST /api/runs/{id}/approve",
  "POST /api/runs/{id}/reject",
  "POST /api/runs/{id}/cancel",
  "POST /api/runs/{id}/signals/{name}",
  "GET /api/pipelines",
  "GET /api/pipelines/{name}",
  "GET /api/openapi.json",
] as const;

type RouteKey = (typeof API_ROUTES)[number];

/** A path template as a pattern: each `{param}` captures one non-empty segment (`{ref}` may be empty: its handler says what a ref is). */
const patternOf = (path: string): RegExp =>
  new RegExp(`^${path.replace(/\./g, "\\.").replace(/\{([a-z_]+)\}/g, (_m, name: string) => (name === "ref" ? "([^/]*)" : "([^/]+)"))}$`);

/** The API routes: `handle` answers any request under /api/. */
export class Api {
  private readonly views: Views;
  private readonly runs: RunStarter;
  private readonly routes: readonly { readonly method: string; readonly pattern: RegExp; readonly run: Handler }[];

  constructor(private readonly ctx: ApiContext) {
    this.views = new Views(ctx.store);
    this.runs = new RunStarter(ctx.store, () => this.runtime());
    const handlers: Record<RouteKey, Handler> = {
      "GET /api/runs": (_q, res, url) => this.list(res, url),
      "POST /api/runs": (req, res) => this.start(req, res),
      "GET /api/runs/{id}": async (_q, res, _u, id) => sendJson(res, 200, await this.views.detail(await this.resolve(id))),
      "GET /api/runs/{id}/trace": async (_q, res, _u, id) => sendJson(res, 200, (await this.views.detail(await this.resolve(id))).trace),
      "GET /api/runs/{id}/events": (_q, res, url, id) => this.events(res, url, id),
      "GET /api/runs/{id}/messages/{ref}": (_q, res, _u, id, ref) => this.messages(res, id, ref),
      "GET /api/runs/{id}/stream": async (req, res, url, id) => streamRun(res, this.ctx.store, await this.resolve(id), afterOf(url, req), this.ctx.stream),
      "POST /api/runs/{id}/approve": (req, res, _u, id) => this.answer(req, res, id, true),
      "POST /api/runs/{id}/reject": (req, res, _u, id) => this.answer(req, res, id, false),
      "POST /api/runs/{id}/cancel": (_q, res, _u, id) => this.cancel(res, id),
      "POST /api/runs/{id}/signals/{name}": (req, res, _u, id, name) => this.signal(req, res, id, name),
      "GET /api/pipelines": async (_q, res) => sendJson(res, 200, await listPipelines(this.ctx.store)),
      "GET /api/pipelines/{name}": (_q, res, url, name) => this.pipeline(res, url, name),
      "GET /api/openapi.json": async (_q, res) => sendJson(res, 200, openApiDocument()),
    };
    this.routes = API_ROUTES.map((key) => {
      const [method, path] = key.split(" ") as [string, string];
      return { method, pattern: patternOf(path), run: handlers[key] };
    });
  }

  /** Answer one request whose path starts with /api/. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      const allowed: string[] = [];
      for (const route of this.routes) {
        const m = route.pattern.exec(url.pathname);
        if (!m) continue;
        if (route.method !== req.method && !(route.method === "GET" && req.method === "HEAD")) {
          allowed.push(route.method);
          continue;
        }
        await route.run(req, res, url, decoded(m[1]), decoded(m[2]));
        return;
      }
      if (allowed.length > 0) throw new HttpError(405, `${req.method} is not allowed on ${url.pathname}: use ${allowed.join(" or ")}`, { Allow: allowed.join(", ") });
      throw new HttpError(404, `no API route ${req.method} ${url.pathname}: see GET /api/runs`);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const e = toHttpError(err);
      sendJson(res, e.status, { error: e.message }, e.headers);
    }
  }

  private async resolve(id: string): Promise<string> {
    if ((await this.ctx.store.get(id)) !== undefined) return id;
    try {
      return await this.ctx.store.resolveId(id);
    } catch (err) {
      if (err instanceof RunNotFoundError) throw new HttpError(404, `no run ${id} in this store`);
      throw new HttpError(400, (err as Error).message);
    }
  }

  private runtime(): Runner {
    if (!this.ctx.runtime) throw new HttpError(501, "this UI server is read-only (it was started without a runtime)");
    return this.ctx.runtime;
  }

  private async list(res: ServerResponse, url: URL): Promise<void> {
    const q = url.searchParams;
    const status = q.get("status") || undefined;
    if (status !== undefined && !isRunStatus(status)) throw new HttpError(400, `status must be one of ${RUN_STATUSES.join(", ")}, got '${status}'`);
    const limitText = q.get("limit") || "50";
    const limit = Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new HttpError(400, `limit must be a whole number from 1 to 1000, got '${limitText}'`);
    const pipeline = q.get("pipeline") || undefined;
    const runs = await this.views.list({ ...(status ? { status } : {}), ...(pipeline ? { pipeline } : {}), limit });
    sendJson(res, 200, runs);
  }

  private async events(res: ServerResponse, url: URL, idText: string): Promise<void> {
    const id = await this.resolve(idText);
    const after = afterOf(url);
    const typeText = url.searchParams.get("type");
    const types = typeText ? new Set(typeText.split(",").map((t) => t.trim()).filter((t) => t !== "")) : undefined;
    for (const t of types ?? []) {
      if (!/^[a-z_]+$/.test(t)) throw new HttpError(400, `type must be a comma-separated list of event types, e.g. ?type=stage_waiting,approval; got '${t}'`);
    }
    const events = await this.ctx.store.eventsAfter(id, after);
    // Sequence numbers count every event, so a filtered answer still says where each one is.
    const numbered = events.map((e, i) => ({ seq: after + i + 1, ...e }));
    sendJson(res, 200, types ? numbered.filter((e) => types.has(e.type)) : numbered);
  }

  /** The messages one agent turn sent to the model, by the turn's `messages_ref` (as `baton trace --messages` has them). */
  private async messages(res: ServerResponse, idText: string, refText: string): Promise<void> {
    if (!/^[0-9a-f]{64}$/i.test(refText)) {
      throw new HttpError(400, `a messages ref is the 64 hex characters of a turn's messages_ref in the trace, got '${refText.length > 80 ? `${refText.slice(0, 80)}…` : refText}'`);
    }
    const ref = refText.toLowerCase();
    const id = await this.resolve(idText);
    const { events } = await this.ctx.store.load(id);
    const list = buildTrace(events, undefined, { messages: true }).messages?.[ref];
    if (list === undefined) throw new HttpError(404, `run ${id} has no turn whose messages_ref is ${ref} (see the turns' messages_ref in GET /api/runs/${id}/trace)`);
    sendJson(res, 200, list);
  }

  /** `POST /api/runs`: a registered pipeline by name (`{ pipeline, version?, inputs?, idempotency_key? }`), or `{ template }` where allowed. */
  private async start(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = objectBody(await readJson(req));
    // A server that reads template files (`baton ui`) keeps the old form's messages for bodies without 'pipeline'.
    if (body["template"] !== undefined || (body["pipeline"] === undefined && this.ctx.templates !== undefined)) return this.startTemplate(res, body);
    const started = await this.runs.start(startRequest(body, req));
    const { id, pipeline, version } = started;
    if (started.deduplicated) sendJson(res, 200, { id, pipeline, version, deduplicated: true }, { Location: `/api/runs/${id}` });
    else sendJson(res, 201, { id, pipeline, version }, { Location: `/api/runs/${id}` });
  }

  /** `POST /api/runs { template: PATH, inputs? }`: only with a templates root (`baton ui`), and only files under it. */
  private async startTemplate(res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    const root = this.ctx.templates?.root;
    if (root === undefined) throw new HttpError(400, "this server does not read template files: register it with `baton deploy FILE` and start it by name, { \"pipeline\": NAME }");
    const runtime = this.runtime();
    const template = body["template"];
    if (typeof template !== "string" || template === "") throw new HttpError(400, "'template' must be the path of a template file, e.g. \"examples/research-report.yaml\"");
    const extra = Object.keys(body).find((k) => k !== "template" && k !== "inputs");
    if (extra !== undefined) throw new HttpError(400, `unknown field '${extra}' with 'template': it takes only 'inputs' (idempotency keys and versions are for registered pipelines)`);
    const inputs = body["inputs"] ?? {};
    if (typeof inputs !== "object" || inputs === null || Array.isArray(inputs)) throw new HttpError(400, "'inputs' must be an object of input values, e.g. { \"topic\": \"tides\" }");
    const plan = loadPlanFile(confinedTemplate(template, root));
    const values = validateInputs(plan, inputs as Record<string, unknown>);
    const handle = await runtime.start(plan, values);
    handle.done.catch(() => undefined); // the outcome is in the log; nobody here awaits it
    sendJson(res, 201, { id: handle.id }, { Location: `/api/runs/${handle.id}` });
  }

  /** `GET /api/pipelines/:name?version=`: its versions, newest first, and the inputs it takes (of the latest, or of `version`). */
  private async pipeline(res: ServerResponse, url: URL, nameText: string): Promise<void> {
    const name = checkName(nameText, "a pipeline name");
    const v = url.searchParams.get("version");
    const entry = await this.runs.entry(name, v === null ? undefined : checkVersion(v));
    const latest = await getPipeline(this.ctx.store, name);
    const versions = (await listVersions(this.ctx.store, name)).map((e) => ({ version: e.version, deployed_at: e.deployed_at, ...(e.by ? { by: e.by } : {}) }));
    const plan = planOf(entry);
    sendJson(res, 200, {
      name, latest: latest?.version ?? entry.version, version: entry.version,
      ...(plan.description ? { description: plan.description } : {}),
      inputs: plan.inputsSchema, versions,
    });
  }

  private async answer(req: IncomingMessage, res: ServerResponse, idText: string, approved: boolean): Promise<void> {
    const runtime = this.runtime();
    const id = await this.resolve(idText);
    const body = objectBody(await readJson(req));
    const { stage, comment, item, by, call } = body;
    if (typeof stage !== "string" || stage === "") throw new HttpError(400, "'stage' must name the waiting stage, e.g. { \"stage\": \"review\" }");
    if (call !== undefined && (typeof call !== "string" || call === "")) {
      throw new HttpError(400, `'call' must be the id of a tool call waiting for approval, e.g. { "stage": "${stage}", "call": "call_1" }; got ${JSON.stringify(call)}`);
    }
    if (comment !== undefined && typeof comment !== "string") throw new HttpError(400, "'comment' must be a string");
    if (by !== undefined && typeof by !== "string") throw new HttpError(400, "'by' must be a string");
    if (item !== undefined && !(typeof item === "number" && Number.isInteger(item) && item >= 0)) throw new HttpError(400, "'item' must be a for_each item index (0, 1, …)");
    if (!approved && body["data"] !== undefined) throw new HttpError(400, "'data' is the output of an approved stage: a rejection takes only 'comment'");
    const r = await runtime.answer(id, stage, {
      approved, by: typeof by === "string" && by !== "" ? by : defaultBy(req),
      ...(approved && body["data"] !== undefined ? { data: body["data"] } : {}),
      ...(typeof comment === "string" && comment !== "" ? { comment } : {}),
      ...(item !== undefined ? { item: item as number } : {}),
      ...(typeof call === "string" ? { call } : {}),
    });
    r.handle?.done.catch(() => undefined);
    sendJson(res, 200, { ok: true, recorded: r.recorded, ...(r.signalled ? { signalled: true } : {}) });
  }

  /** POST /api/runs/ID/signals/NAME { data?, by? }: a named signal for the run's `wait:` stages (like `baton signal`). */
  private async signal(req: IncomingMessage, res: ServerResponse, idText: string, name: string | undefined): Promise<void> {
    const runtime = this.runtime();
    const id = await this.resolve(idText);
    const body = objectBody(await readJson(req));
    const { by } = body;
    if (by !== undefined && typeof by !== "string") throw new HttpError(400, "'by' must be a string");
    if (!name || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name)) throw new HttpError(400, `a signal name is letters, digits, _ . and -, not starting with a digit; got '${name ?? ""}'`);
    const r = await runtime.signal(id, name, {
      by: typeof by === "string" && by !== "" ? by : defaultBy(req), ...(body["data"] !== undefined ? { data: body["data"] } : {}),
    });
    r.handle?.done.catch(() => undefined);
    sendJson(res, 200, { ok: true, ...(r.signalled ? { signalled: true } : {}) });
  }

  private async cancel(res: ServerResponse, idText: string): Promise<void> {
    const runtime = this.runtime();
    const id = await this.resolve(idText);
    const r = await runtime.cancel(id, "cancelled from the web ui");
    if (r === "finished") throw new HttpError(409, `run ${id} has already finished (${(await this.ctx.store.get(id))?.status})`);
    sendJson(res, 200, { ok: true, ...(r === "signalled" ? { signalled: true } : {}) });
  }
}

/**
 * Who answers when a body names nobody: the token's name (a `baton token create` token, or
 * "token" for the static one), else "web ui" (a loopback server without tokens).
 */
function defaultBy(req: IncomingMessage): string {
  const p = principalOf(req);
  return p !== undefined && p.id !== "local" ? p.name : "web ui";
}

/** A path segment decoded; a malformed %-escape is the request's fault (400), not the server's. */
function decoded(segment: string | undefined): string {
  try {
    return decodeURIComponent(segment ?? "");
  } catch {
    throw new HttpError(400, `bad %-escape in the path segment '${segment}'`);
  }
}

/** The `Last-Event-ID` of a reconnecting EventSource (it reuses the first URL), else `?after=N`; 0 by default. */
function afterOf(url: URL, req?: IncomingMessage): number {
  const text = (req?.headers["last-event-id"] as string | undefined) ?? url.searchParams.get("after") ?? "0";
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new HttpError(400, `after must be an event sequence number (0, 1, …), got '${text}'`);
  return n;
}

/**
 * The path of a template `POST /api/runs` may read: a regular `.yaml`/`.yml`/`.json` file of at
 * most 1 MiB under `root` (symlinks resolved), so the API cannot be made to read other files
 * (`/etc/passwd`, `/proc/self/environ`) or devices (`/dev/zero`, FIFOs), nor a hard link's second
 * name. Nothing is opened before these checks pass, and the error never quotes content.
 */
export function confinedTemplate(template: string, root: string): string {
  const base = realpathSync(root);
  const given = resolvePath(base, template);
  let file: string;
  try {
    file = realpathSync(given);
  } catch {
    // Missing: the template loader says so, naming the path as given (nothing is read).
    if (given !== base && !given.startsWith(base + sep)) throw new HttpError(400, `template ${JSON.stringify(template)} is outside ${base}: the API only reads templates under the directory baton ui runs in`);
    return template;
  }
  if (file !== base && !file.startsWith(base + sep)) throw new HttpError(400, `template ${JSON.stringify(template)} is outside ${base}: the API only reads templates under the directory baton ui runs in`);
  if (!/\.(ya?ml|json)$/i.test(file)) throw new HttpError(400, `template ${JSON.stringify(template)} is not a .yaml, .yml or .json file`);
  const st = statSync(file);
  if (!st.isFile()) throw new HttpError(400, `template ${JSON.stringify(template)} is not a regular file`);
  if (st.size > TEMPLATE_MAX_BYTES) throw new HttpError(400, `template ${JSON.stringify(template)} is ${st.size} bytes; templates are at most ${TEMPLATE_MAX_BYTES} bytes`);
  // A second name of a file elsewhere (a hard link) would pass the path check: refused too.
  if (st.nlink > 1) throw new HttpError(400, `template ${JSON.stringify(template)} has ${st.nlink} hard links: the API reads only templates with one name (a hard link may be a file from outside ${base}); copy it instead`);
  // As given when it names the file directly from here too (messages then show the user's
  // path); else the checked file itself (root need not be the working directory).
  return given === file && resolvePath(template) === file ? template : file;
}

/** Map library errors onto HTTP statuses with a one-line message. */
function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof RunNotFoundError) return new HttpError(404, `no run ${err.runId} in this store`);
  if (err instanceof TemplateError) {
    const [first, ...rest] = err.diagnostics.map((d) => `${d.file}${d.line > 0 ? `:${d.line}:${d.col}` : ""}: ${d.message}`);
    return new HttpError(400, `${first ?? "invalid template"}${rest.length > 0 ? ` (and ${rest.length} more problem${rest.length === 1 ? "" : "s"}: check it with \`baton validate\`)` : ""}`);
  }
  if (err instanceof InputError) return new HttpError(400, err.message);
  // A usage error (exit code 2): the request lacks something, e.g. which of several waiting tool calls it answers.
  if (err instanceof UserError && err.exitCode === 2) return new HttpError(400, err.message.split("\n")[0]!);
  // The run is not in a state that allows it (nothing waiting there, already finished, owned elsewhere).
  if (err instanceof UserError) return new HttpError(409, err.message.split("\n")[0]!);
  return new HttpError(500, `internal error: ${(err as Error)?.message ?? String(err)}`.split("\n")[0]!);
}
