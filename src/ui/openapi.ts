/**
 * The OpenAPI 3.1 document of Baton's HTTP API, served at `GET /api/openapi.json`. Hand-written;
 * a test checks that every route of the API's route table (`API_ROUTES` in api.ts) is in it.
 * Each operation names the token scope it needs in `x-baton-scope` (read, run, approve, admin).
 */

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json, description: string): Json => ({ description, content: { "application/json": { schema } } });
const error = (description: string): Json => json(ref("Error"), description);
const body = (schema: Json, required = true): Json => ({ required, content: { "application/json": { schema } } });
const pathParam = (name: string, description: string): Json => ({ name, in: "path", required: true, description, schema: { type: "string" } });
const query = (name: string, description: string, schema: Json): Json => ({ name, in: "query", required: false, description, schema });

const RUN_ID = pathParam("id", "A run id, or a unique prefix of one (at least 4 characters).");
const COMMON: Json = {
  "401": error("Missing or wrong token."),
  "403": error("Foreign Host or Origin, or a token without the scope."),
};
const WRITE: Json = {
  ...COMMON,
  "400": error("Bad request: bad JSON, a field of the wrong type, bad inputs."),
  "413": error("The body is larger than 1 MiB."),
  "415": error("The body is not `application/json`."),
  "501": error("The server was started without a runtime (read-only)."),
};

/** One operation: `scope` goes into the description and `x-baton-scope`. */
function op(scope: "read" | "run" | "approve" | "admin" | "none", o: { summary: string; description?: string; operationId: string; tags: string[]; parameters?: Json[]; requestBody?: Json; responses: Json }): Json {
  const needs = scope === "none" ? "No token needed." : `Needs a token with scope \`${scope}\` (or one that implies it).`;
  return {
    ...o,
    description: `${o.description ? `${o.description}\n\n` : ""}${needs}`,
    "x-baton-scope": scope,
    ...(scope === "none" ? { security: [] } : {}),
  };
}

const answerBody = (approve: boolean): Json => ({
  type: "object", additionalProperties: false, required: ["stage"],
  properties: {
    stage: { type: "string", minLength: 1, description: "The waiting stage." },
    ...(approve ? { data: { description: "The stage's output (default `{ approved: true }`)." } } : {}),
    comment: { type: "string" },
    item: { type: "integer", minimum: 0, description: "One for_each item (default: every waiting item)." },
    by: { type: "string", description: "Who answers (default: the token's name, or \"web ui\")." },
    call: { type: "string", minLength: 1, description: "A tool call waiting for approval (needed when several wait)." },
  },
});

const OK = { type: "object", required: ["ok"], properties: { ok: { const: true }, recorded: { type: "integer" }, signalled: { const: true } } };

/**
 * The OpenAPI 3.1 document (a fresh object each call).
 *
 * @example
 * const doc = openApiDocument();
 * doc.paths["/api/runs"].post.operationId; // "startRun"
 */
export function openApiDocument(): Json & { paths: Record<string, Record<string, Json>> } {
  return {
    openapi: "3.1.0",
    info: {
      title: "Baton",
      version: "1",
      description: "Runs, traces, approvals and registered pipelines of a Baton store. Every error is `{ \"error\": \"one line\" }`. Field names are snake_case; times are ISO 8601 UTC; durations in ms.",
    },
    security: [{ bearer: [] }],
    tags: [{ name: "runs" }, { name: "pipelines" }, { name: "hooks" }, { name: "meta" }],
    paths: {
      "/api/runs": {
        get: op("read", {
          operationId: "listRuns", tags: ["runs"], summary: "Runs, newest first",
          parameters: [
            query("status", "Only runs with this status.", { type: "string", enum: ["running", "waiting", "succeeded", "failed", "cancelled"] }),
            query("pipeline", "Only runs of this pipeline.", { type: "string" }),
            query("limit", "How many (1–1000).", { type: "integer", minimum: 1, maximum: 1000, default: 50 }),
          ],
          responses: { "200": json({ type: "array", items: ref("RunSummary") }, "Runs."), "400": error("A bad filter."), ...COMMON },
        }),
        post: op("run", {
          operationId: "startRun", tags: ["runs"], summary: "Start a run of a registered pipeline",
          description: "Starts the latest version of `pipeline` (or `version`). With an idempotency key (`idempotency_key` or the `Idempotency-Key` header, scoped per pipeline) a repeated request returns the run the first one started (200, `deduplicated: true`); the same key with a different request is a 409. `{ template: PATH, inputs }` is accepted only by `baton ui` (files under its directory).",
          parameters: [{ name: "Idempotency-Key", in: "header", required: false, description: "Same as `idempotency_key`.", schema: ref("IdempotencyKey") }],
          requestBody: body(ref("StartRun")),
          responses: {
            "201": { ...json(ref("Started"), "The run started."), headers: { Location: { description: "/api/runs/ID", schema: { type: "string" } } } },
            "200": json(ref("Started"), "An earlier request with this idempotency key started this run (`deduplicated: true`)."),
            "404": error("No such pipeline or version (the message lists registered names)."),
            "409": error("The idempotency key was used for a different request."),
            ...WRITE,
          },
        }),
      },
      "/api/runs/{id}": {
        get: op("read", {
          operationId: "getRun", tags: ["runs"], summary: "A run, its plan as the graph draws it, its trace and last sequence number", parameters: [RUN_ID],
          responses: { "200": json({ type: "object", required: ["run", "plan", "trace", "seq"], properties: { run: { type: "object" }, plan: { type: ["object", "null"] }, trace: ref("Trace"), seq: { type: "integer" } } }, "The run."), "404": error("No such run."), ...COMMON },
        }),
      },
      "/api/runs/{id}/trace": {
        get: op("read", { operationId: "getTrace", tags: ["runs"], summary: "The run's trace (SPEC §5)", parameters: [RUN_ID], responses: { "200": json(ref("Trace"), "The trace."), "404": error("No such run."), ...COMMON } }),
      },
      "/api/runs/{id}/events": {
        get: op("read", {
          operationId: "listEvents", tags: ["runs"], summary: "Stored events after a sequence number",
          parameters: [RUN_ID, query("after", "Sequence number (default 0: all).", { type: "integer", minimum: 0 }), query("type", "Comma-separated event types to keep.", { type: "string" })],
          responses: { "200": json({ type: "array", items: { type: "object", required: ["seq", "type"], properties: { seq: { type: "integer" }, type: { type: "string" } } } }, "Events, each with its seq."), "400": error("Bad `after` or `type`."), "404": error("No such run."), ...COMMON },
        }),
      },
      "/api/runs/{id}/messages/{ref}": {
        get: op("read", {
          operationId: "getMessages", tags: ["runs"], summary: "The messages an agent turn sent to the model",
          parameters: [RUN_ID, { ...pathParam("ref", "The turn's `messages_ref` (64 hex characters)."), schema: { type: "string", pattern: "^[0-9a-fA-F]{64}$" } }],
          responses: { "200": json({ type: "array", items: { type: "object", properties: { role: { type: "string" }, content: {} } } }, "The messages."), "400": error("Not 64 hex characters."), "404": error("No such run or turn."), ...COMMON },
        }),
      },
      "/api/runs/{id}/stream": {
        get: op("read", {
          operationId: "streamRun", tags: ["runs"], summary: "Server-sent events of the run",
          description: "Every event after `after` (or `Last-Event-ID`) as `id: SEQ` + `data: EVENT`, then new ones as they are stored; `event: delta` for streaming agent text; `event: end` when the run finishes. Also accepts `?token=` (EventSource cannot send headers).",
          parameters: [RUN_ID, query("after", "Sequence number to follow from.", { type: "integer", minimum: 0 }), query("token", "The bearer token, for EventSource.", { type: "string" })],
          responses: { "200": { description: "An event stream.", content: { "text/event-stream": { schema: { type: "string" } } } }, "404": error("No such run."), ...COMMON },
        }),
      },
      "/api/runs/{id}/approve": {
        post: op("approve", { operationId: "approveStage", tags: ["runs"], summary: "Approve a waiting stage or tool call", parameters: [RUN_ID], requestBody: body(answerBody(true)), responses: { "200": json(OK, "Recorded."), "404": error("No such run."), "409": error("Nothing waits there, or the run has finished."), ...WRITE } }),
      },
      "/api/runs/{id}/reject": {
        post: op("approve", { operationId: "rejectStage", tags: ["runs"], summary: "Reject a waiting stage or tool call", parameters: [RUN_ID], requestBody: body(answerBody(false)), responses: { "200": json(OK, "Recorded."), "404": error("No such run."), "409": error("Nothing waits there, or the run has finished."), ...WRITE } }),
      },
      "/api/runs/{id}/cancel": {
        post: op("run", { operationId: "cancelRun", tags: ["runs"], summary: "Cancel a run (it stays resumable)", parameters: [RUN_ID], responses: { "200": json(OK, "Cancelled."), "404": error("No such run."), "409": error("The run has already finished."), ...WRITE } }),
      },
      "/api/runs/{id}/signals/{name}": {
        post: op("approve", {
          operationId: "signalRun", tags: ["runs"], summary: "Send a named signal to the run's `wait:` stages",
          parameters: [RUN_ID, { ...pathParam("name", "The signal name."), schema: { type: "string", pattern: "^[A-Za-z_][A-Za-z0-9_.-]*$" } }],
          requestBody: body({ type: "object", properties: { data: {}, by: { type: "string" } } }, false),
          responses: { "200": json(OK, "Recorded."), "404": error("No such run."), "409": error("The run has finished."), ...WRITE },
        }),
      },
      "/api/pipelines": {
        get: op("read", { operationId: "listPipelines", tags: ["pipelines"], summary: "Registered pipelines (`baton deploy FILE`)", responses: { "200": json({ type: "array", items: ref("PipelineSummary") }, "By name."), ...COMMON } }),
      },
      "/api/pipelines/{name}": {
        get: op("read", {
          operationId: "getPipeline", tags: ["pipelines"], summary: "A registered pipeline: its versions and the inputs it takes",
          parameters: [pathParam("name", "The pipeline name."), query("version", "Show the inputs of this version (default: the latest).", ref("Version"))],
          responses: { "200": json(ref("Pipeline"), "The pipeline."), "400": error("A bad name or version."), "404": error("No such pipeline or version."), ...COMMON },
        }),
      },
      "/api/openapi.json": {
        get: op("read", { operationId: "openApi", tags: ["meta"], summary: "This document", responses: { "200": json({ type: "object" }, "The OpenAPI 3.1 document."), ...COMMON } }),
      },
      "/hooks/{path}": {
        post: op("none", {
          operationId: "webhook", tags: ["hooks"], summary: "A webhook trigger: start the pipeline a template's trigger binds to this path",
          description: "Authenticated by an HMAC-SHA256 signature of the raw body with the trigger's secret: `X-Hub-Signature-256: sha256=HEX` (GitHub) or `X-Baton-Signature: sha256=HEX`. A repeated delivery is not started twice.",
          parameters: [
            pathParam("path", "The trigger's path."),
            { name: "X-Hub-Signature-256", in: "header", required: false, schema: { type: "string", pattern: "^sha256=[0-9a-f]{64}$" } },
            { name: "X-Baton-Signature", in: "header", required: false, schema: { type: "string", pattern: "^sha256=[0-9a-f]{64}$" } },
          ],
          requestBody: body({}),
          responses: {
            "202": json({ type: "object", properties: { id: { type: "string" } } }, "Accepted: the run starts (or a duplicate delivery was recognised)."),
            "400": error("A bad body."), "401": error("A missing or wrong signature."), "404": error("No trigger at this path."), "413": error("The body is too large."),
          },
        }),
      },
      "/healthz": {
        get: op("none", { operationId: "health", tags: ["meta"], summary: "Liveness", responses: { "200": json({ type: "object", properties: { ok: { const: true } } }, "The server is up.") } }),
      },
    },
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "`Authorization: Bearer TOKEN`: a `baton token create` token (scopes read, run, approve, admin; admin implies all, run and approve imply read) or the server's --token." },
      },
      schemas: {
        Error: { type: "object", required: ["error"], properties: { error: { type: "string", description: "One line: what, where, what was expected." } } },
        Version: { type: "string", pattern: "^[0-9a-f]{12}$", description: "First 12 hex characters of the sha256 of the template text." },
        IdempotencyKey: { type: "string", minLength: 1, maxLength: 200, description: "1–200 printable characters, scoped per pipeline." },
        StartRun: {
          type: "object", additionalProperties: false, required: ["pipeline"],
          properties: {
            pipeline: { type: "string", minLength: 1, maxLength: 200, description: "A registered pipeline's name." },
            version: ref("Version"),
            inputs: { type: "object", description: "Input values (checked like `baton run --input`; strings convert to the declared types)." },
            idempotency_key: ref("IdempotencyKey"),
          },
        },
        Started: {
          type: "object", required: ["id"],
          properties: { id: { type: "string" }, pipeline: { type: "string" }, version: ref("Version"), deduplicated: { const: true } },
        },
        RunSummary: {
          type: "object",
          properties: {
            id: { type: "string" }, pipeline: { type: "string" }, status: { type: "string", enum: ["running", "waiting", "succeeded", "failed", "cancelled"] },
            started_at: { type: "string", format: "date-time" }, ended_at: { type: ["string", "null"], format: "date-time" }, duration_ms: { type: ["integer", "null"] },
            tokens: { type: "object", properties: { input: { type: "integer" }, output: { type: "integer" } } }, cost_usd: { type: "number" }, parent_id: { type: ["string", "null"] },
            error: {
              type: "object", required: ["kind", "message"], description: "A failed or cancelled run: why (the trace's `run.error`; the message may span lines).",
              properties: { stage: { type: "string" }, kind: { type: "string" }, message: { type: "string" } },
            },
            waiting_for: { type: "array", description: "A waiting run: what it waits for, one entry per waiting stage execution (the first is the run's `waiting`); a running run: its sleeping stages.", items: ref("WaitReason") },
          },
        },
        WaitReason: {
          type: "object", required: ["kind", "stage", "message"],
          properties: {
            kind: { type: "string", enum: ["approval", "signal", "sleep", "escalation"], description: "approval: a human (`approve`/`reject`, tool calls included); signal: a `wait:` stage; sleep: a `sleep:`/`until:` stage; escalation: an `escalate:` route." },
            stage: { type: "string" }, visit: { type: "integer" }, item: { type: "integer" }, message: { type: "string" },
            signal: { type: "string", description: "kind signal: the signal's name." },
            due_at: { type: "string", format: "date-time", description: "The deadline (`timeout:`), or a sleep's wake-up." },
            calls: { type: "integer", description: "Tool calls waiting for approval." },
          },
        },
        Trace: { type: "object", description: "The trace of SPEC §5 (`baton trace RUN --json`)." },
        PipelineSummary: {
          type: "object", required: ["name", "version", "versions", "deployed_at"],
          properties: { name: { type: "string" }, version: ref("Version"), versions: { type: "integer" }, deployed_at: { type: "string", format: "date-time" } },
        },
        Pipeline: {
          type: "object", required: ["name", "latest", "version", "inputs", "versions"],
          properties: {
            name: { type: "string" }, latest: ref("Version"), version: ref("Version"), description: { type: "string" },
            inputs: { type: "object", description: "JSON Schema of the inputs of `version`." },
            versions: { type: "array", items: { type: "object", properties: { version: ref("Version"), deployed_at: { type: "string", format: "date-time" }, by: { type: "string" } } } },
          },
        },
      },
    },
  };
}
