/** The UI's JSON API over real HTTP against a real SQLite store (README-api.md). */
import { request } from "node:http";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerUi } from "../../src/cli/commands/ui.js";
import { UserError } from "../../src/runtime/errors.js";
import { buildTrace } from "../../src/trace/index.js";
import { startUi } from "../../src/ui/server.js";
import { APPROVE, EXAMPLE, readSse, req, setup, SLOW, startFile, until, type Env } from "./helpers.js";

/** A raw request, for headers fetch will not let us set (Host, Origin). */
function raw(url: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolveP, reject) => {
    const r = request(url, { method: o.method ?? "GET", headers: o.headers ?? {} }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolveP({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    r.on("error", reject);
    r.end(o.body);
  });
}

describe("reading runs", () => {
  let env: Env;
  let exampleId: string;
  let failedId: string;

  beforeAll(async () => {
    env = await setup();
    const a = await startFile(env.runtime, EXAMPLE, { topic: "tides" });
    expect((await a.done).status).toBe("succeeded");
    exampleId = a.id;
    const b = await startFile(env.runtime, APPROVE);
    failedId = b.id;
    await b.done; // waiting
    await new Promise((r) => setTimeout(r, 5)); // distinct start times
  });
  afterAll(() => env.close());

  it("GET /api/runs: newest first, with tokens, cost and duration from the trace; filters and limit", async () => {
    const r = await req(env.ui, "/api/runs");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^application\/json/);
    expect(r.json.map((x: { id: string }) => x.id)).toEqual([failedId, exampleId]);
    const ex = r.json[1];
    expect(Object.keys(ex).sort()).toEqual(["cost_usd", "duration_ms", "ended_at", "id", "parent_id", "pipeline", "started_at", "status", "tokens"]);
    expect(ex).toMatchObject({ id: exampleId, pipeline: "research-report", status: "succeeded", tokens: { input: 0, output: 0 }, cost_usd: 0, parent_id: null });
    expect(ex.duration_ms).toBe(Date.parse(ex.ended_at) - Date.parse(ex.started_at));
    expect(r.json[0]).toMatchObject({ status: "waiting", ended_at: null, duration_ms: null });

    expect((await req(env.ui, "/api/runs?status=succeeded")).json.map((x: { id: string }) => x.id)).toEqual([exampleId]);
    expect((await req(env.ui, "/api/runs?pipeline=approve-cli")).json.map((x: { id: string }) => x.id)).toEqual([failedId]);
    expect((await req(env.ui, "/api/runs?limit=1")).json).toHaveLength(1);
    const bad = await req(env.ui, "/api/runs?status=done");
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/^status must be one of running, waiting, succeeded, failed, cancelled, got 'done'$/);
    expect((await req(env.ui, "/api/runs?limit=0")).status).toBe(400);
  });

  it("GET /api/runs/:id: the run, its plan (deps, levels, for_each, routes) and its trace; id prefixes work", async () => {
    const r = await req(env.ui, `/api/runs/${exampleId.slice(0, 10)}`);
    expect(r.status).toBe(200);
    expect(Object.keys(r.json).sort()).toEqual(["plan", "run", "seq", "trace"]);
    expect(r.json.run).toEqual(r.json.trace.run);
    const stages = r.json.plan.stages;
    expect(stages.map((s: { id: string }) => s.id)).toEqual(["research", "analyze", "fact_check", "draft", "verify"]);
    expect(stages.find((s: { id: string }) => s.id === "draft")).toMatchObject({ kind: "run", deps: ["analyze", "fact_check"], level: 2, routes: [] });
    expect(stages.find((s: { id: string }) => s.id === "fact_check")).toMatchObject({ for_each: true, level: 1 });
    expect(stages.find((s: { id: string }) => s.id === "verify").routes).toEqual([{ when: "$count(fact_check[verified = false]) / $count(fact_check) > 0.2", goto: "research", max: 2 }]);
    expect(r.json.plan.output).toContain("draft.text");
    const { events } = await env.store.load(exampleId);
    expect(r.json.seq).toBe(events.length);
    expect(r.json.trace.assembly.read.sort()).toEqual(["draft", "verify"]);
  });

  it("GET /api/runs/:id/trace is the SPEC §5 trace; /events?after=N the events after N with their seq", async () => {
    const { events } = await env.store.load(exampleId);
    const t = await req(env.ui, `/api/runs/${exampleId}/trace`);
    expect(t.status).toBe(200);
    expect(Object.keys(t.json).sort()).toEqual(["assembly", "decisions", "errors", "run", "stages"]);
    expect(t.json.stages).toEqual(JSON.parse(JSON.stringify(buildTrace(events).stages)));
    expect(t.json.assembly.expression).toContain("draft.text");

    const all = await req(env.ui, `/api/runs/${exampleId}/events`);
    expect(all.json).toHaveLength(events.length);
    expect(all.json[0]).toMatchObject({ seq: 1, type: "run_started" });
    const tail = await req(env.ui, `/api/runs/${exampleId}/events?after=${events.length - 2}`);
    expect(tail.json.map((e: { seq: number; type: string }) => [e.seq, e.type])).toEqual([[events.length - 1, events[events.length - 2]!.type], [events.length, "run_finished"]]);
    expect((await req(env.ui, `/api/runs/${exampleId}/events?after=-1`)).status).toBe(400);
  });

  it("unknown runs are 404, unknown routes 404, wrong methods 405, all with { error }", async () => {
    for (const path of ["/api/runs/nope-nope-nope", "/api/runs/nope-nope-nope/trace", "/api/runs/nope-nope-nope/events", "/api/runs/nope-nope-nope/stream"]) {
      const r = await req(env.ui, path);
      expect(r.status, path).toBe(404);
      expect(r.json.error).toBe("no run nope-nope-nope in this store");
    }
    const none = await req(env.ui, "/api/nothing");
    expect(none.status).toBe(404);
    expect(none.json.error).toMatch(/^no API route GET \/api\/nothing/);
    const wrong = await req(env.ui, `/api/runs/${exampleId}/approve`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("POST");
    expect((await req(env.ui, "/api/runs/nope-nope-nope/cancel", { method: "POST", body: {} })).status).toBe(404);
  });

  it("serves the page with security headers; refuses foreign Host headers and cross-origin writes", async () => {
    const page = await raw(env.ui.url);
    expect([200, 503]).toContain(page.status); // 503: the web app is not built yet
    expect(page.headers["content-security-policy"]).toMatch(/default-src 'self'/);
    expect(page.headers["x-content-type-options"]).toBe("nosniff");
    expect((await raw(new URL("/api/runs", env.ui.url).href)).headers["content-security-policy"]).toMatch(/default-src 'self'/);

    const rebound = await raw(new URL("/api/runs", env.ui.url).href, { headers: { Host: "evil.example:4500" } });
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body).error).toMatch(/host 'evil.example' are refused/);
    const csrf = await raw(new URL("/api/runs", env.ui.url).href, { method: "POST", headers: { Origin: "http://evil.example", "Content-Type": "application/json" }, body: JSON.stringify({ template: SLOW }) });
    expect(csrf.status).toBe(403);
    const form = await raw(new URL("/api/runs", env.ui.url).href, { method: "POST", headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ template: SLOW }) });
    expect(form.status).toBe(415);
  });
});

describe("following a run: server-sent events", () => {
  let env: Env;
  beforeAll(async () => (env = await setup()));
  afterAll(() => env.close());

  it("streams each new event of a live run as data: {json} with increasing ids, then an end event", async () => {
    const started = await req(env.ui, "/api/runs", { method: "POST", body: { template: SLOW } });
    expect(started.status).toBe(201);
    const id = started.json.id as string;
    const seen: string[] = [];
    const sse = await readSse(new URL(`/api/runs/${id}/stream`, env.ui.url).href, { onEvent: (e) => seen.push(e.event === "message" ? e.data.type : `end:${e.data.status}`) });
    expect(sse.status).toBe(200);
    expect(sse.contentType).toMatch(/^text\/event-stream/);
    expect(seen[0]).toBe("run_started");
    expect(seen).toContain("stage_started");
    expect(seen.slice(-2)).toEqual(["run_finished", "end:succeeded"]);
    const ids = sse.events.filter((e) => e.event === "message").map((e) => Number(e.id));
    expect(ids).toEqual(ids.map((_, i) => i + 1));
    // The stream followed the run while it went: stage_succeeded of 'wait' came ~1.5 s after it started.
    const { events } = await env.store.load(id);
    expect(ids).toHaveLength(events.length);
  });

  it("a stream opened after the run finished sends what is left and ends; ?after skips what the client has", async () => {
    const h = await startFile(env.runtime, APPROVE);
    await h.done;
    await req(env.ui, `/api/runs/${h.id}/approve`, { method: "POST", body: { stage: "review" } });
    await until(async () => (await env.store.get(h.id))?.status === "succeeded", 5000, "the run to succeed");
    const { events } = await env.store.load(h.id);
    const sse = await readSse(new URL(`/api/runs/${h.id}/stream?after=${events.length - 1}`, env.ui.url).href);
    expect(sse.events.map((e) => e.event)).toEqual(["message", "end"]);
    expect(sse.events[0]).toMatchObject({ id: String(events.length), data: { type: "run_finished", status: "succeeded" } });
    // A reconnecting EventSource reuses its first URL and says where it got to in Last-Event-ID.
    const resumed = await readSse(new URL(`/api/runs/${h.id}/stream?after=0`, env.ui.url).href, { headers: { "Last-Event-ID": String(events.length - 2) } });
    expect(resumed.events.map((e) => e.id ?? e.event)).toEqual([String(events.length - 1), String(events.length), "end"]);
  });
});

describe("starting, answering and cancelling runs", () => {
  let env: Env;
  beforeAll(async () => (env = await setup()));
  afterAll(() => env.close());

  it("POST /api/runs starts a run in this process; bad templates, inputs and bodies are 400 with one line", async () => {
    const ok = await req(env.ui, "/api/runs", { method: "POST", body: { template: EXAMPLE, inputs: { topic: "moons", depth: "3" } } });
    expect(ok.status).toBe(201);
    expect(ok.json).toEqual({ id: expect.any(String) });
    await until(async () => (await env.store.get(ok.json.id))?.status === "succeeded", 8000, "the started run to succeed");
    const detail = await req(env.ui, `/api/runs/${ok.json.id}`);
    expect(detail.json.run).toMatchObject({ inputs: { topic: "moons", depth: 3 }, output: { topic: "moons", score: 1 } });

    const missing = await req(env.ui, "/api/runs", { method: "POST", body: { template: "test/fixtures/nope.yaml" } });
    expect(missing.status).toBe(400);
    expect(missing.json.error).toBe("test/fixtures/nope.yaml:1:1: cannot read the template: no such file");
    const cycles = await req(env.ui, "/api/runs", { method: "POST", body: { template: "test/fixtures/templates/cycles.yaml" } });
    expect(cycles.status).toBe(400);
    expect(cycles.json.error).not.toContain("\n");
    expect(cycles.json.error).toMatch(/^test\/fixtures\/templates\/cycles\.yaml:\d+:\d+: /);
    const inputs = await req(env.ui, "/api/runs", { method: "POST", body: { template: EXAMPLE, inputs: { topik: "x" } } });
    expect(inputs.status).toBe(400);
    expect(inputs.json.error).toMatch(/^unknown input 'topik'/);
    expect((await req(env.ui, "/api/runs", { method: "POST", body: { inputs: {} } })).json.error).toMatch(/^'template' must be the path of a template file/);
    const notJson = await req(env.ui, "/api/runs", { method: "POST", body: "{ template: ", headers: { "Content-Type": "application/json" } });
    expect(notJson.status).toBe(400);
    expect(notJson.json.error).toMatch(/^request body is not valid JSON/);
    expect((await req(env.ui, "/api/runs", { method: "POST", body: [1, 2] })).status).toBe(400);
  });

  it("POST /approve answers a waiting stage with data; the run finishes with it; answering a stage that does not wait is 409", async () => {
    const h = await startFile(env.runtime, APPROVE);
    expect((await h.done).status).toBe("waiting");
    const early = await req(env.ui, `/api/runs/${h.id}/approve`, { method: "POST", body: { stage: "draft" } });
    expect(early.status).toBe(409);
    expect(early.json.error).toBe("stage 'draft' is not waiting for a decision (waiting: review)");
    expect((await req(env.ui, `/api/runs/${h.id}/approve`, { method: "POST", body: {} })).status).toBe(400);
    expect((await req(env.ui, `/api/runs/${h.id}/approve`, { method: "POST", body: { stage: "review", item: -1 } })).status).toBe(400);

    const ok = await req(env.ui, `/api/runs/${h.id}/approve`, { method: "POST", body: { stage: "review", data: { ok: true, note: "ship it" }, comment: "looks good" } });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ ok: true, recorded: 1 });
    await until(async () => (await env.store.get(h.id))?.status === "succeeded", 5000, "the approved run to succeed");
    const t = (await req(env.ui, `/api/runs/${h.id}/trace`)).json;
    expect(t.run.output).toEqual({ text: "v1", review: { ok: true, note: "ship it" } });
    expect(t.decisions.find((d: { kind: string }) => d.kind === "approval")).toMatchObject({ stage: "review", taken: true, by: "web ui", comment: "looks good" });
    expect((await req(env.ui, `/api/runs/${h.id}/approve`, { method: "POST", body: { stage: "review" } })).status).toBe(409);
  });

  it("POST /reject fails the waiting stage and the run", async () => {
    const h = await startFile(env.runtime, APPROVE);
    await h.done;
    expect((await req(env.ui, `/api/runs/${h.id}/reject`, { method: "POST", body: { stage: "review", data: 1 } })).status).toBe(400);
    const r = await req(env.ui, `/api/runs/${h.id}/reject`, { method: "POST", body: { stage: "review", comment: "not yet" } });
    expect(r.json).toMatchObject({ ok: true });
    await until(async () => (await env.store.get(h.id))?.status === "failed", 5000, "the rejected run to fail");
  });

  it("POST /cancel cancels a live run (it stays resumable); cancelling a finished run is 409", async () => {
    const started = await req(env.ui, "/api/runs", { method: "POST", body: { template: SLOW } });
    const id = started.json.id as string;
    await until(async () => (await env.store.load(id)).events.some((e) => e.type === "stage_started"), 5000, "a stage to start");
    const c = await req(env.ui, `/api/runs/${id}/cancel`, { method: "POST" });
    expect(c.status).toBe(200);
    expect(c.json).toEqual({ ok: true });
    await until(async () => (await env.store.get(id))?.status === "cancelled", 5000, "the run to be cancelled");
    const again = await req(env.ui, `/api/runs/${id}/cancel`, { method: "POST" });
    expect(again.status).toBe(409);
    expect(again.json.error).toBe(`run ${id} has already finished (cancelled)`);
  });

  it("a server without a runtime is read-only: writes answer 501", async () => {
    const ro = await setup({ runtime: false });
    try {
      const r = await req(ro.ui, "/api/runs", { method: "POST", body: { template: SLOW } });
      expect(r.status).toBe(501);
      expect(r.json.error).toMatch(/read-only/);
      expect((await req(ro.ui, "/api/runs")).status).toBe(200);
    } finally {
      await ro.close();
    }
  });
});

describe("tokens and bind addresses", () => {
  it("with a token every /api route needs 'Authorization: Bearer T' (the stream also ?token=T); the page does not", async () => {
    const env = await setup({ token: "s3cret-token" });
    try {
      const none = await req(env.ui, "/api/runs");
      expect(none.status).toBe(401);
      expect(none.json.error).toMatch(/requires a token/);
      expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect((await req(env.ui, "/api/runs", { token: "wrong" })).status).toBe(401);
      expect((await req(env.ui, "/api/runs?token=s3cret-token")).status).toBe(401);
      expect((await req(env.ui, "/api/runs", { token: "s3cret-token" })).status).toBe(200);
      expect((await req(env.ui, "/api/runs", { method: "POST", body: { template: SLOW } })).status).toBe(401);

      const h = await startFile(env.runtime, APPROVE);
      await h.done;
      const denied = await readSse(new URL(`/api/runs/${h.id}/stream`, env.ui.url).href, { timeoutMs: 2000 });
      expect(denied.status).toBe(401);
      const events: string[] = [];
      const ctl = readSse(new URL(`/api/runs/${h.id}/stream?token=s3cret-token`, env.ui.url).href, { timeoutMs: 1500, onEvent: (e) => events.push(e.data.type) }).catch(() => undefined);
      await until(() => events.includes("run_waiting"), 3000, "the stream's events");
      await ctl;
      expect([200, 503]).toContain((await req(env.ui, "/")).status);
    } finally {
      await env.close();
    }
  });

  it("refuses to bind a non-loopback host without a token, in startUi and in `baton ui`", async () => {
    const dir = await setup();
    try {
      await expect(startUi({ store: dir.store, host: "0.0.0.0", port: 0 })).rejects.toThrow(
        "binding 0.0.0.0 would expose runs to the network without a password: set a token with --token TOKEN (or BATON_UI_TOKEN), or keep the default --host 127.0.0.1",
      );
      const open = await startUi({ store: dir.store, host: "0.0.0.0", port: 0, token: "t0ken" });
      try {
        expect(open.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+\/$/);
        const r = await fetch(`http://127.0.0.1:${open.port}/api/runs`, { headers: { Authorization: "Bearer t0ken" } });
        expect(r.status).toBe(200);
        // With a token, any Host may be used (the server is meant to be reached from elsewhere).
        expect((await raw(`http://127.0.0.1:${open.port}/api/runs`, { headers: { Host: "baton.internal", Authorization: "Bearer t0ken" } })).status).toBe(200);
      } finally {
        await open.close();
      }

      const saved = process.env["BATON_UI_TOKEN"];
      const savedXdg = process.env["XDG_CONFIG_HOME"];
      delete process.env["BATON_UI_TOKEN"];
      process.env["XDG_CONFIG_HOME"] = `${dir.dir}/config`; // the per-user UI token goes there, not into the real home
      try {
        const program = new Command().exitOverride();
        registerUi(program, () => ({ db: `${dir.dir}/cli.db` }));
        const err = await program.parseAsync(["ui", "--host", "0.0.0.0", "--port", "0"], { from: "user" }).then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(UserError);
        expect((err as UserError).message).toMatch(/^binding 0\.0\.0\.0 would expose runs to the network/);
        const port = await program.parseAsync(["ui", "--port", "http"], { from: "user" }).then(() => undefined, (e: unknown) => e);
        expect(port).toMatchObject({ message: "--port must be a port number from 0 to 65535, got 'http'", exitCode: 2 });
      } finally {
        if (saved !== undefined) process.env["BATON_UI_TOKEN"] = saved;
        if (savedXdg !== undefined) process.env["XDG_CONFIG_HOME"] = savedXdg;
        else delete process.env["XDG_CONFIG_HOME"];
      }
    } finally {
      await dir.close();
    }
  });

  it("a port in use is a clear error", async () => {
    const a = await setup();
    try {
      await expect(startUi({ store: a.store, port: a.ui.port, auth: "none" })).rejects.toThrow(`port ${a.ui.port} on 127.0.0.1 is in use: pick another with --port`);
    } finally {
      await a.close();
    }
  });
});

describe("POST /api/runs reads only templates under the UI's directory", () => {
  it("refuses paths outside it, devices, non-template files and huge files — without quoting their content", async () => {
    const { confinedTemplate } = await import("../../src/ui/api.js");
    const { mkdtempSync, writeFileSync, symlinkSync, mkdirSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const root = mkdtempSync(join(tmpdir(), "baton-confine-"));
    mkdirSync(join(root, "t"));
    writeFileSync(join(root, "t", "ok.yaml"), "baton: 1\n");
    writeFileSync(join(root, "big.yaml"), "x".repeat(1024 * 1024 + 1));
    writeFileSync(join(root, "notes.txt"), "secret");
    symlinkSync("/etc/passwd", join(root, "link.yaml"));
    // The checked file, not the path as given: read relative to the working directory it would be another file.
    expect(confinedTemplate("t/ok.yaml", root)).toBe(join(root, "t", "ok.yaml"));
    const refused = (p: string): string => {
      try {
        confinedTemplate(p, root);
      } catch (err) {
        return (err as Error).message;
      }
      return "accepted";
    };
    expect(refused("/etc/passwd")).toMatch(/is outside .*: the API only reads templates under the directory baton ui runs in/);
    expect(refused("../../../../proc/self/environ")).toMatch(/is outside/);
    expect(refused("/dev/zero")).toMatch(/is outside/);
    expect(refused("link.yaml")).toMatch(/is outside/); // a symlink out of the directory
    expect(refused("notes.txt")).toMatch(/is not a \.yaml, \.yml or \.json file/);
    expect(refused("big.yaml")).toMatch(/templates are at most 1048576 bytes/);
    expect(refused("../elsewhere/missing.yaml")).toMatch(/is outside/);
    for (const p of ["/etc/passwd", "link.yaml", "notes.txt"]) expect(refused(p)).not.toMatch(/root:|secret/);
  });
});
