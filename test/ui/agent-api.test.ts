/**
 * The UI's API for agents that call tools (SPEC §8), over real HTTP against a real runtime and
 * the fake OpenAI server: answering one tool call waiting for approval (`"call"`), what a bad
 * or unknown call id gets back, and the events endpoint's `?type=` filter the client reads
 * waiting calls with.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import type { FakeOpenAI } from "../../src/testing/index.js";
import { FINAL, startPublishFake, writePublishTemplate } from "./agent-fixture.js";
import { APPROVE, req, setup, startFile, until, type Env } from "./helpers.js";

let env: Env;
let fake: FakeOpenAI;
let template: string;

beforeAll(async () => {
  fake = await startPublishFake();
  template = writePublishTemplate(fake.url);
  env = await setup();
});
afterAll(async () => {
  await env?.close();
  await fake?.close();
});

async function waitingRun(): Promise<string> {
  const h = await startFile(env.runtime, template);
  expect((await h.done).status).toBe("waiting");
  return h.id;
}

const approvals = async (id: string) => (await env.store.load(id)).events.filter((e): e is Extract<BatonEvent, { type: "approval" }> => e.type === "approval");

describe("answering tool calls waiting for approval", () => {
  it("approve with call answers that call only (the run still waits for the other); reject of the other lets the run finish", async () => {
    const id = await waitingRun();
    const sent = fake.requests.length;
    const waiting = (await env.store.load(id)).events.find((e) => e.type === "stage_waiting");
    expect(waiting).toMatchObject({ stage: "report", calls: [
      { id: "p1", tool: "publish", args: { title: "Tides" }, message: "Publish Tides?" },
      { id: "p2", tool: "publish", args: { title: "Moons" }, message: "Publish Moons?" },
    ] });

    const ok = await req(env.ui, `/api/runs/${id}/approve`, { method: "POST", body: { stage: "report", call: "p1", comment: "go", by: "ana" } });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ ok: true, recorded: 1 });
    expect(await approvals(id)).toEqual([expect.objectContaining({ stage: "report", visit: 1, approved: true, call: "p1", by: "ana", comment: "go" })]);
    await until(async () => {
      const { events } = await env.store.load(id);
      const at = events.findIndex((e) => e.type === "approval");
      return events.slice(at).some((e) => e.type === "run_waiting");
    }, 5000, "the run to wait again, for p2");
    expect((await env.store.get(id))?.status).toBe("waiting");
    expect(fake.requests.length).toBe(sent); // no turn was sent: the loop goes on once both are answered

    const no = await req(env.ui, `/api/runs/${id}/reject`, { method: "POST", body: { stage: "report", call: "p2", comment: "not that one" } });
    expect(no.status).toBe(200);
    await until(async () => (await env.store.get(id))?.status === "succeeded", 8000, "the run to finish once both calls are answered");
    expect((await approvals(id)).map((a) => [a.call, a.approved, a.by])).toEqual([["p1", true, "ana"], ["p2", false, "web ui"]]);
    const run = await req(env.ui, `/api/runs/${id}`);
    expect(run.json.run.output).toBe(FINAL);
    // The model got the approved call's result and the rejection's reason.
    const second = fake.requests.filter((r) => r.messages.at(-1)?.role === "tool").at(-1)!;
    const tool = new Map(second.messages.filter((m) => m.role === "tool").map((m) => [m.toolCallId, m.content]));
    expect(JSON.parse(tool.get("p1")!)).toEqual({ ok: true });
    expect(tool.get("p2")).toBe("the user declined this call: not that one");
  });

  it("'call' must be a non-empty string: 400, and nothing is recorded", async () => {
    const id = await waitingRun();
    for (const call of [5, "", null, ["p1"], { id: "p1" }]) {
      const r = await req(env.ui, `/api/runs/${id}/approve`, { method: "POST", body: { stage: "report", call } });
      expect(r.status, JSON.stringify(call)).toBe(400);
      expect(r.json.error).toMatch(/^'call' must be the id of a tool call waiting for approval, e\.g\. \{ "stage": "report", "call": "call_1" \}; got /);
    }
    expect((await req(env.ui, `/api/runs/${id}/reject`, { method: "POST", body: { stage: "report", call: 1 } })).status).toBe(400);
    expect(await approvals(id)).toEqual([]);
  });

  it("an unknown call id is a 409 naming the calls that wait; several waiting and no call id is a 400 listing them", async () => {
    const id = await waitingRun();
    const unknown = await req(env.ui, `/api/runs/${id}/approve`, { method: "POST", body: { stage: "report", call: "nope" } });
    expect(unknown.status).toBe(409);
    expect(unknown.json.error).toBe("stage 'report' has no tool call 'nope' waiting for approval (waiting: p1, p2)");
    const none = await req(env.ui, `/api/runs/${id}/approve`, { method: "POST", body: { stage: "report" } });
    expect(none.status).toBe(400);
    expect(none.json.error).toMatch(/^stage 'report' has 2 tool calls waiting for approval: .*p1 \(publish \{"title":"Tides"\}\), p2 \(publish \{"title":"Moons"\}\)/);
    expect(await approvals(id)).toEqual([]);
    expect((await env.store.get(id))?.status).toBe("waiting");

    // A call id on an approval stage (no tool calls wait there) is refused too.
    const h = await startFile(env.runtime, APPROVE);
    await h.done;
    const plain = await req(env.ui, `/api/runs/${h.id}/approve`, { method: "POST", body: { stage: "review", call: "p1" } });
    expect(plain.status).toBe(400);
    expect(plain.json.error).toBe("stage 'review' waits for an approval of the stage itself, not of a tool call: answer it without a call id");
    expect(await approvals(h.id)).toEqual([]);
  });

  it("GET /events?type= keeps the sequence numbers of the whole log; a bad type is a 400", async () => {
    const id = await waitingRun();
    const all = (await req(env.ui, `/api/runs/${id}/events`)).json as { seq: number; type: string }[];
    const some = await req(env.ui, `/api/runs/${id}/events?type=stage_waiting,run_started`);
    expect(some.status).toBe(200);
    expect(some.json.map((e: { seq: number; type: string }) => [e.seq, e.type])).toEqual(all.filter((e) => e.type === "stage_waiting" || e.type === "run_started").map((e) => [e.seq, e.type]));
    const after = all.find((e) => e.type === "stage_waiting")!.seq;
    expect((await req(env.ui, `/api/runs/${id}/events?after=${after}&type=stage_waiting`)).json).toEqual([]);
    const bad = await req(env.ui, `/api/runs/${id}/events?type=Stage-Waiting`);
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/^type must be a comma-separated list of event types/);
  });
});
