/**
 * OpenTelemetry export: real pipelines through the real Runtime, spans sent over OTLP/HTTP JSON
 * to a local collector stub, then checked span by span (names, parentage, timing, status, GenAI).
 */
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { BatonEvent } from "../../src/engine/events.js";
import { definePipeline, MemoryStore, Runtime, type Plan, type RunResult } from "../../src/index.js";
import { compileSource, loadPlanFile } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI } from "../../src/testing/index.js";
import { createTelemetry, resolveConfig, traceIdOf } from "../../src/telemetry/index.js";
import { startCollector, type Collector, type ReceivedSpan } from "./collector.js";

const OK = 1;
const ERROR = 2;
const UNSET = 0;
const INTERNAL = 1;
const CLIENT = 3;

let collector: Collector;
let fake: FakeOpenAI;
beforeAll(async () => {
  collector = await startCollector();
  fake = await startFakeOpenAI();
  process.env.OPENAI_API_KEY = "sk-test-not-a-real-key";
});
afterAll(async () => {
  await collector.close();
  await fake.close();
});

const env = (): NodeJS.ProcessEnv => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
  OTEL_EXPORTER_OTLP_HEADERS: "x-baton-test=yes,authorization=Bearer%20t0ken",
  OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=test",
});

const yaml = (text: string): Plan => compileSource(text, { format: "yaml", baseDir: process.cwd() });

/** A run's spans as the collector received them (the run's trace id is derived from its id). */
const spansOf = (runId: string): ReceivedSpan[] => collector.spans.filter((s) => s.traceId === traceIdOf(runId));

/** Run a plan through a Runtime whose onEvents feeds the telemetry; shut the telemetry down (flush) after. */
async function runTraced(plan: Plan, inputs: Record<string, unknown> = {}, during?: (rt: Runtime, id: string, log: BatonEvent[]) => Promise<void>) {
  const telemetry = createTelemetry({ env: env() })!;
  const log: BatonEvent[] = [];
  const rt = new Runtime({
    store: new MemoryStore(),
    config: {},
    onEvents: (id, events, p) => {
      if (!id.includes("~")) log.push(...events);
      telemetry.onEvents(id, events, p);
    },
  });
  const handle = await rt.start(plan, inputs, { seed: 3 });
  if (during) await during(rt, handle.id, log);
  const result: RunResult = await handle.done;
  await rt.close();
  await telemetry.shutdown();
  return { result, log, spans: spansOf(handle.id) };
}

/** Navigation over received spans. */
function tree(spans: ReceivedSpan[]) {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = (s: ReceivedSpan): ReceivedSpan[] => spans.filter((c) => c.parentSpanId === s.spanId).sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
  const named = (name: string): ReceivedSpan[] => spans.filter((s) => s.name === name);
  const one = (name: string): ReceivedSpan => {
    const found = named(name);
    expect(found, `exactly one span named '${name}' in ${spans.map((s) => s.name).join(", ")}`).toHaveLength(1);
    return found[0]!;
  };
  const parent = (s: ReceivedSpan): ReceivedSpan | undefined => (s.parentSpanId === undefined ? undefined : byId.get(s.parentSpanId));
  return { children, named, one, parent };
}

/** Every span lies within its parent, and starts before it ends. */
function expectNested(spans: ReceivedSpan[]): void {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  for (const s of spans) {
    expect(s.startNs <= s.endNs, `${s.name} starts before it ends`).toBe(true);
    const p = s.parentSpanId === undefined ? undefined : byId.get(s.parentSpanId);
    if (!p) continue;
    expect(p.startNs <= s.startNs && s.endNs <= p.endNs, `${s.name} [${s.start}, ${s.end}] lies within ${p.name} [${p.start}, ${p.end}]`).toBe(true);
  }
}

describe("createTelemetry", () => {
  it("is off (undefined, nothing loaded) unless an OTLP traces endpoint is configured", () => {
    expect(createTelemetry({ env: {} })).toBeUndefined();
    expect(createTelemetry({ env: { OTEL_SERVICE_NAME: "x", OTEL_EXPORTER_OTLP_HEADERS: "a=b" } })).toBeUndefined();
    expect(createTelemetry({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: "  " } })).toBeUndefined();
    expect(createTelemetry({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_SDK_DISABLED: "true" } })).toBeUndefined();
    expect(createTelemetry({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_TRACES_EXPORTER: "none" } })).toBeUndefined();
    const t = createTelemetry({ env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:9/custom" } });
    expect(t?.endpoint).toBe("http://127.0.0.1:9/custom");
    void t?.shutdown();
  });

  it("reads the standard variables: endpoint (+ /v1/traces), headers, service name, resource attributes", () => {
    expect(resolveConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/" })).toEqual({ url: "http://c:4318/v1/traces", headers: {}, serviceName: "baton", resourceAttributes: {} });
    expect(resolveConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t:4318/in",
      OTEL_EXPORTER_OTLP_HEADERS: "a=1, b = two%20words,broken",
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: "a=3",
      OTEL_SERVICE_NAME: "svc",
      OTEL_RESOURCE_ATTRIBUTES: "service.name=ignored,team=x",
    })).toEqual({ url: "http://t:4318/in", headers: { a: "3", b: "two words" }, serviceName: "svc", resourceAttributes: { team: "x" } });
    expect(resolveConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, "mine")?.serviceName).toBe("mine");
  });

  it("derives one trace id per run tree", () => {
    expect(traceIdOf("abc")).toMatch(/^[0-9a-f]{32}$/);
    expect(traceIdOf("abc")).toBe(traceIdOf("abc"));
    expect(traceIdOf("abc~sub-i1~inner-a2")).toBe(traceIdOf("abc"));
    expect(traceIdOf("abd")).not.toBe(traceIdOf("abc"));
  });
});

describe("spans over OTLP/HTTP", () => {
  it("a chain with a retried stage: run → stages → attempts, errors and retries, in time order", async () => {
    let calls = 0;
    const p = definePipeline({ name: "chain" })
      .stage("a", { run: () => 1 })
      .stage("flaky", {
        needs: ["a"],
        retry: { attempts: 3, delay: "20ms", backoff: "fixed", jitter: "none" },
        run: () => {
          if (++calls < 3) throw new Error(`flaky failure ${calls}`);
          return 2;
        },
      })
      .stage("c", { needs: ["flaky"], value: "flaky + 1" });
    const { result, spans } = await runTraced(p.plan);
    expect(result.status).toBe("succeeded");
    const t = tree(spans);
    expect(spans).toHaveLength(1 + 3 + 5); // run, 3 stages, 1 + 3 + 1 attempts

    const run = t.one("baton.run chain");
    expect(run.parentSpanId).toBeUndefined();
    expect(run.traceId).toBe(traceIdOf(result.id));
    expect(run.kind).toBe(INTERNAL);
    expect(run.status.code).toBe(OK);
    expect(run.attributes).toMatchObject({ "baton.run.id": result.id, "baton.pipeline": "chain", "baton.plan_hash": p.plan.hash, "baton.run.status": "succeeded" });
    expect(run.resource).toMatchObject({ "service.name": "baton", "deployment.environment.name": "test" });
    expect(run.scope.name).toBe("baton");
    // The exporter sent the configured headers.
    const post = collector.requests.find((r) => r.path === "/v1/traces")!;
    expect(post.headers["x-baton-test"]).toBe("yes");
    expect(post.headers.authorization).toBe("Bearer t0ken");
    expect(post.headers["content-type"]).toMatch(/application\/json/);

    const stages = t.children(run);
    expect(stages.map((s) => s.name)).toEqual(["baton.stage a", "baton.stage flaky", "baton.stage c"]);
    expect(stages.map((s) => s.status.code)).toEqual([OK, OK, OK]);
    const [a, flaky, c] = stages as [ReceivedSpan, ReceivedSpan, ReceivedSpan];
    expect(flaky.attributes).toMatchObject({ "baton.stage.id": "flaky", "baton.stage.visit": 1, "baton.stage.kind": "run", "baton.stage.status": "succeeded", "baton.stage.attempts": 3 });
    expect(c.attributes["baton.stage.kind"]).toBe("value");
    expect(flaky.events.filter((e) => e.name === "baton.retry_scheduled").map((e) => e.attributes)).toEqual([
      expect.objectContaining({ "baton.retry.next_attempt": 2, "baton.retry.delay_ms": 20 }),
      expect.objectContaining({ "baton.retry.next_attempt": 3, "baton.retry.delay_ms": 20 }),
    ]);

    const attempts = t.children(flaky);
    expect(attempts.map((s) => s.name)).toEqual(["attempt 1", "attempt 2", "attempt 3"]);
    expect(attempts.map((s) => s.status.code)).toEqual([ERROR, ERROR, OK]);
    attempts.slice(0, 2).forEach((s, i) => {
      expect(s.status.message).toBe(`handler: flaky failure ${i + 1}`);
      expect(s.attributes).toMatchObject({ "baton.attempt": i + 1, "baton.attempt.status": "failed", "error.type": "handler", "baton.retry.delay_ms": 20, "baton.retry.next_attempt": i + 2 });
      const ex = s.events.find((e) => e.name === "exception")!;
      expect(ex.attributes).toEqual({ "exception.type": "handler", "exception.message": `flaky failure ${i + 1}`, "baton.error.retryable": true });
      expect(ex.timeNs).toBe(s.endNs);
    });
    expect(attempts[2]!.events).toEqual([]);
    expect(t.children(a).map((s) => s.name)).toEqual(["attempt 1"]);

    // Timing: nesting, the chain's order, the retry delay between attempts.
    expectNested(spans);
    expect(a.endNs <= flaky.startNs && flaky.endNs <= c.startNs).toBe(true);
    for (let i = 1; i < attempts.length; i++) expect(attempts[i]!.start - attempts[i - 1]!.end).toBeGreaterThanOrEqual(20);
    expect(run.end).toBeGreaterThanOrEqual(c.end);
  });

  it("for_each: a group span per visit, an execution span per item (with its own retries)", async () => {
    const tried = new Set<number>();
    const p = definePipeline({ name: "fan" })
      .stage("list", { value: "[1, 2, 3]" })
      .stage("each", {
        needs: ["list"],
        for_each: "list",
        retry: { attempts: 2, delay: "1ms" },
        run: (ctx) => {
          const n = ctx.item as number;
          if (n === 2 && !tried.has(n)) {
            tried.add(n);
            throw new Error("item 2 hiccup");
          }
          return n * 10;
        },
      })
      .stage("total", { needs: ["each"], value: "$sum(each)" });
    const { result, spans } = await runTraced(p.plan);
    expect(result).toMatchObject({ status: "succeeded", output: { total: 60 } });
    const t = tree(spans);
    const run = t.one("baton.run fan");
    const group = t.one("baton.for_each each");
    expect(t.parent(group)).toBe(run);
    expect(group.attributes).toMatchObject({ "baton.stage.id": "each", "baton.stage.visit": 1, "baton.stage.items": 3, "baton.stage.status": "succeeded" });
    expect(group.status.code).toBe(OK);

    const items = t.children(group);
    expect(items.map((s) => s.name)).toEqual(["baton.stage each", "baton.stage each", "baton.stage each"]);
    expect(items.map((s) => s.attributes["baton.stage.item"]).sort()).toEqual([0, 1, 2]);
    const second = items.find((s) => s.attributes["baton.stage.item"] === 1)!;
    expect(t.children(second).map((s) => [s.name, s.status.code])).toEqual([["attempt 1", ERROR], ["attempt 2", OK]]);
    expect(second.attributes["baton.stage.attempts"]).toBe(2);
    for (const item of items.filter((s) => s !== second)) expect(t.children(item).map((s) => s.name)).toEqual(["attempt 1"]);
    expect(t.children(run).map((s) => s.name).sort()).toEqual(["baton.for_each each", "baton.stage list", "baton.stage total"]);
    expectNested(spans);
    expect(t.one("baton.stage list").endNs <= group.startNs && group.endNs <= t.one("baton.stage total").startNs).toBe(true);
  });

  it("agent attempts carry GenAI semantic-convention attributes with the tokens the provider reported", async () => {
    fake.reset();
    fake.addRule({ match: "Summarise tides", reply: [{ status: 500, content: "upstream hiccup" }, { content: "Tides follow the moon.", usage: { prompt_tokens: 30, completion_tokens: 6 } }] });
    const plan = yaml(`
baton: 1
name: agentic
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", temperature: 0, max_tokens: 200 }
stages:
  summary:
    agent: bot
    prompt: "Summarise tides in one line."
    retry: { attempts: 2, delay: 1ms }
output: summary
`);
    const { result, log, spans } = await runTraced(plan);
    expect(result).toMatchObject({ status: "succeeded", output: "Tides follow the moon." });
    expect(fake.requests).toHaveLength(2);
    const t = tree(spans);
    const run = t.one("baton.run agentic");
    const stage = t.one("baton.stage summary");
    expect(t.parent(stage)).toBe(run);
    expect(stage.attributes["baton.stage.kind"]).toBe("agent");
    const [first, second] = t.children(stage) as [ReceivedSpan, ReceivedSpan];
    expect([first.name, second.name]).toEqual(["attempt 1", "attempt 2"]);
    expect(t.children(stage)).toHaveLength(2);
    expect([first.kind, second.kind]).toEqual([CLIENT, CLIENT]);

    const failed = log.find((e) => e.type === "stage_failed") as Extract<BatonEvent, { type: "stage_failed" }>;
    expect(first.status).toEqual({ code: ERROR, message: `${failed.error.kind}: ${failed.error.message}` });
    expect(first.events.find((e) => e.name === "exception")!.attributes).toMatchObject({ "exception.type": failed.error.kind, "exception.message": failed.error.message, "baton.error.retryable": true });
    expect(first.attributes).toMatchObject({ "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini" });

    const ok = log.find((e) => e.type === "stage_succeeded") as Extract<BatonEvent, { type: "stage_succeeded" }>;
    expect(ok.tokens).toEqual({ input: 30, output: 6 });
    expect(second.status.code).toBe(OK);
    // The attempt that recorded a turn is the agent's invocation; the turn is the chat call under it.
    expect(second.attributes).toMatchObject({
      "gen_ai.operation.name": "invoke_agent",
      "gen_ai.provider.name": "openai",
      "gen_ai.system": "openai",
      "gen_ai.request.model": "gpt-4o-mini",
      "gen_ai.agent.name": "bot",
      "gen_ai.request.temperature": 0,
      "gen_ai.request.max_tokens": 200,
      "gen_ai.usage.input_tokens": 30,
      "gen_ai.usage.output_tokens": 6,
    });
    expect(second.attributes["baton.cost_usd"]).toBeCloseTo((30 * 0.15 + 6 * 0.6) / 1e6, 12);
    expect(second.attributes["baton.cost_usd"]).toBe(ok.cost_usd);
    expect(t.children(first)).toEqual([]); // its call failed before a turn was recorded
    const [chat] = t.children(second);
    expect(t.children(second)).toHaveLength(1);
    expect(chat!.name).toBe("chat gpt-4o-mini");
    expect(chat!.kind).toBe(CLIENT);
    expect(chat!.attributes).toMatchObject({
      "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.agent.name": "bot",
      "gen_ai.usage.input_tokens": 30, "gen_ai.usage.output_tokens": 6, "gen_ai.response.finish_reasons": ["stop"], "baton.step.name": "turn:1",
    });
    expect(chat!.attributes["gen_ai.input.messages"]).toBeUndefined();
    // The run span totals the segment's usage (under baton.*, so backends summing gen_ai.* do not count it twice).
    const tokens = log.flatMap((e) => (e.type === "stage_succeeded" || e.type === "stage_failed") && e.tokens ? [e.tokens] : []);
    expect(run.attributes).toMatchObject({ "baton.usage.input_tokens": tokens.reduce((s, x) => s + x.input, 0), "baton.usage.output_tokens": tokens.reduce((s, x) => s + x.output, 0) });
    expect(run.attributes["gen_ai.usage.input_tokens"]).toBeUndefined();
    expectNested(spans);
  });

  it("a stage that fails for good: error status on attempt, stage and run", async () => {
    const p = definePipeline({ name: "doomed" })
      .stage("ok", { run: () => 1 })
      .stage("boom", { needs: ["ok"], run: () => { throw new Error("it broke"); } })
      .stage("never", { needs: ["boom"], value: "boom" });
    const { result, spans } = await runTraced(p.plan);
    expect(result.status).toBe("failed");
    const t = tree(spans);
    const run = t.one("baton.run doomed");
    expect(run.status).toEqual({ code: ERROR, message: "stage 'boom': it broke" });
    expect(run.attributes).toMatchObject({ "baton.run.status": "failed", "error.type": "handler" });
    const boom = t.one("baton.stage boom");
    expect(boom.status).toEqual({ code: ERROR, message: "handler: it broke" });
    expect(boom.attributes).toMatchObject({ "baton.stage.status": "failed", "error.type": "handler", "baton.stage.attempts": 1 });
    expect(t.children(boom).map((s) => [s.name, s.status.code, s.events.map((e) => e.name)])).toEqual([["attempt 1", ERROR, ["exception"]]]);
    expect(t.named("baton.stage never")).toEqual([]);
    expectNested(spans);
  });

  it("a fallback execution hangs under the stage it stands in for", async () => {
    const p = definePipeline({ name: "fallbacks" })
      .stage("primary", { on_error: { fallback: "backup" }, run: () => { throw new Error("primary down"); } })
      .stage("backup", { run: () => "from backup" })
      .stage("after", { needs: ["primary"], value: "primary" });
    const { result, spans } = await runTraced(p.plan);
    expect(result).toMatchObject({ status: "succeeded", output: { after: "from backup" } });
    const t = tree(spans);
    const primary = t.one("baton.stage primary");
    const backup = t.one("baton.stage backup");
    expect(t.parent(primary)).toBe(t.one("baton.run fallbacks"));
    expect(t.parent(backup)).toBe(primary);
    expect(backup.attributes).toMatchObject({ "baton.stage.fallback_for": "primary", "baton.stage.status": "succeeded" });
    expect(primary.attributes["baton.stage.status"]).toBe("fallback");
    expect(primary.events.map((e) => e.name)).toContain("baton.fallback");
    expect(t.children(primary).map((s) => [s.name, s.status.code])).toEqual([["attempt 1", ERROR], ["baton.stage backup", OK]]);
    expectNested(spans);
  });

  it("a pause for a human ends the run span (waiting); the answer opens a linked segment in the same trace", async () => {
    const plan = yaml(`
baton: 1
name: review
stages:
  draft: { value: "'text v1'" }
  review:
    needs: [draft]
    approval: { message: "Publish {{ draft }}?" }
  publish: { value: "{ 'text': draft, 'review': review }" }
output: publish
`);
    const telemetry = createTelemetry({ env: env() })!;
    const rt = new Runtime({ store: new MemoryStore(), onEvents: telemetry.onEvents }); // bound: passed as is
    const first = await (await rt.start(plan, {})).done;
    expect(first.status).toBe("waiting");
    const answered = await rt.answer(first.id, "review", { approved: true, by: "ana" }, { plan });
    const done = await answered.handle!.done;
    expect(done.status).toBe("succeeded");
    await rt.close();
    await telemetry.shutdown();

    const spans = spansOf(first.id);
    const t = tree(spans);
    const segments = t.named("baton.run review").sort((a, b) => a.start - b.start);
    expect(segments).toHaveLength(2);
    const [paused, resumed] = segments as [ReceivedSpan, ReceivedSpan];
    expect(paused.attributes).toMatchObject({ "baton.run.status": "waiting", "baton.run.waiting_stage": "review", "baton.run.message": "Publish text v1?" });
    expect(paused.status.code).toBe(UNSET);
    const review = t.children(paused).find((s) => s.name === "baton.stage review")!;
    expect(review.attributes["baton.stage.status"]).toBe("waiting");
    expect(t.children(review)[0]!.attributes).toMatchObject({ "baton.attempt.status": "waiting" });
    expect(t.children(review)[0]!.events.map((e) => e.name)).toEqual(["baton.waiting"]);

    expect(resumed.traceId).toBe(paused.traceId);
    expect(resumed.parentSpanId).toBeUndefined();
    expect(resumed.links).toEqual([expect.objectContaining({ traceId: paused.traceId, spanId: paused.spanId })]);
    expect(resumed.attributes).toMatchObject({ "baton.run.id": first.id, "baton.run.resumed": true, "baton.pipeline": "review", "baton.run.status": "succeeded" });
    expect(resumed.status.code).toBe(OK);
    const approval = resumed.events.find((e) => e.name === "baton.approval")!;
    expect(approval.attributes).toMatchObject({ "baton.stage.id": "review", "baton.approval.approved": true, "baton.approval.by": "ana" });
    expect(resumed.events.map((e) => e.name)).toContain("baton.run.resumed");
    expect(t.children(resumed).map((s) => s.name)).toEqual(["baton.stage publish"]);
    expect(paused.endNs <= resumed.startNs).toBe(true);
    expectNested(spans);
  });

  it("cancelling a run: the in-flight attempt ends unset with the reason; the run span says cancelled", async () => {
    const p = definePipeline({ name: "cancel-me" }).stage("wait", {
      run: (ctx) => new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason as Error))),
    });
    const { result, spans } = await runTraced(p.plan, {}, async (rt, id, log) => {
      while (!log.some((e) => e.type === "stage_started")) await new Promise((r) => setTimeout(r, 5));
      await rt.cancel(id, "enough");
    });
    expect(result.status).toBe("cancelled");
    const t = tree(spans);
    const run = t.one("baton.run cancel-me");
    expect(run.attributes["baton.run.status"]).toBe("cancelled");
    expect(run.status.code).toBe(UNSET);
    expect(run.events.find((e) => e.name === "baton.run.cancel_requested")!.attributes).toEqual({ "baton.cancel.reason": "enough" });
    const stage = t.one("baton.stage wait");
    expect(stage.attributes).toMatchObject({ "baton.stage.status": "cancelled", "baton.cancel.reason": "run cancelled" });
    const attempt = t.one("attempt 1");
    expect(t.parent(attempt)).toBe(stage);
    expect(attempt.status.code).toBe(UNSET);
    expect(attempt.attributes).toMatchObject({ "baton.attempt.status": "cancelled", "baton.cancel.reason": "run cancelled" });
    expect(attempt.events.map((e) => e.name)).toEqual(["baton.cancelled"]);
    expectNested(spans);
  });

  it("sub-pipeline runs are children of the attempt that ran them, in the parent's trace", async () => {
    const plan = loadPlanFile(resolve("test/fixtures/pipeline/parent.yaml"));
    const { result, spans } = await runTraced(plan, { ms: 5 });
    expect(result.status).toBe("succeeded");
    const t = tree(spans);
    const parentRun = t.one("baton.run parent");
    expect(parentRun.parentSpanId).toBeUndefined();
    const children = t.named("baton.run child");
    expect(children.map((s) => s.attributes["baton.run.id"]).sort()).toEqual([`${result.id}~each-i0`, `${result.id}~each-i1`, `${result.id}~sub`]);
    for (const child of children) {
      const attempt = t.parent(child)!;
      expect(attempt.name).toBe("attempt 1");
      const stage = t.parent(attempt)!;
      const id = child.attributes["baton.run.id"] as string;
      expect(stage.attributes["baton.stage.id"]).toBe(id.endsWith("~sub") ? "sub" : "each");
      if (!id.endsWith("~sub")) expect(stage.attributes["baton.stage.item"]).toBe(Number(id.slice(-1)));
      expect(child.attributes["baton.run.parent_id"]).toBe(result.id);
      expect(attempt.attributes["baton.child_run"]).toBe(id);
      expect(t.children(child).map((s) => s.name).sort()).toEqual(["baton.stage double", "baton.stage slow"]);
    }
    expectNested(spans);
  });
});

describe("robustness", () => {
  it("a collector that is not listening costs the spans, not the command: shutdown resolves with one warning (issue 15.6)", async () => {
    const { createServer } = await import("node:net");
    const port = await new Promise<number>((res) => {
      const srv = createServer().listen(0, "127.0.0.1", () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => res(p));
      });
    });
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on("warning", onWarning);
    try {
      const telemetry = createTelemetry({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` } })!;
      const at = Date.now();
      telemetry.onEvents("r2", [
        { type: "run_started", at, run_id: "r2", pipeline: "p", plan_hash: "h", source: { format: "ts" }, inputs: {}, seed: 1 },
        { type: "run_finished", at: at + 1, status: "succeeded" },
      ]);
      await expect(telemetry.shutdown()).resolves.toBeUndefined();
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    } finally {
      process.off("warning", onWarning);
    }
    const ours = warnings.filter((w) => w.startsWith("Baton telemetry: could not export spans"));
    expect(ours).toHaveLength(1);
    expect(ours[0]).toContain(`127.0.0.1:${port}`);
  });

  it("never throws on events it cannot place; shutdown ends runs still open as interrupted", async () => {
    const spans: ReadableSpan[] = [];
    const exporter: SpanExporter = {
      export: (batch, done) => {
        spans.push(...batch);
        done({ code: 0 });
      },
      shutdown: async () => undefined,
    };
    const telemetry = createTelemetry({ exporter, env: {} })!;
    expect(telemetry.endpoint).toBeUndefined();
    const at = Date.now();
    // Events of runs it never saw start: nothing to attach them to, nothing thrown.
    telemetry.onEvents("ghost", [{ type: "stage_succeeded", at, stage: "x", visit: 1, attempt: 1, output: 1 }, { type: "run_finished", at, status: "succeeded" }]);
    telemetry.onEvents("r1", [
      { type: "run_started", at, run_id: "r1", pipeline: "p", plan_hash: "h", source: { format: "ts" }, inputs: {}, seed: 1 },
      { type: "stage_started", at: at + 1, stage: "s", visit: 1, attempt: 1, queued_ms: 0 },
    ]);
    await telemetry.shutdown();
    await telemetry.shutdown();
    telemetry.onEvents("r1", [{ type: "run_finished", at: at + 5, status: "succeeded" }]);
    expect(spans.map((s) => s.name).sort()).toEqual(["attempt 1", "baton.run p", "baton.stage s"]);
    const run = spans.find((s) => s.name === "baton.run p")!;
    expect(run.attributes["baton.run.status"]).toBe("interrupted");
    expect(run.spanContext().traceId).toBe(traceIdOf("r1"));
    expect(spans.find((s) => s.name === "attempt 1")!.attributes).toMatchObject({ "baton.attempt.status": "cancelled", "baton.cancel.reason": "run interrupted" });
  });
});

describe("telemetry carries no secret (issue 13 item 3)", () => {
  it("a paused run rejected with a --comment holding a secret, and a stage whose error names it: no span, event or attribute has it", async () => {
    const NAME = "BATON_OTEL_TEST_TOKEN";
    const secret = "tok_otel_5e4d3c2b1a0f9e8d";
    process.env[NAME] = secret;
    try {
      const plan = yaml(`
baton: 1
name: otel-secrets
stages:
  review: { approval: { message: "ok?" } }
`);
      const telemetry = createTelemetry({ env: { ...env(), BATON_OTEL_CAPTURE_MESSAGES: "1" } })!;
      const rt = new Runtime({ store: new MemoryStore(), onEvents: telemetry.onEvents });
      const first = await (await rt.start(plan, {})).done;
      expect(first.status).toBe("waiting");
      const answered = await rt.answer(first.id, "review", { approved: false, comment: `leaked ${secret}`, by: "ana" }, { plan });
      const done = await answered.handle!.done;
      expect(done.status).toBe("failed");
      const p = definePipeline({ name: "otel-fails" }).stage("boom", { run: () => { throw new Error(`denied for ${process.env[NAME]}`); } });
      const failed = await (await rt.start(p.plan, {})).done;
      await rt.close();
      await telemetry.shutdown();
      const spans = [...spansOf(first.id), ...spansOf(failed.id)];
      expect(spans.length).toBeGreaterThan(3);
      const text = JSON.stringify(spans, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v));
      expect(text).not.toContain(secret);
      expect(text).toContain("rejected by ana: leaked [redacted]");
      expect(text).toContain("denied for [redacted]");
    } finally {
      delete process.env[NAME];
    }
  });
});
