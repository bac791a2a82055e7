/**
 * The CLI's live view of agent stages (src/cli/progress.ts): on a TTY a running agent stage gets
 * one line with its turn, the tool calls recorded since that turn and the tail of the text
 * streaming in, cut to the terminal's width and stripped of control characters; non-TTY output
 * is what it was (deltas and step events print nothing).
 */
import { describe, expect, it } from "vitest";
import { Progress } from "../../src/cli/progress.js";
import type { BatonEvent } from "../../src/engine/events.js";
import { compileSource } from "../../src/template/index.js";

const T0 = Date.UTC(2026, 0, 1);
const plan = compileSource(
  `baton: 1
name: live-view
agents:
  bot: { model: "openai:gpt-4o-mini", max_tokens: 100 }
stages:
  research: { agent: bot, prompt: "Explain tides" }
  summary: { value: "research" }
output: summary
`,
  { format: "yaml", baseDir: process.cwd() },
);

/** A terminal: collects writes, `columns` wide. */
function term(columns: number) {
  const chunks: string[] = [];
  return {
    chunks,
    columns,
    isTTY: true,
    write(s: string): boolean {
      chunks.push(s);
      return true;
    },
  };
}

const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
/** The lines of the last redraw, escapes removed. */
const lastFrame = (t: ReturnType<typeof term>): string[] => t.chunks.at(-1)!.replace(ANSI, "").split("\n").filter((l) => l !== "");
/** Terminal columns of a line (wide CJK characters count 2). */
const cols = (s: string): number => [...s].reduce((n, ch) => n + (/[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uff00-\uff60]/.test(ch) ? 2 : 1), 0);

const start: BatonEvent[] = [
  { type: "run_started", at: T0, run_id: "r1", pipeline: "live-view", plan_hash: plan.hash, source: { format: "yaml", text: "" }, inputs: {}, seed: 1 } as BatonEvent,
  { type: "stage_started", at: T0 + 1, stage: "research", visit: 1, attempt: 1, queued_ms: 0 },
];
const turn1: BatonEvent = {
  type: "step_recorded", at: T0 + 2, stage: "research", visit: 1, attempt: 1, name: "turn:1", kind: "turn", started_at: T0 + 1,
  output: { n: 1, text: "", calls: [{ id: "c1", tool: "search", args: {} }, { id: "c2", tool: "fetch", args: {} }], finish_reason: "tool_calls" },
};
const call = (id: string, status: string): BatonEvent => ({
  type: "step_recorded", at: T0 + 3, stage: "research", visit: 1, attempt: 1, name: `call:${id}`, kind: "tool_call", started_at: T0 + 2,
  output: { status, attempts: 1, started_at: T0 + 2, ended_at: T0 + 3 },
});
const succeeded: BatonEvent = { type: "stage_succeeded", at: T0 + 9, stage: "research", visit: 1, attempt: 1, output: "done" };

describe("progress: live agent text on a TTY", () => {
  it("shows the turn and the tail of the streaming text on one line no wider than the terminal", () => {
    const t = term(60);
    const p = new Progress(t as never, true);
    expect(p.showsDeltas).toBe(true);
    p.onEvents("r1", start, plan);
    const text = "Tides are caused by the gravitational pull of the Moon and the Sun on the oceans of the Earth";
    p.onDelta("r1", "research#1:turn:1", text);
    p.draw();
    const frame = lastFrame(t);
    const live = frame.find((l) => l.includes("↳"));
    expect(live).toBeDefined();
    expect(live).toMatch(/^ {4}↳ turn 1 · …/);
    expect(live!.endsWith("oceans of the Earth")).toBe(true);
    expect(cols(live!)).toBeLessThanOrEqual(59);
    // It sits under the stage's row, and the next redraw moves up over every line drawn (this one too).
    expect(frame.indexOf(live!)).toBe(frame.findIndex((l) => l.includes("research")) + 1);
    p.draw();
    expect(t.chunks.at(-1)!.startsWith(`\x1b[${frame.length}F`)).toBe(true);
    p.end();
  });

  it("lists the tool calls of the turn as they are recorded, then the next turn's text", () => {
    const t = term(100);
    const p = new Progress(t as never, true);
    p.onEvents("r1", start, plan);
    p.onDelta("r1", "research#1:turn:1", "Let me look that up");
    p.onEvents("r1", [turn1], plan);
    p.draw();
    expect(lastFrame(t).find((l) => l.includes("↳"))).toBe("    ↳ turn 1");
    p.onEvents("r1", [call("c1", "succeeded")], plan);
    p.draw();
    expect(lastFrame(t).find((l) => l.includes("↳"))).toBe("    ↳ turn 1 · tool search ✓");
    p.onEvents("r1", [call("c2", "failed")], plan);
    p.onDelta("r1", "research#1:turn:2", "Tides come from\nthe Moon.");
    p.draw();
    expect(lastFrame(t).find((l) => l.includes("↳"))).toBe("    ↳ turn 2 · tool search ✓ · tool fetch ✗ · Tides come from the Moon.");
    // Done: the line goes.
    p.onEvents("r1", [succeeded], plan);
    p.draw();
    expect(lastFrame(t).some((l) => l.includes("↳"))).toBe(false);
    p.end();
  });

  it("never writes the model's control characters to the terminal, and counts wide characters", () => {
    const t = term(40);
    const p = new Progress(t as never, true);
    p.onEvents("r1", start, plan);
    p.onDelta("r1", "research#1:turn:1", "evil \x1b[2J\x1b[31mred\x07 " + "潮汐".repeat(30));
    p.draw();
    const raw = t.chunks.at(-1)!.split("\n").find((l) => l.includes("↳"))!;
    expect(raw).not.toContain("\x1b[2J");
    expect(raw).not.toContain("\x1b[31m");
    expect(raw).not.toContain("\x07");
    const live = raw.replace(ANSI, "");
    expect(cols(live)).toBeLessThanOrEqual(39);
    expect(live.endsWith("潮汐")).toBe(true);
    p.end();
  });

  it("shows a for_each item's turn, and ignores other runs' and other visits' text", () => {
    const t = term(80);
    const p = new Progress(t as never, true);
    p.onEvents("r1", start, plan);
    p.onDelta("child-run", "research#1:turn:1", "from a child run");
    p.onDelta("r1", "research#2:turn:1", "a later visit");
    p.draw();
    expect(lastFrame(t).some((l) => l.includes("↳"))).toBe(false);
    p.onDelta("r1", "research#1[2]:turn:3", "item text");
    p.draw();
    expect(lastFrame(t).find((l) => l.includes("↳"))).toBe("    ↳ [2] turn 3 · item text");
    p.end();
  });
});

describe("progress: non-TTY output is unchanged by live text", () => {
  it("prints the same lines with and without deltas and step events", () => {
    const plain = term(80);
    const withLive = term(80);
    const a = new Progress(plain as never, false);
    const b = new Progress(withLive as never, false);
    expect(b.showsDeltas).toBe(false);
    a.onEvents("r1", start, plan);
    a.onEvents("r1", [succeeded], plan);
    b.onEvents("r1", start, plan);
    b.onDelta("r1", "research#1:turn:1", "streaming text");
    b.onEvents("r1", [turn1, call("c1", "succeeded"), call("c2", "failed")], plan);
    b.onDelta("r1", "research#1:turn:2", "more");
    b.onEvents("r1", [succeeded], plan);
    a.end();
    b.end();
    expect(withLive.chunks).toEqual(plain.chunks);
    expect(plain.chunks.join("")).toContain("research succeeded");
    expect(plain.chunks.join("")).not.toContain("↳");
  });
});
