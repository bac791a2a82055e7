/** `http:` stages against a real node:http server, through the real runtime (SPEC §1 stage kinds, Errors; §5 secrets). */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { execute } from "../../src/index.js";
import { classifyStatus, HTTP_LIMITS, parseRetryAfter } from "../../src/stages/http.js";
import { compileSource } from "../../src/template/index.js";

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string, n: number) => void;

let server: Server;
let base = "";
let handler: Handler = (_req, res) => res.end();
let seen: Seen[] = [];
/** Requests whose connection closed before we answered (aborted by the client). */
let abandoned = 0;
/** Responses of the current test, to end the ones a test left hanging. */
let responses: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      responses.push(res);
      res.on("close", () => {
        if (!res.writableFinished) abandoned++;
      });
      handler(req, res, body, seen.length);
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  seen = [];
  abandoned = 0;
  handler = (_req, res) => res.end();
  // Only hanging requests: closing idle keep-alive sockets here would race the next test's fetch.
  for (const res of responses) if (!res.writableFinished) res.destroy();
  responses = [];
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((ok) => server.close(() => ok()));
});

function json(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

/** A pipeline of one http stage `call` (plus the given YAML lines), its output the run's output. */
function pipeline(stage: string, head = "") {
  const text = `baton: 1\nname: http-test\n${head}stages:\n  call:\n${stage
    .trim()
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n")}\noutput: call\n`;
  const plan = compileSource(text, { format: "yaml", baseDir: process.cwd() });
  return { name: plan.name, plan, parseInputs: (r: unknown) => r as Record<string, unknown> };
}

async function run(stage: string, inputs: Record<string, unknown> = {}, head = "") {
  const log: BatonEvent[] = [];
  const result = await execute(pipeline(stage, head), inputs, { onEvents: (_id, es) => log.push(...es), seed: 7 });
  return { result, log };
}

type Failed = Extract<BatonEvent, { type: "stage_failed" }>;
const failures = (log: BatonEvent[]): Failed[] => log.filter((e): e is Failed => e.type === "stage_failed");
const logLines = (log: BatonEvent[]): string[] =>
  log.flatMap((e) => (e.type === "stage_succeeded" || e.type === "stage_failed" ? [...((e as { logs?: readonly string[] }).logs ?? [])] : []));

describe("http stages: requests and outputs", () => {
  it("POSTs the stage's input as JSON and outputs the JSON reply", async () => {
    handler = (_req, res, body) => json(res, 200, { answer: 42, got: JSON.parse(body) as unknown });
    const { result, log } = await run(`
input: { topic: "{{ inputs.topic }}", depth: 3 }
http: { url: "${base}/run" }`, { topic: "tides" }, "inputs:\n  topic: { type: string }\n");
    expect(result.status).toBe("succeeded");
    expect(result.output).toEqual({ answer: 42, got: { topic: "tides", depth: 3 } });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: "POST", url: "/run" });
    expect(seen[0]?.headers["content-type"]).toBe("application/json");
    expect(seen[0]?.headers.accept).toBe("application/json");
    expect(seen[0]?.headers["idempotency-key"]).toMatch(/:call:1:$/);
    expect(logLines(log)).toEqual([expect.stringMatching(new RegExp(`^POST ${base}/run → 200 in \\d+ ms$`))]);
  });

  it("GETs with query parameters (explicit body, method and headers win over defaults)", async () => {
    handler = (req, res) => json(res, 200, { url: req.url });
    const { result, log } = await run(`
http:
  url: "${base}/search?fixed=1"
  query: { q: "{{ inputs.q }}", tags: [a, b], none: null, n: 2 }
  headers: { Accept: "application/vnd.test+json" }`, { q: "sea & tides" }, "inputs:\n  q: { type: string }\n");
    expect(result.output).toEqual({ url: "/search?fixed=1&q=sea+%26+tides&tags=a&tags=b&n=2" });
    expect(seen[0]).toMatchObject({ method: "GET", body: "" });
    expect(seen[0]?.headers.accept).toBe("application/vnd.test+json");
    expect(logLines(log)).toEqual([expect.stringMatching(new RegExp(`^GET ${base}/search → 200 in \\d+ ms$`))]);
  });

  it("sends an explicit body with PUT", async () => {
    handler = (req, res, body) => json(res, 200, { method: req.method, body: JSON.parse(body) as unknown });
    const { result } = await run(`
input: { ignored: true }
http: { url: "${base}/x", method: PUT, body: { a: "{{ inputs.a }}" } }`, { a: 1 }, "inputs:\n  a: { type: integer }\n");
    expect(result.output).toEqual({ method: "PUT", body: { a: 1 } });
  });

  it("outputs the text of a non-JSON reply (invalid UTF-8 becomes U+FFFD), and null for 204", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(Buffer.from([0x68, 0x69, 0xff, 0x21]));
    };
    expect((await run(`http: { url: "${base}/t" }`)).result.output).toBe("hi\uFFFD!");
    handler = (_req, res) => {
      res.writeHead(204);
      res.end();
    };
    const { result } = await run(`http: { url: "${base}/t" }`);
    expect(result.status).toBe("succeeded");
    expect(result.output).toBeNull();
  });

  it("rejects a url that is not http(s)", async () => {
    const { result } = await run(`http: { url: "ftp://127.0.0.1/x" }`);
    expect(result.error).toMatchObject({ kind: "template", message: "stage 'call': http url 'ftp://127.0.0.1/x' must start with http:// or https://" });
  });
});

describe("http stages: secrets from the environment", () => {
  const NAME = "BATON_HTTP_TEST_TOKEN";
  const secret = `tok-${Math.random().toString(36).slice(2)}-sekret`;
  beforeAll(() => {
    process.env[NAME] = secret;
  });
  afterAll(() => {
    delete process.env[NAME];
  });

  it("substitutes ${NAME} in headers and url at call time; the value is nowhere in the events", async () => {
    handler = (req, res) => json(res, 200, { ok: true, echoed: req.headers.authorization });
    const { result, log } = await run(`
input: { q: 1 }
http:
  url: "${base}/v1/\${${NAME}}/run?key=\${${NAME}}"
  headers: { Authorization: "Bearer \${${NAME}}", X-Literal: "$\${NOT_A_VAR} and $\${${NAME}}" }`);
    expect(result.status).toBe("succeeded");
    expect(seen[0]?.headers.authorization).toBe(`Bearer ${secret}`);
    expect(seen[0]?.headers["x-literal"]).toBe(`\${NOT_A_VAR} and \${${NAME}}`);
    expect(seen[0]?.url).toBe(`/v1/${secret}/run?key=${secret}`);
    // An echo of the secret is scrubbed from the output.
    expect(result.output).toEqual({ ok: true, echoed: "Bearer [redacted]" });
    expect(JSON.stringify(log)).not.toContain(secret);
    expect(JSON.stringify(result)).not.toContain(secret);
    expect(logLines(log)).toEqual([expect.stringMatching(new RegExp(`^POST ${base}/v1/\\$\\{${NAME}\\}/run → 200 in \\d+ ms$`))]);
  });

  it("keeps secrets out of error messages too", async () => {
    handler = (req, res) => json(res, 400, { error: `bad token ${String(req.headers.authorization)}` });
    const { result, log } = await run(`http: { url: "${base}/x", headers: { Authorization: "Bearer \${${NAME}}" } }`);
    expect(result.error?.message).toContain("Bearer [redacted]");
    expect(JSON.stringify(log)).not.toContain(secret);
  });

  it("fails without retrying when a variable is not set", async () => {
    const { result, log } = await run(`
http: { url: "${base}/x", headers: { Authorization: "Bearer \${BATON_HTTP_TEST_UNSET}" } }
retry: { attempts: 3, delay: 1ms }`);
    expect(result.status).toBe("failed");
    expect(result.error?.message).toBe("stage 'call': header Authorization refers to ${BATON_HTTP_TEST_UNSET}, which is not set in the environment");
    expect(failures(log)).toHaveLength(1);
    expect(failures(log)[0]?.error).toMatchObject({ kind: "template", retryable: false });
    expect(seen).toHaveLength(0);
  });
});

describe("http stages: errors and retries", () => {
  it("honours a 429's Retry-After, then succeeds", async () => {
    handler = (_req, res, _b, n) => (n === 1 ? json(res, 429, { error: "slow down" }, { "retry-after": "1" }) : json(res, 200, { ok: n }));
    const { result, log } = await run(`
http: { url: "${base}/x" }
retry: { attempts: 2, delay: 1ms }`);
    expect(result.output).toEqual({ ok: 2 });
    expect(failures(log)[0]?.error).toEqual({
      kind: "rate_limited", retryable: true, retry_after_ms: 1000,
      message: `GET ${base}/x answered 429 Too Many Requests: {"error":"slow down"}`,
    });
    const retry = log.find((e) => e.type === "retry_scheduled") as { delay_ms: number } | undefined;
    expect(retry?.delay_ms).toBeGreaterThanOrEqual(1000);
  });

  it("retries a 500, then succeeds", async () => {
    handler = (_req, res, _b, n) => {
      if (n === 1) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("boom");
      } else json(res, 200, { ok: true });
    };
    const { result, log } = await run(`
input: { a: 1 }
http: { url: "${base}/run" }
retry: { attempts: 2, delay: 1ms }`);
    expect(result.output).toEqual({ ok: true });
    expect(failures(log)[0]?.error).toEqual({ kind: "http", retryable: true, message: `POST ${base}/run answered 500 Internal Server Error: boom` });
    expect(logLines(log)).toEqual([
      expect.stringMatching(new RegExp(`^POST ${base}/run → 500 in \\d+ ms$`)),
      expect.stringMatching(new RegExp(`^POST ${base}/run → 200 in \\d+ ms$`)),
    ]);
  });

  it("does not retry a 404", async () => {
    handler = (_req, res) => json(res, 404, { error: "no such agent" });
    const { result, log } = await run(`
http: { url: "${base}/missing" }
retry: { attempts: 3, delay: 1ms }`);
    expect(result.status).toBe("failed");
    expect(seen).toHaveLength(1);
    expect(failures(log).map((f) => f.error)).toEqual([
      { kind: "http", retryable: false, message: `GET ${base}/missing answered 404 Not Found: {"error":"no such agent"}` },
    ]);
  });

  it("classifies 401 as auth, not retryable", async () => {
    handler = (_req, res) => json(res, 401, { error: "who are you" });
    const { result, log } = await run(`
http: { url: "${base}/x" }
retry: { attempts: 3, delay: 1ms }`);
    expect(result.error?.kind).toBe("auth");
    expect(seen).toHaveLength(1);
    expect(failures(log)[0]?.error.retryable).toBe(false);
  });

  it("retries invalid JSON under a JSON content type as malformed_output", async () => {
    handler = (_req, res, _b, n) => {
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
      res.end(n === 1 ? "{ not json" : '{"ok":true}');
    };
    const { result, log } = await run(`
http: { url: "${base}/x" }
retry: { attempts: 2, delay: 1ms }`);
    expect(result.output).toEqual({ ok: true });
    const err = failures(log)[0]?.error;
    expect(err).toMatchObject({ kind: "malformed_output", retryable: true });
    expect(err?.message).toMatch(new RegExp(`^GET ${base}/x answered 200 with invalid JSON \\(.+\\): \\{ not json$`));
  });

  it("treats a refused connection as a retryable network error", async () => {
    const closed = createServer();
    await new Promise<void>((ok) => closed.listen(0, "127.0.0.1", ok));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((ok) => closed.close(() => ok()));
    const { result, log } = await run(`
http: { url: "http://127.0.0.1:${port}/x" }
retry: { attempts: 2, delay: 1ms }`);
    expect(result.status).toBe("failed");
    expect(failures(log)).toHaveLength(2);
    expect(failures(log)[0]?.error).toMatchObject({ kind: "network", retryable: true });
    expect(failures(log)[0]?.error.message).toBe(`GET http://127.0.0.1:${port}/x failed: connect ECONNREFUSED 127.0.0.1:${port}`);
    expect(logLines(log)[0]).toMatch(new RegExp(`^GET http://127.0.0.1:${port}/x → network error in \\d+ ms$`));
  });

  it("times a request out after http.timeout", async () => {
    handler = () => undefined; // never answers
    const { result, log } = await run(`http: { url: "${base}/slow", timeout: 100ms }`);
    expect(result.error).toMatchObject({ kind: "timeout", message: `GET ${base}/slow timed out after 100 ms` });
    expect(failures(log)[0]?.error.retryable).toBe(true);
    expect(logLines(log)).toEqual([expect.stringMatching(new RegExp(`^GET ${base}/slow → timed out in \\d+ ms$`))]);
  });

  it("aborts the request when the stage's own timeout fires", async () => {
    handler = () => undefined;
    const { result } = await run(`
http: { url: "${base}/slow" }
timeout: 100ms`);
    expect(result.error).toMatchObject({ kind: "timeout", message: "stage 'call' attempt 1 timed out after 100 ms" });
    await expect.poll(() => abandoned).toBe(1);
  });

  it("refuses a response over the size cap, without retrying", async () => {
    const saved = HTTP_LIMITS.maxResponseBytes;
    HTTP_LIMITS.maxResponseBytes = 1024;
    try {
      const big = JSON.stringify({ data: "x".repeat(2000) });
      handler = (_req, res) => json(res, 200, JSON.parse(big));
      const declared = await run(`
http: { url: "${base}/big" }
retry: { attempts: 2, delay: 1ms }`);
      expect(declared.result.error).toMatchObject({ kind: "http", message: `GET ${base}/big: response of ${big.length} bytes exceeds 1 KB` });
      expect(failures(declared.log)).toHaveLength(1);

      handler = (_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" }); // chunked: no content-length
        res.write("y".repeat(800));
        res.end("y".repeat(800));
      };
      const streamed = await run(`http: { url: "${base}/big" }`);
      expect(streamed.result.error?.message).toBe(`GET ${base}/big: response of more than 1024 bytes exceeds 1 KB`);
    } finally {
      HTTP_LIMITS.maxResponseBytes = saved;
    }
  });
});

describe("http helpers", () => {
  it("classifies statuses per SPEC §1", () => {
    const table = [401, 403, 404, 408, 409, 422, 425, 429, 500, 502, 503, 529].map((s) => [s, classifyStatus(s).kind, classifyStatus(s).retryable]);
    expect(table).toEqual([
      [401, "auth", false], [403, "auth", false], [404, "http", false], [408, "http", true], [409, "http", true], [422, "http", false],
      [425, "http", true], [429, "rate_limited", true], [500, "http", true], [502, "http", true], [503, "overloaded", true], [529, "overloaded", true],
    ]);
  });

  it("reads Retry-After as seconds or an HTTP-date", () => {
    expect(parseRetryAfter("2")).toBe(2000);
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", Date.parse("Wed, 21 Oct 2015 07:27:00 GMT"))).toBe(60_000);
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", Date.parse("2016-01-01T00:00:00Z"))).toBe(0);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter("1.5")).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});
