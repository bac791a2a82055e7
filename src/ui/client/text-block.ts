/// <reference lib="dom" />
/** A block of text for the stage panel (a turn's reply, a message's text), collapsed when long. */
import { h } from "./dom.js";
import { count } from "./format.js";

/** Text longer than this (or with more lines) starts collapsed. */
const LONG_CHARS = 320;
const LONG_LINES = 6;

/** A block of text, collapsed to a few lines when long, with a button to show it all. */
export function textBlock(text: string, cls: string): HTMLElement {
  const pre = h("pre", { class: `turn-text ${cls}` }, text);
  const long = text.length > LONG_CHARS || text.split("\n").length > LONG_LINES;
  if (!long) return pre;
  pre.classList.add("collapsed");
  const more = h("button", { class: "linkish small turn-more", type: "button", "aria-expanded": "false" }, `show all (${count(text.length)} characters)`);
  more.addEventListener("click", () => {
    const open = pre.classList.toggle("collapsed") === false;
    more.textContent = open ? "show less" : `show all (${count(text.length)} characters)`;
    more.setAttribute("aria-expanded", String(open));
  });
  return h("div", { class: "turn-text-wrap" }, pre, more);
}
