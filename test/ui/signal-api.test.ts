/** POST /api/runs/ID/signals/NAME over real HTTP against a real runtime and SQLite store. */
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { req, setup, startFile, until, type Env } from "./helpers.js";

const SIGNAL = resolve("test/fixtures/cli/signal.yaml");

describe("POST /api/runs/:id/signals/:name", () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup();
  });
  afterAll(() => env.close());

  it("hands the signal's data to the waiting stage; an unknown name or a bad name is a 400, a finished run a 409", async () => {
    const h = await startFile(env.runtime, SIGNAL);
    expect((await h.done).status).toBe("waiting");
    const unknown = await req(env.ui, `/api/runs/${h.id}/signals/nope`, { method: "POST", body: {} });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error).toContain("has no wait: stage for signal 'nope' (its signals: review_done)");
    expect((await req(env.ui, `/api/runs/${h.id}/signals/9x`, { method: "POST", body: {} })).status).toBe(400);
    const ok = await req(env.ui, `/api/runs/${h.id}/signals/review_done`, { method: "POST", body: { data: { ok: true }, by: "ci" } });
    expect(ok).toMatchObject({ status: 200, json: { ok: true } });
    await until(async () => (await env.store.get(h.id))?.status === "succeeded", 8000, "the run to finish");
    const { events } = await env.store.load(h.id);
    expect(events.find((e) => e.type === "signal")).toMatchObject({ name: "review_done", data: { ok: true }, by: "ci" });
    expect(events.find((e) => e.type === "run_finished")).toMatchObject({ status: "succeeded", output: { review: { ok: true } } });
    const late = await req(env.ui, `/api/runs/${h.id}/signals/review_done`, { method: "POST", body: {} });
    expect(late.status).toBe(409);
    expect(late.json.error).toContain("already succeeded");
  });
});
