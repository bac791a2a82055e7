/// <reference lib="dom" />
/**
 * A JSON viewer: pretty, with objects and arrays collapsible (big ones start collapsed), long
 * strings cut with a "show all" button and long arrays paged, so a 5 MB output stays usable.
 */
import { h, type Child } from "./dom.js";

const MAX_STRING = 600;
const MAX_ITEMS = 100;
/** Containers whose JSON is shorter than this start open. */
const SMALL = 600;

function size(v: unknown): number {
  try {
    return JSON.stringify(v)?.length ?? 0;
  } catch {
    return Infinity;
  }
}

function scalar(v: unknown): HTMLElement {
  if (v === null) return h("span", { class: "j-null" }, "null");
  if (typeof v === "number") return h("span", { class: "j-num" }, String(v));
  if (typeof v === "boolean") return h("span", { class: "j-bool" }, String(v));
  if (typeof v === "string") {
    const quoted = JSON.stringify(v);
    if (quoted.length <= MAX_STRING) return h("span", { class: v.includes("\n") ? "j-str j-multi" : "j-str" }, v.includes("\n") ? v : quoted);
    const el = h("span", { class: "j-str j-multi" }, v.slice(0, MAX_STRING) + "…");
    const more = h("button", { class: "j-more", type: "button" }, `show all (${Math.round(v.length / 1024)} KB)`);
    more.addEventListener("click", () => {
      el.textContent = v;
      more.remove();
    });
    return h("span", null, el, " ", more);
  }
  return h("span", { class: "j-null" }, String(v));
}

function node(v: unknown, depth: number, key: Child): HTMLElement {
  const keyEl = key === null ? null : h("span", { class: "j-key" }, key, ": ");
  if (v === null || typeof v !== "object") return h("div", { class: "j-row" }, keyEl, scalar(v));
  const isArray = Array.isArray(v);
  const entries: [string | number, unknown][] = isArray ? (v as unknown[]).map((e, i) => [i, e]) : Object.entries(v as object);
  if (entries.length === 0) return h("div", { class: "j-row" }, keyEl, h("span", { class: "j-punct" }, isArray ? "[]" : "{}"));
  const summary = isArray ? `[ ${entries.length} item${entries.length === 1 ? "" : "s"} ]` : `{ ${entries.length} key${entries.length === 1 ? "" : "s"} }`;
  const details = h("details", { class: "j-node" }, h("summary", null, keyEl, h("span", { class: "j-punct" }, summary)));
  details.open = depth === 0 || (depth < 4 && size(v) < SMALL);
  const body = h("div", { class: "j-children" });
  let shown = 0;
  const page = (): void => {
    const end = Math.min(entries.length, shown + MAX_ITEMS);
    for (; shown < end; shown++) {
      const [k, e] = entries[shown]!;
      body.appendChild(node(e, depth + 1, isArray ? h("span", { class: "j-index" }, String(k)) : String(k)));
    }
    if (shown < entries.length) {
      const more = h("button", { class: "j-more", type: "button" }, `show ${Math.min(MAX_ITEMS, entries.length - shown)} more of ${entries.length - shown}`);
      more.addEventListener("click", () => {
        more.remove();
        page();
      });
      body.appendChild(more);
    }
  };
  // Build children on first open: a closed 10,000-item array costs nothing.
  if (details.open) page();
  else details.addEventListener("toggle", () => void (shown === 0 && details.open && page()), { once: false });
  details.appendChild(body);
  return details;
}

/** A viewer for one JSON value, with a copy button. */
export function jsonView(value: unknown, opts: { label?: string } = {}): HTMLElement {
  const copy = h("button", { class: "j-copy", type: "button", title: "copy as JSON" }, "copy");
  copy.addEventListener("click", () => {
    void navigator.clipboard?.writeText(JSON.stringify(value, null, 2)).then(
      () => (copy.textContent = "copied"),
      () => (copy.textContent = "copy failed"),
    );
  });
  return h("div", { class: "json", ...(opts.label ? { "data-label": opts.label } : {}) }, copy, node(value === undefined ? null : value, 0, null));
}
