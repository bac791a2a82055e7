/// <reference lib="dom" />
/** The runs list: newest first, filtered by status and pipeline, refreshed every few seconds; and a form to start a run. */
import { RUN_STATUSES } from "../../base/result.js";
import type { RunSummary, WaitReason } from "../types.js";
import { api, ApiFailure } from "./api.js";
import { h, link, mount, navigate } from "./dom.js";
import { ago, cost, dateTime, duration, tokens } from "./format.js";

const POLL_MS = 2500;

const firstLine = (text: string): string => text.split("\n", 1)[0]!.trim();

/** "approval at review: Publish v1?", "signal review_done at wait_for_ci (deadline …)", "sleeps at cool_down until …" (`full`: every message whole). */
export function waitText(w: WaitReason, full = false): string {
  const at = `${w.stage}${w.item !== undefined ? `[${w.item}]` : ""}`;
  if (w.kind === "sleep") return `sleeps at ${at}${w.due_at ? ` until ${dateTime(w.due_at)}` : ""}`;
  const due = w.due_at ? ` (deadline ${dateTime(w.due_at)})` : "";
  const what = w.kind === "signal" ? `signal ${w.signal ?? ""} at ${at}` : w.kind === "escalation" ? `escalation at ${at}` : `${w.calls ? `approval of ${w.calls} tool call${w.calls === 1 ? "" : "s"}` : "approval"} at ${at}`;
  // A signal's or a sleep's message repeats what is said already (it is in the tooltip).
  const msg = w.message === "" || (!full && w.kind === "signal") ? "" : `: ${full ? w.message : firstLine(w.message)}`;
  return `${what}${due}${msg}`;
}

/** Why a run stopped or what it waits for, in one line (empty for other runs). */
function reasonOf(r: RunSummary): HTMLElement | null {
  if (r.waiting_for && r.waiting_for.length > 0) {
    const [w, ...more] = r.waiting_for;
    return h("div", { class: "run-reason waits", "data-wait": w!.kind, title: r.waiting_for.map((x) => waitText(x, true)).join("\n") },
      w!.kind === "sleep" ? null : h("span", { class: "reason-kind" }, "waits for "), waitText(w!), more.length > 0 ? h("span", { class: "muted" }, ` · +${more.length} more`) : null);
  }
  if (r.error) {
    const where = r.error.stage ? `${r.error.stage}: ` : "";
    return h("div", { class: "run-reason error", "data-error-kind": r.error.kind, title: `${where}${r.error.message}` }, h("code", null, r.error.kind), " ", where, firstLine(r.error.message));
  }
  return null;
}

function startForm(): HTMLElement {
  const template = h("input", { type: "text", name: "template", placeholder: "examples/research-report.yaml", "aria-label": "template path", class: "grow" });
  const inputs = h("textarea", { name: "inputs", rows: "2", spellcheck: "false", placeholder: '{ "topic": "tides" }   (inputs, JSON)', "aria-label": "inputs (JSON)" });
  const error = h("div", { class: "form-error", role: "alert" });
  const go = h("button", { class: "btn primary", type: "submit" }, "Start run");
  const form = h("form", { class: "start-form" },
    h("div", { class: "row" }, template, go), inputs, error,
    h("p", { class: "muted small" }, "The template path is read on the server (relative to where `baton ui` runs); the run executes in the UI's process."));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    error.textContent = "";
    let values: Record<string, unknown> = {};
    if (inputs.value.trim()) {
      try {
        values = JSON.parse(inputs.value) as Record<string, unknown>;
      } catch (err) {
        error.textContent = `inputs must be a JSON object: ${(err as Error).message}`;
        return;
      }
    }
    go.disabled = true;
    api.start(template.value.trim(), values).then(
      (r) => navigate(`/runs/${encodeURIComponent(r.id)}`),
      (err: unknown) => {
        go.disabled = false;
        error.textContent = err instanceof ApiFailure ? err.message : String(err);
      },
    );
  });
  return h("details", { class: "card start-card" }, h("summary", null, "Start a run"), form);
}

/** Mount the runs list into `root`; returns a function that tears it down. */
export function runsPage(root: HTMLElement): () => void {
  const params = new URL(location.href).searchParams;
  const status = h("select", { "aria-label": "status", name: "status" }, h("option", { value: "" }, "any status"), ...RUN_STATUSES.map((st) => h("option", { value: st }, st)));
  status.value = params.get("status") ?? "";
  const pipeline = h("select", { "aria-label": "pipeline", name: "pipeline" }, h("option", { value: "" }, "any pipeline"));
  const known = new Set<string>();
  const wanted = params.get("pipeline") ?? "";
  const body = h("div", { class: "runs-body" }, h("p", { class: "muted" }, "Loading…"));
  let timer: number | undefined;
  let disposed = false;
  let lastKey = "";

  const addPipelines = (names: Iterable<string>): void => {
    for (const n of names) {
      if (known.has(n)) continue;
      known.add(n);
      pipeline.appendChild(h("option", { value: n }, n));
    }
    if (wanted && pipeline.value !== wanted && known.has(wanted)) pipeline.value = wanted;
  };
  if (wanted) addPipelines([wanted]);

  const table = (runs: RunSummary[]): HTMLElement => {
    if (runs.length === 0) {
      return h("div", { class: "empty" }, h("h2", null, status.value || pipeline.value ? "No runs match" : "No runs yet"),
        h("p", null, "Start one with ", h("code", null, "baton run FILE"), " or with the form above."));
    }
    const now = Date.now();
    return h("table", { class: "runs" },
      h("thead", null, h("tr", null, ...["status", "pipeline", "run", "started", "duration", "tokens in / out", "cost"].map((c) => h("th", null, c)))),
      h("tbody", null, ...runs.map((r) => {
        const href = `/runs/${encodeURIComponent(r.id)}`;
        const tr = h("tr", { class: "run-row", "data-run": r.id, "data-status": r.status },
          h("td", null, h("span", { class: `pill st-${r.status}` }, r.status)),
          h("td", null, link(href, { class: "strong" }, r.pipeline), reasonOf(r)),
          h("td", { class: "mono" }, r.id, r.parent_id ? h("div", { class: "muted small" }, "↳ child of ", r.parent_id) : null),
          h("td", { title: r.started_at }, dateTime(r.started_at), h("div", { class: "muted small" }, ago(r.started_at, now))),
          h("td", { class: "num" }, r.duration_ms === null ? h("span", { class: "muted" }, r.status === "running" ? "running…" : r.status) : duration(r.duration_ms)),
          h("td", { class: "num" }, tokens(r.tokens)),
          h("td", { class: "num" }, cost(r.cost_usd)));
        tr.addEventListener("click", (e) => {
          if ((e.target as Element).closest("a")) return;
          navigate(href);
        });
        return tr;
      })));
  };

  const load = async (): Promise<void> => {
    window.clearTimeout(timer);
    if (document.hidden && lastKey !== "") {
      timer = window.setTimeout(() => void load(), POLL_MS); // a background tab polls nothing
      return;
    }
    try {
      const runs = await api.runs({ ...(status.value ? { status: status.value } : {}), ...(pipeline.value ? { pipeline: pipeline.value } : {}), limit: 200 });
      if (disposed) return;
      addPipelines(runs.map((r) => r.pipeline));
      const key = JSON.stringify([runs, status.value, pipeline.value, Math.floor(Date.now() / 30_000)]);
      if (key !== lastKey) {
        lastKey = key;
        mount(body, table(runs));
      }
    } catch (err) {
      if (disposed) return;
      lastKey = "";
      mount(body, h("div", { class: "empty" }, h("h2", null, "Could not load runs"), h("p", null, err instanceof ApiFailure ? err.message : String(err))));
      if (err instanceof ApiFailure && err.status === 401) return; // the token form takes over
    }
    if (!disposed) timer = window.setTimeout(() => void load(), POLL_MS);
  };

  const onFilter = (): void => {
    const url = new URL(location.href);
    for (const [k, el] of [["status", status], ["pipeline", pipeline]] as const) {
      if (el.value) url.searchParams.set(k, el.value);
      else url.searchParams.delete(k);
    }
    history.replaceState(history.state, "", url.pathname + url.search);
    mount(body, h("p", { class: "muted" }, "Loading…"));
    void load();
  };
  status.addEventListener("change", onFilter);
  pipeline.addEventListener("change", onFilter);

  mount(root, h("div", { class: "page runs-page" },
    h("div", { class: "page-head" }, h("h1", null, "Runs"), h("div", { class: "filters" }, status, pipeline)),
    startForm(),
    h("section", { class: "card" }, body)));
  document.title = "Runs · Baton";
  void load();
  return () => {
    disposed = true;
    window.clearTimeout(timer);
  };
}
