/// <reference lib="dom" />
/**
 * The run's graph: stages laid out left to right with elkjs (layered, orthogonal edges) and
 * drawn in SVG. Nodes are coloured by the status of their latest visit; a stage that ran more
 * than once shows a visit count (×3) and one segment per visit, coloured by that visit's
 * status. for_each stages are one group node with counts of their items per status (the items
 * themselves when expanded); route edges that were taken are dashed and labelled. A long graph
 * wraps into rows (elk's graph wrapping) so that it reads at a legible zoom; the layout depends
 * only on the graph's shape (and the wrap width), so live updates only recolour. Zoom and pan:
 * graph-view.ts.
 */
import * as elkModule from "elkjs/lib/elk-api.js";
import type { ELK, ELKConstructorArguments, ElkExtendedEdge, ElkNode, ElkPoint } from "elkjs/lib/elk-api.js";
import type { Trace } from "../../trace/types.js";
import type { PlanView } from "../types.js";
import { s } from "./dom.js";
import { duration } from "./format.js";
import { itemsOf, latestOf, STATUS_LABEL, visitStatusesOf, visitsOf, type NodeStatus } from "./model.js";

export interface DagNode {
  readonly id: string;
  readonly kind: string;
  readonly status: NodeStatus;
  readonly visits: number;
  readonly durationMs: number | null;
  readonly isFallback: boolean;
  readonly description?: string;
  /** for_each stages: the latest visit's items. */
  readonly items?: readonly NodeStatus[];
  /** The status of each visit, in visit order (one entry per visit; a for_each visit counts once). */
  readonly visitStatuses: readonly NodeStatus[];
  /** Parallel wave of the stage in the plan (0 without a plan). */
  readonly level: number;
}

export interface DagEdge {
  readonly id: string;
  readonly from: string;
  readonly to: string;
  readonly kind: "dep" | "route" | "fallback";
  /** How often a route or fallback edge was taken. */
  readonly taken: number;
  readonly label?: string;
  readonly title?: string;
}

export interface DagModel {
  readonly nodes: readonly DagNode[];
  readonly edges: readonly DagEdge[];
}

const W = 190;
const H = 60;
const H_EACH = 88;
/** Item cells of an expanded for_each group: size and gap (px). */
const CELL = 13;
const CELL_GAP = 3;
/** Space between layers: the layout's `nodeNodeBetweenLayers`, and a layer's width with it. */
const LAYER_GAP = 60;
export const LAYER_W = W + LAYER_GAP;
/** A node's width. */
export const NODE_W = W;
/** Font size of a node's title (px, app.css `.node-title`): the text the default zoom keeps legible. */
export const TITLE_PX = 14;

/** The graph of a run: the plan's stages and edges, coloured by the trace. */
export function dagModel(plan: PlanView | null, trace: Trace): DagModel {
  // Model order (the layout breaks cycles against it): by level, fallback stages after everything they stand in for.
  const stages = plan
    ? [...plan.stages].map((st, i) => ({ st, i })).sort((a, b) => Number(a.st.is_fallback === true) - Number(b.st.is_fallback === true) || a.st.level - b.st.level || a.i - b.i).map((x) => x.st)
    : [...new Set(trace.stages.map((x) => x.stage))].map((id): PlanView["stages"][number] => ({ id, kind: "run", deps: [], level: 0, routes: [] }));
  const nodes: DagNode[] = stages.map((st) => {
    const last = latestOf(trace, st.id);
    const items = last && (st.for_each || last.item_count !== undefined) ? itemsOf(trace, last) : undefined;
    const n = last?.item_count ?? items?.length ?? 0;
    return {
      id: st.id, kind: plan ? st.kind : "stage", status: last?.status ?? "pending", visits: visitsOf(trace, st.id), durationMs: last?.duration_ms ?? null,
      isFallback: st.is_fallback === true, ...(st.description ? { description: st.description } : {}),
      visitStatuses: visitStatusesOf(trace, st.id), level: st.level,
      ...(st.for_each || items ? { items: Array.from({ length: n }, (_, i) => items?.find((x) => x.item === i)?.status ?? "pending") } : {}),
    };
  });
  const edges: DagEdge[] = [];
  const taken = (stage: string, kind: string, route?: number): number =>
    trace.decisions.filter((d) => d.stage === stage && d.kind === kind && (route === undefined || d.route === route) && (kind !== "route" || d.taken)).length;
  for (const st of stages) {
    for (const d of st.deps) edges.push({ id: `dep:${d}:${st.id}`, from: d, to: st.id, kind: "dep", taken: 0 });
    st.routes.forEach((r, i) => {
      if (r.goto === undefined) return;
      const n = taken(st.id, "route", i);
      edges.push({ id: `route:${st.id}:${i}`, from: st.id, to: r.goto, kind: "route", taken: n, label: n > 0 ? `route taken ×${n}` : "route", title: `when ${r.when} (at most ${r.max}×)` });
    });
    if (st.fallback) {
      const n = taken(st.id, "fallback");
      edges.push({ id: `fallback:${st.id}`, from: st.id, to: st.fallback, kind: "fallback", taken: n, label: n > 0 ? `fallback ×${n}` : "fallback", title: "on_error: fallback" });
    }
  }
  if (!plan) {
    // Without the plan only the routes that were taken are known.
    const seen = new Set<string>();
    for (const d of trace.decisions) {
      if (d.kind !== "route" || !d.taken || d.goto === undefined || seen.has(`${d.stage}:${d.route}`)) continue;
      seen.add(`${d.stage}:${d.route}`);
      const n = taken(d.stage, "route", d.route);
      edges.push({ id: `route:${d.stage}:${d.route}`, from: d.stage, to: d.goto, kind: "route", taken: n, label: `route taken ×${n}`, title: d.expression });
    }
  }
  return { nodes, edges };
}

// elk-api.js is CommonJS (module.exports = ELK, ELK.default = ELK). The layout runs in a Web Worker
// (elkjs's own elk-worker.js, served beside app.js), so a large graph never blocks the page, and
// the ~1.6 MB layout engine is loaded only by pages that draw a graph.
type ElkCtor = new (args?: ELKConstructorArguments) => ELK;
const mod = elkModule as unknown as { default?: ElkCtor | { default?: ElkCtor } };
const Elk = (typeof mod.default === "function" ? mod.default : mod.default?.default) as ElkCtor;
/** URL path of the layout worker (scripts/build-ui.mjs copies it, the server serves it). */
export const ELK_WORKER = "/elk-worker.js";
let elk: ELK | undefined;
/** Use this layout engine instead of the worker (bench/ui-render.mjs lays out in Node). */
export function useLayoutEngine(engine: ELK): void {
  elk = engine;
}
/** Rejects when the worker cannot start (a 404, a script error): layouts then fail with a message instead of never ending. */
let workerFailed: Promise<never> | undefined;
const engine = (): ELK => {
  if (elk) return elk;
  let fail!: (err: Error) => void;
  workerFailed = new Promise<never>((_, reject) => (fail = reject));
  workerFailed.catch(() => undefined);
  elk = new Elk({
    workerUrl: ELK_WORKER,
    workerFactory: (url?: string) => {
      const w = new Worker(url ?? ELK_WORKER);
      w.addEventListener("error", (e) => fail(new Error(`the layout worker ${ELK_WORKER} failed: ${e.message || "it could not be loaded (is the web app built?)"}`)));
      return w;
    },
  });
  return elk;
};
/** Start the layout worker now (a run page does while it fetches the run: the worker's 1.6 MB load overlaps the fetch). */
export function warmUpLayout(): void {
  engine();
}
const layouts = new Map<string, Promise<ElkNode>>();

/** How to lay a graph out: where it wraps, which for_each groups show their items. */
export interface LayoutOptions {
  /** Wrap the layers into rows about this wide (layout px); none: one row. */
  readonly wrapWidth?: number;
  /** for_each stages drawn expanded (their items as cells). */
  readonly expanded?: ReadonlySet<string>;
}

/** Item cells per row of an expanded for_each group. */
const cellsPerRow = (bw: number): number => Math.max(1, Math.floor((bw - 32 + CELL_GAP) / (CELL + CELL_GAP)));

/** A node's size: a for_each group is taller, and taller still when expanded. */
function nodeSize(n: DagNode, expanded: boolean): { width: number; height: number } {
  if (!n.items) return { width: W, height: H };
  if (!expanded || n.items.length === 0) return { width: W, height: H_EACH };
  const rows = Math.ceil(n.items.length / cellsPerRow(W - 6));
  return { width: W, height: H_EACH + 4 + rows * (CELL + CELL_GAP) + 6 };
}

/** Number of layers a graph needs at least (its longest dependency chain), from the plan's levels. */
export function layersOf(model: DagModel): number {
  let max = 0;
  for (const n of model.nodes) max = Math.max(max, n.level);
  return max + 1;
}

/** Lay the graph out (cached by its shape, wrap width and expanded groups). */
export function layout(model: DagModel, o: LayoutOptions = {}): Promise<ElkNode> {
  const expanded = o.expanded ?? new Set<string>();
  const sizes = model.nodes.map((n) => nodeSize(n, expanded.has(n.id)));
  const key = JSON.stringify([model.nodes.map((n, i) => [n.id, sizes[i]!.height]), model.edges.map((e) => [e.id, e.label]), o.wrapWidth ?? 0]);
  let p = layouts.get(key);
  if (!p) {
    const wrap: Record<string, string> = {};
    if (o.wrapWidth !== undefined) {
      // elk's graph wrapping cuts the layers into rows by aspect ratio: aim at rows about wrapWidth wide.
      const layers = layersOf(model);
      const perLevel = new Map<number, number>();
      for (const n of model.nodes) perLevel.set(n.level, (perLevel.get(n.level) ?? 0) + 1);
      const tallest = Math.max(1, ...perLevel.values());
      const rows = Math.max(1, Math.ceil((layers * LAYER_W) / o.wrapWidth));
      const rowH = tallest * (H + 30) + 40;
      Object.assign(wrap, {
        "elk.layered.wrapping.strategy": "SINGLE_EDGE",
        "elk.aspectRatio": String(Math.max(0.02, o.wrapWidth / (rows * rowH))),
        "elk.layered.wrapping.additionalEdgeSpacing": "16",
        // A long graph: fewer crossing-minimization passes (a chain has no crossings to remove).
        "elk.layered.thoroughness": "2",
      });
    }
    const graph: ElkNode = {
      id: "root",
      layoutOptions: {
        "elk.algorithm": "layered",
        "elk.direction": "RIGHT",
        "elk.edgeRouting": "ORTHOGONAL",
        "elk.layered.cycleBreaking.strategy": "MODEL_ORDER",
        "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",
        "elk.spacing.nodeNode": "30",
        "elk.layered.spacing.nodeNodeBetweenLayers": String(LAYER_GAP),
        "elk.spacing.edgeNode": "20",
        "elk.spacing.edgeEdge": "14",
        "elk.spacing.edgeLabel": "4",
        "elk.layered.spacing.edgeNodeBetweenLayers": "20",
        "elk.padding": "[top=20,left=20,bottom=20,right=20]",
        ...wrap,
      },
      children: model.nodes.map((n, i) => ({ id: n.id, ...sizes[i]! })),
      edges: model.edges.map((e): ElkExtendedEdge => ({
        id: e.id, sources: [e.from], targets: [e.to],
        ...(e.label ? { labels: [{ text: e.label, width: e.label.length * 6.4 + 12, height: 18 }] } : {}),
        ...(e.kind === "dep" ? { layoutOptions: { "elk.layered.priority.direction": "10" } } : {}),
      })),
    };
    const run = engine().layout(graph);
    const laid: Promise<ElkNode> = workerFailed ? Promise.race([run, workerFailed]) : run;
    p = laid;
    layouts.set(key, laid);
    if (layouts.size > 50) layouts.delete(layouts.keys().next().value!);
  }
  return p!;
}

/** An orthogonal polyline with rounded corners. */
function pathOf(points: readonly ElkPoint[]): string {
  const r = 8;
  let d = `M${points[0]!.x},${points[0]!.y}`;
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i - 1]!;
    const c = points[i]!;
    const n = points[i + 1]!;
    const d1 = Math.hypot(c.x - p.x, c.y - p.y);
    const d2 = Math.hypot(n.x - c.x, n.y - c.y);
    const k = Math.min(r, d1 / 2, d2 / 2);
    const a = { x: c.x - ((c.x - p.x) / (d1 || 1)) * k, y: c.y - ((c.y - p.y) / (d1 || 1)) * k };
    const b = { x: c.x + ((n.x - c.x) / (d2 || 1)) * k, y: c.y + ((n.y - c.y) / (d2 || 1)) * k };
    d += ` L${a.x},${a.y} Q${c.x},${c.y} ${b.x},${b.y}`;
  }
  const last = points[points.length - 1]!;
  return `${d} L${last.x},${last.y}`;
}

function marker(id: string, cls: string): SVGMarkerElement {
  return s("marker", { id, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse", markerUnits: "strokeWidth" },
    s("path", { d: "M0,0 L10,5 L0,10 z", class: cls }));
}

const clip = (t: string, n: number): string => (t.length > n ? t.slice(0, n - 1) + "…" : t);

/** Short words for item counts inside a group node. */
const COUNT_WORD: Readonly<Record<string, string>> = { succeeded: "done", continued: "continued", fallback: "fallback", failed: "failed", running: "running", retrying: "retrying", waiting: "waiting", escalated: "escalated", skipped: "skipped", cancelled: "cancelled", pending: "pending" };
/** The order item counts are listed in: what needs attention first. */
const COUNT_ORDER = ["failed", "waiting", "escalated", "running", "retrying", "succeeded", "continued", "fallback", "cancelled", "skipped", "pending"];

/** Items per status, in {@link COUNT_ORDER}. */
export function itemCounts(items: readonly NodeStatus[]): [NodeStatus, number][] {
  const by = new Map<NodeStatus, number>();
  for (const st of items) by.set(st, (by.get(st) ?? 0) + 1);
  return [...by].sort((a, b) => COUNT_ORDER.indexOf(a[0]) - COUNT_ORDER.indexOf(b[0]));
}

/** Clip `text` to `n` characters with an ellipsis. */
export const clipText = (text: string, n: number): string => clip(text, n);

/** What a node does when clicked: select the stage, one item, or show/hide a group's items. */
export interface NodeActions {
  readonly onSelect: (stage: string) => void;
  readonly onSelectItem?: (stage: string, item: number) => void;
  readonly onToggle?: (stage: string) => void;
}

function drawNode(n: DagNode, box: ElkNode, selected: boolean, expanded: boolean, act: NodeActions): SVGGElement {
  const w = box.width ?? W;
  const hgt = box.height ?? H;
  const g = s("g", {
    class: `node st-${n.status}${selected ? " selected" : ""}${n.isFallback ? " fallback-stage" : ""}${n.items ? " foreach" : ""}${expanded ? " expanded" : ""}`,
    transform: `translate(${box.x ?? 0},${box.y ?? 0})`, "data-stage": n.id, "data-status": n.status, "data-visits": n.visits, tabindex: "0", role: "button",
  });
  const visitList = n.visits > 1 ? `\n${n.visitStatuses.map((st, i) => `visit ${i + 1}: ${STATUS_LABEL[st] ?? st}`).join("\n")}` : "";
  g.appendChild(s("title", null, `${n.id}: ${STATUS_LABEL[n.status] ?? n.status}${n.visits > 1 ? `, ${n.visits} visits` : ""}${visitList}${n.description ? `\n${n.description}` : ""}`));
  if (n.items) {
    // A stack: one execution per item.
    g.appendChild(s("rect", { class: "node-stack", x: 6, y: 6, width: w - 6, height: hgt - 6, rx: 9 }));
    g.appendChild(s("rect", { class: "node-stack", x: 3, y: 3, width: w - 6, height: hgt - 6, rx: 9 }));
  }
  const bw = n.items ? w - 6 : w;
  const bh = n.items ? hgt - 6 : hgt;
  g.appendChild(s("rect", { class: "node-box", width: bw, height: bh, rx: 9 }));
  g.appendChild(s("rect", { class: "node-stripe", x: 0, y: 0, width: 6, height: bh, rx: 3 }));
  g.appendChild(s("text", { class: "node-title", x: 16, y: 23 }, clip(n.id, n.visits > 1 ? 15 : 19)));
  // Zoomed far out (graph-view.ts): the stage id alone, enlarged so that it stays legible.
  g.appendChild(s("text", { class: "node-far", x: 14, y: Math.min(bh, H) / 2, "dominant-baseline": "central", "data-id": n.id }, n.id));
  // Second line: status word (coloured), kind, and the latest visit's duration on the right.
  const dur = n.durationMs !== null && n.status !== "skipped" && n.status !== "pending" ? duration(n.durationMs) : "";
  // Estimated widths at 12px: ~6.6 px per character, ~7.4 in bold (the status word).
  const statusW = n.status === "pending" ? 0 : n.status.length * 7.4;
  const room = Math.floor((bw - 16 - statusW - dur.length * 6.6 - 16) / 6.6);
  const sub = s("text", { class: "node-sub", x: 16, y: 42 });
  if (n.status !== "pending") sub.appendChild(s("tspan", { class: "node-status" }, n.status));
  const rest = n.status === "pending" ? n.kind : ` · ${n.kind}`;
  sub.appendChild(s("tspan", null, clip(rest, Math.max(4, room))));
  g.appendChild(sub);
  if (dur) g.appendChild(s("text", { class: "node-dur", x: bw - 10, y: 42, "text-anchor": "end" }, dur));
  if (n.visits > 1) {
    const label = `×${n.visits}`;
    const bwid = label.length * 7 + 10;
    g.appendChild(s("g", { class: "visit-badge", transform: `translate(${bw - bwid - 8},8)` },
      s("title", null, `ran ${n.visits} times (visits)`),
      s("rect", { width: bwid, height: 18, rx: 9 }),
      s("text", { x: bwid / 2, y: 13, "text-anchor": "middle" }, label)));
    // One segment per visit along the bottom edge, coloured by that visit's status.
    const x0 = 12;
    const seg = (bw - x0 - 10) / n.visitStatuses.length;
    const strip = s("g", { class: "visit-strip" });
    n.visitStatuses.forEach((st, i) => strip.appendChild(s("rect", { class: `visit-seg st-${st}`, "data-visit": i + 1, x: x0 + i * seg, y: n.items ? bh - 5 : bh - 8, width: Math.max(2, seg - 2), height: 4, rx: 2 },
      s("title", null, `visit ${i + 1}: ${STATUS_LABEL[st] ?? st}`))));
    g.appendChild(strip);
  }
  if (n.items) drawItems(g, n, bw, expanded, act);
  g.addEventListener("click", (e) => {
    if ((e.target as Element).closest(".expand, .grid-item")) return;
    act.onSelect(n.id);
  });
  g.addEventListener("keydown", (e) => {
    if (e.target !== g) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      act.onSelect(n.id);
    }
  });
  return g;
}

/** A for_each group's items: a status strip, counts per status, and (expanded) one cell per item. */
function drawItems(g: SVGGElement, n: DagNode, bw: number, expanded: boolean, act: NodeActions): void {
  const items = n.items!;
  const total = items.length;
  const done = items.filter((x) => x === "succeeded" || x === "continued" || x === "fallback").length;
  const y = 52;
  const x0 = 16;
  const avail = bw - x0 - 84;
  const strip = s("g", { class: "items" });
  const counts = itemCounts(items);
  if (total > 0 && total <= 30) {
    const cw = Math.min(10, avail / total);
    items.forEach((st, i) => strip.appendChild(s("rect", { class: `item st-${st}`, x: x0 + i * cw, y, width: Math.max(1, cw - 2), height: 9, rx: 2 })));
  } else if (total > 0) {
    let x = x0;
    for (const [st, c] of counts) {
      const wd = (c / total) * avail;
      strip.appendChild(s("rect", { class: `item-seg st-${st}`, "data-status": st, x, y, width: Math.max(1, wd), height: 9 }, s("title", null, `${c} ${STATUS_LABEL[st] ?? st}`)));
      x += wd;
    }
  }
  strip.appendChild(s("text", { class: "items-count", x: bw - 10, y: y + 9, "text-anchor": "end" }, `${done}/${total} item${total === 1 ? "" : "s"}`));
  // Counts per status ("45 done · 3 failed · 2 running"), as far as they fit; all of them in the tooltip.
  const line = s("text", { class: "item-counts", x: x0, y: 76 });
  let room = Math.floor((bw - x0 - 34) / 6);
  counts.forEach(([st, c], i) => {
    const word = `${i > 0 ? " · " : ""}${c} ${COUNT_WORD[st] ?? st}`;
    if (room <= 0) return;
    if (word.length > room) {
      line.appendChild(s("tspan", null, " …"));
      room = 0;
      return;
    }
    room -= word.length;
    line.appendChild(s("tspan", { class: `count st-${st}`, "data-status": st, "data-count": c }, word));
  });
  line.appendChild(s("title", null, counts.map(([st, c]) => `${c} ${STATUS_LABEL[st] ?? st}`).join("\n")));
  strip.appendChild(line);
  if (total > 0 && act.onToggle) {
    const label = expanded ? "hide the items" : `show the ${total} item${total === 1 ? "" : "s"}`;
    const tog = s("g", { class: "expand", transform: `translate(${bw - 30},64)`, role: "button", tabindex: "0", "aria-label": label, "aria-expanded": String(expanded) },
      s("title", null, label), s("rect", { width: 20, height: 16, rx: 4 }), s("text", { x: 10, y: 12, "text-anchor": "middle" }, expanded ? "−" : "+"));
    const toggle = (e: Event): void => {
      e.stopPropagation();
      e.preventDefault();
      act.onToggle!(n.id);
    };
    tog.addEventListener("click", toggle);
    tog.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") toggle(e);
    });
    strip.appendChild(tog);
  }
  if (expanded) {
    const per = cellsPerRow(bw);
    const grid = s("g", { class: "item-grid-g" });
    items.forEach((st, i) => {
      const cell = s("rect", { class: `grid-item st-${st}`, "data-item": i, x: x0 + (i % per) * (CELL + CELL_GAP), y: H_EACH - 2 + Math.floor(i / per) * (CELL + CELL_GAP), width: CELL, height: CELL, rx: 3 },
        s("title", null, `item ${i}: ${STATUS_LABEL[st] ?? st}`));
      cell.addEventListener("click", (e) => {
        e.stopPropagation();
        (act.onSelectItem ?? (() => act.onSelect(n.id)))(n.id, i);
      });
      grid.appendChild(cell);
    });
    strip.appendChild(grid);
  }
  g.appendChild(strip);
}

/** Draw the laid-out graph: the arrow markers and one group of edges, nodes and edge labels. */
export function drawGraph(model: DagModel, laid: ElkNode, o: NodeActions & { selected?: string; expanded?: ReadonlySet<string> }): { defs: SVGDefsElement; world: SVGGElement } {
  const defs = s("defs", null, marker("arrow-dep", "arrow-dep"), marker("arrow-route", "arrow-route"), marker("arrow-route-idle", "arrow-route-idle"), marker("arrow-fallback", "arrow-fallback"));
  const byId = new Map(model.edges.map((e) => [e.id, e]));
  const edgeLayer = s("g", { class: "edges" });
  const labelLayer = s("g", { class: "edge-labels" });
  for (const le of laid.edges ?? []) {
    const e = byId.get(le.id);
    if (!e) continue;
    const cls = e.kind === "dep" ? "edge dep" : `edge ${e.kind}${e.taken > 0 ? " taken" : " idle"}`;
    const arrow = e.kind === "dep" ? "arrow-dep" : e.kind === "route" ? (e.taken > 0 ? "arrow-route" : "arrow-route-idle") : "arrow-fallback";
    const g = s("g", { class: cls, "data-edge": e.id, "data-from": e.from, "data-to": e.to, ...(e.taken ? { "data-taken": e.taken } : {}) });
    if (e.title) g.appendChild(s("title", null, e.title));
    for (const sec of le.sections ?? []) {
      g.appendChild(s("path", { d: pathOf([sec.startPoint, ...(sec.bendPoints ?? []), sec.endPoint]), "marker-end": `url(#${arrow})` }));
    }
    edgeLayer.appendChild(g);
    for (const l of le.labels ?? []) {
      labelLayer.appendChild(s("g", { class: `edge-label ${e.kind}${e.taken > 0 ? " taken" : " idle"}`, transform: `translate(${l.x ?? 0},${l.y ?? 0})` },
        e.title ? s("title", null, e.title) : null,
        s("rect", { width: l.width ?? 40, height: l.height ?? 18, rx: 9 }),
        s("text", { x: (l.width ?? 40) / 2, y: 13, "text-anchor": "middle" }, l.text ?? "")));
    }
  }
  const nodes = new Map(model.nodes.map((n) => [n.id, n]));
  const nodeLayer = s("g", { class: "nodes" });
  for (const box of laid.children ?? []) {
    const n = nodes.get(box.id);
    if (n) nodeLayer.appendChild(drawNode(n, box, o.selected === n.id, o.expanded?.has(n.id) === true, o));
  }
  return { defs, world: s("g", { class: "dag-world" }, edgeLayer, nodeLayer, labelLayer) };
}
