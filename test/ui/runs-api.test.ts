/**
 * Runs as an API over real HTTP (fetch) against `startUi` with a real Runtime and SQLite store:
 * registered pipelines started by name and version, idempotency keys (repeats, concurrency, a
 * crash between the key and the run), hostile and malformed requests, and the OpenAPI document.
 */
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planFromSource } from "../../src/api/run.js";
import { createToken, requiredScope } from "../../src/auth/tokens.js";
import { Runtime } from "../../src/runtime/runtime.js";
import { deploy } from "../../src/registry/pipelines.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { API_ROUTES, type Runner } from "../../src/ui/api.js";
import { startUi, type UiServer } from "../../src/ui/server.js";
import { APPROVE, EXAMPLE, req, until } from "./helpers.js";

const COUNTER = `import { appendFileSync } from "node:fs";
export function hit(ctx) {
  appendFileSync(ctx.input.log, ctx.input.tag + "\\n");
  return ctx.input.n * 2;
}
`;
const template = (name: string, dflt: number) => `baton: 1
name: ${name}
inputs:
  n: { type: integer, default: ${dflt} }
  tag: { type: string, default: t }
stages:
  double: { run: ./counter.mjs#hit, input: { n: "{{ inputs.n }}", tag: "{{ inputs.tag }}", log: LOG } }
output: double
`;

/** A runtime whose first start fails after the idempotency record is written: a crash in between. */
class CrashOnce extends Runtime {
  crash = false;
  override async start(...args: Parameters<Runtime["start"]>): ReturnType<Runtime["start"]> {
    if (this.crash) {
      this.crash = false;
      throw new Error("simulated crash before the run was created");
    }
    return super.start(...args);
  }
}

let dir: string;
let log: string;
let store: SqliteStore;
let runtime: CrashOnce;
let ui: UiServer;
let v1: string;
let v2: string;

const post = (body: unknown, headers: Record<string, string> = {}) => req(ui, "/api/runs", { method: "POST", body, headers });
const hits = (): string[] => (existsSync(log) ? readFileSync(log, "utf8").split("\n").filter((l) => l !== "") : []);
const finished = async (id: string) => {
  await until(async () => ["succeeded", "failed"].includes((await store.get(id))?.status ?? ""), 8000, `run ${id} to finish`);
  return (await req(ui, `/api/runs/${id}`)).json.run;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "baton-runs-api-"));
  log = join(dir, "hits.log");
  writeFileSync(join(dir, "counter.mjs"), COUNTER);
  const file = join(dir, "doubler.yaml");
  writeFileSync(file, template("doubler", 2).replace("LOG", JSON.stringify(log)));
  store = SqliteStore.open(join(dir, "api.db"));
  v1 = (await deploy(store, file)).version;
  writeFileSync(file, template("doubler", 3).replace("LOG", JSON.stringify(log)));
  v2 = (await deploy(store, file)).version;
  writeFileSync(join(dir, "other.yaml"), template("other", 1).replace("LOG", JSON.stringify(log)));
  await deploy(store, join(dir, "other.yaml"));
  await deploy(store, APPROVE);
  runtime = new CrashOnce({ store, loadPlan: planFromSource });
  const asRunner: Runner = runtime; // Runtime satisfies the API's Runner interface structurally
  void asRunner;
  ui = await startUi({ store, runtime, port: 0, pollMs: 50, auth: "none" });
});

afterAll(async () => {
  await ui.close();
  await runtime.close();
  await store.close();
});

describe("POST /api/runs { pipeline }", () => {
  it("starts the latest version by name, or a given version; 201 with id, pipeline, version and Location", async () => {
    const r = await post({ pipeline: "doubler", inputs: { n: 5, tag: "latest" } });
    expect(r.status, r.text).toBe(201);
    expect(r.json).toEqual({ id: expect.any(String), pipeline: "doubler", version: v2 });
    expect(r.headers.get("location")).toBe(`/api/runs/${r.json.id}`);
    expect((await finished(r.json.id)).output).toBe(10);

    const old = await post({ pipeline: "doubler", version: v1 });
    expect(old.status).toBe(201);
    expect(old.json.version).toBe(v1);
    expect((await finished(old.json.id)).output).toBe(4); // v1's default n: 2
    const dflt = await post({ pipeline: "doubler" });
    expect((await finished(dflt.json.id)).output).toBe(6); // v2's default n: 3

    // Inputs are checked like `baton run --input`: strings convert, unknown names are a 400.
    expect((await finished((await post({ pipeline: "doubler", inputs: { n: "7" } })).json.id)).output).toBe(14);
    const bad = await post({ pipeline: "doubler", inputs: { m: 1 } });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/^unknown input 'm'/);
  });

  it("deploying again switches what 'latest' starts", async () => {
    expect(await deploy(store, join(dir, "doubler.yaml"))).toEqual({ name: "doubler", version: v2, created: false });
    const v1file = join(dir, "doubler-v1.yaml");
    writeFileSync(v1file, template("doubler", 2).replace("LOG", JSON.stringify(log)));
    expect(await deploy(store, v1file)).toEqual({ name: "doubler", version: v1, created: false });
    const r = await post({ pipeline: "doubler" });
    expect(r.json.version).toBe(v1);
    expect((await finished(r.json.id)).output).toBe(4);
    await deploy(store, join(dir, "doubler.yaml")); // back to v2 for the other tests
    expect((await post({ pipeline: "doubler", inputs: { n: 0 } })).json.version).toBe(v2);
  });

  it("unknown pipelines and versions are 404s that list what is registered", async () => {
    const r = await post({ pipeline: "nope" });
    expect(r.status).toBe(404);
    expect(r.json.error).toBe('no pipeline "nope" is registered (registered: approve-cli, doubler, other)');
    const v = await post({ pipeline: "doubler", version: "0123456789ab" });
    expect(v.status).toBe(404);
    expect(v.json.error).toMatch(/^pipeline 'doubler' has no version 0123456789ab: see GET \/api\/pipelines\/doubler/);
  });
});

describe("idempotency keys", () => {
  it("the same key returns the same run, which runs once; the header is the same thing", async () => {
    const before = hits().length;
    const first = await post({ pipeline: "doubler", inputs: { n: 1, tag: "idem-1" }, idempotency_key: "order-1" });
    expect(first.status).toBe(201);
    await finished(first.json.id);
    const again = await post({ pipeline: "doubler", inputs: { tag: "idem-1", n: 1 }, idempotency_key: "order-1" });
    expect(again.status).toBe(200);
    expect(again.json).toEqual({ id: first.json.id, pipeline: "doubler", version: v2, deduplicated: true });
    const header = await post({ pipeline: "doubler", inputs: { n: 1, tag: "idem-1" } }, { "Idempotency-Key": "order-1" });
    expect(header.status).toBe(200);
    expect(header.json.id).toBe(first.json.id);
    expect(hits().filter((h) => h === "idem-1")).toHaveLength(1);
    expect(hits().length).toBe(before + 1);

    // Scoped per pipeline: the same key on another pipeline is another run.
    const other = await post({ pipeline: "other", inputs: { tag: "idem-other" }, idempotency_key: "order-1" });
    expect(other.status).toBe(201);
    expect(other.json.id).not.toBe(first.json.id);
  });

  it("a different request under a used key is a 409 saying so", async () => {
    const first = await post({ pipeline: "doubler", inputs: { n: 1, tag: "idem-2" }, idempotency_key: "order-2" });
    expect(first.status).toBe(201);
    const diff = await post({ pipeline: "doubler", inputs: { n: 2, tag: "idem-2" }, idempotency_key: "order-2" });
    expect(diff.status).toBe(409);
    expect(diff.json.error).toBe(`idempotency key "order-2" of pipeline 'doubler' was used for a different request (run ${first.json.id}): use a new key for new inputs or version`);
    const version = await post({ pipeline: "doubler", version: v1, inputs: { n: 1, tag: "idem-2" }, idempotency_key: "order-2" });
    expect(version.status).toBe(409);
    const both = await post({ pipeline: "doubler", idempotency_key: "a" }, { "Idempotency-Key": "b" });
    expect(both.status).toBe(400);
    expect(both.json.error).toBe("the Idempotency-Key header and 'idempotency_key' differ: send one of them");
  });

  it("concurrent starts with one key make one run", async () => {
    const rs = await Promise.all(Array.from({ length: 12 }, () => post({ pipeline: "doubler", inputs: { n: 4, tag: "idem-3" }, idempotency_key: "burst" })));
    const ids = new Set(rs.map((r) => r.json.id));
    expect(ids.size).toBe(1);
    expect(rs.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    const [id] = [...ids];
    expect((await finished(id!)).output).toBe(8);
    expect(hits().filter((h) => h === "idem-3")).toHaveLength(1);
    expect((await store.list({ pipeline: "doubler" })).filter((r) => r.id === id)).toHaveLength(1);
  });

  it("a key recorded before a crash, its run never created: the next request starts it with the recorded id", async () => {
    runtime.crash = true;
    const crashed = await post({ pipeline: "doubler", inputs: { n: 6, tag: "idem-4" }, idempotency_key: "crash" });
    expect(crashed.status).toBe(500);
    const rec = await store.getRecord("idempotency", "doubler:crash");
    const recorded = (rec!.value as { run: string }).run;
    expect(await store.get(recorded)).toBeUndefined();
    const retry = await post({ pipeline: "doubler", inputs: { n: 6, tag: "idem-4" }, idempotency_key: "crash" });
    expect(retry.status).toBe(200);
    expect(retry.json).toEqual({ id: recorded, pipeline: "doubler", version: v2, deduplicated: true });
    expect((await finished(recorded)).output).toBe(12);
    expect(hits().filter((h) => h === "idem-4")).toHaveLength(1);
  });
});

describe("bad and hostile requests", () => {
  it("a template path is refused without a templates root", async () => {
    const r = await post({ template: EXAMPLE });
    expect(r.status).toBe(400);
    expect(r.json.error).toBe("this server does not read template files: register it with `baton deploy FILE` and start it by name, { \"pipeline\": NAME }");
    expect((await post({ template: "/etc/passwd" })).status).toBe(400);
  });

  it("path traversal and devices in pipeline and version are names: 404 or 400, never a file read", async () => {
    for (const name of ["../../etc/passwd", "/etc/passwd", "/dev/zero", "..", "examples/research-report.yaml", EXAMPLE, "%2e%2e%2fetc"]) {
      const r = await post({ pipeline: name });
      expect(r.status, name).toBe(404);
      expect(r.json.error).toMatch(/^no pipeline .* is registered \(registered: /);
      expect(r.json.error).not.toMatch(/root:|baton: 1/);
    }
    for (const version of ["../../etc/passwd", "/dev/zero", "..", "ABCDEF012345", "0123456789a"]) {
      const r = await post({ pipeline: "doubler", version });
      expect(r.status, version).toBe(400);
      expect(r.json.error).toMatch(/^'version' must be 12 lowercase hex characters/);
    }
    for (const path of ["/api/pipelines/..%2F..%2Fetc%2Fpasswd", "/api/pipelines/%2Fetc%2Fpasswd", "/api/pipelines/%2Fdev%2Fzero"]) {
      const r = await req(ui, path);
      expect(r.status, path).toBe(404);
    }
    expect((await req(ui, "/api/pipelines/doubler?version=../x")).status).toBe(400);
    expect((await req(ui, "/api/pipelines/%E0%A4%A")).status).toBe(400); // a malformed %-escape
    const ctl = await post({ pipeline: "a\u0000b" });
    expect(ctl.status).toBe(400);
    expect((await post({ pipeline: "x".repeat(201) })).status).toBe(400);
  });

  it("bad types for every field are a 400 with one line", async () => {
    const cases: [unknown, RegExp][] = [
      [{ pipeline: 1 }, /^'pipeline' must be the name of a registered pipeline .*got 1 \(number\)$/],
      [{ pipeline: null }, /^'pipeline' must be .*\(null\)$/],
      [{ pipeline: ["doubler"] }, /^'pipeline' must be .*\(array\)$/],
      [{ pipeline: "" }, /^'pipeline' must be/],
      [{ pipeline: "doubler", version: 12 }, /^'version' must be .*\(number\)$/],
      [{ pipeline: "doubler", inputs: "n=1" }, /^'inputs' must be an object .*\(string\)$/],
      [{ pipeline: "doubler", inputs: [1] }, /^'inputs' must be an object .*\(array\)$/],
      [{ pipeline: "doubler", inputs: null }, /^'inputs' must be an object .*\(null\)$/],
      [{ pipeline: "doubler", inputs: { n: "many" } }, /^input 'n'/],
      [{ pipeline: "doubler", idempotency_key: 5 }, /^'idempotency_key' must be 1 to 200 printable characters, got 5 \(number\)$/],
      [{ pipeline: "doubler", idempotency_key: "" }, /^'idempotency_key' must be/],
      [{ pipeline: "doubler", idempotency_key: "x".repeat(201) }, /^'idempotency_key' must be/],
      [{ pipeline: "doubler", idempotency_key: "a\nb" }, /^'idempotency_key' must be/],
      [{ pipeline: "doubler", piepline: "x" }, /^unknown field 'piepline': POST \/api\/runs takes pipeline, version, inputs, idempotency_key$/],
      [{ pipeline: "doubler", template: "x.yaml" }, /^this server does not read template files/],
      [[1, 2], /^request body must be a JSON object$/],
      ["\"doubler\"", /^request body must be a JSON object$/],
    ];
    for (const [body, msg] of cases) {
      const r = await post(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error).toMatch(msg);
      expect(r.json.error).not.toContain("\n");
    }
    const badHeader = await post({ pipeline: "doubler" }, { "Idempotency-Key": "x".repeat(201) });
    expect(badHeader.status).toBe(400);
    expect(badHeader.json.error).toMatch(/^the Idempotency-Key header must be 1 to 200 printable characters/);
  });

  it("bad JSON is 400, a body that is not JSON 415, an oversized body 413", async () => {
    const bad = await post("{ pipeline: ", { "Content-Type": "application/json" });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/^request body is not valid JSON/);
    const text = await post(JSON.stringify({ pipeline: "doubler" }), { "Content-Type": "text/plain" });
    expect(text.status).toBe(415);
    expect(text.json.error).toMatch(/^send the body as JSON with 'Content-Type: application\/json'/);
    const form = await post("pipeline=doubler", { "Content-Type": "application/x-www-form-urlencoded" });
    expect(form.status).toBe(415);

    // Over 1 MiB: a 413 as soon as the limit is passed (node:http, so the rest of the upload may be cut off).
    const big = JSON.stringify({ pipeline: "doubler", inputs: { tag: "x".repeat(1024 * 1024 + 10) } });
    const status = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = httpRequest(new URL("/api/runs", ui.url), { method: "POST", headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(big) } }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      r.on("error", reject);
      r.end(big);
    });
    expect(status.status).toBe(413);
    expect(JSON.parse(status.body).error).toBe("request body is larger than 1048576 bytes");
  });
});

describe("GET /api/pipelines", () => {
  it("lists registered pipelines and shows one's versions and inputs", async () => {
    const list = await req(ui, "/api/pipelines");
    expect(list.status).toBe(200);
    expect(list.json.map((p: { name: string }) => p.name)).toEqual(["approve-cli", "doubler", "other"]);
    expect(list.json.find((p: { name: string }) => p.name === "doubler")).toMatchObject({ version: v2, versions: 2, deployed_at: expect.stringMatching(/Z$/) });
    const one = await req(ui, "/api/pipelines/doubler");
    expect(one.status).toBe(200);
    expect(one.json).toMatchObject({ name: "doubler", latest: v2, version: v2 });
    expect(one.json.inputs.properties.n).toMatchObject({ type: "integer", default: 3 });
    expect(one.json.versions.map((v: { version: string }) => v.version).sort()).toEqual([v1, v2].sort());
    expect(one.json).not.toHaveProperty("file");
    const old = await req(ui, `/api/pipelines/doubler?version=${v1}`);
    expect(old.json.inputs.properties.n.default).toBe(2);
    expect((await req(ui, "/api/pipelines/nope")).status).toBe(404);
    expect((await req(ui, "/api/pipelines", { method: "POST", body: {} })).status).toBe(405);
  });
});

describe("OpenAPI", () => {
  it("is served at /api/openapi.json and lists every route of the API, with its scope", async () => {
    const r = await req(ui, "/api/openapi.json");
    expect(r.status).toBe(200);
    const doc = r.json;
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.components.schemas.Error).toMatchObject({ required: ["error"] });
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) for (const m of Object.keys(ops)) documented.add(`${m.toUpperCase()} ${path}`);
    for (const route of API_ROUTES) {
      expect(documented.has(route), `${route} is not in openapi.json`).toBe(true);
      const [method, path] = route.split(" ") as [string, string];
      const op = doc.paths[path][method.toLowerCase()];
      expect(op.operationId).toEqual(expect.any(String));
      expect(op.responses).toBeDefined();
      // The scope it documents is the scope the server enforces.
      expect(op["x-baton-scope"], route).toBe(requiredScope(method, path.replace(/\{[a-z_]+\}/g, "x")));
    }
    for (const extra of ["POST /hooks/{path}", "GET /healthz"]) expect(documented.has(extra)).toBe(true);
    // Nothing documented under /api that the API does not route.
    for (const d of documented) if (d.includes(" /api/")) expect(API_ROUTES as readonly string[]).toContain(d);
    const refs = JSON.stringify(doc).match(/#\/components\/schemas\/[A-Za-z]+/g) ?? [];
    for (const ref of refs) expect(doc.components.schemas[ref.split("/").pop()!], ref).toBeDefined();
  });
});

describe("who answers", () => {
  it("approve without 'by' records the token's name (\"web ui\" on a tokenless loopback server)", async () => {
    const local = await post({ pipeline: "approve-cli" });
    await until(async () => (await store.get(local.json.id))?.status === "waiting", 8000, "the run to wait");
    expect((await req(ui, `/api/runs/${local.json.id}/approve`, { method: "POST", body: { stage: "review" } })).status).toBe(200);
    const t1 = (await req(ui, `/api/runs/${local.json.id}/trace`)).json;
    expect(t1.decisions.find((d: { kind: string }) => d.kind === "approval")).toMatchObject({ by: "web ui" });

    const dir2 = mkdtempSync(join(tmpdir(), "baton-runs-api-tok-"));
    const s2 = SqliteStore.open(join(dir2, "t.db"));
    const rt2 = new Runtime({ store: s2, loadPlan: planFromSource });
    const ui2 = await startUi({ store: s2, runtime: rt2, port: 0, pollMs: 50, storeTokens: true });
    try {
      await deploy(s2, APPROVE);
      const { token } = await createToken(s2, { name: "release-bot", scopes: ["run", "approve"] });
      const started = await req(ui2, "/api/runs", { method: "POST", body: { pipeline: "approve-cli" }, token });
      expect(started.status).toBe(201);
      await until(async () => (await s2.get(started.json.id))?.status === "waiting", 8000, "the run to wait");
      expect((await req(ui2, `/api/runs/${started.json.id}/approve`, { method: "POST", body: { stage: "review" }, token })).status).toBe(200);
      const t2 = (await req(ui2, `/api/runs/${started.json.id}/trace`, { token })).json;
      expect(t2.decisions.find((d: { kind: string }) => d.kind === "approval")).toMatchObject({ by: "release-bot" });
    } finally {
      await ui2.close();
      await rt2.close();
      await s2.close();
    }
  });
});
