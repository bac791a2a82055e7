/**
 * `startServe` in process, over real HTTP: webhook triggers (signed, deduplicated, hostile
 * deliveries refused), cron fires on a simulated clock, the runs API on registered pipelines,
 * and every documented endpoint answered without a server error.
 */
import { createHmac } from "node:crypto";
import { request } from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { planFromSource } from "../../src/api/run.js";
import { deploy } from "../../src/registry/pipelines.js";
import { startServe, type Serving } from "../../src/serve/serve.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { createToken } from "../../src/auth/tokens.js";

const SECRET = "s3cret-for-tests";
const TEMPLATE = `baton: 1
name: gh-triage
inputs:
  repo: { type: string }
  action: { type: string, default: none }
triggers:
  - webhook: { path: /hooks/gh, secret_env: BATON_TEST_GH_SECRET, inputs: "{ 'repo': body.repository.name, 'action': body.action }" }
  - cron: "*/5 * * * *"
    inputs: { repo: cron }
stages:
  label: { value: "inputs.repo & ':' & inputs.action" }
output: label
`;

let dir: string;
let store: SqliteStore;
let serving: Serving;
const clock = { now: Date.parse("2026-06-01T10:01:00Z") };

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "baton-serve-"));
  writeFileSync(join(dir, "triage.yaml"), TEMPLATE);
  store = SqliteStore.open(join(dir, "baton.db"));
  await deploy(store, join(dir, "triage.yaml"), { now: () => clock.now });
  process.env["BATON_TEST_GH_SECRET"] = SECRET;
  serving = await startServe({ store, loadPlan: planFromSource, port: 0, sweepMs: 60_000, now: () => clock.now, auth: "none" });
});

afterEach(async () => {
  await serving.close();
  await store.close();
  delete process.env["BATON_TEST_GH_SECRET"];
});

const sign = (body: string, secret = SECRET): string => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

async function deliver(body: string, headers: Record<string, string> = {}, path = "hooks/gh"): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${serving.url}${path}`, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

async function finished(id: string): Promise<{ status: string; output?: unknown }> {
  for (let i = 0; i < 200; i++) {
    const { events } = await store.load(id);
    const fin = events.find((e) => e.type === "run_finished") as { status: string; output?: unknown } | undefined;
    if (fin) return fin;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`run ${id} did not finish`);
}

describe("baton serve: webhook triggers", () => {
  it("a signed delivery starts a run with the inputs its expression gives; a replay returns the same run", async () => {
    const body = JSON.stringify({ action: "opened", repository: { name: "baton" } });
    const first = await deliver(body, { "X-Hub-Signature-256": sign(body), "X-GitHub-Delivery": "d-1" });
    expect(first.status).toBe(202);
    expect(first.json).toMatchObject({ pipeline: "gh-triage", delivery: "d-1", deduplicated: false });
    expect(await finished(first.json["id"] as string)).toMatchObject({ status: "succeeded", output: "baton:opened" });
    const replay = await deliver(body, { "X-Hub-Signature-256": sign(body), "X-GitHub-Delivery": "d-1" });
    expect(replay).toMatchObject({ status: 202, json: { id: first.json["id"], deduplicated: true } });
    // Without a delivery id the body's hash is the id: the same body again is the same delivery.
    const b2 = JSON.stringify({ action: "closed", repository: { name: "x" } });
    const a = await deliver(b2, { "X-Baton-Signature": sign(b2) });
    const b = await deliver(b2, { "X-Baton-Signature": sign(b2) });
    expect(a.status).toBe(202);
    expect(b.json).toMatchObject({ id: a.json["id"], deduplicated: true });
    expect((await store.list({ pipeline: "gh-triage" })).length).toBe(2);
  });

  it("refuses unsigned, wrongly signed, tampered, oversized and malformed deliveries, and unknown paths", async () => {
    const body = JSON.stringify({ action: "opened", repository: { name: "baton" } });
    const unsigned = await deliver(body);
    expect(unsigned.status).toBe(401);
    expect(unsigned.json["error"]).toMatch(/missing signature/);
    expect((await deliver(body, { "X-Hub-Signature-256": sign(body, "wrong") })).status).toBe(401);
    expect((await deliver(body.replace("opened", "merged"), { "X-Hub-Signature-256": sign(body) })).status).toBe(401);
    expect((await deliver(body, { "X-Hub-Signature-256": "sha1=abc" })).status).toBe(401);
    const big = JSON.stringify({ pad: "x".repeat(1024 * 1024 + 10) });
    expect((await deliver(big, { "X-Hub-Signature-256": sign(big) })).status).toBe(413);
    const bad = "{not json";
    expect((await deliver(bad, { "X-Hub-Signature-256": sign(bad) })).status).toBe(400);
    const noRepo = JSON.stringify({ action: "opened" }); // inputs miss the required repo
    const r = await deliver(noRepo, { "X-Hub-Signature-256": sign(noRepo) });
    expect(r.status).toBe(422);
    expect(r.json["error"]).toMatch(/repo/);
    expect((await deliver(body, { "X-Hub-Signature-256": sign(body) }, "hooks/nope")).status).toBe(404);
    expect((await deliver(body, { "X-Hub-Signature-256": sign(body) }, "hooks/../api/runs")).status).not.toBe(202);
    const get = await fetch(`${serving.url}hooks/gh`);
    expect(get.status).toBe(405);
    expect(await store.list({ pipeline: "gh-triage" })).toHaveLength(0);
  });

  it("answers 503 when the trigger's secret is not set on the server, and starts nothing", async () => {
    delete process.env["BATON_TEST_GH_SECRET"];
    const body = JSON.stringify({ repository: { name: "baton" } });
    const r = await deliver(body, { "X-Hub-Signature-256": sign(body) });
    expect(r.status).toBe(503);
    expect(r.json["error"]).toMatch(/BATON_TEST_GH_SECRET/);
    expect(await store.list({ pipeline: "gh-triage" })).toHaveLength(0);
  });
});

describe("baton serve: cron triggers", () => {
  it("starts the runs whose fires fell due, once each", async () => {
    clock.now = Date.parse("2026-06-01T10:05:01Z");
    const fired = await serving.tick();
    expect(fired.map((f) => f.fire)).toEqual(["2026-06-01T10:05:00.000Z"]);
    expect(await finished(fired[0]!.id)).toMatchObject({ status: "succeeded", output: "cron:none" });
    expect(await serving.tick()).toEqual([]);
    clock.now = Date.parse("2026-06-01T10:21:00Z"); // 10:10, 10:15, 10:20 missed: latest only
    expect((await serving.tick()).map((f) => f.fire)).toEqual(["2026-06-01T10:20:00.000Z"]);
    expect(await store.list({ pipeline: "gh-triage" })).toHaveLength(2);
  });
});

describe("baton serve: the API", () => {
  it("starts registered pipelines by name with an idempotency key, and refuses template paths", async () => {
    const post = (body: unknown): Promise<Response> => fetch(`${serving.url}api/runs`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const a = await post({ pipeline: "gh-triage", inputs: { repo: "api" }, idempotency_key: "k-1" });
    expect(a.status).toBe(201);
    const id = ((await a.json()) as { id: string }).id;
    const b = await post({ pipeline: "gh-triage", inputs: { repo: "api" }, idempotency_key: "k-1" });
    expect(b.status).toBe(200);
    expect(await b.json()).toMatchObject({ id, deduplicated: true });
    expect(await finished(id)).toMatchObject({ output: "api:none" });
    const t = await post({ template: join(dir, "triage.yaml") });
    expect(t.status).toBe(400);
    expect(((await t.json()) as { error: string }).error).toMatch(/baton deploy/);
    const etc = await post({ pipeline: "../../etc/passwd" });
    expect(etc.status).toBe(404);
    expect(await etc.text()).not.toMatch(/root:/);
  });

  it("needs a scoped token once one exists; foreign Origin and Host are refused", async () => {
    const { token } = await createToken(store, { name: "ci", scopes: ["run"] });
    await new Promise((r) => setTimeout(r, 1100)); // the token cache notices within a second
    const runs = `${serving.url}api/runs`;
    expect((await fetch(runs)).status).toBe(401);
    expect((await fetch(runs, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    const start = await fetch(runs, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: JSON.stringify({ pipeline: "gh-triage", inputs: { repo: "t" } }) });
    expect(start.status).toBe(201);
    const id = ((await start.json()) as { id: string }).id;
    const approve = await fetch(`${runs}/${id}/approve`, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: JSON.stringify({ stage: "label" }) });
    expect(approve.status).toBe(403);
    const foreign = await fetch(runs, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", Origin: "https://evil.example" }, body: "{}" });
    expect(foreign.status).toBe(403);
    const rebound = await new Promise<number>((res, rej) => {
      const req = request(`${serving.url}api/runs`, { headers: { Host: "evil.example" } }, (r) => {
        r.resume();
        res(r.statusCode ?? 0);
      });
      req.on("error", rej);
      req.end();
    });
    expect(rebound).toBe(403);
    // Webhooks stay reachable without a token: their signature is the auth.
    const body = JSON.stringify({ repository: { name: "w" } });
    expect((await deliver(body, { "X-Hub-Signature-256": sign(body) })).status).toBe(202);
  });

  it("answers every documented endpoint without a server error", async () => {
    const doc = (await (await fetch(`${serving.url}api/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const start = await fetch(`${serving.url}api/runs`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ pipeline: "gh-triage", inputs: { repo: "e" } }) });
    const id = ((await start.json()) as { id: string }).id;
    await finished(id);
    const fill = (p: string): string => p.replace("{id}", id).replace("{name}", "gh-triage").replace("{ref}", "0".repeat(64)).replace("{path}", "gh").replace(/^\//, "");
    const seen: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) {
        if (!["get", "post", "put", "delete"].includes(method)) continue;
        if (path.endsWith("/stream")) continue; // an event stream: followed in test/ui
        const r = await fetch(`${serving.url}${fill(path)}`, {
          method: method.toUpperCase(),
          ...(method === "get" ? {} : { headers: { "Content-Type": "application/json" }, body: "{}" }),
        });
        seen.push(`${method.toUpperCase()} ${path} ${r.status}`);
        expect(r.status, `${method.toUpperCase()} ${path}`).toBeLessThan(500);
        expect(r.headers.get("content-type") ?? "", `${method.toUpperCase()} ${path}`).toMatch(/json/);
      }
    }
    expect(seen.length).toBeGreaterThanOrEqual(12);
  });
});
