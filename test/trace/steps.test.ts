/**
 * The trace of agent loops and durable steps (SPEC §8–9 "Trace additions") over hand-written
 * logs: turns with their tool calls, steps, replays, approvals of calls, messages by content
 * address, the text view and the diff — and token/cost totals that equal the engine's count
 * through a crash (a turn recorded, no outcome) and a resumed attempt that replays it.
 */
import { describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { fold } from "../../src/engine/state.js";
import { blobHash } from "../../src/store/payload.js";
import { compileSource } from "../../src/template/index.js";
import { buildTrace, messagesRef, renderTrace, type Trace, type TraceStage } from "../../src/trace/index.js";
import { diffTraces } from "../../src/trace/diff.js";
import { renderDiff } from "../../src/trace/diff-render.js";
import { iso, LogBuilder, T0 } from "./logs.js";

const plan = compileSource(`
baton: 1
name: demo
agents:
  bot: { model: "openai:gpt-4o-mini" }
stages:
  research: { agent: bot, prompt: "Research tides", retry: { attempts: 3, delay: 100ms } }
`, { format: "yaml", baseDir: process.cwd() });

const R = { stage: "research" };
const MSG1 = [{ role: "system", content: "Be brief." }, { role: "user", content: "Research tides" }];

/**
 * Attempt 1 records turn 1 (two calls) and call c1, then the process dies (no outcome; c2 was in
 * flight). After the resume attempt 2 replays turn 1 and c1, runs c2 (fails after 2 tries, an
 * error result for the model), records turn 2 and c3, then its turn 3 is cut at max_tokens (usage
 * reported with the outcome, no turn recorded). Attempt 3 replays everything and answers.
 */
function crashLog(): LogBuilder {
  return new LogBuilder()
    .at(0).started(R, 1)
    .at(100).turn(R, 1, "turn:1", 10, {
      n: 1, calls: [{ id: "c1", tool: "search", args: { query: "tides" } }, { id: "c2", tool: "lookup", args: { id: 7 } }],
      tokens: { input: 100, output: 20 }, cost_usd: 0.001, messages: MSG1,
    })
    .at(150).call(R, 1, "call:c1", 100, { status: "succeeded", output: { hits: 2 } })
    // crash
    .at(1000).resumed()
    .at(1000).started(R, 2, { rerun: true })
    .at(1100).call(R, 2, "call:c2", 1000, { status: "failed", error: { kind: "tool", message: "the index is offline", retryable: true }, attempts: 2 })
    .at(1300).turn(R, 2, "turn:2", 1100, { n: 2, calls: [{ id: "c3", tool: "search", args: { query: "moon" } }], tokens: { input: 200, output: 30 }, cost_usd: 0.002 })
    .at(1400).call(R, 2, "call:c3", 1300, { status: "succeeded", output: { hits: 1 } })
    .at(1600).failed(R, 2, { kind: "truncated", message: "stage 'research' (openai:gpt-4o-mini): the reply was cut off at max_tokens (200)", retryable: true }, {
      model: "openai:gpt-4o-mini", tokens: { input: 500, output: 230 }, cost_usd: 0.006, recorded_tokens: { input: 200, output: 30 }, recorded_cost_usd: 0.002,
      replayed: ["turn:1", "call:c1"],
    })
    .retry(R, 3, 100)
    .at(1700).started(R, 3)
    .at(1900).turn(R, 3, "turn:3", 1700, { n: 3, text: "Tides follow the moon.", tokens: { input: 400, output: 50 }, cost_usd: 0.003 })
    .succeeded(R, 3, "Tides follow the moon.", {
      model: "openai:gpt-4o-mini", tokens: { input: 400, output: 50 }, cost_usd: 0.003, recorded_tokens: { input: 400, output: 50 }, recorded_cost_usd: 0.003,
      replayed: ["turn:1", "call:c1", "call:c2", "turn:2", "call:c3"],
    })
    .at(2000).finished("succeeded", { output: "Tides follow the moon.", read: ["research"] });
}

const stageOf = (t: Trace, id: string): TraceStage => {
  const s = t.stages.find((x) => x.id === id);
  expect(s, `entry ${id}`).toBeDefined();
  return s!;
};

describe("token and cost totals with recorded turns", () => {
  it("equal the engine's count through a crash (turn recorded, no outcome) and a resumed attempt that replays it", () => {
    const events = crashLog().events;
    const engine = fold(plan, events).usage;
    const t = buildTrace(events);
    expect(t.run.tokens).toEqual({ input: engine.input, output: engine.output });
    expect(t.run.cost_usd).toBe(engine.usd);
    // Every turn once (100 + 200 + 400 in), plus the cut-off reply no turn recorded (300 in, 200 out).
    expect(t.run.tokens).toEqual({ input: 1000, output: 300 });
    expect(t.run.cost_usd).toBeCloseTo(0.01, 12);
    // The stage entry carries the same usage: attempt 1's turn, whose outcome never came, is not lost.
    const s = stageOf(t, "research#1");
    expect(s.tokens).toEqual({ input: 1000, output: 300 });
    expect(s.cost_usd).toBe(engine.usd);
    expect(s.model).toBe("openai:gpt-4o-mini");
  });

  it("equal the engine's count at every prefix of the log (a live trace)", () => {
    const events = crashLog().events;
    for (let i = 1; i <= events.length; i++) {
      const prefix = events.slice(0, i);
      const engine = fold(plan, prefix).usage;
      const t = buildTrace(prefix);
      expect(t.run.tokens, `after ${prefix.at(-1)!.type} #${i}`).toEqual({ input: engine.input, output: engine.output });
      expect(t.run.cost_usd).toBe(engine.usd);
      const s = t.stages.find((x) => x.id === "research#1");
      if (s?.tokens) expect(s.tokens).toEqual(t.run.tokens);
    }
  });

  it("count an outcome without recorded turns (an older log) as before", () => {
    const b = new LogBuilder().at(0).started(R).at(30).succeeded(R, 1, "hi", { model: "mock:echo", tokens: { input: 12, output: 3 }, cost_usd: 0.002 });
    const t = buildTrace(b.events);
    expect(t.run).toMatchObject({ tokens: { input: 12, output: 3 }, cost_usd: 0.002 });
    expect(t.stages[0]).toMatchObject({ tokens: { input: 12, output: 3 }, cost_usd: 0.002 });
    expect(t.stages[0]!.turns).toBeUndefined();
    expect(t.stages[0]!.steps).toBeUndefined();
  });
});

describe("turns, tool calls and steps", () => {
  it("lists the execution's turns across attempts, each call joined to its outcome, replays marked", () => {
    const t = buildTrace(crashLog().events);
    expect(JSON.parse(JSON.stringify(t))).toEqual(t);
    const s = stageOf(t, "research#1");
    expect(s.steps).toEqual([]);
    expect(s.turns).toEqual([
      {
        n: 1, started_at: iso(10), ended_at: iso(100), duration_ms: 90, model: "openai:gpt-4o-mini", tokens: { input: 100, output: 20 }, cost_usd: 0.001,
        finish_reason: "tool_calls", messages_ref: blobHash(JSON.stringify(MSG1)),
        tool_calls: [
          {
            id: "c1", tool: "search", args: { query: "tides" }, status: "succeeded", output: { hits: 2 }, attempts: 1,
            started_at: iso(100), ended_at: iso(150), duration_ms: 50, replayed: true, attempt: 1,
          },
          {
            id: "c2", tool: "lookup", args: { id: 7 }, status: "failed", error: { kind: "tool", message: "the index is offline", retryable: true }, attempts: 2,
            started_at: iso(1000), ended_at: iso(1100), duration_ms: 100, replayed: true, attempt: 2,
          },
        ],
        replayed: true, attempt: 1,
      },
      {
        n: 2, started_at: iso(1100), ended_at: iso(1300), duration_ms: 200, model: "openai:gpt-4o-mini", tokens: { input: 200, output: 30 }, cost_usd: 0.002,
        finish_reason: "tool_calls", messages_ref: messagesRef([{ role: "user", content: "turn 2" }]),
        tool_calls: [{
          id: "c3", tool: "search", args: { query: "moon" }, status: "succeeded", output: { hits: 1 }, attempts: 1,
          started_at: iso(1300), ended_at: iso(1400), duration_ms: 100, replayed: true, attempt: 2,
        }],
        replayed: true, attempt: 2,
      },
      {
        n: 3, started_at: iso(1700), ended_at: iso(1900), duration_ms: 200, model: "openai:gpt-4o-mini", tokens: { input: 400, output: 50 }, cost_usd: 0.003,
        finish_reason: "stop", messages_ref: messagesRef([{ role: "user", content: "turn 3" }]), text: "Tides follow the moon.", tool_calls: [], attempt: 3,
      },
    ]);
    // The attempts: the one the crash cut, the truncated one (retried), the one that answered.
    expect(s.attempts.map((a) => [a.n, a.status, a.error?.kind])).toEqual([[1, "cancelled", "interrupted"], [2, "failed", "truncated"], [3, "succeeded", undefined]]);
  });

  it("a call without an outcome is running while the execution goes on, cancelled once it is over", () => {
    const events = crashLog().events;
    const atCrash = buildTrace(events.slice(0, events.findIndex((e) => e.type === "run_resumed")));
    expect(stageOf(atCrash, "research#1").turns![0]!.tool_calls.map((c) => [c.id, c.status])).toEqual([["c1", "succeeded"], ["c2", "running"]]);
    expect(stageOf(atCrash, "research#1").turns![0]!.tool_calls[1]).toMatchObject({ attempts: 0, started_at: null, ended_at: null, duration_ms: null });
    const failed = new LogBuilder().at(0).started(R)
      .at(100).turn(R, 1, "turn:1", 0, { n: 1, calls: [{ id: "a", tool: "search", args: {} }, { id: "b", tool: "publish", args: {} }], tokens: { input: 1, output: 1 } })
      .at(200).failed(R, 1, { kind: "tool", message: "tool 'search' failed: boom", retryable: false })
      .settled(R, "failed").finished("failed", { error: { stage: "research", kind: "tool", message: "tool 'search' failed: boom" } });
    expect(stageOf(buildTrace(failed.events), "research#1").turns![0]!.tool_calls.map((c) => c.status)).toEqual(["cancelled", "cancelled"]);
  });

  it("ctx.agent loops carry their namespace; ctx.step steps (a tool's own too) are listed with their timing", () => {
    const H = { stage: "handler" };
    const b = new LogBuilder().at(0).started(H)
      .at(40).step(H, 1, "fetch", "step", 10, { page: "…" })
      .at(100).turn(H, 1, "agent:helper:1/turn:1", 50, { n: 1, calls: [{ id: "d1", tool: "double", args: { x: 5 } }], tokens: { input: 10, output: 5 } })
      .at(120).step(H, 1, "agent:helper:1/call:d1/lookup", "step", 105, 5)
      .at(130).call(H, 1, "agent:helper:1/call:d1", 100, { status: "succeeded", output: 10 })
      .at(160).turn(H, 1, "agent:helper:1/turn:2", 130, { n: 2, text: "ten", tokens: { input: 20, output: 2 } })
      .at(170).succeeded(H, 1, { answer: "ten" }, { model: "openai:gpt-4o-mini", tokens: { input: 30, output: 7 }, recorded_tokens: { input: 30, output: 7 } });
    const t = buildTrace(b.events);
    const s = stageOf(t, "handler#1");
    expect(s.turns!.map((x) => [x.agent, x.n, x.tool_calls.map((c) => [c.id, c.tool, c.status, c.output])])).toEqual([
      ["agent:helper:1", 1, [["d1", "double", "succeeded", 10]]],
      ["agent:helper:1", 2, []],
    ]);
    expect(s.steps).toEqual([
      { name: "fetch", status: "succeeded", started_at: iso(10), ended_at: iso(40), duration_ms: 30, attempt: 1 },
      { name: "agent:helper:1/call:d1/lookup", status: "succeeded", started_at: iso(105), ended_at: iso(120), duration_ms: 15, attempt: 1 },
    ]);
    expect(t.run.tokens).toEqual({ input: 30, output: 7 });
    expect(s.tokens).toEqual({ input: 30, output: 7 });
  });

  it("steps belong to their execution: for_each items, visits and fallback calls each keep their own", () => {
    const b = new LogBuilder()
      .at(0).decision({ stage: "each", kind: "for_each", expression: "inputs.xs", result: 2, items: ["a", "b"] })
      .started({ stage: "each", item: 0 }).started({ stage: "each", item: 1 })
      .at(10).step({ stage: "each", item: 0 }, 1, "fetch", "step", 1, "A")
      .at(11).step({ stage: "each", item: 1 }, 1, "fetch", "step", 2, "B")
      .at(12).step({ stage: "each", item: 1 }, 1, "parse", "step", 11, "b")
      .at(20).started({ stage: "fb", item: 1, fallback_for: "each" })
      .at(21).step({ stage: "fb", item: 1, fallback_for: "each" }, 1, "fetch", "step", 20, "B2")
      .at(30).started({ stage: "again", visit: 2 })
      .at(31).step({ stage: "again", visit: 2 }, 1, "x", "step", 30, 1);
    const t = buildTrace(b.events);
    const names = (id: string): string[] => (stageOf(t, id).steps ?? []).map((x) => x.name);
    expect(names("each#1[0]")).toEqual(["fetch"]);
    expect(names("each#1[1]")).toEqual(["fetch", "parse"]);
    expect(names("fb#1[1]<-each")).toEqual(["fetch"]);
    expect(names("again#2")).toEqual(["x"]);
    expect(stageOf(t, "each#1").steps).toBeUndefined();
  });

  it("an invalid call is shown with why; a name recorded twice keeps the first record (the one later attempts reuse)", () => {
    const b = new LogBuilder().at(0).started(R)
      .at(10).turn(R, 1, "turn:1", 0, { n: 1, calls: [{ id: "x", tool: "search", args: "{not json", invalid: "Unexpected token" }], tokens: { input: 5, output: 5 } })
      .at(11).call(R, 1, "call:x", 10, { status: "failed", error: { kind: "tool", message: "the arguments of 'search' are not valid JSON: Unexpected token" }, attempts: 0 })
      .at(12).call(R, 1, "call:x", 11, { status: "succeeded", output: "late duplicate" });
    const c = stageOf(buildTrace(b.events), "research#1").turns![0]!.tool_calls[0]!;
    expect(c).toMatchObject({ id: "x", args: "{not json", invalid: "Unexpected token", status: "failed", attempts: 0, started_at: iso(10) });
  });
});

describe("tool calls waiting for approval", () => {
  const P = { stage: "report" };
  const waitingLog = (): LogBuilder => new LogBuilder({ runId: "r9" }).at(0).started(P)
    .at(100).turn(P, 1, "turn:1", 10, {
      n: 1, calls: [{ id: "p1", tool: "publish", args: { title: "Tides" } }, { id: "s1", tool: "search", args: { query: "q" } }], tokens: { input: 3, output: 11 },
    })
    .at(150).call(P, 1, "call:s1", 100, { status: "succeeded", output: { results: 2 } })
    .waitingCalls(P, 1, "stage 'report': Publish 'Tides'?", [{ id: "p1", tool: "publish", args: { title: "Tides" }, message: "Publish 'Tides'?" }])
    .at(151).waiting("report", "stage 'report': Publish 'Tides'?");

  it("a waiting call says so, with the approval message; the run waits", () => {
    const t = buildTrace(waitingLog().events);
    expect(t.run.status).toBe("waiting");
    const s = stageOf(t, "report#1");
    expect(s.status).toBe("waiting");
    expect(s.turns![0]!.tool_calls).toEqual([
      { id: "p1", tool: "publish", args: { title: "Tides" }, status: "waiting", attempts: 0, started_at: null, ended_at: null, duration_ms: null, approval: { message: "Publish 'Tides'?" } },
      expect.objectContaining({ id: "s1", status: "succeeded" }),
    ]);
  });

  it("a rejection declines the call at once (its recorded outcome follows on the re-run); the answer is a decision on the call, not on the stage", () => {
    const b = waitingLog()
      .at(5000).approval("report", false, { call: "p1", by: "ana", comment: "not yet" });
    const answered = buildTrace(b.events);
    const s = stageOf(answered, "report#1");
    expect(s.status).toBe("running"); // every call is answered: the execution runs again
    expect(s.output).toBeNull();
    expect(s.attempts[0]).toMatchObject({ n: 1, status: "answered", ended_at: iso(5000) });
    expect(s.turns![0]!.tool_calls[0]).toMatchObject({ status: "declined", approval: { message: "Publish 'Tides'?", approved: false, by: "ana", comment: "not yet", at: iso(5000) } });
    expect(answered.decisions.at(-1)).toMatchObject({ kind: "approval", stage: "report", result: false, taken: false, by: "ana", call: "p1" });

    b.resumed().at(5001).started(P, 2, { rerun: true })
      .at(5002).call(P, 2, "call:p1", 5001, { status: "declined", error: { kind: "tool", message: "the user declined this call: not yet" }, attempts: 0 })
      .at(5100).turn(P, 2, "turn:2", 5002, { n: 2, text: "ok, not published", tokens: { input: 20, output: 4 } })
      .succeeded(P, 2, "ok, not published", { replayed: ["turn:1", "approval:p1", "call:s1"] })
      .finished("succeeded", { output: "ok, not published" });
    const done = stageOf(buildTrace(b.events), "report#1");
    expect(done.status).toBe("succeeded");
    expect(done.output).toBe("ok, not published");
    expect(done.turns![0]).toMatchObject({ replayed: true });
    expect(done.turns![0]!.tool_calls.map((c) => [c.id, c.status, c.attempt, c.replayed])).toEqual([["p1", "declined", 2, undefined], ["s1", "succeeded", 1, true]]);
    expect(done.turns![0]!.tool_calls[0]!.error).toEqual({ kind: "tool", message: "the user declined this call: not yet" });
  });

  it("with several waiting calls, one answer leaves the others waiting; an answer without a call answers all", () => {
    const b = new LogBuilder().at(0).started(P)
      .at(10).turn(P, 1, "turn:1", 0, { n: 1, calls: [{ id: "a", tool: "publish", args: { title: "A" } }, { id: "b", tool: "publish", args: { title: "B" } }], tokens: { input: 1, output: 1 } })
      .waitingCalls(P, 1, "2 tool calls wait for approval: a (publish), b (publish)", [
        { id: "a", tool: "publish", args: { title: "A" }, message: "Publish 'A'?" }, { id: "b", tool: "publish", args: { title: "B" }, message: "Publish 'B'?" },
      ])
      .waiting("report", "2 tool calls wait");
    b.at(20).approval("report", true, { call: "a" });
    let s = stageOf(buildTrace(b.events), "report#1");
    expect(s.status).toBe("waiting");
    expect(s.turns![0]!.tool_calls.map((c) => [c.id, c.status, c.approval?.approved])).toEqual([["a", "running", true], ["b", "waiting", undefined]]);
    b.at(30).approval("report", true, { by: "bo" });
    s = stageOf(buildTrace(b.events), "report#1");
    expect(s.status).toBe("running");
    expect(s.turns![0]!.tool_calls.map((c) => [c.id, c.status, c.approval?.by])).toEqual([["a", "running", undefined], ["b", "running", "bo"]]);
  });
});

describe("messages", () => {
  it("messages_ref is the store's content address; { messages: true } adds each distinct list once", () => {
    const same = [{ role: "user", content: "same prompt" }];
    const b = new LogBuilder().at(0).started(R)
      .at(10).turn(R, 1, "turn:1", 0, { n: 1, calls: [{ id: "c", tool: "t", args: {} }], tokens: { input: 1, output: 1 }, messages: MSG1 })
      .at(20).turn(R, 1, "agent:x:1/turn:1", 10, { n: 1, text: "a", tokens: { input: 1, output: 1 }, messages: same })
      .at(30).turn(R, 1, "agent:x:2/turn:1", 20, { n: 1, text: "b", tokens: { input: 1, output: 1 }, messages: same });
    const plain = buildTrace(b.events);
    expect("messages" in plain).toBe(false);
    const refs = stageOf(plain, "research#1").turns!.map((x) => x.messages_ref);
    expect(refs).toEqual([blobHash(JSON.stringify(MSG1)), blobHash(JSON.stringify(same)), blobHash(JSON.stringify(same))]);
    const full = buildTrace(b.events, undefined, { messages: true });
    expect(full.messages).toEqual({ [refs[0]!]: MSG1, [refs[1]!]: same });
    expect({ ...full, messages: undefined }).toEqual({ ...plain, messages: undefined });
  });
});

describe("text view", () => {
  const lines = (t: Trace, width = 100): string[] => renderTrace(t, { color: false, width }).split("\n");

  it("one line per turn, an indented line per call, steps; attempts as before", () => {
    const text = lines(buildTrace(crashLog().events));
    const at = text.findIndex((l) => l.startsWith("✓ research"));
    expect(text.slice(at, at + 11)).toEqual([
      "✓ research  1.90s  3 attempts · openai:gpt-4o-mini · 1,300 tokens · $0.0100",
      "  ⊗ attempt 1  interrupted: its process stopped or lost the lease; it ran again after resume",
      "  ✗ attempt 2 (rerun)  600ms  truncated: stage 'research' (openai:gpt-4o-mini): the reply was cut o…",
      "  ✓ attempt 3  200ms",
      "  turn 1  openai:gpt-4o-mini  100→20 tokens  tool_calls  90ms · replayed",
      '    ✓ search {"query":"tides"}  1 attempt · 50ms · replayed',
      '    ✗ lookup {"id":7}  failed: the index is offline  2 attempts · 100ms · replayed',
      "  turn 2  openai:gpt-4o-mini  200→30 tokens  tool_calls  200ms · replayed",
      '    ✓ search {"query":"moon"}  1 attempt · 100ms · replayed',
      '  turn 3  openai:gpt-4o-mini  400→50 tokens  stop  200ms  "Tides follow the moon."',
      "",
    ]);
    for (const l of text) expect([...l].length).toBeLessThanOrEqual(100);
  });

  it("a waiting call shows the command that answers it; steps and ctx.agent turns are labelled", () => {
    const P = { stage: "report" };
    const b = new LogBuilder({ runId: "r9" }).at(0).started(P)
      .at(5).step(P, 1, "fetch", "step", 1, "page")
      .at(100).turn(P, 1, "agent:writer:1/turn:1", 10, {
        n: 1, calls: [{ id: "call_8f2", tool: "publish", args: { title: "Tides", body: "x".repeat(200) } }], tokens: { input: 1200, output: 40 },
      })
      .waitingCalls(P, 1, "stage 'report': Publish 'Tides'?", [{ id: "call_8f2", tool: "publish", args: { title: "Tides" }, message: "Publish 'Tides'?" }])
      .at(101).waiting("report", "stage 'report': Publish 'Tides'?");
    const text = lines(buildTrace(b.events));
    const at = text.findIndex((l) => l.startsWith("⏸ report"));
    expect(text.slice(at + 1, at + 4)).toEqual([
      "  agent:writer:1 turn 1  openai:gpt-4o-mini  1,200→40 tokens  tool_calls  90ms",
      '    ⏸ publish {"title":"Tides","bod…  waiting for approval (baton approve r9 report --call call_8f2)',
      "  ✓ step fetch  4ms",
    ]);
    for (const l of text) expect([...l].length).toBeLessThanOrEqual(100);
  });

  it("for_each items sum their turns up on their line (waiting calls still listed); long loops are cut in the middle", () => {
    const E = (item: number) => ({ stage: "each", item });
    const b = new LogBuilder()
      .at(0).decision({ stage: "each", kind: "for_each", expression: "inputs.xs", result: 1, items: ["a"] })
      .started(E(0));
    for (let n = 1; n <= 30; n++) b.at(n * 10).turn(E(0), 1, `turn:${n}`, n * 10 - 5, { n, calls: [{ id: `c${n}`, tool: "t", args: {} }], tokens: { input: 1, output: 1 } });
    const items = lines(buildTrace(b.events));
    expect(items.find((l) => l.includes("[0]"))).toMatch(/30 turns, 30 tool calls$/);
    expect(items.some((l) => l.includes("turn 1 "))).toBe(false);

    const long = new LogBuilder().at(0).started(R);
    for (let n = 1; n <= 30; n++) long.at(n * 10).turn(R, 1, `turn:${n}`, n * 10 - 5, { n, tokens: { input: 1, output: 1 }, finish_reason: "tool_calls" });
    const text = lines(buildTrace(long.events));
    const turnLines = text.filter((l) => /^ {2}turn \d+ /.test(l));
    expect(turnLines).toHaveLength(20);
    expect(turnLines[9]).toMatch(/^ {2}turn 10 /);
    expect(turnLines[10]).toMatch(/^ {2}turn 21 /);
    expect(text).toContain("  … 10 more turns (0 tool calls; baton trace RUN --json shows them)");
  });
});

describe("diff", () => {
  it("compares the number of turns and tool calls per stage execution", () => {
    const a = buildTrace(crashLog().events);
    const shorter = new LogBuilder().at(0).started(R)
      .at(1000).turn(R, 1, "turn:1", 10, { n: 1, text: "Tides follow the moon.", tokens: { input: 1000, output: 300 }, cost_usd: 0.01 })
      .at(1900).succeeded(R, 1, "Tides follow the moon.", { model: "openai:gpt-4o-mini", tokens: { input: 1000, output: 300 }, cost_usd: 0.01, recorded_tokens: { input: 1000, output: 300 }, recorded_cost_usd: 0.01 })
      .at(2000).finished("succeeded", { output: "Tides follow the moon.", read: ["research"] });
    const b = buildTrace(shorter.events);
    const d = diffTraces(a, b);
    expect(d.stages).toHaveLength(1);
    expect(d.stages[0]).toMatchObject({ key: "research#1", changed: true, attempts: [3, 1], turns: [3, 1], tool_calls: [3, 0] });
    expect(renderDiff(d, { color: false })).toContain("turns 3 → 1, tool calls 3 → 0");
    // Same loop twice: no change.
    expect(diffTraces(a, buildTrace(crashLog().events)).stages).toEqual([]);
  });
});

it("the hand-written logs are valid events", () => {
  const events: BatonEvent[] = crashLog().events;
  expect(events[0]!.at).toBe(T0);
});
