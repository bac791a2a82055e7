/// <reference lib="dom" />
/** The form that answers a waiting stage: approve (with optional JSON data) or reject. */
import { api, ApiFailure } from "./api.js";
import { h } from "./dom.js";

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
