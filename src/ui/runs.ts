/**
 * `POST /api/runs`: start a run of a registered pipeline (see src/registry/pipelines.ts), once per
 * idempotency key. The request is validated field by field (a one-line 400 each); names and
 * versions are only ever record keys, so no request makes the server read a file.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Plan } from "../plan/types.js";
import type { HumanAnswer, RunHandle } from "../runtime/runtime.js";
import { newRunId } from "../runtime/runtime.js";
import { getPipeline, isVersion, listPipelines, planOf, type PipelineEntry } from "../registry/pipelines.js";
import type { Store } from "../store/port.js";
import { validateInputs } from "../template/index.js";
import { HttpError } from "./http.js";

/**
 * What the API needs to start, answer, signal and cancel runs: the subset of `Runtime` it
 * uses, so a runner that hands runs to workers can stand in.
 */
export interface Runner {
  /** Start a new run of `plan` (inputs already validated), with `runId` when given. */
  start(plan: Plan, inputs: Record<string, unknown>, o?: { runId?: string }): Promise<RunHandle>;
  answer(runId: string, stage: string, answer: HumanAnswer): Promise<{ recorded: number; handle?: RunHandle; signalled?: boolean }>;
  signal(runId: string, name: string, o?: { data?: unknown; by?: string }): Promise<{ handle?: RunHandle; signalled?: boolean }>;
  cancel(runId: string, reason?: string): Promise<"cancelled" | "signalled" | "finished">;
}

/** Record kind of idempotency keys (key `PIPELINE:KEY`). */
export const IDEMPOTENCY_KIND = "idempotency";

/** The value of an idempotency record. */
interface IdempotencyValue {
  readonly run: string;
  /** sha256 of the request (pipeline, version as given, inputs as given). */
  readonly request: string;
  /** The version the run was started with. */
  readonly version: string;
}

/** A validated `POST /api/runs { pipeline, … }` body. */
export interface StartRequest {
  readonly pipeline: string;
  readonly version?: string;
  readonly inputs: Record<string, unknown>;
  readonly idempotencyKey?: string;
}

const FIELDS = ["pipeline", "version", "inputs", "idempotency_key"];
const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
};
const kind = (v: unknown): string => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);

/**
 * A pipeline name in a request: 1–200 characters, none of them control characters; else a 400.
 * Names are only ever record keys (`"../../etc/passwd"` is a name nobody registered).
 *
 * @example
 * checkName(body["pipeline"]); // "research-report", or throws HttpError(400, "'pipeline' must be …")
 */
export function checkName(name: unknown, what = "'pipeline'"): string {
  if (typeof name !== "string" || name === "") throw new HttpError(400, `${what} must be the name of a registered pipeline (see GET /api/pipelines), got ${show(name)} (${kind(name)})`);
  if (name.length > 200 || /\p{Cc}/u.test(name)) throw new HttpError(400, `${what} must be a pipeline name of at most 200 characters without control characters, got ${show(name)}`);
  return name;
}

/**
 * A version in a request: 12 lowercase hex characters, as `baton pipelines` lists them; else a 400.
 *
 * @example
 * checkVersion("fdeaed9e5738"); // "fdeaed9e5738"
 */
export function checkVersion(version: unknown): string {
  if (typeof version !== "string" || !isVersion(version)) throw new HttpError(400, `'version' must be 12 lowercase hex characters as \`baton pipelines\` lists them, got ${show(version)} (${kind(version)})`);
  return version;
}

/**
 * Parse the body (and the `Idempotency-Key` header) of `POST /api/runs { pipeline, … }`: a
 * one-line 400 for an unknown field or a field of the wrong type.
 *
 * @example
 * const r = startRequest(objectBody(await readJson(req)), req); // { pipeline, version?, inputs, idempotencyKey? }
 */
export function startRequest(body: Record<string, unknown>, req: IncomingMessage): StartRequest {
  const unknown = Object.keys(body).filter((k) => !FIELDS.includes(k));
  if (unknown.length > 0) throw new HttpError(400, `unknown field '${unknown[0]}': POST /api/runs takes ${FIELDS.join(", ")}`);
  const pipeline = checkName(body["pipeline"]);
  const version = body["version"] === undefined ? undefined : checkVersion(body["version"]);
  const inputs = body["inputs"] === undefined ? {} : body["inputs"];
  if (typeof inputs !== "object" || inputs === null || Array.isArray(inputs)) throw new HttpError(400, `'inputs' must be an object of input values, e.g. { "topic": "tides" }; got ${show(inputs)} (${kind(inputs)})`);
  const header = req.headers["idempotency-key"];
  const fromHeader = Array.isArray(header) ? header[0] : header;
  const fromBody = body["idempotency_key"];
  if (fromBody !== undefined && !isKey(fromBody)) throw new HttpError(400, `'idempotency_key' must be 1 to 200 printable characters, got ${show(fromBody)} (${kind(fromBody)})`);
  if (fromHeader !== undefined && !isKey(fromHeader)) throw new HttpError(400, `the Idempotency-Key header must be 1 to 200 printable characters, got ${show(fromHeader)}`);
  if (fromBody !== undefined && fromHeader !== undefined && fromBody !== fromHeader) throw new HttpError(400, "the Idempotency-Key header and 'idempotency_key' differ: send one of them");
  const key = (fromBody ?? fromHeader) as string | undefined;
  return { pipeline, ...(version !== undefined ? { version } : {}), inputs: inputs as Record<string, unknown>, ...(key !== undefined ? { idempotencyKey: key } : {}) };
}

const isKey = (k: unknown): k is string => typeof k === "string" && k.length >= 1 && k.length <= 200 && !/[\p{C}]/u.test(k);

/** JSON with object keys sorted, so equal requests hash equally. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** What starting did: a new run, or the run an earlier request with the same key started. */
export interface Started {
  readonly id: string;
  readonly pipeline: string;
  readonly version: string;
  readonly deduplicated: boolean;
}

/**
 * Starts runs of registered pipelines, deduplicating by idempotency key: the key is recorded
 * (put-if-absent) with a fresh run id before the run starts, so of concurrent requests exactly
 * one starts it, and a key whose run was never created (a crash in between) starts it later
 * under the recorded id.
 *
 * @example
 * const starter = new RunStarter(store, () => runtime);
 * const { id, deduplicated } = await starter.start({ pipeline: "research-report", inputs: {}, idempotencyKey: "order-1" });
 */
export class RunStarter {
  /** Runs being started by this process under an idempotency key (a concurrent duplicate awaits them). */
  private readonly starting = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: Store,
    private readonly runner: () => Runner,
  ) {}

  /** The registered version a request names, else 404 listing a few registered names. */
  async entry(name: string, version?: string): Promise<PipelineEntry> {
    const entry = await getPipeline(this.store, name, version);
    if (entry !== undefined) return entry;
    const all = await listPipelines(this.store);
    if (version !== undefined && all.some((p) => p.name === name)) {
      throw new HttpError(404, `pipeline '${name}' has no version ${version}: see GET /api/pipelines/${encodeURIComponent(name)} for its versions`);
    }
    const names = all.slice(0, 5).map((p) => p.name);
    const known = names.length === 0 ? "no pipeline is registered yet: register one with `baton deploy FILE`" : `registered: ${names.join(", ")}${all.length > names.length ? `, … (${all.length} in all)` : ""}`;
    throw new HttpError(404, `no pipeline ${show(name)} is registered (${known})`);
  }

  /**
   * Start the run a request asks for (or find the one its idempotency key started).
   * @throws HttpError 404 (unknown pipeline or version), 409 (key used for another request); InputError for bad inputs
   */
  async start(r: StartRequest): Promise<Started> {
    const runner = this.runner();
    const entry = await this.entry(r.pipeline, r.version);
    const plan = planOf(entry);
    const inputs = validateInputs(plan, r.inputs);
    const out = (id: string, version: string, deduplicated: boolean): Started => ({ id, pipeline: entry.name, version, deduplicated });
    if (r.idempotencyKey === undefined) return out(await this.launch(runner, plan, inputs), entry.version, false);

    const request = createHash("sha256").update(canonical({ pipeline: r.pipeline, version: r.version ?? null, inputs: r.inputs })).digest("hex");
    const id = newRunId();
    let release!: () => void;
    this.starting.set(id, new Promise<void>((ok) => (release = ok)));
    try {
      const value: IdempotencyValue = { run: id, request, version: entry.version };
      const put = await this.store.putRecord(IDEMPOTENCY_KIND, `${r.pipeline}:${r.idempotencyKey}`, value, { ifAbsent: true });
      if (put.created) return out(await this.launch(runner, plan, inputs, id), entry.version, false);
      const was = put.value as IdempotencyValue;
      if (was.request !== request) {
        throw new HttpError(409, `idempotency key ${show(r.idempotencyKey)} of pipeline '${r.pipeline}' was used for a different request (run ${was.run}): use a new key for new inputs or version`);
      }
      await this.starting.get(was.run); // started by a concurrent request of this process
      if ((await this.store.get(was.run)) === undefined) {
        // Recorded, never started (a crash in between): start it now, as that version, under the recorded id.
        const first = was.version === entry.version ? { plan, inputs } : await this.recorded(r, was.version);
        try {
          await this.launch(runner, first.plan, first.inputs, was.run);
        } catch (err) {
          if ((await this.store.get(was.run)) === undefined) throw err; // another process started it meanwhile
        }
      }
      return out(was.run, was.version, true);
    } finally {
      release();
      this.starting.delete(id);
    }
  }

  private async recorded(r: StartRequest, version: string): Promise<{ plan: Plan; inputs: Record<string, unknown> }> {
    const plan = planOf(await this.entry(r.pipeline, version));
    return { plan, inputs: validateInputs(plan, r.inputs) };
  }

  private async launch(runner: Runner, plan: Plan, inputs: Record<string, unknown>, runId?: string): Promise<string> {
    const handle = await runner.start(plan, inputs, runId !== undefined ? { runId } : {});
    handle.done.catch(() => undefined); // the outcome is in the log; nobody here awaits it
    return handle.id;
  }
}
