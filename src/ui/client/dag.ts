/// <reference lib="dom" />
/**
 * The run's graph: stages laid out left to right with elkjs (layered, orthogonal edges) and
 * drawn in SVG. Nodes are coloured by the status of their latest visit, show how often they
 * ran (×2) and, for for_each stages, their items; route edges that were taken are dashed and
 * labelled. The layout depends only on the graph's shape, so live updates only recolour.
 */
import * as elkModule from "elkjs/lib/elk.bundled.js";
import type { ELK, ELKConstructorArguments, ElkExtendedEdge, ElkNode, ElkPoint } from "elkjs/lib/elk-api.js";
import type { Trace } from "../../trace/types.js";
import type { PlanView } from "../types.js";
import { s } from "./dom.js";
import { duration } from "./format.js";
import { itemsOf, latestOf, STATUS_LABEL, visitsOf, type NodeStatus } from "./model.js";

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

const W = 200;
const H = 58;
const H_EACH = 78;

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

// elk.bundled.js is CommonJS (module.exports = ELK, ELK.default = ELK); it lays out in this thread, no worker.
type ElkCtor = new (args?: ELKConstructorArguments) => ELK;
const mod = elkModule as unknown as { default?: ElkCtor | { default?: ElkCtor } };
const Elk = (typeof mod.default === "function" ? mod.default : mod.default?.default) as ElkCtor;
const elk = new Elk();
const layouts = new Map<string, Promise<ElkNode>>();

/** Lay the graph out (cached by its shape). */
export function layout(model: DagModel): Promise<ElkNode> {
  const key = JSON.stringify([model.nodes.map((n) => [n.id, n.items !== undefined]), model.edges.map((e) => [e.id, e.label])]);
  let p = layouts.get(key);
  if (!p) {
    const graph: ElkNode = {
      id: "root",
      layoutOptions: {
        "elk.algorithm": "layered",
        "elk.direction": "RIGHT",
        "elk.edgeRouting": "ORTHOGONAL",
        "elk.layered.cycleBreaking.strategy": "MODEL_ORDER",
        "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",
        "elk.spacing.nodeNode": "30",
        "elk.layered.spacing.nodeNodeBetweenLayers": "70",
        "elk.spacing.edgeNode": "20",
        "elk.spacing.edgeEdge": "14",
        "elk.spacing.edgeLabel": "4",
        "elk.layered.spacing.edgeNodeBetweenLayers": "20",
        "elk.padding": "[top=20,left=20,bottom=20,right=20]",
      },
      children: model.nodes.map((n) => ({ id: n.id, width: W, height: n.items ? H_EACH : H })),
      edges: model.edges.map((e): ElkExtendedEdge => ({
        id: e.id, sources: [e.from], targets: [e.to],
        ...(e.label ? { labels: [{ text: e.label, width: e.label.length * 6.4 + 12, height: 18 }] } : {}),
        ...(e.kind === "dep" ? { layoutOptions: { "elk.layered.priority.direction": "10" } } : {}),
      })),
    };
    const laid: Promise<ElkNode> = elk.layout(graph);
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

function drawNode(n: DagNode, box: ElkNode, selected: boolean, onSelect: (stage: string) => void): SVGGElement {
  const w = box.width ?? W;
  const hgt = box.height ?? H;
  const g = s("g", {
    class: `node st-${n.status}${selected ? " selected" : ""}${n.isFallback ? " fallback-stage" : ""}${n.items ? " foreach" : ""}`,
    transform: `translate(${box.x ?? 0},${box.y ?? 0})`, "data-stage": n.id, "data-status": n.status, tabindex: "0", role: "button",
  });
  g.appendChild(s("title", null, `${n.id}: ${STATUS_LABEL[n.status] ?? n.status}${n.visits > 1 ? `, ${n.visits} visits` : ""}${n.description ? `\n${n.description}` : ""}`));
  if (n.items) {
    // A stack: one execution per item.
    g.appendChild(s("rect", { class: "node-stack", x: 6, y: 6, width: w - 6, height: hgt - 6, rx: 9 }));
    g.appendChild(s("rect", { class: "node-stack", x: 3, y: 3, width: w - 6, height: hgt - 6, rx: 9 }));
  }
  const bw = n.items ? w - 6 : w;
  const bh = n.items ? hgt - 6 : hgt;
  g.appendChild(s("rect", { class: "node-box", width: bw, height: bh, rx: 9 }));
  g.appendChild(s("rect", { class: "node-stripe", x: 0, y: 0, width: 6, height: bh, rx: 3 }));
  g.appendChild(s("text", { class: "node-title", x: 16, y: 22 }, clip(n.id, n.visits > 1 ? 17 : 21)));
  // Second line: status word (coloured), kind, and the latest visit's duration on the right.
  const dur = n.durationMs !== null && n.status !== "skipped" && n.status !== "pending" ? duration(n.durationMs) : "";
  // Estimated widths at 11.5px: ~6.3 px per character, ~7.1 in bold (the status word).
  const statusW = n.status === "pending" ? 0 : n.status.length * 7.1;
  const room = Math.floor((bw - 16 - statusW - dur.length * 6.3 - 16) / 6.3);
  const kind = n.kind; // for_each shows as a stack with its items
  const sub = s("text", { class: "node-sub", x: 16, y: 40 });
  if (n.status !== "pending") sub.appendChild(s("tspan", { class: "node-status" }, n.status));
  const rest = n.status === "pending" ? kind : ` · ${kind}`;
  sub.appendChild(s("tspan", null, clip(rest, Math.max(4, room))));
  g.appendChild(sub);
  if (dur) g.appendChild(s("text", { class: "node-dur", x: bw - 10, y: 40, "text-anchor": "end" }, dur));
  if (n.visits > 1) {
    const label = `×${n.visits}`;
    const bwid = label.length * 7 + 10;
    g.appendChild(s("g", { class: "visit-badge", transform: `translate(${bw - bwid - 8},8)` },
      s("title", null, `ran ${n.visits} times (visits)`),
      s("rect", { width: bwid, height: 18, rx: 9 }),
      s("text", { x: bwid / 2, y: 13, "text-anchor": "middle" }, label)));
  }
  if (n.items) {
    const total = n.items.length;
    const done = n.items.filter((x) => x === "succeeded" || x === "continued" || x === "fallback").length;
    const y = 53;
    const x0 = 16;
    const avail = bw - x0 - 84;
    const strip = s("g", { class: "items" });
    if (total > 0 && total <= 30) {
      const cw = Math.min(10, avail / total);
      n.items.forEach((st, i) => strip.appendChild(s("rect", { class: `item st-${st}`, x: x0 + i * cw, y, width: Math.max(1, cw - 2), height: 9, rx: 2 })));
    } else if (total > 0) {
      const counts = new Map<string, number>();
      for (const st of n.items) counts.set(st, (counts.get(st) ?? 0) + 1);
      let x = x0;
      for (const [st, c] of counts) {
        const wd = (c / total) * avail;
        strip.appendChild(s("rect", { class: `item st-${st}`, x, y, width: Math.max(1, wd), height: 9 }));
        x += wd;
      }
    }
    strip.appendChild(s("text", { class: "items-count", x: bw - 10, y: y + 9, "text-anchor": "end" }, `${done}/${total} item${total === 1 ? "" : "s"}`));
    g.appendChild(strip);
  }
  g.addEventListener("click", () => onSelect(n.id));
  g.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      onSelect(n.id);
    }
  });
  return g;
}

/** Draw the laid-out graph into `host`. */
export function drawDag(host: HTMLElement, model: DagModel, laid: ElkNode, o: { selected?: string; onSelect: (stage: string) => void }): void {
  const width = Math.ceil(laid.width ?? 600);
  const height = Math.ceil(laid.height ?? 200);
  const svg = s("svg", { class: "dag-svg", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "pipeline graph" });
  svg.appendChild(s("defs", null, marker("arrow-dep", "arrow-dep"), marker("arrow-route", "arrow-route"), marker("arrow-route-idle", "arrow-route-idle"), marker("arrow-fallback", "arrow-fallback")));
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
  svg.appendChild(edgeLayer);
  const nodes = new Map(model.nodes.map((n) => [n.id, n]));
  const nodeLayer = s("g", { class: "nodes" });
  for (const box of laid.children ?? []) {
    const n = nodes.get(box.id);
    if (n) nodeLayer.appendChild(drawNode(n, box, o.selected === n.id, o.onSelect));
  }
  svg.appendChild(nodeLayer);
  svg.appendChild(labelLayer);
  host.replaceChildren(svg);
}
