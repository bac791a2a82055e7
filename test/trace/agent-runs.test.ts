/**
 * Traces of tool loops the real runtime ran (embedded host, the real AI SDK client against the
 * fake OpenAI server, a SQLite store): turns, calls, approvals and replays as the trace shows
 * them, totals equal to the engine's fold of the same log, and `messages_ref` naming the blob
 * the store keeps the messages in.
 */
import { resolve } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Pipeline } from "../../src/api/pipeline.js";
import type { BatonEvent } from "../../src/engine/events.js";
import { fold } from "../../src/engine/state.js";
import { execute } from "../../src/index.js";
import { Runtime } from "../../src/runtime/runtime.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { compileSource } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI, type FakeRequest } from "../../src/testing/index.js";
import { buildTrace, renderTrace, type Trace } from "../../src/trace/index.js";

const FIX = resolve(import.meta.dirname, "../fixtures/tools");
let fake: FakeOpenAI;
beforeAll(async () => {
  fake = await startFakeOpenAI();
  process.env.OPENAI_API_KEY = "sk-test-not-a-real-key";
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => fake.reset());

const lastRole = (r: FakeRequest): string | undefined => r.messages.at(-1)?.role;

function pipeline(stages: string): Pipeline<Record<string, unknown>, unknown> {
  const text = `
baton: 1
name: traced-tools
tools:
  search:
    description: Search the web.
    input: { type: object, required: [query], properties: { query: { type: string } } }
    run: ./tools.mjs#search
  double:
    description: Doubles a number.
    input: { type: object, required: [x], properties: { x: { type: number } } }
    value: "args.x * 2"
  publish:
    description: Publish a report.
    input: { type: object, required: [title], properties: { title: { type: string } } }
    value: "{ 'published': args.title }"
    approval: "Publish '{{ args.title }}'?"
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 200, tools: [search, double, publish] }
  helper: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 100, tools: [double] }
${stages}`;
  const plan = compileSource(text, { format: "yaml", baseDir: FIX });
  return { name: plan.name, plan, parseInputs: (r) => r as Record<string, unknown> };
}

/** The trace agrees with the engine about usage, and survives JSON as it is. */
function checkTotals(p: Pipeline<Record<string, unknown>, unknown>, events: readonly BatonEvent[], t: Trace): void {
  const usage = fold(p.plan, events).usage;
  expect(t.run.tokens).toEqual({ input: usage.input, output: usage.output });
  expect(t.run.cost_usd).toBe(usage.usd);
  expect(usage.input).toBeGreaterThan(0);
  expect(JSON.parse(JSON.stringify(t))).toEqual(t);
}

describe("traces of real tool loops", () => {
  it("a call waits for approval, is approved, and a failed turn is retried: every turn and call once, replays marked", async () => {
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "p1", name: "publish", arguments: { title: "Tides" } }, { id: "s1", name: "search", arguments: { query: "q" } }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: [{ status: 500, content: "boom" }, { content: "Published and searched." }] });
    const p = pipeline(`
stages:
  report: { agent: bot, prompt: "Publish it", retry: { attempts: 3, delay: 1ms } }
`);
    const store = SqliteStore.open(":memory:");
    try {
      const first = await execute(p, {}, { seed: 1, store });
      expect(first.status).toBe("waiting");
      const waiting = buildTrace((await store.load(first.id)).events, p.plan);
      const w = waiting.stages.find((s) => s.id === "report#1")!;
      expect(w.turns![0]!.tool_calls.map((c) => [c.id, c.status])).toEqual([["p1", "waiting"], ["s1", "succeeded"]]);
      expect(renderTrace(waiting, { color: false, width: 140 })).toContain(`⏸ publish {"title":"Tides"}  waiting for approval (baton approve ${first.id} report --call p1)`);

      const rt = new Runtime({ store } as never);
      try {
        const r = await rt.answer(first.id, "report", { approved: true, call: "p1", by: "ana" }, { plan: p.plan });
        expect(await r.handle!.done).toMatchObject({ status: "succeeded" });
      } finally {
        await rt.close();
      }
      const { events } = await store.load(first.id);
      const t = buildTrace(events, p.plan);
      checkTotals(p, events, t);
      const s = t.stages.find((x) => x.id === "report#1")!;
      expect(s.status).toBe("succeeded");
      expect(s.turns!.map((x) => [x.n, x.finish_reason, x.replayed ?? false, x.tool_calls.length])).toEqual([[1, "tool_calls", true, 2], [2, "stop", false, 0]]);
      expect(s.turns![1]!.text).toBe("Published and searched.");
      const [p1, s1] = s.turns![0]!.tool_calls;
      expect(p1).toMatchObject({ id: "p1", tool: "publish", status: "succeeded", output: { published: "Tides" }, attempts: 1, replayed: true, approval: { message: "Publish 'Tides'?", approved: true, by: "ana" } });
      expect(s1).toMatchObject({ id: "s1", tool: "search", status: "succeeded", attempt: 1, replayed: true });
      expect(p1!.attempt).toBeGreaterThan(1); // it ran on the attempt after the approval
      // The stage's usage is its turns'; the turns' refs name the blobs the store wrote.
      const turnTokens = s.turns!.reduce((n, x) => n + x.tokens.input + x.tokens.output, 0);
      expect(s.tokens!.input + s.tokens!.output).toBe(turnTokens);
      const blobs = new Set((store.db.prepare("SELECT hash FROM blobs").all() as { hash: string }[]).map((b) => b.hash));
      for (const turn of s.turns!) expect(blobs.has(turn.messages_ref!)).toBe(true);
      const withMessages = buildTrace(events, p.plan, { messages: true });
      const sent = withMessages.messages![s.turns![1]!.messages_ref!] as { role: string }[];
      expect(sent.map((m) => m.role)).toEqual(["user", "assistant", "tool"]);
    } finally {
      await store.close();
    }
  });

  it("ctx.agent from a handler: its turns under the namespace, with the stage's own usage", async () => {
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "d1", name: "double", arguments: { x: 5 } }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "ten" } });
    const p = pipeline(`
stages:
  handler: { run: ./tools.mjs#withAgent, input: { topic: "tides" } }
`);
    const log: BatonEvent[] = [];
    const result = await execute(p, {}, { seed: 1, onEvents: (_id, es) => log.push(...es) });
    expect(result.status).toBe("succeeded");
    const t = buildTrace(log, p.plan);
    checkTotals(p, log, t);
    const s = t.stages.find((x) => x.id === "handler#1")!;
    expect(s.turns!.map((x) => [x.agent, x.n, x.tool_calls.map((c) => [c.tool, c.status, c.output])])).toEqual([
      ["agent:helper:1", 1, [["double", "succeeded", 10]]],
      ["agent:helper:1", 2, []],
    ]);
    expect(s.tokens).toEqual(t.run.tokens);
    const text = renderTrace(t, { color: false });
    expect(text).toMatch(/\n {2}agent:helper:1 turn 1 {2}openai:gpt-4o-mini {2}\d+→\d+ tokens {2}tool_calls {2}/);
    expect(text).toMatch(/\n {4}✓ double \{"x":5\} {2}\d+ attempts? · \d+ms/);
    expect(text).toMatch(/\n {2}agent:helper:1 turn 2 .* stop .*"ten"/);
  });
});
