/**
 * `POST /hooks/...` of `baton serve`: webhook triggers of the registered pipelines. A delivery
 * is checked against its trigger's HMAC-SHA256 secret (from the server's environment), turned
 * into run inputs by the trigger's expression and starts one run of the pipeline's latest
 * version — once per delivery id, so a replayed or retried delivery returns the run the first
 * one started (202 either way). These routes take no API token: the signature is the auth.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { InputError } from "../template/index.js";
import { HttpError, readBody, sendJson } from "../ui/http.js";
import type { RunStarter } from "../ui/runs.js";
import type { Deployments } from "./deployments.js";
import { deliveryId, deliveryKey, findWebhook, verifySignature, webhookInputs, WebhookError } from "./webhook.js";

/** Webhook bodies: no bigger than this. */
export const HOOK_MAX_BYTES = 1024 * 1024;

export class Hooks {
  constructor(private readonly o: { deployments: Deployments; starter: RunStarter; log?: (line: string) => void }) {}

  /** Answer one request whose path starts with /hooks/. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      const deployments = await this.o.deployments.latest();
      const hit = findWebhook(deployments.map((d) => d.plan), url.pathname);
      if (hit === undefined) throw new HttpError(404, `no registered pipeline has a webhook trigger on ${url.pathname}`);
      if (req.method !== "POST") throw new HttpError(405, `webhooks take POST, not ${req.method}`, { Allow: "POST" });
      const deployment = deployments.find((d) => d.plan === hit.plan)!;
      const raw = await readBody(req, HOOK_MAX_BYTES); // the signature is over these bytes
      const secret = process.env[hit.trigger.secretEnv];
      if (secret === undefined || secret === "") {
        this.o.log?.(`webhook ${url.pathname}: ${hit.trigger.secretEnv} is not set in this server's environment: every delivery is refused`);
        throw new HttpError(503, `this webhook's secret is not configured on the server (${hit.trigger.secretEnv}): ask its operator`);
      }
      const signed = verifySignature(secret, raw, req.headers);
      if (!signed.ok) throw new HttpError(401, `webhook ${url.pathname}: ${signed.reason}`);
      const delivery = deliveryId(req.headers, raw);
      if (!delivery.ok) throw new HttpError(400, `webhook ${url.pathname}: ${delivery.reason}`);
      const inputs = await webhookInputs(hit.trigger, { body: raw, headers: req.headers, query: url.searchParams });
      const started = await this.o.starter.start({
        pipeline: deployment.name, version: deployment.version, inputs, idempotencyKey: deliveryKey(deployment.name, hit.trigger, delivery.id),
      });
      if (!started.deduplicated) this.o.log?.(`webhook ${url.pathname}: started run ${started.id} of '${deployment.name}' (delivery ${delivery.id})`);
      sendJson(res, 202, { id: started.id, pipeline: started.pipeline, version: started.version, delivery: delivery.id, deduplicated: started.deduplicated }, { Location: `/api/runs/${started.id}` });
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const e = err instanceof HttpError ? err
        : err instanceof WebhookError ? new HttpError(err.status, err.message)
        : err instanceof InputError ? new HttpError(422, `webhook ${url.pathname}: the inputs it gave do not fit the pipeline: ${err.message.split("\n")[0]}`)
        : new HttpError(500, `internal error: ${(err as Error)?.message ?? String(err)}`.split("\n")[0]!);
      if (e.status >= 500) this.o.log?.(`webhook ${url.pathname}: ${e.message}`);
      sendJson(res, e.status, { error: e.message }, e.headers);
    }
  }
}
