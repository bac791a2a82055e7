/**
 * OpenTelemetry spans of agent loops (SPEC §8–9): a `chat <model>` span per recorded model turn
 * and an `execute_tool <tool>` span per recorded tool call under the attempt that recorded them,
 * with GenAI semantic-convention attributes; message content only when opted in; run totals
 * that count each turn once. Spans are collected with the SDK's in-memory exporter.
 */
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import type { BatonEvent } from "../../src/engine/events.js";
import { fold } from "../../src/engine/state.js";
import { MemoryStore, Runtime, type Plan } from "../../src/index.js";
import { resolveConfig } from "../../src/telemetry/config.js";
import { createTelemetry, type TelemetryOptions } from "../../src/telemetry/index.js";
import { compileSource } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI, type FakeRequest } from "../../src/testing/index.js";
import { LogBuilder, T0 } from "../trace/logs.js";

const OK = 1;
const ERROR = 2;
const UNSET = 0;
const INTERNAL = 0;
const CLIENT = 2;

const plan: Plan = compileSource(`
baton: 1
name: demo
agents:
  bot: { model: "openai:gpt-4o-mini" }
  helper: { model: "anthropic:claude-3-5-haiku" }
stages:
  research: { agent: bot, prompt: "Research tides" }
  handler: { run: ./x.mjs#h, needs: [research] }
`, { format: "yaml", baseDir: process.cwd() });

const R = { stage: "research" };
const H = { stage: "handler" };
const MSG1 = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Research tides with key [redacted]" },
];
const MSG2 = [
  ...MSG1,
  { role: "assistant", content: [{ type: "tool-call", toolCallId: "c1", toolName: "search", input: { query: "tides" } }, { type: "tool-call", toolCallId: "c2", toolName: "lookup", input: { id: 7 } }] },
  { role: "tool", content: [
    { type: "tool-result", toolCallId: "c1", toolName: "search", output: { type: "json", value: { hits: 2 } } },
    { type: "tool-result", toolCallId: "c2", toolName: "lookup", output: { type: "error-text", value: "the index is offline" } },
  ] },
];

/** An agent stage with two turns (two calls, one failing), then a handler whose ctx.agent loop and ctx.step are recorded. */
function log(): BatonEvent[] {
  return new LogBuilder({ runId: "r-steps", pipeline: "demo", planHash: plan.hash })
    .at(0).started(R)
    .at(100).turn(R, 1, "turn:1", 10, {
      n: 1, calls: [{ id: "c1", tool: "search", args: { query: "tides" } }, { id: "c2", tool: "lookup", args: { id: 7 } }],
      tokens: { input: 100, output: 20, cached: 64 }, cost_usd: 0.001, messages: MSG1,
    })
    .at(150).call(R, 1, "call:c1", 110, { status: "succeeded", output: { hits: 2 } })
    .at(160).call(R, 1, "call:c2", 110, { status: "failed", error: { kind: "tool", message: "the index is offline", retryable: true }, attempts: 2 })
    .at(300).turn(R, 1, "turn:2", 170, { n: 2, text: "Tides follow the moon.", tokens: { input: 200, output: 30 }, cost_usd: 0.002, messages: MSG2 })
    // A reply cut at max_tokens before the turns would not be recorded: its usage is the outcome's only.
    .succeeded(R, 1, "Tides follow the moon.", {
      model: "openai:gpt-4o-mini", tokens: { input: 350, output: 60 }, cost_usd: 0.0035, recorded_tokens: { input: 300, output: 50 }, recorded_cost_usd: 0.003,
    })
    .at(400).started(H)
    .at(420).step(H, 1, "fetch", "step", 405, { page: "…" })
    .at(500).turn(H, 1, "agent:helper:1/turn:1", 430, { n: 1, model: "anthropic:claude-3-5-haiku", calls: [{ id: "d1", tool: "double", args: { x: 5 } }], tokens: { input: 10, output: 5 } })
    .at(520).call(H, 1, "agent:helper:1/call:d1", 500, { status: "declined", error: { kind: "tool", message: "the user declined this call" }, attempts: 0 })
    .at(560).turn(H, 1, "agent:helper:1/turn:2", 520, { n: 2, model: "anthropic:claude-3-5-haiku", text: "ten", tokens: { input: 20, output: 2 } })
    .at(600).succeeded(H, 1, { answer: "ten" }, { model: "anthropic:claude-3-5-haiku", tokens: { input: 30, output: 7 }, recorded_tokens: { input: 30, output: 7 } })
    .at(700).finished("succeeded", { output: { answer: "ten" }, read: ["handler"] })
    .events;
}

async function spansOf(events: readonly BatonEvent[], opts: Omit<TelemetryOptions, "exporter"> = {}): Promise<ReadableSpan[]> {
  const exporter = new InMemorySpanExporter();
  const telemetry = createTelemetry({ env: {}, ...opts, exporter })!;
  telemetry.onEvents("r-steps", events, plan);
  await telemetry.flush();
  const spans = [...exporter.getFinishedSpans()]; // (the in-memory exporter forgets them on shutdown)
  await telemetry.shutdown();
  return spans;
}

function tree(spans: readonly ReadableSpan[]) {
  const one = (name: string): ReadableSpan => {
    const found = spans.filter((s) => s.name === name);
    expect(found, `exactly one span named '${name}' in ${spans.map((s) => s.name).join(", ")}`).toHaveLength(1);
    return found[0]!;
  };
  const children = (p: ReadableSpan): ReadableSpan[] =>
    spans.filter((s) => s.parentSpanContext?.spanId === p.spanContext().spanId).sort((a, b) => ms(a.startTime) - ms(b.startTime) || a.name.localeCompare(b.name));
  const under = (stage: string): ReadableSpan => children(one(`baton.stage ${stage}`)).find((s) => s.name === "attempt 1")!;
  return { one, children, under };
}

const ms = (t: readonly [number, number]): number => t[0] * 1000 + t[1] / 1e6;

describe("spans of recorded turns, tool calls and steps", () => {
  it("a chat span per turn and an execute_tool span per call, under the attempt that recorded them", async () => {
    const spans = await spansOf(log());
    const t = tree(spans);
    const attempt = t.under("research");
    expect(t.children(attempt).map((s) => s.name)).toEqual(["chat gpt-4o-mini", "execute_tool lookup", "execute_tool search", "chat gpt-4o-mini"]);
    const [turn1, failed, search, turn2] = t.children(attempt) as [ReadableSpan, ReadableSpan, ReadableSpan, ReadableSpan];
    expect(turn1.kind).toBe(CLIENT);
    expect(turn1.attributes).toEqual({
      "baton.step.name": "turn:1",
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "openai",
      "gen_ai.system": "openai",
      "gen_ai.request.model": "gpt-4o-mini",
      "gen_ai.agent.name": "bot",
      "baton.turn": 1,
      "gen_ai.usage.input_tokens": 100,
      "gen_ai.usage.output_tokens": 20,
      "gen_ai.usage.cache_read.input_tokens": 64,
      "baton.cost_usd": 0.001,
      "gen_ai.response.finish_reasons": ["tool_calls"],
    });
    expect([ms(turn1.startTime), ms(turn1.endTime)]).toEqual([T0 + 10, T0 + 100]);
    expect(turn2.attributes).toMatchObject({ "gen_ai.usage.input_tokens": 200, "gen_ai.usage.output_tokens": 30, "gen_ai.response.finish_reasons": ["stop"], "baton.turn": 2 });

    expect(search.kind).toBe(INTERNAL);
    expect(search.attributes).toEqual({
      "baton.step.name": "call:c1", "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search", "gen_ai.tool.call.id": "c1",
      "baton.tool.status": "succeeded", "baton.tool.attempts": 1,
    });
    expect(search.status.code).toBe(OK);
    expect([ms(search.startTime), ms(search.endTime)]).toEqual([T0 + 110, T0 + 150]);
    expect(failed.attributes).toMatchObject({ "gen_ai.tool.name": "lookup", "gen_ai.tool.call.id": "c2", "baton.tool.status": "failed", "baton.tool.attempts": 2, "error.type": "tool" });
    expect(failed.status).toEqual({ code: ERROR, message: "the index is offline" });

    // The attempt is the agent's invocation now; it keeps the attempt's whole usage.
    expect(attempt.attributes).toMatchObject({ "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bot", "gen_ai.usage.input_tokens": 350, "gen_ai.usage.output_tokens": 60 });
    // Every span lies within its parent.
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    for (const s of spans) {
      const p = s.parentSpanContext ? byId.get(s.parentSpanContext.spanId) : undefined;
      if (p) expect(ms(s.startTime) >= ms(p.startTime) && ms(s.endTime) <= ms(p.endTime), `${s.name} within ${p.name}`).toBe(true);
    }
  });

  it("ctx.agent turns name their agent; a declined call is not an error; ctx.step gets a step span", async () => {
    const t = tree(await spansOf(log()));
    const attempt = t.under("handler");
    expect(t.children(attempt).map((s) => s.name)).toEqual(["baton.step fetch", "chat claude-3-5-haiku", "execute_tool double", "chat claude-3-5-haiku"]);
    const [step, chat, call] = t.children(attempt) as [ReadableSpan, ReadableSpan, ReadableSpan];
    expect(step.attributes).toEqual({ "baton.step.name": "fetch" });
    expect(chat.attributes).toMatchObject({ "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-3-5-haiku", "gen_ai.agent.name": "helper", "baton.step.name": "agent:helper:1/turn:1" });
    expect(call.attributes).toMatchObject({ "gen_ai.tool.name": "double", "gen_ai.tool.call.id": "d1", "baton.tool.status": "declined", "baton.tool.attempts": 0 });
    expect(call.status.code).toBe(UNSET);
  });

  it("the run's totals count each turn once (as the engine does), the cut-off reply included", async () => {
    const events = log();
    const run = tree(await spansOf(events)).one("baton.run demo");
    const usage = fold(plan, events).usage;
    expect(usage).toMatchObject({ input: 380, output: 67 });
    expect(run.attributes).toMatchObject({ "baton.usage.input_tokens": usage.input, "baton.usage.output_tokens": usage.output, "baton.cost_usd": usage.usd });
  });

  it("message content is absent by default", async () => {
    for (const s of await spansOf(log())) {
      for (const k of ["gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result"]) expect(s.attributes[k], `${s.name} ${k}`).toBeUndefined();
      expect(JSON.stringify(s.attributes)).not.toContain("Research tides");
    }
  });

  it("with captureMessages: the turn's messages and reply, the call's arguments and result, in the conventions' shape; redacted values stay redacted", async () => {
    const t = tree(await spansOf(log(), { captureMessages: true }));
    const [turn1, failed, search, turn2] = t.children(t.under("research")) as [ReadableSpan, ReadableSpan, ReadableSpan, ReadableSpan];
    expect(JSON.parse(turn1.attributes["gen_ai.input.messages"] as string)).toEqual([
      { role: "system", parts: [{ type: "text", content: "Be brief." }] },
      { role: "user", parts: [{ type: "text", content: "Research tides with key [redacted]" }] },
    ]);
    expect(JSON.parse(turn1.attributes["gen_ai.output.messages"] as string)).toEqual([{
      role: "assistant", finish_reason: "tool_call",
      parts: [{ type: "tool_call", id: "c1", name: "search", arguments: { query: "tides" } }, { type: "tool_call", id: "c2", name: "lookup", arguments: { id: 7 } }],
    }]);
    expect(JSON.parse(turn2.attributes["gen_ai.input.messages"] as string).slice(2)).toEqual([
      { role: "assistant", parts: [{ type: "tool_call", id: "c1", name: "search", arguments: { query: "tides" } }, { type: "tool_call", id: "c2", name: "lookup", arguments: { id: 7 } }] },
      { role: "tool", parts: [{ type: "tool_call_response", id: "c1", response: { hits: 2 } }, { type: "tool_call_response", id: "c2", response: "the index is offline" }] },
    ]);
    expect(JSON.parse(turn2.attributes["gen_ai.output.messages"] as string)).toEqual([{ role: "assistant", finish_reason: "stop", parts: [{ type: "text", content: "Tides follow the moon." }] }]);
    expect(JSON.parse(search.attributes["gen_ai.tool.call.arguments"] as string)).toEqual({ query: "tides" });
    expect(JSON.parse(search.attributes["gen_ai.tool.call.result"] as string)).toEqual({ hits: 2 });
    expect(JSON.parse(failed.attributes["gen_ai.tool.call.result"] as string)).toEqual({ kind: "tool", message: "the index is offline", retryable: true });
  });

  it("BATON_OTEL_CAPTURE_MESSAGES=1 (or the conventions' variable) opts in; an explicit option wins", async () => {
    const has = (spans: ReadableSpan[]): boolean => spans.some((s) => s.attributes["gen_ai.input.messages"] !== undefined);
    expect(has(await spansOf(log(), { env: { BATON_OTEL_CAPTURE_MESSAGES: "1" } }))).toBe(true);
    expect(has(await spansOf(log(), { env: { OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: "true" } }))).toBe(true);
    expect(has(await spansOf(log(), { env: { BATON_OTEL_CAPTURE_MESSAGES: "1" }, captureMessages: false }))).toBe(false);
    expect(has(await spansOf(log(), { env: { BATON_OTEL_CAPTURE_MESSAGES: "0" } }))).toBe(false);
    expect(resolveConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", BATON_OTEL_CAPTURE_MESSAGES: "1" })).toMatchObject({ captureMessages: true });
    expect(resolveConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })).not.toHaveProperty("captureMessages");
  });

  it("steps of an attempt it has no span for (another process's, superseded) are skipped, their usage still counted", async () => {
    const events = new LogBuilder({ runId: "r-steps", pipeline: "demo" })
      .at(0).started(R, 1)
      .at(10).turn(R, 7, "turn:1", 5, { n: 1, tokens: { input: 9, output: 1 } })
      .at(20).succeeded(R, 1, "x", { model: "openai:gpt-4o-mini", tokens: { input: 4, output: 4 } })
      .at(30).finished("succeeded")
      .events;
    const spans = await spansOf(events);
    expect(spans.map((s) => s.name).sort()).toEqual(["attempt 1", "baton.run demo", "baton.stage research"]);
    expect(tree(spans).one("baton.run demo").attributes).toMatchObject({ "baton.usage.input_tokens": 13, "baton.usage.output_tokens": 5 });
  });
});

describe("a real tool loop", () => {
  let fake: FakeOpenAI;
  beforeAll(async () => {
    fake = await startFakeOpenAI();
    process.env.OPENAI_API_KEY = "sk-test-not-a-real-key";
  });
  afterAll(async () => {
    await fake.close();
  });

  it("through the Runtime: two chat spans and the calls between them, inside the attempt", async () => {
    const lastRole = (r: FakeRequest): string | undefined => r.messages.at(-1)?.role;
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "c1", name: "search", arguments: { query: "tides" } }, { id: "c2", name: "double", arguments: { x: 21 } }], usage: { prompt_tokens: 40, completion_tokens: 9 } } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "Tides: 2 results; 42.", usage: { prompt_tokens: 80, completion_tokens: 7 } } });
    const p = compileSource(`
baton: 1
name: loop
tools:
  search:
    description: Search the web.
    input: { type: object, required: [query], properties: { query: { type: string } } }
    run: ./tools.mjs#search
  double:
    description: Doubles a number.
    input: { type: object, required: [x], properties: { x: { type: number } } }
    value: "args.x * 2"
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 200, tools: [search, double] }
stages:
  research: { agent: bot, prompt: "Research tides" }
`, { format: "yaml", baseDir: resolve(import.meta.dirname, "../fixtures/tools") });
    const exporter = new InMemorySpanExporter();
    const telemetry = createTelemetry({ exporter, env: {}, captureMessages: true })!;
    const events: BatonEvent[] = [];
    const rt = new Runtime({ store: new MemoryStore(), config: {}, onEvents: (id, es, pl) => { events.push(...es); telemetry.onEvents(id, es, pl); } });
    const handle = await rt.start(p, {}, { seed: 1 });
    expect(await handle.done).toMatchObject({ status: "succeeded", output: { research: "Tides: 2 results; 42." } });
    await rt.close();
    await telemetry.flush();
    const spans = [...exporter.getFinishedSpans()];
    await telemetry.shutdown();
    const t = tree(spans);
    const attempt = t.under("research");
    const kids = t.children(attempt);
    expect(kids.map((s) => s.name).filter((n) => n.startsWith("chat"))).toEqual(["chat gpt-4o-mini", "chat gpt-4o-mini"]);
    expect(kids.map((s) => s.name).filter((n) => n.startsWith("execute_tool")).sort()).toEqual(["execute_tool double", "execute_tool search"]);
    expect(kids[0]!.name).toBe("chat gpt-4o-mini");
    expect(kids.at(-1)!.name).toBe("chat gpt-4o-mini");
    expect(kids.map((s) => s.attributes["gen_ai.usage.input_tokens"]).filter((x) => x !== undefined)).toEqual([40, 80]);
    const double = kids.find((s) => s.name === "execute_tool double")!;
    expect(JSON.parse(double.attributes["gen_ai.tool.call.result"] as string)).toBe(42);
    expect(JSON.parse(kids.at(-1)!.attributes["gen_ai.input.messages"] as string).map((m: { role: string }) => m.role)).toEqual(["user", "assistant", "tool"]);
    expect(attempt.attributes["gen_ai.operation.name"]).toBe("invoke_agent");
    const usage = fold(p, events).usage;
    expect(t.one("baton.run loop").attributes).toMatchObject({ "baton.usage.input_tokens": usage.input, "baton.usage.output_tokens": usage.output });
    expect(usage).toMatchObject({ input: 120, output: 16 });
  });
});
