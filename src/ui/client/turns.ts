/// <reference lib="dom" />
/**
 * The stage panel's agent sections: the turns of the agent's loop (model, tokens, finish
 * reason, cost, the turn's text, its tool calls with arguments, status, attempts, duration,
 * output or error), the text of a turn still streaming, and the `ctx.step` steps. Each list
 * scrolls inside its section, so a stage with many turns keeps the panel usable.
 */
import type { TraceStage, TraceStep, TraceToolCall, TraceTurn } from "../../trace/types.js";
import { turnsOf, stepsOf, type LiveTurn } from "./agent.js";
import { h, type Child } from "./dom.js";
import { clock, cost, count, duration } from "./format.js";
import { jsonView } from "./json-view.js";
import { messagesToggle, type MessagesSource } from "./messages.js";
import { textBlock } from "./text-block.js";

function badge(label: string, cls: string, title?: string): HTMLElement {
  return h("span", { class: `chip ${cls}`, ...(title ? { title } : {}) }, label);
}

const replayedBadge = (what: string): HTMLElement => badge("replayed", "replayed", `${what} was recorded before and read back from the run's log, not run again`);

/** How long a call took, or what it is doing. */
function callTime(c: TraceToolCall): string {
  if (c.status === "waiting") return "waiting for approval";
  if (c.status === "running") return "no outcome yet";
  const took = c.duration_ms ?? (c.ended_at && c.started_at ? Date.parse(c.ended_at) - Date.parse(c.started_at) : null);
  return duration(took);
}

/** A call's approval: its message and the human's answer. */
function approvalLine(a: NonNullable<TraceToolCall["approval"]>): HTMLElement {
  const answer = a.approved === undefined ? "waiting for a human" : a.approved ? "approved" : "rejected";
  return h("div", { class: "call-approval-line muted small" }, "approval: ", a.message ? h("span", { class: "call-approval-message" }, `“${a.message}” `) : null,
    h("strong", null, answer), a.by ? ` by ${a.by}` : "", a.comment ? ` — “${a.comment}”` : "");
}

/** One tool call: tool, status, attempts, duration, replayed; its arguments; its output or error. */
export function toolCallRow(c: TraceToolCall): HTMLElement {
  const err = c.error;
  return h("li", { class: `tool-call st-${c.status}`, "data-call": c.id, "data-status": c.status, "data-tool": c.tool },
    h("div", { class: "call-head" },
      h("code", { class: "call-tool" }, c.tool),
      h("span", { class: `pill call-status st-${c.status === "declined" ? "cancelled" : c.status}`, "data-status": c.status }, c.status),
      h("span", { class: "muted call-meta" }, `${c.attempts} attempt${c.attempts === 1 ? "" : "s"} · ${callTime(c)}`),
      c.replayed ? replayedBadge("This call") : null,
      h("span", { class: "muted mono call-id", title: "tool call id" }, c.id)),
    c.approval ? approvalLine(c.approval) : null,
    c.invalid ? h("div", { class: "call-error" }, h("code", null, "invalid"), " ", c.invalid) : null,
    h("div", { class: "call-part" }, h("div", { class: "call-label muted" }, "args"), jsonView(c.args, { label: "args" })),
    err
      ? h("div", { class: "call-error" }, h("code", null, err.kind), " ", err.message, err.retryable ? h("span", { class: "muted" }, " (retryable)") : null)
      : c.output !== undefined
        ? h("div", { class: "call-part" }, h("div", { class: "call-label muted" }, "output"), jsonView(c.output, { label: "call output" }))
        : null);
}

/**
 * One turn: its head (n, model, tokens, finish reason, cost, timing, a "messages" toggle when
 * the turn recorded them and `src` says where to fetch them), the messages, text and tool calls.
 */
export function turnRow(t: TraceTurn, src?: MessagesSource): HTMLElement {
  const took = t.duration_ms;
  const calls = t.tool_calls;
  const messages = src ? messagesToggle(src, t) : null;
  return h("li", { class: "turn", "data-turn": String(t.n) },
    h("div", { class: "turn-head" },
      h("strong", null, `turn ${t.n}`),
      h("code", { class: "turn-model" }, t.model),
      t.agent ? badge(`agent ${t.agent}`, "agent") : null,
      h("span", { class: "muted turn-tokens", title: "tokens in / out" }, `${count(t.tokens.input)} in / ${count(t.tokens.output)} out${t.tokens.cached ? ` (${count(t.tokens.cached)} cached)` : ""}`),
      badge(t.finish_reason, `finish finish-${t.finish_reason}`, "finish reason"),
      t.cost_usd !== undefined ? h("span", { class: "muted turn-cost" }, cost(t.cost_usd)) : null,
      h("span", { class: "muted turn-time" }, `${clock(t.started_at)} · ${duration(took)}`),
      t.replayed ? replayedBadge("This turn") : null,
      messages?.button),
    messages?.box,
    t.text ? textBlock(t.text, "turn-reply") : null,
    calls.length > 0
      ? h("div", { class: "turn-calls" },
          h("div", { class: "muted small" }, `${calls.length} tool call${calls.length === 1 ? "" : "s"}`),
          h("ol", { class: "tool-calls" }, ...calls.map(toolCallRow)))
      : null);
}

/** The text of a turn the model is still writing: `turn N — streaming…`. */
export function liveTurnRow(live: LiveTurn | undefined): HTMLElement {
  const el = h("div", { class: "turn-live", "aria-live": "polite" });
  updateLiveTurn(el, live);
  return el;
}

/** Show `live` in a {@link liveTurnRow} element (hidden when there is none). */
export function updateLiveTurn(el: HTMLElement, live: LiveTurn | undefined): void {
  el.hidden = live === undefined;
  if (!live) {
    el.replaceChildren();
    delete el.dataset["turn"];
    return;
  }
  el.dataset["turn"] = String(live.turn);
  el.replaceChildren(
    h("div", { class: "turn-head" }, h("strong", null, `turn ${live.turn}`), h("span", { class: "streaming" }, " — streaming…")),
    h("pre", { class: "turn-text live-text" }, live.text));
}

/**
 * The Turns section of an agent stage (null when the entry has no turns and is not running):
 * one row per turn with its tool calls nested, then the turn being streamed, if any. With
 * `runId`, each turn that recorded its messages can show them (fetched from the API).
 */
export function turnsSection(entry: TraceStage, o: { agent: boolean; live?: LiveTurn; runId?: string }): HTMLElement | null {
  const turns = turnsOf(entry);
  const running = entry.status === "running" || entry.status === "retrying";
  const live = o.live && !turns.some((t) => t.n === o.live!.turn) ? o.live : undefined;
  if (turns.length === 0 && !live && !(o.agent && running)) return null;
  const calls = turns.reduce((n, t) => n + t.tool_calls.length, 0);
  const tokens = turns.reduce((a, t) => ({ input: a.input + t.tokens.input, output: a.output + t.tokens.output }), { input: 0, output: 0 });
  const summary: Child[] = turns.length === 0 ? [] : [
    `${turns.length} turn${turns.length === 1 ? "" : "s"} · ${calls} tool call${calls === 1 ? "" : "s"} · ${count(tokens.input)} in / ${count(tokens.output)} out`,
  ];
  return h("section", { class: "panel-section turns-section" },
    h("h3", null, `Turns${turns.length ? ` (${turns.length})` : ""}`),
    summary.length ? h("div", { class: "muted small section-summary" }, ...summary) : null,
    h("div", { class: "scroll-box turns-box" },
      turns.length ? h("ol", { class: "turns" }, ...turns.map((t) => turnRow(t, o.runId !== undefined ? { runId: o.runId, entryId: entry.id } : undefined))) : running && !live ? h("p", { class: "muted small" }, "No turn recorded yet.") : null,
      running || live ? liveTurnRow(live) : null));
}

function stepRow(st: TraceStep): HTMLElement {
  const took = st.duration_ms;
  return h("li", { class: `step st-${st.status}`, "data-step": st.name },
    h("code", { class: "step-name" }, st.name),
    h("span", { class: `pill st-${st.status}` }, st.status),
    h("span", { class: "muted" }, `${clock(st.started_at)} · ${duration(took)}`),
    st.replayed ? replayedBadge("This step") : null);
}

/** The Steps section (`ctx.step`), null when the entry has none. */
export function stepsSection(entry: TraceStage): HTMLElement | null {
  const steps = stepsOf(entry);
  if (steps.length === 0) return null;
  return h("section", { class: "panel-section steps-section" },
    h("h3", null, `Steps (${steps.length})`),
    h("div", { class: "scroll-box steps-box" }, h("ol", { class: "steps" }, ...steps.map(stepRow))));
}
