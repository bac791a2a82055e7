/// <reference lib="dom" />
/**
 * The messages an agent turn sent to the model, behind a "messages" toggle on the turn's row:
 * fetched once from `GET /api/runs/:id/messages/:ref` (the turn's `messages_ref`) when first
 * opened, then shown one per role: text (long text collapsed), tool calls (tool, id, input)
 * and tool results (tool, id, output). The list scrolls inside its own box.
 *
 * The messages are read structurally (role + content: a string or an array of parts, as the
 * AI SDK's model messages are): an unknown part or content shows as JSON, never throws.
 */
import type { TraceTurn } from "../../trace/types.js";
import { api } from "./api.js";
import { h, type Child } from "./dom.js";
import { count } from "./format.js";
import { jsonView } from "./json-view.js";
import { textBlock } from "./text-block.js";

/** The run and panel entry a turn belongs to (which toggles are open survives the panel's re-renders). */
export interface MessagesSource {
  readonly runId: string;
  readonly entryId: string;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : undefined);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** Messages by run and ref. A ref is the hash of its messages, so what was fetched never changes. */
const fetched = new Map<string, Promise<unknown>>();
/** The toggles open now, by run, entry and turn: a re-rendered panel opens them again. */
const opened = new Set<string>();
let seq = 0;

function load(runId: string, ref: string): Promise<unknown> {
  const key = `${runId}\n${ref}`;
  let p = fetched.get(key);
  if (!p) {
    p = api.messages(runId, ref);
    fetched.set(key, p);
    p.catch(() => fetched.delete(key)); // opening again retries
  }
  return p;
}

/** A part's head: what it is, the tool and the call id. */
function partHead(label: string, tool: string | undefined, id: string | undefined, extra?: Child): HTMLElement {
  return h("div", { class: "call-head msg-part-head" },
    h("span", { class: "call-label muted" }, label),
    tool !== undefined ? h("code", { class: "call-tool" }, tool) : null,
    extra,
    id !== undefined ? h("span", { class: "muted mono call-id", title: "tool call id" }, id) : null);
}

/** A tool result's output: `{ type, value }` (text, json, error-text, error-json, content, execution-denied). */
function resultBody(output: unknown): { error: boolean; body: HTMLElement } {
  const o = obj(output);
  const type = str(o?.["type"]);
  const value = o?.["value"];
  const error = type === "error-text" || type === "error-json";
  if ((type === "text" || type === "error-text") && typeof value === "string") return { error, body: textBlock(value, "msg-text") };
  if (type === "execution-denied") return { error: true, body: h("div", { class: "call-error" }, "denied", str(o?.["reason"]) ? ` — ${str(o?.["reason"])}` : "") };
  if (type !== undefined && value !== undefined) return { error, body: jsonView(value, { label: "message tool result" }) };
  return { error, body: jsonView(output, { label: "message tool result" }) };
}

/** One part of a message's content. */
function part(p: unknown): HTMLElement {
  const o = obj(p);
  const type = str(o?.["type"]);
  if (o && type === "text" && typeof o["text"] === "string") return h("div", { class: "msg-part msg-text-part" }, textBlock(o["text"], "msg-text"));
  if (o && type === "reasoning" && typeof o["text"] === "string") {
    return h("div", { class: "msg-part msg-reasoning" }, partHead("reasoning", undefined, undefined), textBlock(o["text"], "msg-text"));
  }
  if (o && type === "tool-call") {
    const tool = str(o["toolName"]);
    const id = str(o["toolCallId"]);
    return h("div", { class: "msg-part msg-call", ...(tool !== undefined ? { "data-tool": tool } : {}), ...(id !== undefined ? { "data-call": id } : {}) },
      partHead("tool call", tool ?? "?", id), jsonView(o["input"] ?? null, { label: "message call input" }));
  }
  if (o && type === "tool-result") {
    const tool = str(o["toolName"]);
    const id = str(o["toolCallId"]);
    const { error, body } = resultBody(o["output"]);
    return h("div", { class: `msg-part msg-result${error ? " msg-error" : ""}`, ...(tool !== undefined ? { "data-tool": tool } : {}), ...(id !== undefined ? { "data-call": id } : {}) },
      partHead("tool result", tool ?? "?", id, error ? h("span", { class: "pill st-failed" }, "error") : null), body);
  }
  return h("div", { class: "msg-part msg-other" }, partHead(type ?? "part", undefined, undefined), jsonView(p, { label: "message part" }));
}

/** One message: its role, then its content. */
function messageRow(m: unknown, i: number): HTMLElement {
  const o = obj(m);
  const role = str(o?.["role"]) ?? "?";
  const content = o?.["content"];
  const body: Child = typeof content === "string" ? textBlock(content, "msg-text")
    : Array.isArray(content) ? content.map(part)
    : jsonView(o ? content ?? null : m, { label: "message content" });
  return h("li", { class: `message role-${role.replace(/[^a-z0-9_-]/gi, "_")}`, "data-role": role, "data-index": String(i) },
    h("div", { class: "msg-head" }, h("span", { class: "chip msg-role" }, role), h("span", { class: "muted small" }, `#${i + 1}`)),
    h("div", { class: "msg-body" }, body));
}

/** The messages of one turn, as a list (or a note when the answer is not a list). */
export function messagesList(messages: unknown, turn: number): HTMLElement {
  if (!Array.isArray(messages)) return h("div", { class: "messages-list" }, h("p", { class: "muted small" }, "The recorded messages are not a list:"), jsonView(messages, { label: "messages" }));
  return h("div", { class: "messages-list" },
    h("div", { class: "muted small messages-summary" }, `${count(messages.length)} message${messages.length === 1 ? "" : "s"} sent to the model in turn ${turn}`),
    h("ol", { class: "messages" }, ...messages.map(messageRow)));
}

/**
 * The "messages" toggle of a turn (its button, for the turn's head, and the box it opens), or
 * null when the turn recorded no messages. The first open fetches them.
 */
export function messagesToggle(src: MessagesSource, t: TraceTurn): { button: HTMLElement; box: HTMLElement } | null {
  const ref = t.messages_ref;
  if (!ref) return null;
  const key = `${src.runId}\n${src.entryId}\n${t.agent ?? ""}\n${t.n}`;
  const boxId = `turn-messages-${++seq}`;
  const button = h("button", { class: "linkish small turn-messages-toggle", type: "button", "aria-expanded": "false", "aria-controls": boxId, title: `the messages this turn sent to the model (${ref.slice(0, 12)}…)` }, "messages");
  const box = h("div", { class: "turn-messages", id: boxId, "data-ref": ref, hidden: true });
  let shown = false;
  const show = (): void => {
    if (shown) return;
    shown = true;
    box.dataset["state"] = "loading";
    box.replaceChildren(h("p", { class: "muted small" }, "loading messages…"));
    load(src.runId, ref).then(
      (messages) => {
        box.dataset["state"] = "loaded";
        box.replaceChildren(messagesList(messages, t.n));
        // Bring the box's top into view within the turns list (it may open below its fold).
        if (!box.hidden && box.isConnected) box.scrollIntoView({ block: "nearest" });
      },
      (err: unknown) => {
        shown = false; // the next open tries again
        box.dataset["state"] = "error";
        box.replaceChildren(h("p", { class: "form-error" }, `could not load the messages: ${(err as Error)?.message ?? String(err)}`));
      },
    );
  };
  const set = (open: boolean): void => {
    box.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    button.textContent = open ? "hide messages" : "messages";
    if (open) {
      opened.add(key);
      show();
    } else opened.delete(key);
  };
  button.addEventListener("click", () => set(box.hidden !== false));
  if (opened.has(key)) set(true);
  return { button, box };
}
