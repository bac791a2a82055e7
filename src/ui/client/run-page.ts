/// <reference lib="dom" />
/**
 * The run page: header, approval banners, graph, timeline, final output, decisions, errors
 * and the stage panel. While the run goes, its event stream (SSE) triggers a refresh of the
 * trace; sections whose data did not change are left alone (open JSON nodes, typed text stay).
 * While something waits, the run's approval events are read too (tool calls waiting for
 * approval, with their messages); the stream's `delta` events show a turn's text as the model
 * writes it, in the stage panel, until the turn is in the trace.
 */
import type { Trace } from "../../trace/types.js";
import type { PlanView, RunDetail } from "../types.js";
import { CALL_EVENT_TYPES, CallWaits, liveTurnOver, parseDelta, waitKey, type LiveTurn, type LogEvent, type WaitingCall } from "./agent.js";
import { api, ApiFailure } from "./api.js";
import { approvalForm, callApprovals } from "./approve.js";
import { dagModel } from "./dag.js";
import { GraphView } from "./graph-view.js";
import { h, link, mount } from "./dom.js";
import { ago, cost, dateTime, duration, tokens } from "./format.js";
import { jsonView } from "./json-view.js";
import { entryById, latestOf, questionsOf, STATUS_LABEL } from "./model.js";
import { pill, stagePanel } from "./panel.js";
import { decisionsSection, errorsSection, outputSection } from "./sections.js";
import { drawTimeline } from "./timeline.js";
import { updateLiveTurn } from "./turns.js";

const LIVE = new Set(["running", "waiting"]);

function card(title: string, cls: string, ...extra: HTMLElement[]): { el: HTMLElement; body: HTMLElement; head: HTMLElement } {
  const body = h("div", { class: "card-body" });
  const head = h("div", { class: "card-head" }, h("h2", null, title), ...extra);
  return { el: h("section", { class: `card ${cls}` }, head, body), body, head };
}

function legend(): HTMLElement {
  const items = ["succeeded", "running", "retrying", "waiting", "failed", "skipped", "cancelled", "pending"];
  return h("div", { class: "legend" },
    ...items.map((st) => h("span", { class: "legend-item" }, h("span", { class: `swatch st-${st}` }), STATUS_LABEL[st] ?? st)),
    h("span", { class: "legend-item" }, h("span", { class: "swatch route-swatch" }), "route taken"));
}

/** A panel for a stage that has not run: what the plan says about it. */
function pendingPanel(spec: PlanView["stages"][number], onClose: () => void): HTMLElement {
  const close = h("button", { class: "icon-btn", type: "button", title: "close" }, "×");
  close.addEventListener("click", onClose);
  return h("div", { class: "panel-body" },
    h("div", { class: "panel-head" }, h("div", null, h("h2", { class: "panel-title" }, spec.id), h("div", { class: "chips" }, pill("pending"), h("span", { class: "chip" }, spec.kind))), close),
    spec.description ? h("p", { class: "panel-desc" }, spec.description) : null,
    h("p", { class: "muted" }, "This stage has not run in this run (yet)."),
    h("dl", { class: "facts" },
      h("dt", null, "needs"), h("dd", null, spec.deps.length ? spec.deps.join(", ") : "—"),
      spec.if ? [h("dt", null, "if"), h("dd", null, h("code", null, spec.if))] : null,
      spec.for_each_expr ? [h("dt", null, "for_each"), h("dd", null, h("code", null, spec.for_each_expr))] : null));
}

/** Mount the run page for `id` into `root`; returns a function that tears it down. */
export function runPage(root: HTMLElement, id: string): () => void {
  let detail: RunDetail | undefined;
  let selected = new URL(location.href).searchParams.get("sel") ?? undefined;
  let stream: EventSource | undefined;
  let refreshTimer: number | undefined;
  let ticker: number | undefined;
  let disposed = false;
  let loading = false;
  let again = false;
  const keys = new Map<string, string>();
  const waits = new CallWaits();
  /** Text of turns being written, by execution (`STAGE#VISIT[ITEM]`). */
  const live = new Map<string, LiveTurn>();

  const head = h("header", { class: "run-head" });
  const banners = h("div", { class: "banners" });
  const graph = card("Graph", "graph-card", legend());
  const timeline = card("Timeline", "timeline-card", h("span", { class: "muted small" }, "one bar per attempt · dashed: waiting to retry · thin: queued"));
  const output = card("Final output", "output-card");
  const decisions = card("Decisions", "decisions-card");
  const errors = card("Errors", "errors-card");
  const panel = h("div", { class: "card panel" });
  const crumbs = h("nav", { class: "crumbs" }, link("/", null, "Runs"), h("span", { class: "sep" }, "/"), h("span", { class: "mono" }, id));
  mount(root, h("div", { class: "page run-page" }, crumbs, head, banners,
    h("div", { class: "run-grid" },
      h("div", { class: "main-col" }, graph.el, timeline.el, output.el, decisions.el, errors.el),
      h("aside", { class: "side-col" }, panel))));

  /** Re-render `el` only when `key` changed. */
  const changed = (name: string, key: string): boolean => {
    if (keys.get(name) === key) return false;
    keys.set(name, key);
    return true;
  };

  const select = (entryId: string | undefined): void => {
    selected = entryId;
    const url = new URL(location.href);
    if (entryId) url.searchParams.set("sel", entryId);
    else url.searchParams.delete("sel");
    history.replaceState(history.state, "", url.pathname + url.search);
    render();
    if (entryId && window.matchMedia("(max-width: 1100px)").matches) panel.scrollIntoView({ behavior: "smooth", block: "start" });
  };
  const selectStage = (stage: string): void => {
    const trace = detail?.trace;
    const last = trace ? latestOf(trace, stage) : undefined;
    select(last ? last.id : `stage:${stage}`);
  };

  const renderHead = (d: RunDetail, now: number): void => {
    const run = d.run;
    const elapsed = run.duration_ms ?? now - Date.parse(run.started_at);
    const actions: HTMLElement[] = [];
    if (LIVE.has(run.status)) {
      const cancel = h("button", { class: "btn subtle", type: "button", "data-action": "cancel" }, "Cancel run");
      cancel.addEventListener("click", () => {
        if (!confirm(`Cancel run ${run.id}? It stays resumable with \`baton resume\`.`)) return;
        cancel.disabled = true;
        api.cancel(run.id).then(() => refresh(0), (err: unknown) => {
          cancel.disabled = false;
          alert(err instanceof ApiFailure ? err.message : String(err));
        });
      });
      actions.push(cancel);
    }
    mount(head,
      h("div", { class: "run-title" },
        h("h1", null, run.pipeline), h("span", { class: `pill big st-${run.status}`, "data-run-status": run.status }, run.status),
        LIVE.has(run.status) && stream ? h("span", { class: "live-dot", title: "following the run live" }, "live") : null,
        h("div", { class: "spacer" }), ...actions),
      h("div", { class: "run-meta" },
        h("span", null, h("span", { class: "muted" }, "run "), h("span", { class: "mono" }, run.id)),
        h("span", null, h("span", { class: "muted" }, "started "), dateTime(run.started_at)),
        h("span", null, h("span", { class: "muted" }, run.duration_ms !== null ? "took " : run.waiting ? "waiting since " : "running for "),
          run.duration_ms === null && run.waiting ? ago(run.waiting.at, now) : duration(elapsed)),
        h("span", null, h("span", { class: "muted" }, "tokens "), tokens(run.tokens)),
        h("span", null, h("span", { class: "muted" }, "cost "), cost(run.cost_usd)),
        run.parent_id ? h("span", null, h("span", { class: "muted" }, "parent "), link(`/runs/${encodeURIComponent(run.parent_id)}`, { class: "mono" }, run.parent_id)) : null,
        d.plan ? h("span", { title: d.plan.hash }, h("span", { class: "muted" }, "plan "), h("span", { class: "mono" }, d.plan.hash.slice(0, 12))) : null));
    document.title = `${run.pipeline} · ${run.status} · Baton`;
  };

  /** Tool calls waiting for approval in one stage visit (its items included). */
  const callsOfVisit = (trace: Trace, stage: string, visit: number): { item?: number; call: WaitingCall }[] =>
    trace.stages.filter((s) => s.stage === stage && s.visit === visit)
      .flatMap((s) => waits.of(s).map((call) => ({ ...(s.item !== undefined ? { item: s.item } : {}), call })));

  const renderBanners = (trace: Trace): void => {
    // One form per waiting stage visit (answering every waiting item of a for_each at once),
    // or, for an agent stopped before tool calls that need approval, one form per call.
    const questions = questionsOf(trace).map((q) => ({ ...q, calls: callsOfVisit(trace, q.stage, q.visit) }));
    if (!changed("banners", JSON.stringify(questions))) return;
    mount(banners, ...questions.map((q) => q.calls.length > 0
      ? callApprovals(id, { stage: q.stage, visit: q.visit, calls: q.calls }, () => refresh(0))
      : approvalForm(id, { stage: q.stage, ...(q.message ? { message: q.message } : {}), waitingItems: q.items }, () => refresh(0))));
  };

  const graphView = new GraphView(graph.body, {
    toolsHost: graph.head,
    onSelect: (stage) => selectStage(stage),
    onSelectItem: (stage, item) => {
      const last = detail ? latestOf(detail.trace, stage) : undefined;
      const entry = last ? detail!.trace.stages.find((x) => x.stage === stage && x.visit === last.visit && x.item === item && x.fallback_for === last.fallback_for) : undefined;
      select(entry ? entry.id : last?.id);
    },
  });
  const renderDag = (d: RunDetail): void => {
    const model = dagModel(d.plan, d.trace);
    const sel = selected?.startsWith("stage:") ? selected.slice(6) : selected ? entryById(d.trace, selected)?.stage : undefined;
    if (!changed("dag", JSON.stringify([model, sel]))) return;
    graphView.show(model, sel);
  };

  const renderPanel = (d: RunDetail): void => {
    const trace = d.trace;
    if (selected?.startsWith("stage:")) {
      const spec = d.plan?.stages.find((st) => st.id === selected!.slice(6));
      const last = latestOf(trace, selected.slice(6));
      if (last) {
        selected = last.id; // it started meanwhile
      } else if (spec) {
        if (changed("panel", `pending:${spec.id}`)) mount(panel, pendingPanel(spec, () => select(undefined)));
        return;
      } else selected = undefined;
    }
    const entry = selected ? entryById(trace, selected) : undefined;
    if (entry) {
      const calls = waits.of(entry);
      if (changed("panel", JSON.stringify([entry, d.run.status, calls]))) {
        const turn = entry.fallback_for === undefined ? live.get(waitKey(entry.stage, entry.visit, entry.item)) : undefined;
        mount(panel, stagePanel({ runId: id, trace, plan: d.plan, onSelect: select, onAnswered: () => refresh(0), waitingCalls: calls, ...(turn ? { live: turn } : {}) }, entry));
      }
      return;
    }
    if (!changed("panel", JSON.stringify(["run", d.run.inputs, d.run.status]))) return;
    mount(panel, h("div", { class: "panel-body" },
      h("div", { class: "panel-head" }, h("h2", { class: "panel-title" }, "Run")),
      h("p", { class: "hint" }, "Click a stage in the graph or a bar in the timeline to see its input, output, attempts and logs."),
      h("section", { class: "panel-section" }, h("h3", null, "Inputs"), jsonView(d.run.inputs, { label: "inputs" })),
      d.run.waiting ? h("section", { class: "panel-section" }, h("h3", null, "Waiting"), h("p", null, `${d.run.waiting.stage}: ${d.run.waiting.message}`)) : null));
  };

  const render = (): void => {
    const d = detail;
    if (!d || disposed) return;
    const now = Date.now();
    for (const [k, l] of live) if (liveTurnOver(d.trace, k, l)) live.delete(k);
    renderHead(d, now);
    renderBanners(d.trace);
    renderDag(d);
    drawTimeline(timeline.body, d.trace, { now, ...(selected ? { selected } : {}), onSelect: select });
    renderPanel(d);
    if (changed("output", JSON.stringify([d.run.status, d.run.output, d.run.error, d.trace.assembly]))) mount(output.body, outputSection(d.trace, selectStage));
    if (changed("decisions", JSON.stringify(d.trace.decisions))) mount(decisions.body, decisionsSection(d.trace, selectStage));
    const errs = errorsSection(d.trace, selectStage);
    errors.el.hidden = errs === null;
    if (errs && changed("errors", JSON.stringify(d.trace.errors))) mount(errors.body, errs);
  };

  const follow = (after: number): void => {
    if (stream || disposed) return;
    stream = new EventSource(api.streamUrl(id, after));
    stream.onmessage = () => refresh(150);
    stream.addEventListener("delta", (ev) => onDelta((ev as MessageEvent<string>).data));
    stream.addEventListener("end", () => {
      stream?.close();
      stream = undefined;
      refresh(0);
    });
    stream.onerror = () => {
      // The browser reconnects by itself (retry: 2 s); after a stream error event the server closed it.
      if (stream?.readyState === EventSource.CLOSED) {
        stream = undefined;
        refresh(1000);
      }
    };
  };

  /** A turn's text so far: show it under the turn in the panel (in place when the panel has the slot). */
  const onDelta = (data: string): void => {
    const delta = parseDelta(data);
    if (!delta || disposed) return;
    if (detail && liveTurnOver(detail.trace, delta.key, delta.live)) return;
    live.set(delta.key, delta.live);
    const entry = detail && selected ? entryById(detail.trace, selected) : undefined;
    if (!detail || !entry || entry.fallback_for !== undefined || waitKey(entry.stage, entry.visit, entry.item) !== delta.key) return;
    const slot = panel.querySelector<HTMLElement>(".panel-body > .turns-section .turn-live");
    if (slot) updateLiveTurn(slot, delta.live);
    else {
      keys.delete("panel");
      renderPanel(detail);
    }
  };

  /** Read the approval events after the last one read (tool calls waiting, answers). */
  const loadCalls = async (): Promise<void> => {
    try {
      waits.apply(await api.events<LogEvent>(id, waits.cursor, CALL_EVENT_TYPES));
    } catch {
      // Then the trace's own waiting calls are shown (or, without those, the stage-wide form,
      // whose answer the server refuses with a message when several calls wait).
    }
  };

  const load = async (): Promise<void> => {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    try {
      const d = await api.run(id);
      if (disposed) return;
      if (waits.any || d.trace.stages.some((s) => s.status === "waiting")) await loadCalls();
      if (disposed) return;
      detail = d;
      if (LIVE.has(d.run.status)) {
        follow(d.seq);
        ticker ??= window.setInterval(() => {
          if (detail && detail.run.status === "running" && !document.hidden) {
            renderHead(detail, Date.now());
            drawTimeline(timeline.body, detail.trace, { now: Date.now(), ...(selected ? { selected } : {}), onSelect: select });
          }
        }, 500);
      } else {
        stream?.close();
        stream = undefined;
        if (ticker !== undefined) window.clearInterval(ticker);
        ticker = undefined;
      }
      render();
    } catch (err) {
      if (disposed) return;
      if (detail === undefined) {
        mount(root, h("div", { class: "page" }, h("nav", { class: "crumbs" }, link("/", null, "Runs")),
          h("div", { class: "empty" }, h("h2", null, err instanceof ApiFailure && err.status === 404 ? "No such run" : "Could not load the run"), h("p", null, err instanceof ApiFailure ? err.message : String(err)))));
        disposed = true;
      }
    } finally {
      loading = false;
      if (again && !disposed) {
        again = false;
        refresh(100);
      }
    }
  };

  function refresh(delay: number): void {
    if (refreshTimer !== undefined) {
      if (delay > 0) return; // one is already coming
      window.clearTimeout(refreshTimer);
    }
    refreshTimer = window.setTimeout(() => {
      refreshTimer = undefined;
      void load();
    }, delay);
  }

  let resizeTimer: number | undefined;
  const onResize = (): void => {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(() => detail && drawTimeline(timeline.body, detail.trace, { now: Date.now(), ...(selected ? { selected } : {}), onSelect: select }), 120);
  };
  window.addEventListener("resize", onResize);
  void load();

  return () => {
    disposed = true;
    stream?.close();
    window.clearTimeout(refreshTimer);
    window.clearInterval(ticker);
    window.removeEventListener("resize", onResize);
  };
}
