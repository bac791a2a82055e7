/**
 * Durable steps of one execution (SPEC §8–9) as the trace shows them: the agent loop's turns,
 * each with its tool calls (joined to the calls' recorded outcomes, waiting approvals and the
 * humans' answers), and the `ctx.step` steps.
 *
 * Step names: a stage's own loop records `turn:N` and `call:ID`; a `ctx.agent` loop records
 * them under its namespace (`agent:NAME:K/turn:N`, `agent:NAME:K/call:ID`); a tool's own
 * `ctx.step` is `call:ID/NAME`; any other name is a `ctx.step`. The record types are read
 * structurally (what `stages/agent.ts` writes), so a malformed record degrades, never throws.
 * @internal
 */
import { createHash } from "node:crypto";
import type { StepRecorded } from "../engine/events.js";
import type { TraceCallApproval, TraceStageStatus, TraceStep, TraceToolCall, TraceToolCallStatus, TraceTurn, TraceTurnTokens } from "./types.js";
import { iso, isoOrNull, type StepState } from "./entry.js";

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : undefined);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/**
 * The content address of a turn's messages: hex sha256 of their JSON (the key the stores keep
 * them under in `blobs`). A blob reference that was not put back is its own key.
 */
export function messagesRef(messages: unknown): string {
  const o = obj(messages);
  if (o && typeof o["$blob"] === "string" && Object.keys(o).length === 1) return o["$blob"];
  return createHash("sha256").update(JSON.stringify(messages) ?? "null").digest("hex");
}

const TURN = /^(?:(.*)\/)?turn:(\d+)$/;

/** Whether the execution is still going (a call without an outcome may yet get one). */
const live = (s: TraceStageStatus): boolean => s === "running" || s === "retrying" || s === "waiting";

const CALL_STATUSES = new Set(["succeeded", "failed", "declined"]);

/**
 * The trace's `turns` and `steps` of one execution. `messages`, when given, collects each
 * turn's messages by their ref.
 */
export function shapeSteps(st: StepState, status: TraceStageStatus, messages: Map<string, unknown> | undefined): { turns: TraceTurn[]; steps: TraceStep[] } {
  const turns: TraceTurn[] = [];
  const steps: TraceStep[] = [];
  for (const [name, e] of st.recorded) {
    if (e.kind === "step") {
      steps.push({
        name, status: "succeeded", started_at: iso(e.started_at), ended_at: iso(e.at), duration_ms: Math.max(0, e.at - e.started_at),
        ...(st.replayed.has(name) ? { replayed: true as const } : {}), attempt: e.attempt,
      });
      continue;
    }
    if (e.kind !== "turn") continue; // tool calls are shown with the turn that made them
    const m = TURN.exec(name);
    const ns = m?.[1];
    const rec = obj(e.output) ?? {};
    const startedAt = num(rec["started_at"]) ?? e.started_at;
    const endedAt = num(rec["ended_at"]) ?? e.at;
    const t = obj(e.tokens) ?? obj(rec["tokens"]);
    const cached = num(t?.["cached"]);
    const tokens: TraceTurnTokens = { input: num(t?.["input"]) ?? 0, output: num(t?.["output"]) ?? 0, ...(cached !== undefined ? { cached } : {}) };
    const cost = e.cost_usd ?? num(rec["cost_usd"]);
    const text = str(rec["text"]);
    let ref: string | undefined;
    if (e.messages !== undefined) {
      ref = messagesRef(e.messages);
      if (messages && !messages.has(ref) && obj(e.messages)?.["$blob"] === undefined) messages.set(ref, e.messages);
    }
    const calls = Array.isArray(rec["calls"]) ? (rec["calls"] as unknown[]) : [];
    turns.push({
      n: num(rec["n"]) ?? (m ? Number(m[2]) : turns.length + 1),
      started_at: iso(startedAt), ended_at: iso(endedAt), duration_ms: Math.max(0, endedAt - startedAt),
      model: e.model ?? str(rec["model"]) ?? "",
      tokens,
      ...(cost !== undefined ? { cost_usd: cost } : {}),
      finish_reason: str(rec["finish_reason"]) ?? (calls.length > 0 ? "tool_calls" : "stop"),
      ...(ref !== undefined ? { messages_ref: ref } : {}),
      ...(text ? { text } : {}),
      tool_calls: calls.flatMap((c) => {
        const call = obj(c);
        const id = str(call?.["id"]);
        return call && id !== undefined ? [toolCall(st, status, `${ns !== undefined ? `${ns}/` : ""}call:${id}`, id, call)] : [];
      }),
      ...(st.replayed.has(name) ? { replayed: true as const } : {}),
      ...(ns !== undefined ? { agent: ns } : {}),
      attempt: e.attempt,
    });
  }
  return { turns, steps };
}

function toolCall(st: StepState, status: TraceStageStatus, name: string, id: string, call: Obj): TraceToolCall {
  const e = st.recorded.get(name);
  const out = e?.kind === "tool_call" ? obj(e.output) : undefined;
  const wait = st.waits.get(id);
  const approval: TraceCallApproval | undefined = wait && {
    ...(wait.message !== undefined ? { message: wait.message } : {}),
    ...(wait.answer ? {
      approved: wait.answer.approved,
      ...(wait.answer.by !== undefined ? { by: wait.answer.by } : {}),
      ...(wait.answer.comment !== undefined ? { comment: wait.answer.comment } : {}),
      at: iso(wait.answer.at),
    } : {}),
  };
  const invalid = str(call["invalid"]);
  const head = { id, tool: str(call["tool"]) ?? "?", args: call["args"] ?? null };
  if (e && out) {
    const s = str(out["status"]);
    const startedAt = num(out["started_at"]) ?? e.started_at;
    const endedAt = num(out["ended_at"]) ?? e.at;
    const err = obj(out["error"]);
    const retryable = err?.["retryable"];
    return {
      ...head,
      status: s !== undefined && CALL_STATUSES.has(s) ? (s as TraceToolCallStatus) : "failed",
      ...(out["output"] !== undefined ? { output: out["output"] } : {}),
      ...(err ? { error: { kind: str(err["kind"]) ?? "tool", message: str(err["message"]) ?? "", ...(typeof retryable === "boolean" ? { retryable } : {}) } } : {}),
      attempts: num(out["attempts"]) ?? 0,
      started_at: iso(startedAt), ended_at: iso(endedAt), duration_ms: Math.max(0, endedAt - startedAt),
      ...(st.replayed.has(name) ? { replayed: true as const } : {}),
      ...(invalid !== undefined ? { invalid } : {}),
      attempt: e.attempt,
      ...(approval ? { approval } : {}),
    };
  }
  const pending: TraceToolCallStatus = wait?.answer?.approved === false ? "declined"
    : wait !== undefined && wait.answer === undefined && status === "waiting" ? "waiting"
    : live(status) ? "running" : "cancelled";
  return {
    ...head, status: pending, attempts: 0, started_at: null, ended_at: isoOrNull(undefined), duration_ms: null,
    ...(invalid !== undefined ? { invalid } : {}),
    ...(approval ? { approval } : {}),
  };
}
