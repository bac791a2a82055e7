/**
 * Webhook triggers as pure functions: check a delivery's HMAC-SHA256 signature, name the
 * delivery (for dedupe), and turn the request into run inputs with the trigger's JSONata.
 * No I/O: `baton serve` reads the request, the secret (from `secret_env`) and the store, and
 * passes them in.
 *
 * Signature headers (either; when both are sent both must match):
 * - `X-Hub-Signature-256: sha256=<hex>` (GitHub),
 * - `X-Baton-Signature: sha256=<hex>`,
 * where `<hex>` is the HMAC-SHA256 of the raw request body under the secret.
 *
 * Dedupe: a delivery is named by its `X-GitHub-Delivery` or `X-Baton-Delivery` header, else by
 * the sha256 of its body; {@link deliveryKey} of a name is the idempotency key, so a replayed
 * delivery starts no second run.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { ExprError } from "../expr/index.js";
import type { Plan, WebhookTriggerPlan } from "../plan/types.js";

/** Signature headers accepted, lowercase as Node gives them, with the name shown in reasons. */
const SIGNATURE_HEADERS: readonly (readonly [string, string])[] = [
  ["x-hub-signature-256", "X-Hub-Signature-256"],
  ["x-baton-signature", "X-Baton-Signature"],
];

/** Delivery id headers, in the order they are read. */
const DELIVERY_HEADERS: readonly (readonly [string, string])[] = [
  ["x-github-delivery", "X-GitHub-Delivery"],
  ["x-baton-delivery", "X-Baton-Delivery"],
];

/** Longest delivery id header accepted. */
export const MAX_DELIVERY_ID = 200;

const SIGNATURE = /^sha256=([0-9a-fA-F]{64})$/;
const PRINTABLE = /^[\x21-\x7E]+$/;

/** A check that passed, or why it did not. */
export type Check = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** A request could not be turned into run inputs. `status` is the HTTP status to answer with. */
export class WebhookError extends Error {
  override readonly name = "WebhookError";
  /** The same request fails the same way. */
  readonly retryable = false;
  /** 400 for a body that is not the JSON its content-type says, 422 for an inputs expression that failed. */
  readonly status: 400 | 422;

  constructor(message: string, status: 400 | 422, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.status = status;
  }
}

/**
 * Check a delivery's signature: `X-Hub-Signature-256` and/or `X-Baton-Signature`, each
 * `sha256=<64 hex digits>`, the HMAC-SHA256 of the raw body under `secret`, compared in
 * constant time. Reasons never show the expected value.
 *
 * @example
 * const sig = "sha256=" + createHmac("sha256", secret).update(raw).digest("hex");
 * verifySignature(secret, raw, { "x-hub-signature-256": sig }); // { ok: true }
 * verifySignature(secret, raw, {}); // { ok: false, reason: "missing signature: send X-Hub-Signature-256 or X-Baton-Signature: sha256=<hex HMAC-SHA256 of the body>" }
 */
export function verifySignature(secret: string, rawBody: Buffer, headers: IncomingHttpHeaders): Check {
  if (secret === "") return { ok: false, reason: "the webhook secret is empty: set the trigger's secret_env variable to a non-empty secret" };
  const sent = SIGNATURE_HEADERS.filter(([h]) => headers[h] !== undefined);
  if (sent.length === 0) return { ok: false, reason: "missing signature: send X-Hub-Signature-256 or X-Baton-Signature: sha256=<hex HMAC-SHA256 of the body>" };
  const expected = createHmac("sha256", secret).update(rawBody).digest();
  for (const [h, shown] of sent) {
    const value = headers[h];
    if (typeof value !== "string") return { ok: false, reason: `more than one ${shown} header: send one` };
    const m = SIGNATURE.exec(value.trim());
    if (!m) return { ok: false, reason: `bad ${shown} format: expected sha256= followed by 64 hex digits` };
    const given = Buffer.from(m[1] as string, "hex");
    if (!timingSafeEqual(given, expected)) return { ok: false, reason: `${shown} does not match the body: sign the raw body with HMAC-SHA256 under the trigger's secret` };
  }
  return { ok: true };
}

/**
 * Name a delivery, for dedupe: its `X-GitHub-Delivery` or `X-Baton-Delivery` header (at most
 * {@link MAX_DELIVERY_ID} visible ASCII characters), else the sha256 (hex) of the raw body —
 * so without a header, a second delivery of the same body counts as a replay.
 *
 * @example
 * deliveryId({ "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958" }, raw); // { ok: true, id: "72d3…", from: "header" }
 */
export function deliveryId(headers: IncomingHttpHeaders, rawBody: Buffer): { readonly ok: true; readonly id: string; readonly from: "header" | "body" } | { readonly ok: false; readonly reason: string } {
  for (const [h, shown] of DELIVERY_HEADERS) {
    const value = headers[h];
    if (value === undefined) continue;
    if (typeof value !== "string") return { ok: false, reason: `more than one ${shown} header: send one` };
    if (value.length > MAX_DELIVERY_ID) return { ok: false, reason: `${shown} is ${value.length} characters long: at most ${MAX_DELIVERY_ID} are allowed` };
    if (!PRINTABLE.test(value)) return { ok: false, reason: `${shown} must be visible ASCII characters (no spaces or control characters), such as a UUID` };
    return { ok: true, id: value, from: "header" };
  }
  return { ok: true, id: createHash("sha256").update(rawBody).digest("hex"), from: "body" };
}

/**
 * The idempotency key of one delivery to one webhook: `webhook:PIPELINE:PATH:ID` (pipeline
 * URI-encoded). Two servers sharing a store that both put-if-absent it start the run once.
 *
 * @example
 * deliveryKey("triage", { path: "/hooks/gh" }, "72d3162e"); // "webhook:triage:/hooks/gh:72d3162e"
 */
export function deliveryKey(pipeline: string, trigger: Pick<WebhookTriggerPlan, "path">, id: string): string {
  return `webhook:${encodeURIComponent(pipeline)}:${trigger.path}:${id}`;
}

/** The request a webhook's inputs expression sees. */
export interface WebhookRequest {
  /** The raw body: parsed as JSON when the content-type is JSON, else given as text. */
  readonly body: Buffer | string;
  readonly headers: IncomingHttpHeaders;
  /** The query string's parameters (a repeated one as a list). */
  readonly query?: URLSearchParams | Readonly<Record<string, string | readonly string[] | undefined>>;
}

function isJson(contentType: string | undefined): boolean {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

function queryOf(q: WebhookRequest["query"]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (q === undefined) return out;
  const add = (k: string, v: string): void => {
    const cur = out[k];
    out[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
  };
  if (q instanceof URLSearchParams) for (const [k, v] of q) add(k, v);
  else for (const [k, v] of Object.entries(q)) for (const one of v === undefined ? [] : typeof v === "string" ? [v] : v) add(k, one);
  return out;
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return `a ${typeof v}`;
}

/**
 * Evaluate a webhook trigger's `inputs` expression (default `body`) over `{ body, headers,
 * query }`, under the bounds of every Baton expression. Returns the run inputs; the caller
 * checks them against the pipeline's `inputs:` (`validateInputs`).
 *
 * @throws {@link WebhookError} (status 400) when a JSON content-type comes with a body that is
 *   not JSON; (status 422) when the expression fails or gives anything but a mapping.
 * @example
 * await webhookInputs(trigger, { body: raw, headers: { "content-type": "application/json" } }); // e.g. { repo: "baton" }
 */
export async function webhookInputs(trigger: Pick<WebhookTriggerPlan, "inputs" | "path">, req: WebhookRequest): Promise<Record<string, unknown>> {
  const text = typeof req.body === "string" ? req.body : req.body.toString("utf8");
  let body: unknown = text;
  const contentType = req.headers["content-type"];
  if (isJson(contentType)) {
    try {
      body = text.trim() === "" ? null : (JSON.parse(text) as unknown);
    } catch (err) {
      throw new WebhookError(`webhook ${trigger.path}: the body is not valid JSON (content-type ${String(contentType)}): ${(err as Error).message}`, 400, err);
    }
  }
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k.toLowerCase()] = v;
  const source = trigger.inputs.source;
  let value: unknown;
  try {
    value = await trigger.inputs.evaluate({ body, headers, query: queryOf(req.query) });
  } catch (err) {
    if (!(err instanceof ExprError)) throw err;
    throw new WebhookError(`webhook ${trigger.path}: inputs ${err.message}`, 422, err);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new WebhookError(`webhook ${trigger.path}: inputs \`${source}\` must give a mapping of run inputs, got ${describe(value)}: write e.g. "{ 'repo': body.repository.name }"`, 422);
  }
  return structuredClone(value) as Record<string, unknown>;
}

/**
 * The webhook trigger listening on `path` (the request's path, without the query), and the
 * plan it belongs to; undefined when none does. Paths are unique within a template; across
 * plans the first match wins, so a registry should refuse a second pipeline on a used path.
 *
 * @example
 * const hit = findWebhook(registered, "/hooks/gh"); // { plan, trigger } | undefined
 */
export function findWebhook(plans: Iterable<Plan>, path: string): { readonly plan: Plan; readonly trigger: WebhookTriggerPlan } | undefined {
  for (const plan of plans) {
    for (const trigger of plan.triggers ?? []) if (trigger.kind === "webhook" && trigger.path === path) return { plan, trigger };
  }
  return undefined;
}
