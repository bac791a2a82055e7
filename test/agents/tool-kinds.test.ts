/**
 * Tool kinds beyond run:/value: (SPEC §8): an http: tool calling a service (its errors classified
 * and retried like an http: stage's), a pipeline: tool running a sub-pipeline as a child run per
 * call; cached input tokens priced at the cache price; the context window checked on every turn.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { execute } from "../../src/index.js";
import { compileSource } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI, type FakeRequest } from "../../src/testing/index.js";
import type { Pipeline } from "../../src/api/pipeline.js";
import { MemoryStore } from "../../src/store/memory.js";

let fake: FakeOpenAI;
let svc: Server;
let svcUrl: string;
const hits: { body: unknown; headers: Record<string, unknown> }[] = [];
let failNext = 0;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  process.env.OPENAI_API_KEY = "sk-test";
  svc = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      hits.push({ body: body ? JSON.parse(body) : undefined, headers: req.headers });
      if (failNext > 0) {
        failNext--;
        res.writeHead(503, { "content-type": "application/json" }).end('{"error":"busy"}');
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: 7, title: (JSON.parse(body || "{}") as { title?: string }).title }));
    });
  });
  await new Promise<void>((r) => svc.listen(0, "127.0.0.1", r));
  svcUrl = `http://127.0.0.1:${(svc.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await fake.close();
  await new Promise((r) => svc.close(r));
});
beforeEach(() => {
  fake.reset();
  hits.length = 0;
  failNext = 0;
});

const lastRole = (r: FakeRequest): string | undefined => r.messages.at(-1)?.role;
const toolResults = (r: FakeRequest) => new Map(r.messages.filter((m) => m.role === "tool").map((m) => [m.toolCallId, m.content]));

function pipeline(body: string): Pipeline<Record<string, unknown>, unknown> {
  const plan = compileSource(`baton: 1
name: tool-kinds
${body}`, { format: "yaml", baseDir: resolve("test/fixtures/pipeline") });
  return { name: plan.name, plan, parseInputs: (r) => r as Record<string, unknown> };
}

describe("tool kinds", () => {
  it("http: the call's args build the request; a 503 is retried per the tool's retry; the JSON response is the output", async () => {
    failNext = 1;
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "h1", name: "publish", arguments: { title: "Tides" } }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "published" } });
    const r = await execute(pipeline(`
tools:
  publish:
    description: Publish.
    input: { type: object, required: [title], properties: { title: { type: string } } }
    http: { url: "${svcUrl}/publish", method: POST, headers: { X-Tenant: "{{ inputs.tenant }}" }, body: { title: "{{ args.title }}", by: baton } }
    retry: { attempts: 2, delay: 1ms }
inputs: { tenant: { type: string, default: acme } }
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", tools: [publish] }
stages:
  go: { agent: bot, prompt: "Publish" }
output: go
`), { tenant: "acme" }, { store: new MemoryStore() });
    expect(r).toMatchObject({ status: "succeeded", output: "published" });
    expect(hits).toHaveLength(2);
    expect(hits[1]!.body).toEqual({ title: "Tides", by: "baton" });
    expect(hits[1]!.headers["x-tenant"]).toBe("acme");
    expect(JSON.parse(toolResults(fake.requests[1]!).get("h1")!)).toEqual({ id: 7, title: "Tides" });
  });

  it("pipeline: each call runs the sub-pipeline as its own child run; its output goes back to the model", async () => {
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "p1", name: "child", arguments: { n: 2 } }, { id: "p2", name: "child", arguments: { n: 5 } }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "children done" } });
    const store = new MemoryStore();
    const r = await execute(pipeline(`
tools:
  child:
    description: Run the child pipeline.
    input: { type: object, required: [n], properties: { n: { type: integer } } }
    pipeline: ./child.yaml
    inputs: { n: "{{ args.n }}", ms: 1 }
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", tools: [child] }
stages:
  go: { agent: bot, prompt: "Use the child" }
output: go
`), {}, { store });
    expect(r).toMatchObject({ status: "succeeded", output: "children done" });
    const res = toolResults(fake.requests[1]!);
    expect(JSON.parse(res.get("p1")!)).toEqual({ doubled: 4, slow: 5 });
    expect(JSON.parse(res.get("p2")!)).toEqual({ doubled: 10, slow: 11 });
    const runs = await store.list();
    const children = runs.filter((x) => x.id.startsWith(`${r.id}~`));
    expect(children).toHaveLength(2);
    expect(children.every((c) => c.status === "succeeded")).toBe(true);
  });

  it("cached input tokens are priced at the cache price; the turn records them", async () => {
    fake.addRule({ reply: { content: "hi", usage: { prompt_tokens: 1000, completion_tokens: 10, cached_tokens: 800 } } });
    const log: BatonEvent[] = [];
    await execute(pipeline(`
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}" }
stages:
  go: { agent: bot, prompt: "Hi" }
`), {}, { store: new MemoryStore(), onEvents: (_id, es) => log.push(...es) });
    const turn = log.find((e) => e.type === "step_recorded") as Extract<BatonEvent, { type: "step_recorded" }>;
    expect(turn.tokens).toEqual({ input: 1000, output: 10, cached: 800 });
    // gpt-4o-mini: $0.15 / Mtok input, $0.075 / Mtok cached input, $0.60 / Mtok output
    expect(turn.cost_usd).toBeCloseTo((200 * 0.15 + 800 * 0.075 + 10 * 0.6) / 1e6, 12);
  });

  it("the context window is checked on every turn: a tool result that overflows it fails the next turn before the call", async () => {
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "big", name: "big", arguments: {} }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "never" } });
    const r = await execute(pipeline(`
tools:
  big:
    description: Returns a lot.
    input: { type: object, properties: {} }
    value: "$join([1..3000].$string($), ' lorem ipsum dolor sit amet ')"
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 100, tools: [big] }
stages:
  go: { agent: bot, prompt: "Go" }
`), {}, { store: new MemoryStore(), config: { models: { "gpt-4o-mini": { context_window: 2000 } } } });
    expect(r.status).toBe("failed");
    expect(r.error?.message).toMatch(/stage 'go' \(openai:gpt-4o-mini\): the prompt of turn 2 is [\d,]+ tokens and max_tokens is 100, which exceeds the model's 2,000-token context window/);
    expect(fake.requests).toHaveLength(1);
  });

  it("a tool's timeout bounds each call attempt (the model gets the timeout as an error result); on_error: fail fails the stage's attempt instead", async () => {
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "s1", name: "sleepy", arguments: {} }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "coped with the timeout" } });
    const slow = `
  sleepy:
    description: Never answers in time.
    input: { type: object, properties: {} }
    run: ../tools/tools.mjs#slow
    timeout: 50ms
    retry: { attempts: 2, delay: 1ms }`;
    const r = await execute(pipeline(`
tools:${slow}
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", tools: [sleepy] }
stages:
  go: { agent: bot, prompt: "Go" }
output: go
`), {}, { store: new MemoryStore() });
    expect(r).toMatchObject({ status: "succeeded", output: "coped with the timeout" });
    expect(toolResults(fake.requests[1]!).get("s1")).toMatch(/tool 'sleepy' call s1 attempt 2 timed out after 50 ms/);

    fake.reset();
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "s2", name: "sleepy", arguments: {} }] } });
    const log: BatonEvent[] = [];
    const f = await execute(pipeline(`
tools:${slow}
    on_error: fail
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", tools: [sleepy] }
stages:
  go: { agent: bot, prompt: "Go", retry: { attempts: 2, delay: 1ms } }
`), {}, { store: new MemoryStore(), onEvents: (_id, es) => log.push(...es) });
    expect(f.status).toBe("failed");
    expect(f.error?.message).toMatch(/stage 'go' \(openai:gpt-4o-mini\): tool 'sleepy' failed: tool 'sleepy' call s2 attempt 2 timed out after 50 ms/);
    const failures = log.filter((e) => e.type === "stage_failed") as Extract<BatonEvent, { type: "stage_failed" }>[];
    expect(failures.map((x) => x.error.kind)).toEqual(["tool", "tool"]); // the stage retried, the call ran again
    // The failed call was not recorded, so the retry ran it again; the turn was recorded and reused.
    expect(log.filter((e) => e.type === "step_recorded").map((e) => (e as { name: string }).name)).toEqual(["turn:1"]);
    expect(fake.requests).toHaveLength(1);
  });
});
