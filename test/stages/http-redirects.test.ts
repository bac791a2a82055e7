/**
 * `http:` stages and redirects (issue 13 item 4), and error excerpts cut after redaction (item 3):
 * two real node:http servers on 127.0.0.1 — different ports, so different origins.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { execute } from "../../src/index.js";
import { MAX_REDIRECTS } from "../../src/stages/http.js";
import { compileSource } from "../../src/template/index.js";

interface Seen {
  readonly server: "a" | "b";
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}
type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const seen: Seen[] = [];
const handlers: Record<"a" | "b", Handler> = { a: (_q, res) => res.end(), b: (_q, res) => res.end() };
const servers: Server[] = [];
const origin: Record<"a" | "b", string> = { a: "", b: "" };

async function listen(name: "a" | "b"): Promise<void> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      seen.push({ server: name, method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      handlers[name](req, res, body);
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  servers.push(server);
  origin[name] = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const KEY_NAME = "BATON_REDIRECT_TEST_API_KEY";
const apiKey = `key-${Math.random().toString(36).slice(2)}-redirect-secret`;

beforeAll(async () => {
  process.env[KEY_NAME] = apiKey;
  await listen("a");
  await listen("b");
});
afterEach(() => {
  seen.length = 0;
  handlers.a = (_q, res) => res.end();
  handlers.b = (_q, res) => res.end();
});
afterAll(async () => {
  delete process.env[KEY_NAME];
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((ok) => s.close(() => ok()));
  }
});

function redirect(res: ServerResponse, status: number, location: string): void {
  res.writeHead(status, { location, "content-length": "0" });
  res.end();
}
function json(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) });
  res.end(text);
}
function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "text/plain", "content-length": String(Buffer.byteLength(body)) });
  res.end(body);
}

async function run(stage: string) {
  const src = `baton: 1\nname: redirect-test\nstages:\n  call:\n${stage.trim().split("\n").map((l) => `    ${l}`).join("\n")}\noutput: call\n`;
  const plan = compileSource(src, { format: "yaml", baseDir: process.cwd() });
  const log: BatonEvent[] = [];
  const result = await execute({ name: plan.name, plan, parseInputs: (r: unknown) => r as Record<string, unknown> }, {}, { onEvents: (_id, es) => log.push(...es), seed: 7 });
  return { result, log };
}

const HEADERS = `headers: { X-Api-Key: "\${${KEY_NAME}}", Authorization: "Bearer \${${KEY_NAME}}", X-Custom: plain }`;

describe("http stages: redirects", () => {
  it("a cross-origin redirect drops every header the template set: the key reaches the first server, never the second", async () => {
    handlers.a = (_q, res) => redirect(res, 302, `${origin.b}/landing`);
    handlers.b = (q, res) => json(res, 200, { got: q.headers["x-api-key"] ?? null });
    const { result, log } = await run(`http: { url: "${origin.a}/start", ${HEADERS} }`);
    expect(result.status).toBe("succeeded");
    expect(result.output).toEqual({ got: null });
    expect(seen.map((s) => s.server)).toEqual(["a", "b"]);
    const [a, b] = seen;
    expect(a!.headers["x-api-key"]).toBe(apiKey);
    expect(a!.headers.authorization).toBe(`Bearer ${apiKey}`);
    expect(a!.headers["x-custom"]).toBe("plain");
    expect(b!.headers["x-api-key"]).toBeUndefined();
    expect(b!.headers.authorization).toBeUndefined();
    expect(b!.headers["x-custom"]).toBeUndefined();
    expect(JSON.stringify(b!.headers)).not.toContain(apiKey);
    // Baton's own headers go on.
    expect(b!.headers.accept).toBe("application/json");
    expect(b!.headers["idempotency-key"]).toBe(a!.headers["idempotency-key"]);
    // Nothing secret, and no Location, is recorded: the log line says how many hops.
    const all = JSON.stringify(log);
    expect(all).not.toContain(apiKey);
    expect(all).not.toContain("/landing");
    expect(all).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/start → 200 after 1 redirect in \d+ ms/);
  });

  it("a same-origin redirect keeps the headers (relative Location)", async () => {
    handlers.a = (q, res) => (q.url === "/start" ? redirect(res, 301, "/next") : json(res, 200, { got: q.headers["x-api-key"] ?? null }));
    const { result } = await run(`http: { url: "${origin.a}/start", ${HEADERS} }`);
    expect(result.status).toBe("succeeded");
    expect(seen.map((s) => `${s.server}${s.url}`)).toEqual(["a/start", "a/next"]);
    expect(seen[1]!.headers["x-api-key"]).toBe(apiKey);
    expect(seen[1]!.headers.authorization).toBe(`Bearer ${apiKey}`);
    expect(seen[1]!.headers["x-custom"]).toBe("plain");
    expect(result.output).toEqual({ got: "[redacted]" }); // the echo is redacted
  });

  it("once dropped, the headers do not come back when a later hop returns to the first origin", async () => {
    handlers.a = (q, res) => (q.url === "/start" ? redirect(res, 307, `${origin.b}/bounce`) : json(res, 200, { back: true }));
    handlers.b = (_q, res) => redirect(res, 307, `${origin.a}/home`);
    const { result } = await run(`http: { url: "${origin.a}/start", ${HEADERS} }`);
    expect(result.status).toBe("succeeded");
    expect(seen.map((s) => `${s.server}${s.url}`)).toEqual(["a/start", "b/bounce", "a/home"]);
    expect(seen[0]!.headers["x-api-key"]).toBe(apiKey);
    expect(seen[1]!.headers["x-api-key"]).toBeUndefined();
    expect(seen[2]!.headers["x-api-key"]).toBeUndefined();
    expect(seen[2]!.headers.authorization).toBeUndefined();
  });

  it("303 turns a POST into a GET without its body; 301/302 too; 307/308 keep method and body", async () => {
    for (const [status, method, body] of [[303, "GET", ""], [302, "GET", ""], [301, "GET", ""], [307, "POST", '{"q":1}'], [308, "POST", '{"q":1}']] as const) {
      seen.length = 0;
      handlers.a = (q, res) => (q.url === "/start" ? redirect(res, status, "/next") : json(res, 200, { ok: true }));
      const { result } = await run(`input: { q: 1 }\nhttp: { url: "${origin.a}/start" }`);
      expect(result.status, `${status}`).toBe("succeeded");
      expect(seen[0]!.method).toBe("POST");
      expect({ status, method: seen[1]!.method, body: seen[1]!.body, type: seen[1]!.headers["content-type"] ?? null }).toEqual({
        status, method, body, type: method === "GET" ? null : "application/json",
      });
    }
  });

  it("307 to another origin keeps the body (and Baton's own content-type), not the template's headers", async () => {
    handlers.a = (_q, res) => redirect(res, 307, `${origin.b}/in`);
    handlers.b = (_q, res) => json(res, 200, { ok: true });
    const { result } = await run(`input: { q: 2 }\nhttp: { url: "${origin.a}/start", ${HEADERS} }`);
    expect(result.status).toBe("succeeded");
    expect(seen[1]).toMatchObject({ server: "b", method: "POST", body: '{"q":2}' });
    expect(seen[1]!.headers["content-type"]).toBe("application/json");
    expect(seen[1]!.headers["x-api-key"]).toBeUndefined();
  });

  it(`stops after ${MAX_REDIRECTS} hops with a clear, non-retryable error`, async () => {
    handlers.a = (_q, res) => redirect(res, 302, "/again");
    const { result } = await run(`http: { url: "${origin.a}/start" }\nretry: { attempts: 3, delay: 1ms }`);
    expect(result.status).toBe("failed");
    expect(result.error?.message).toMatch(new RegExp(`GET http://127\\.0\\.0\\.1:\\d+/start: more than ${MAX_REDIRECTS} redirects`));
    expect(seen).toHaveLength(MAX_REDIRECTS + 1); // one attempt only
  });

  it("refuses a redirect to a non-http(s) URL without quoting it", async () => {
    handlers.a = (_q, res) => redirect(res, 302, `file:///etc/passwd?k=${apiKey}`);
    const { result, log } = await run(`http: { url: "${origin.a}/start" }`);
    expect(result.status).toBe("failed");
    expect(result.error?.message).toContain("redirecting to a file: URL: only http:// and https:// are followed");
    expect(JSON.stringify(log)).not.toContain("/etc/passwd");
  });
});

describe("http stages: error excerpts are redacted before they are cut", () => {
  const ENV_ONLY = "BATON_EXCERPT_TEST_SECRET";
  const envSecret = `env-${Math.random().toString(36).slice(2)}-only-in-the-environment`;
  beforeAll(() => void (process.env[ENV_ONLY] = envSecret));
  afterAll(() => void delete process.env[ENV_ONLY]);

  // The excerpt keeps 200 characters: each secret starts at 190, straddling the cut.
  const pad = `${"x".repeat(189)} `;
  const cases: [string, string, string][] = [
    ["a substituted ${NAME} value", apiKey, `http: { url: "${"${A}"}/e", headers: { X-Api-Key: "\${${KEY_NAME}}" } }`],
    ["a secret only in the environment", envSecret, `http: { url: "${"${A}"}/e" }`],
    ["a credential-shaped string", "sk-proj-AbCdEfGhIjKlMnOpQrStUv123456", `http: { url: "${"${A}"}/e" }`],
  ];
  for (const [what, secret, stage] of cases) {
    it(`${what}: no prefix of it in the message (body longer than 200 characters)`, async () => {
      handlers.a = (_q, res) => text(res, 400, `${pad}${secret} and more text after it ${"y".repeat(100)}`);
      const { result, log } = await run(stage.replace("${A}", origin.a));
      expect(result.status).toBe("failed");
      const message = result.error?.message ?? "";
      expect(message).toContain(pad.trim());
      for (const s of [JSON.stringify(log), message]) expect(s).not.toContain(secret.slice(0, 8));
    });
  }
});
