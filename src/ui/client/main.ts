/// <reference lib="dom" />
/**
 * The web app's entry: keeps the token, routes `/` (runs list) and `/runs/ID` (a run) with the
 * History API, and asks for the token when the server answers 401.
 */
import { initToken, setToken } from "./api.js";
import { h, link, mount } from "./dom.js";
import { runPage } from "./run-page.js";
import { runsPage } from "./runs-page.js";

let dispose: (() => void) | undefined;
let current = "";

function root(): HTMLElement {
  return document.getElementById("main") as HTMLElement;
}

function route(): void {
  const path = location.pathname;
  if (path === current) return;
  current = path;
  dispose?.();
  const m = /^\/runs\/([^/]+)\/?$/.exec(path);
  dispose = m ? runPage(root(), decodeURIComponent(m[1]!)) : runsPage(root());
  window.scrollTo(0, 0);
}

function askForToken(): void {
  if (document.getElementById("token-form")) return;
  dispose?.();
  dispose = undefined;
  current = "";
  const input = h("input", { type: "password", name: "token", autocomplete: "current-password", placeholder: "token", "aria-label": "token", class: "grow" });
  const form = h("form", { id: "token-form", class: "card token-card" },
    h("h2", null, "This Baton UI needs a token"),
    h("p", { class: "muted" }, "The server was started with --token (or BATON_UI_TOKEN). Enter it to continue; it is kept for this tab only."),
    h("div", { class: "row" }, input, h("button", { class: "btn primary", type: "submit" }, "Continue")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!input.value.trim()) return;
    setToken(input.value.trim());
    route();
  });
  mount(root(), h("div", { class: "page" }, form));
  input.focus();
}

initToken();
mount(document.getElementById("topbar") as HTMLElement,
  link("/", { class: "brand" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "◆"), "Baton"),
  h("span", { class: "brand-sub" }, "runs & traces"));
window.addEventListener("popstate", () => {
  // Same path, other query (e.g. the selected stage): the page reads it on its own.
  if (location.pathname !== current) route();
});
window.addEventListener("baton:navigate", () => route());
window.addEventListener("baton:unauthorized", askForToken);
route();
