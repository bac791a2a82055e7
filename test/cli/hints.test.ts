import { describe, expect, it } from "vitest";
import { answerHint, outcomeTail } from "../../src/cli/hints.js";

describe("what baton run prints after a run stops", () => {
  it("does not name the stage twice when the message already starts with it", () => {
    const msg = "stage 'research': 2 tool calls wait for approval: call_a (publish), call_b (publish) — answer each by its call id";
    expect(outcomeTail({ id: "r1", status: "waiting", error: { stage: "research", kind: "waiting", message: msg } })).toBe(`: ${msg}`);
    expect(outcomeTail({ id: "r1", status: "failed", error: { stage: "draft", kind: "timeout", message: "timed out" } })).toBe(": stage 'draft': timed out");
    expect(outcomeTail({ id: "r1", status: "succeeded" })).toBe("");
  });

  it("answers a waiting tool call by its call id, an approval of the stage without one, a signal not at all", () => {
    const one = answerHint({ id: "r1", status: "waiting", error: { stage: "research", kind: "waiting", message: "stage 'research': publish needs approval (tool call call_abc123: publish)" } });
    expect(one).toBe("answer it with: baton approve r1 research --call call_abc123 [--data JSON]  or  baton reject r1 research --call call_abc123 [--comment TEXT]");
    const many = answerHint({ id: "r1", status: "waiting", error: { stage: "research", kind: "waiting", message: "stage 'research': 2 tool calls wait for approval: call_a (publish), call_b (publish) — answer each by its call id" } });
    expect(many).toContain("baton approve r1 research --call CALL_ID");
    const stage = answerHint({ id: "r1", status: "waiting", error: { stage: "review", kind: "waiting", message: "please review the draft" } });
    expect(stage).toBe("answer it with: baton approve r1 review [--data JSON]  or  baton reject r1 review [--comment TEXT]");
    expect(answerHint({ id: "r1", status: "waiting", error: { stage: "gate", kind: "waiting", message: "stage 'gate' waits for signal 'go': send it with baton signal r1 go" } })).toBeUndefined();
    expect(answerHint({ id: "r1", status: "failed", error: { stage: "x", kind: "k", message: "m" } })).toBeUndefined();
  });
});
