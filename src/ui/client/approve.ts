/// <reference lib="dom" />
/**
 * The forms that answer a waiting stage: approve (with optional JSON data) or reject; and, for
 * an agent stopped before tool calls that need approval, one form per call.
 */
import type { WaitingCall } from "./agent.js";
import { api, ApiFailure } from "./api.js";
import { h } from "./dom.js";
import { jsonView } from "./json-view.js";

/**
 * A form answering `stage` (one for_each item when `item` is given, else every waiting item).
 * `onDone` runs after the server recorded the answer.
 */
export function approvalForm(runId: string, o: { stage: string; item?: number; message?: string; waitingItems?: number }, onDone: () => void): HTMLElement {
  const data = h("textarea", { class: "approve-data", rows: "3", spellcheck: "false", placeholder: '{ "approved": true }   (optional: the stage\'s output, as JSON)', "aria-label": "data (JSON)" });
  const comment = h("input", { class: "approve-comment", type: "text", placeholder: "comment (optional)", "aria-label": "comment" });
  const error = h("div", { class: "form-error", role: "alert" });
  const approve = h("button", { class: "btn approve", type: "button", "data-action": "approve" }, o.waitingItems && o.waitingItems > 1 && o.item === undefined ? `Approve all ${o.waitingItems}` : "Approve");
  const reject = h("button", { class: "btn reject", type: "button", "data-action": "reject" }, "Reject");
  const busy = (on: boolean): void => {
    approve.disabled = on;
    reject.disabled = on;
  };
  const send = async (approved: boolean): Promise<void> => {
    error.textContent = "";
    const body: { stage: string; item?: number; comment?: string; data?: unknown } = { stage: o.stage, ...(o.item !== undefined ? { item: o.item } : {}) };
    if (comment.value.trim()) body.comment = comment.value.trim();
    if (approved && data.value.trim()) {
      try {
        body.data = JSON.parse(data.value);
      } catch (err) {
        error.textContent = `data must be JSON: ${(err as Error).message}`;
        return;
      }
    }
    busy(true);
    try {
      await (approved ? api.approve(runId, body) : api.reject(runId, body));
      onDone();
    } catch (err) {
      error.textContent = err instanceof ApiFailure ? err.message : String(err);
      busy(false);
    }
  };
  approve.addEventListener("click", () => void send(true));
  reject.addEventListener("click", () => void send(false));
  return h("div", { class: "approval", "data-stage": o.stage },
    h("div", { class: "approval-head" },
      h("span", { class: "approval-icon", "aria-hidden": "true" }, "?"),
      h("div", null,
        h("div", { class: "approval-title" }, `${o.stage}${o.item !== undefined ? ` [${o.item}]` : ""} is waiting for a decision`, o.waitingItems && o.waitingItems > 1 && o.item === undefined ? ` (${o.waitingItems} items)` : ""),
        o.message ? h("div", { class: "approval-message" }, o.message) : null)),
    data, comment, h("div", { class: "approval-actions" }, approve, reject), error);
}

/**
 * A form answering one tool call waiting for approval: its tool, the tool's approval message,
 * the arguments the model passed, and approve / reject (with an optional comment). Once the
 * server recorded the answer the form stays disabled, saying so, until the call stops waiting.
 */
export function callApprovalForm(runId: string, o: { stage: string; item?: number; call: WaitingCall }, onDone: () => void): HTMLElement {
  const { call } = o;
  const comment = h("input", { class: "approve-comment", type: "text", placeholder: "comment (optional; a rejection tells the model why)", "aria-label": `comment on ${call.id}` });
  const error = h("div", { class: "form-error", role: "alert" });
  const status = h("div", { class: "call-answered muted", "aria-live": "polite" });
  const approve = h("button", { class: "btn approve", type: "button", "data-action": "approve" }, "Approve");
  const reject = h("button", { class: "btn reject", type: "button", "data-action": "reject" }, "Reject");
  const busy = (on: boolean): void => {
    approve.disabled = on;
    reject.disabled = on;
    comment.disabled = on;
  };
  const send = async (approved: boolean): Promise<void> => {
    error.textContent = "";
    const body: { stage: string; call: string; item?: number; comment?: string } = { stage: o.stage, call: call.id, ...(o.item !== undefined ? { item: o.item } : {}) };
    if (comment.value.trim()) body.comment = comment.value.trim();
    busy(true);
    try {
      await (approved ? api.approve(runId, body) : api.reject(runId, body));
      status.textContent = approved ? "approved: the call runs once every call of the turn is answered" : "rejected: the model is told you declined the call";
      el.dataset["answered"] = approved ? "approved" : "rejected";
      onDone();
    } catch (err) {
      error.textContent = err instanceof ApiFailure ? err.message : String(err);
      busy(false);
    }
  };
  approve.addEventListener("click", () => void send(true));
  reject.addEventListener("click", () => void send(false));
  const el = h("div", { class: "approval call-approval", "data-stage": o.stage, "data-call": call.id, ...(o.item !== undefined ? { "data-item": String(o.item) } : {}) },
    h("div", { class: "approval-head" },
      h("span", { class: "approval-icon", "aria-hidden": "true" }, "?"),
      h("div", { class: "grow" },
        h("div", { class: "approval-title" }, h("code", { class: "call-tool" }, call.tool), h("span", { class: "muted call-id" }, ` call ${call.id}`)),
        h("div", { class: "approval-message" }, call.message))),
    jsonView(call.args, { label: "args" }),
    comment, h("div", { class: "approval-actions" }, approve, reject), status, error);
  return el;
}

/** Every tool call of one stage visit (its items included) that waits for approval, one form each. */
export function callApprovals(runId: string, o: { stage: string; visit: number; calls: readonly { item?: number; call: WaitingCall }[] }, onDone: () => void): HTMLElement {
  const n = o.calls.length;
  return h("div", { class: "call-approvals", "data-stage": o.stage },
    h("div", { class: "call-approvals-title" }, `${o.stage} #${o.visit}: ${n} tool call${n === 1 ? "" : "s"} wait${n === 1 ? "s" : ""} for approval`,
      h("span", { class: "muted" }, n > 1 ? " — the run goes on once every one is answered" : "")),
    ...o.calls.map((c) => callApprovalForm(runId, { stage: o.stage, ...(c.item !== undefined ? { item: c.item } : {}), call: c.call }, onDone)));
}
