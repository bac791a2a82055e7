/// <reference lib="dom" />
/**
 * The timeline (Gantt): one row per stage execution in start order, for_each items as
 * sub-rows under their stage, one bar per attempt coloured by its outcome, the wait for a
 * retry drawn as a dashed gap, queueing as a thin lead-in, the run's "now" while it goes.
 */
import type { Trace, TraceStage } from "../../trace/types.js";
import { h, s } from "./dom.js";
import { duration, tick } from "./format.js";
import { traceEnd } from "./model.js";

/** Item rows shown under one for_each execution before the rest is summarised. */
const MAX_ITEM_ROWS = 40;
const LABEL_W = 176;
const ROW = 26;
const ITEM_ROW = 19;
const AXIS = 26;

interface Row {
  readonly entry?: TraceStage;
  readonly depth: 0 | 1;
  /** A "… N more items" row. */
  readonly more?: number;
}

function rowsOf(trace: Trace): Row[] {
  const items = new Map<string, TraceStage[]>();
  const key = (x: TraceStage): string => `${x.stage}#${x.visit}<-${x.fallback_for ?? ""}`;
  const wholes = new Set<string>();
  for (const x of trace.stages) if (x.item === undefined && x.item_count !== undefined) wholes.add(key(x));
  const rows: Row[] = [];
  for (const x of trace.stages) {
    if (x.item !== undefined && wholes.has(key(x))) {
      let list = items.get(key(x));
      if (!list) items.set(key(x), (list = []));
      list.push(x);
    }
  }
  for (const x of trace.stages) {
    if (x.item !== undefined && wholes.has(key(x))) continue;
    rows.push({ entry: x, depth: 0 });
    const list = x.item === undefined ? items.get(key(x)) : undefined;
    if (!list) continue;
    list.sort((a, b) => a.item! - b.item!);
    for (const it of list.slice(0, MAX_ITEM_ROWS)) rows.push({ entry: it, depth: 1 });
    if (list.length > MAX_ITEM_ROWS) rows.push({ depth: 1, more: list.length - MAX_ITEM_ROWS });
  }
  return rows;
}

/** A "nice" tick step for a span: 1, 2 or 5 × 10^k ms, about `n` ticks. */
function step(span: number, n: number): number {
  const raw = span / n;
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= raw) ?? 10 * p;
}

function labelOf(x: TraceStage): string {
  if (x.item !== undefined) return `[${x.item}]`;
  return `${x.stage} #${x.visit}${x.fallback_for ? ` ← ${x.fallback_for}` : ""}`;
}

/** Draw the timeline of a trace into `host`. */
export function drawTimeline(host: HTMLElement, trace: Trace, o: { now: number; selected?: string; onSelect: (entryId: string) => void }): void {
  const rows = rowsOf(trace);
  const width = Math.max(560, host.clientWidth || 900);
  const t0 = Date.parse(trace.run.started_at);
  const t1 = Math.max(t0 + 1, traceEnd(trace, o.now));
  const live = trace.run.status === "running";
  const open = trace.run.ended_at === null; // unfinished attempts reach the axis' end
  const span = t1 - t0;
  const plotW = width - LABEL_W - 116; // room on the right for the last bar's note
  const x = (t: number): number => LABEL_W + ((t - t0) / span) * plotW;
  let height = AXIS;
  for (const r of rows) height += r.depth === 0 ? ROW : ITEM_ROW;
  height += 8;
  const svg = s("svg", { class: "timeline-svg", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "timeline of stage executions" });

  // Axis and grid.
  const grid = s("g", { class: "axis" });
  const st = step(span, Math.max(2, Math.floor(plotW / 110)));
  for (let t = 0; t <= span + 0.5; t += st) {
    const gx = x(t0 + t);
    grid.appendChild(s("line", { class: "grid", x1: gx, x2: gx, y1: AXIS - 6, y2: height }));
    grid.appendChild(s("text", { class: "tick", x: gx, y: 14, "text-anchor": t === 0 ? "start" : "middle" }, tick(t)));
  }
  svg.appendChild(grid);

  let y = AXIS;
  rows.forEach((r, i) => {
    const rh = r.depth === 0 ? ROW : ITEM_ROW;
    const e = r.entry;
    const g = s("g", { class: `trow${r.depth ? " item-row" : ""}${e && e.id === o.selected ? " selected" : ""}${i % 2 ? " odd" : ""}`, ...(e ? { "data-entry": e.id, "data-status": e.status } : {}) });
    g.appendChild(s("rect", { class: "trow-bg", x: 0, y, width, height: rh }));
    if (!e) {
      g.appendChild(s("text", { class: "tlabel more", x: 28, y: y + rh / 2 + 4 }, `… ${r.more} more items (see the stage panel)`));
      svg.appendChild(g);
      y += rh;
      return;
    }
    g.appendChild(s("text", { class: "tlabel", x: r.depth ? 28 : 10, y: y + rh / 2 + 4 }, labelOf(e)));
    const mid = y + rh / 2;
    const barH = r.depth ? 9 : 13;
    if (e.status === "skipped") {
      const sx = x(Date.parse(e.started_at));
      g.appendChild(s("path", { class: "skip-mark", d: `M${sx},${mid - 5} L${sx + 5},${mid} L${sx},${mid + 5} L${sx - 5},${mid} z` }));
      g.appendChild(s("text", { class: "bar-note", x: sx + 9, y: mid + 4 }, `skipped${e.reason ? `: ${e.reason}` : ""}`));
    } else if (e.item_count !== undefined && e.attempts.length === 0) {
      // A for_each stage as a whole: a bracket over its items.
      const a = x(Date.parse(e.started_at));
      const b = e.ended_at ? x(Date.parse(e.ended_at)) : x(t1); // still going (or the run stopped)
      g.appendChild(s("rect", { class: `span st-${e.status}`, x: a, y: mid - 4, width: Math.max(2, b - a), height: 8, rx: 2 }));
      g.appendChild(s("text", { class: "bar-note", x: Math.max(a, b) + 6, y: mid + 4 }, `${e.item_count} item${e.item_count === 1 ? "" : "s"}${e.duration_ms !== null ? ` · ${duration(e.duration_ms)}` : ""}`));
    }
    const first = e.attempts[0];
    if (first && e.queued_ms) {
      const fs = Date.parse(first.started_at);
      g.appendChild(s("line", { class: "queue", x1: x(fs - e.queued_ms), x2: x(fs), y1: mid, y2: mid }, s("title", null, `queued ${duration(e.queued_ms)}${e.waited_for ? `: ${e.waited_for}` : ""}`)));
    }
    e.attempts.forEach((a, k) => {
      const as = Date.parse(a.started_at);
      const ae = a.ended_at ? Date.parse(a.ended_at) : open ? t1 : Date.parse(e.ended_at ?? trace.run.ended_at ?? a.started_at);
      const bx = x(as);
      const bw = Math.max(2, x(ae) - bx);
      const tip = `${labelOf(e)} attempt ${a.n}: ${a.status}, ${duration(ae - as)}${a.error ? `\n${a.error.kind}: ${a.error.message}` : ""}${a.retry_in_ms !== undefined ? `\nretry in ${duration(a.retry_in_ms)}` : ""}${a.reason ? `\n${a.reason}` : ""}`;
      const bar = s("rect", { class: `bar st-${a.status}`, x: bx, y: mid - barH / 2, width: bw, height: barH, rx: 3, "data-attempt": a.n, "data-status": a.status }, s("title", null, tip));
      g.appendChild(bar);
      if (bw > 16 && !r.depth) g.appendChild(s("text", { class: "bar-text", x: bx + bw / 2, y: mid + 4, "text-anchor": "middle" }, String(a.n)));
      const next = e.attempts[k + 1];
      if (next && a.ended_at) {
        const gx1 = x(Date.parse(a.ended_at));
        const gx2 = x(Date.parse(next.started_at));
        g.appendChild(s("line", { class: "retry-gap", x1: gx1, x2: gx2, y1: mid, y2: mid, "data-gap": `${a.n}-${next.n}` }, s("title", null, `waited ${duration(Date.parse(next.started_at) - Date.parse(a.ended_at))} before attempt ${next.n}`)));
        if (gx2 - gx1 > 34) g.appendChild(s("text", { class: "gap-text", x: (gx1 + gx2) / 2, y: mid - 4, "text-anchor": "middle" }, "retry"));
      }
    });
    const lastA = e.attempts[e.attempts.length - 1];
    if (lastA && e.item === undefined && e.status !== "skipped") {
      const end = lastA.ended_at ? x(Date.parse(lastA.ended_at)) : open ? x(t1) : x(Date.parse(e.ended_at ?? trace.run.ended_at ?? lastA.started_at));
      const took = e.duration_ms === null ? (e.status === "running" || e.status === "retrying" ? e.status : "") : duration(e.duration_ms);
      const note = e.status === "waiting" || e.status === "escalated" ? "waiting for a human" : e.attempts.length > 1 ? `${e.attempts.length} attempts${took ? ` · ${took}` : ""}` : took;
      if (note && end + 8 + note.length * 6 < width) g.appendChild(s("text", { class: "bar-note", x: end + 6, y: mid + 4 }, note));
    }
    g.addEventListener("click", () => o.onSelect(e.id));
    svg.appendChild(g);
    y += rh;
  });
  if (live) {
    const nx = x(t1);
    svg.appendChild(s("line", { class: "now", x1: nx, x2: nx, y1: AXIS - 6, y2: height }, s("title", null, "now")));
  }
  host.replaceChildren(rows.length === 0 ? h("p", { class: "muted" }, "No stage has started yet.") : svg);
}
