/// <reference lib="dom" />
/**
 * The stage panel: everything the trace knows about one execution (a visit, a for_each item
 * or a fallback call): timing, attempts with their errors, input and output, tokens and cost,
 * pool waits, logs, the decisions it took, and the approval form while it waits. Agent stages
 * add their turns and tool calls (with the text of a turn still streaming, and the messages
 * each turn sent, behind a toggle) and `ctx.step` steps;
 * an agent stopped before tool calls that need approval shows one form per call.
 */
import type { Trace, TraceStage } from "../../trace/types.js";
import type { PlanView } from "../types.js";
import type { LiveTurn, WaitingCall } from "./agent.js";
import { approvalForm, callApprovals } from "./approve.js";
import { h, link, type Child } from "./dom.js";
import { clock, cost, count, duration } from "./format.js";
import { jsonView } from "./json-view.js";
import { executionsOf, itemsOf, STATUS_LABEL } from "./model.js";
import { decisionRow } from "./sections.js";
import { stepsSection, turnsSection } from "./turns.js";

export interface PanelContext {
  readonly runId: string;
  readonly trace: Trace;
  readonly plan: PlanView | null;
  readonly onSelect: (entryId: string | undefined) => void;
  readonly onAnswered: () => void;
  /** Tool calls of this entry waiting for approval (from the run's events). */
  readonly waitingCalls?: readonly WaitingCall[];
  /** The turn the model is writing now, if the stream sent its text. */
  readonly live?: LiveTurn;
}

export function pill(status: string): HTMLElement {
  return h("span", { class: `pill st-${status}`, "data-status": status }, STATUS_LABEL[status] ?? status);
}

function fact(label: string, value: Child): HTMLElement[] {
  return [h("dt", null, label), h("dd", null, value)];
}

function section(title: string, ...body: Child[]): HTMLElement {
  return h("section", { class: "panel-section" }, h("h3", null, title), ...body);
}

/**
 * Every execution of a stage (its visits, and fallback calls) with status, start, duration,
 * why it ended and the route taken just before it began (what brought the run back here).
 */
function visitsSection(ctx: PanelContext, execs: readonly TraceStage[], entry: TraceStage): HTMLElement {
  const routes = ctx.trace.decisions.filter((d) => d.kind === "route" && d.taken && d.goto !== undefined);
  const rows = execs.map((x) => {
    const start = Date.parse(x.started_at);
    let cause: (typeof routes)[number] | undefined;
    if (x.visit > 1) for (const d of routes) if (Date.parse(d.at) <= start) cause = d;
    const b = h("button", { class: `visit-row st-${x.status}${x.id === entry.id ? " active" : ""}`, type: "button", "data-entry": x.id, "data-visit": String(x.visit) },
      h("strong", null, `#${x.visit}`), pill(x.status),
      h("span", { class: "muted" }, `${clock(x.started_at)} · ${duration(x.duration_ms)}`),
      x.item_count !== undefined ? h("span", { class: "chip" }, `${x.item_count} items`) : null,
      x.fallback_for ? h("span", { class: "chip" }, `fallback for ${x.fallback_for}`) : null,
      cause ? h("span", { class: "visit-cause" }, `after the route ${cause.stage} #${cause.visit} → ${cause.goto}`) : null,
      x.reason && x.status !== "waiting" ? h("span", { class: "visit-cause" }, x.reason) : null);
    b.addEventListener("click", () => ctx.onSelect(x.id));
    return h("li", null, b);
  });
  return section(`Visits (${new Set(execs.map((x) => x.visit)).size})`, h("ol", { class: "visits" }, ...rows));
}

/** The panel for one entry. */
export function stagePanel(ctx: PanelContext, entry: TraceStage): HTMLElement {
  const { trace } = ctx;
  const spec = ctx.plan?.stages.find((st) => st.id === entry.stage);
  const close = h("button", { class: "icon-btn", type: "button", title: "close", "aria-label": "close the stage panel" }, "×");
  close.addEventListener("click", () => ctx.onSelect(undefined));
  const head = h("div", { class: "panel-head" },
    h("div", null,
      h("h2", { class: "panel-title" }, entry.stage, h("span", { class: "muted" }, ` #${entry.visit}`), entry.item !== undefined ? h("span", { class: "muted" }, ` [${entry.item}]`) : null),
      h("div", { class: "chips" }, pill(entry.status), spec ? h("span", { class: "chip" }, spec.kind) : null, spec?.for_each ? h("span", { class: "chip" }, "for_each") : null,
        entry.fallback_for ? h("span", { class: "chip" }, `fallback for ${entry.fallback_for}`) : null)),
    close);

  const parts: Child[] = [head];
  if (spec?.description) parts.push(h("p", { class: "panel-desc" }, spec.description));

  // Other executions of the same stage: visits (and fallback calls).
  const execs = executionsOf(trace, entry.stage);
  if (execs.length > 1 || entry.item !== undefined) {
    const tabs = h("div", { class: "tabs", role: "tablist" });
    for (const x of execs) {
      const active = x.id === entry.id || (entry.item !== undefined && x.visit === entry.visit && x.fallback_for === entry.fallback_for);
      const b = h("button", { class: `tab st-${x.status}${active ? " active" : ""}`, type: "button", role: "tab", "aria-selected": String(active) }, `visit ${x.visit}${x.fallback_for ? ` ← ${x.fallback_for}` : ""}`);
      b.addEventListener("click", () => ctx.onSelect(x.id));
      tabs.appendChild(b);
    }
    parts.push(tabs);
  }
  if (execs.length > 1 && entry.item === undefined) parts.push(visitsSection(ctx, execs, entry));
  if (entry.item !== undefined) {
    const whole = execs.find((x) => x.visit === entry.visit && x.fallback_for === entry.fallback_for);
    if (whole) {
      const back = h("button", { class: "linkish", type: "button" }, `← all ${whole.item_count ?? ""} items of ${entry.stage} #${entry.visit}`);
      back.addEventListener("click", () => ctx.onSelect(whole.id));
      parts.push(h("div", { class: "crumb" }, back));
    }
  }

  const routeWait = trace.run.waiting && trace.run.waiting.stage === entry.stage && entry.status === "succeeded" && entry.item === undefined && execs[execs.length - 1]?.id === entry.id;
  if (routeWait) parts.push(approvalForm(ctx.runId, { stage: entry.stage, message: trace.run.waiting!.message }, ctx.onAnswered));
  const calls = ctx.waitingCalls ?? [];
  if (calls.length > 0) {
    parts.push(callApprovals(ctx.runId, { stage: entry.stage, visit: entry.visit, calls: calls.map((call) => ({ ...(entry.item !== undefined ? { item: entry.item } : {}), call })) }, ctx.onAnswered));
  } else if (entry.status === "waiting" || entry.status === "escalated") {
    const waitingItems = entry.item === undefined && entry.item_count !== undefined ? itemsOf(trace, entry).filter((x) => x.status === "waiting" || x.status === "escalated").length : 0;
    parts.push(approvalForm(ctx.runId, { stage: entry.stage, ...(entry.item !== undefined ? { item: entry.item } : {}), ...(entry.reason ? { message: entry.reason } : {}), waitingItems }, ctx.onAnswered));
  }

  const facts: HTMLElement[] = [];
  facts.push(...fact("started", clock(entry.started_at)));
  facts.push(...fact("ended", entry.ended_at ? clock(entry.ended_at) : "—"));
  facts.push(...fact("duration", duration(entry.duration_ms)));
  if (entry.queued_ms !== null) facts.push(...fact("queued", duration(entry.queued_ms)));
  if (entry.attempts.length > 0) facts.push(...fact("attempts", String(entry.attempts.length)));
  if (entry.reason) facts.push(...fact(entry.status === "waiting" || entry.status === "escalated" ? "message" : "reason", entry.reason));
  if (entry.model) facts.push(...fact("model", h("code", null, entry.model)));
  if (entry.tokens) facts.push(...fact("tokens", `${count(entry.tokens.input)} in / ${count(entry.tokens.output)} out`));
  if (entry.cost_usd !== undefined) facts.push(...fact("cost", cost(entry.cost_usd)));
  if (entry.pool) facts.push(...fact("pool", h("code", null, entry.pool)));
  if (entry.pool_key !== undefined) facts.push(...fact("pool key", h("code", null, entry.pool_key)));
  if (entry.waited_for) facts.push(...fact("waited for", entry.waited_for));
  if (entry.child_run) facts.push(...fact("child run", link(`/runs/${encodeURIComponent(entry.child_run)}`, { class: "mono" }, entry.child_run)));
  parts.push(h("dl", { class: "facts" }, ...facts));

  if (entry.item_count !== undefined && entry.item === undefined) {
    const items = itemsOf(trace, entry);
    const grid = h("div", { class: "item-grid" });
    for (const it of items.slice(0, 500)) {
      const b = h("button", { class: `item-cell st-${it.status}`, type: "button", title: `item ${it.item}: ${STATUS_LABEL[it.status] ?? it.status}`, "data-item": String(it.item) }, String(it.item));
      b.addEventListener("click", () => ctx.onSelect(it.id));
      grid.appendChild(b);
    }
    const by = new Map<string, number>();
    for (const it of items) by.set(it.status, (by.get(it.status) ?? 0) + 1);
    parts.push(section(`Items (${entry.item_count})`, h("div", { class: "chips" }, ...[...by].map(([st, n]) => h("span", { class: `pill st-${st}` }, `${n} ${STATUS_LABEL[st] ?? st}`))), grid,
      items.length > 500 ? h("p", { class: "muted" }, `showing the first 500 of ${items.length}`) : null));
  }

  parts.push(turnsSection(entry, { agent: spec?.kind === "agent", runId: ctx.runId, ...(ctx.live ? { live: ctx.live } : {}) }), stepsSection(entry));

  if (entry.attempts.length > 0) {
    parts.push(section("Attempts", h("ol", { class: "attempts" }, ...entry.attempts.map((a) => {
      const took = a.ended_at ? Date.parse(a.ended_at) - Date.parse(a.started_at) : null;
      return h("li", { class: `attempt st-${a.status}`, "data-attempt": String(a.n) },
        h("div", { class: "attempt-head" }, h("strong", null, `#${a.n}`), pill(a.status), h("span", { class: "muted" }, `${clock(a.started_at)} · ${duration(took)}`), a.rerun ? h("span", { class: "chip" }, "re-run") : null),
        a.error ? h("div", { class: "attempt-error" }, h("code", null, a.error.kind), " ", a.error.message, a.error.retryable ? h("span", { class: "muted" }, " (retryable)") : null) : null,
        a.retry_in_ms !== undefined ? h("div", { class: "muted" }, `retried after ${duration(a.retry_in_ms)} backoff`) : null,
        a.reason ? h("div", { class: "muted" }, a.reason) : null,
        a.logs && a.logs.length > 0 && entry.attempts.length > 1 ? h("pre", { class: "logs" }, a.logs.join("\n")) : null);
    }))));
  }
  if (entry.status !== "skipped") {
    parts.push(section("Input", jsonView(entry.input, { label: "input" })));
    parts.push(section(entry.item_count !== undefined && entry.item === undefined ? "Output (item outputs in order)" : "Output", jsonView(entry.output, { label: "output" })));
  }
  if (entry.logs && entry.logs.length > 0) parts.push(section("Logs", h("pre", { class: "logs" }, entry.logs.join("\n"))));
  const decisions = trace.decisions.filter((d) => d.stage === entry.stage && d.visit === entry.visit && d.item === entry.item);
  if (decisions.length > 0) parts.push(section("Decisions", h("div", { class: "decisions compact" }, ...decisions.map((d) => decisionRow(d, trace, undefined)))));
  return h("div", { class: "panel-body", "data-entry": entry.id }, ...parts);
}
