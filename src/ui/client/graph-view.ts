/// <reference lib="dom" />
/**
 * The graph card's viewport: the laid-out graph (dag.ts) in an SVG that keeps its text legible
 * at any size, with zoom and pan.
 *
 * - Default view: the whole graph when it fits at a legible zoom (node titles at least
 *   {@link MIN_TEXT_PX} px, never enlarged past 100 %); else the full width when that is still
 *   legible; else the legible minimum, starting at the stage that needs attention (running,
 *   waiting, failed) or the first one. A graph whose layers would need more than two widths
 *   of the card at that zoom is laid out in rows (elk's wrapping) about one card wide.
 * - Zoom: Ctrl/⌘ + wheel (a trackpad pinch) about the pointer, the +/−/fit buttons, or the
 *   keys + − 0 on the focused graph. Pan: drag, the arrow keys, or the wheel once the graph has
 *   the focus (else the wheel scrolls the page); Home goes back to the default view.
 * - Live updates redraw the nodes under the same zoom and pan; a new layout (a new shape, a
 *   group expanded) keeps the zoom and the point under the view's top left.
 */
import type { ElkNode } from "elkjs/lib/elk-api.js";
import { clipText, drawGraph, layersOf, layout, warmUpLayout, LAYER_W, NODE_W as W_NODE, TITLE_PX, type DagModel } from "./dag.js";
import { h, mount, s } from "./dom.js";

/** Smallest on-screen size (px) of a node title the default view allows. */
export const MIN_TEXT_PX = 12;
/** The default view's smallest zoom: node titles at {@link MIN_TEXT_PX}. */
export const MIN_LEGIBLE = MIN_TEXT_PX / TITLE_PX;
const MAX_ZOOM = 3;
const MIN_HEIGHT = 170;
const PAD = 12;
const KEY_STEP = 80;
/** Far-out labels grow at most this much. */
const MAX_FAR = 2.6;

interface View {
  k: number;
  x: number;
  y: number;
}

const ATTENTION = ["running", "retrying", "waiting", "escalated", "failed"];

/** The graph of a run, zoomable and pannable, in `host` (the graph card's body). */
export class GraphView {
  private readonly viewport = h("div", { class: "dag-viewport", tabindex: "0", role: "group", "aria-label": "pipeline graph: drag or use the arrow keys to pan, Ctrl + wheel or + and − to zoom, 0 to fit" });
  private readonly svg = s("svg", { class: "dag-svg", role: "img", "aria-label": "pipeline graph" });
  private readonly zoomLabel = h("span", { class: "zoom-level", "aria-live": "polite" });
  private readonly expanded = new Set<string>();
  private view: View = { k: 1, x: 0, y: 0 };
  private laid: ElkNode | undefined;
  private model: DagModel | undefined;
  private selected: string | undefined;
  private seq = 0;
  private viewSet = false;
  private dragged = false;

  constructor(
    host: HTMLElement,
    private readonly o: { onSelect: (stage: string) => void; onSelectItem: (stage: string, item: number) => void; toolsHost?: HTMLElement },
  ) {
    const btn = (label: string, title: string, action: string, run: () => void): HTMLButtonElement => {
      const b = h("button", { class: "zoom-btn", type: "button", title, "aria-label": title, "data-zoom-action": action }, label);
      b.addEventListener("click", run);
      return b;
    };
    const tools = h("div", { class: "dag-tools" },
      btn("−", "zoom out (−)", "out", () => this.zoomAt(1 / 1.25)),
      this.zoomLabel,
      btn("+", "zoom in (+)", "in", () => this.zoomAt(1.25)),
      btn("fit", "fit the whole graph (0)", "fit", () => this.fit()),
      btn("reset", "back to the default view (Home)", "reset", () => this.reset()));
    warmUpLayout();
    this.viewport.appendChild(this.svg);
    // The buttons go in the card's head when there is one (over the graph they would hide nodes).
    if (o.toolsHost) o.toolsHost.appendChild(tools);
    mount(host, h("div", { class: "dag" }, o.toolsHost ? null : tools, this.viewport));
    this.listen();
  }

  /** Show `model` (laid out anew when its shape changed), with `selected` highlighted. */
  show(model: DagModel, selected: string | undefined): void {
    this.model = model;
    this.selected = selected;
    const mine = ++this.seq;
    const started = performance.now();
    const width = this.viewportWidth();
    // elk's rows come out a little wider than asked for: aim at 80 % of the width at the legible zoom.
    const wrapWidth = layersOf(model) * LAYER_W * MIN_LEGIBLE > 2 * width ? Math.max(LAYER_W * 2, ((width - 2 * PAD) / MIN_LEGIBLE) * 0.8) : undefined;
    layout(model, { ...(wrapWidth !== undefined ? { wrapWidth } : {}), expanded: this.expanded }).then(
      (laid) => {
        if (mine !== this.seq) return;
        const fresh = laid !== this.laid;
        this.laid = laid;
        this.draw();
        // For bench/ui-render.mjs: layout (when not cached) and drawing, in the page's performance timeline (the last one only).
        performance.clearMeasures("baton:graph");
        performance.measure("baton:graph", { start: started, detail: { nodes: model.nodes.length, fresh } });
        if (!this.viewSet) this.reset();
        else if (fresh) this.refit();
      },
      (err: unknown) => {
        if (mine === this.seq) mount(this.viewport, h("p", { class: "form-error" }, `graph layout failed: ${err instanceof Error ? err.message : String(err)}`));
      },
    );
  }

  private draw(): void {
    const model = this.model!;
    const { defs, world } = drawGraph(model, this.laid!, {
      ...(this.selected ? { selected: this.selected } : {}),
      expanded: this.expanded,
      onSelect: (stage) => {
        if (!this.dragged) this.o.onSelect(stage);
      },
      onSelectItem: (stage, item) => {
        if (!this.dragged) this.o.onSelectItem(stage, item);
      },
      onToggle: (stage) => {
        if (this.dragged) return;
        if (this.expanded.has(stage)) this.expanded.delete(stage);
        else this.expanded.add(stage);
        this.show(model, this.selected);
      },
    });
    if (this.svg.parentElement !== this.viewport) this.viewport.replaceChildren(this.svg); // after a failed layout
    this.svg.replaceChildren(defs, world);
    delete this.svg.dataset["labels"]; // new text elements: label them anew
    this.apply();
  }

  private viewportWidth(): number {
    return Math.max(240, this.viewport.clientWidth || this.viewport.parentElement?.clientWidth || 900);
  }

  private size(): { w: number; h: number } {
    return { w: this.laid?.width ?? 1, h: this.laid?.height ?? 1 };
  }

  /** The tallest the viewport gets: most of the window. */
  private maxHeight(): number {
    return Math.max(320, Math.min(720, Math.round(window.innerHeight * 0.72)));
  }

  /** The default view (see the module comment); sizes the viewport to the graph. */
  reset(): void {
    if (!this.laid) return;
    const { w, h: gh } = this.size();
    const vw = this.viewportWidth();
    const maxH = this.maxHeight();
    const fitAll = Math.min(1, (vw - PAD) / w, (maxH - PAD) / gh);
    const fitWidth = Math.min(1, (vw - PAD) / w);
    let k: number;
    if (fitAll >= MIN_LEGIBLE) k = fitAll;
    else if (fitWidth >= MIN_LEGIBLE) k = fitWidth;
    else k = MIN_LEGIBLE;
    const vh = Math.round(Math.max(MIN_HEIGHT, Math.min(maxH, gh * k + PAD)));
    this.svg.setAttribute("height", String(vh)); // an attribute: the CSP allows no inline styles
    const focus = this.focusNode();
    let x = (vw - w * k) / 2;
    let y = (vh - gh * k) / 2;
    if (w * k > vw && focus) x = PAD - (focus.x ?? 0) * k + 8;
    if (gh * k > vh) y = focus ? vh / 3 - ((focus.y ?? 0) + (focus.height ?? 0) / 2) * k : PAD;
    this.view = this.clamp({ k, x, y });
    this.viewSet = true;
    this.apply();
  }

  /** A new layout under the current zoom: the viewport grows or shrinks with the graph (a group expanded), the view stays where it was. */
  private refit(): void {
    const { h: gh } = this.size();
    const vh = Math.round(Math.max(MIN_HEIGHT, Math.min(this.maxHeight(), gh * this.view.k + PAD)));
    this.svg.setAttribute("height", String(vh));
    this.view = this.clamp(this.view);
    this.apply();
  }

  /** The whole graph in view, however small (at most 100 %). */
  fit(): void {
    if (!this.laid) return;
    const { w, h: gh } = this.size();
    const vw = this.viewportWidth();
    const vh = this.viewport.clientHeight || MIN_HEIGHT;
    const k = Math.min(1, (vw - PAD) / w, (vh - PAD) / gh); // a small graph is not blown up
    this.view = { k, x: (vw - w * k) / 2, y: (vh - gh * k) / 2 };
    this.viewSet = true;
    this.apply();
  }

  /** The stage the default view starts at: the first that needs attention, else the first one. */
  private focusNode(): ElkNode | undefined {
    const boxes = new Map((this.laid?.children ?? []).map((c) => [c.id, c]));
    const nodes = this.model?.nodes ?? [];
    for (const st of ATTENTION) {
      const n = nodes.find((x) => x.status === st);
      if (n) return boxes.get(n.id);
    }
    const first = this.laid?.children ?? [];
    return [...first].sort((a, b) => (a.y ?? 0) - (b.y ?? 0) || (a.x ?? 0) - (b.x ?? 0))[0];
  }

  /** Keep some of the graph in view: it may not be panned entirely out. */
  private clamp(v: View): View {
    const { w, h: gh } = this.size();
    const vw = this.viewportWidth();
    const vh = this.viewport.clientHeight || MIN_HEIGHT;
    const keep = 60;
    const cx = (lo: number, hi: number, x: number): number => Math.min(hi, Math.max(lo, x));
    return {
      k: v.k,
      x: cx(Math.min(PAD, vw - w * v.k - PAD) - keep, Math.max(PAD, vw - w * v.k - PAD) + keep, v.x),
      y: cx(Math.min(PAD, vh - gh * v.k - PAD) - keep, Math.max(PAD, vh - gh * v.k - PAD) + keep, v.y),
    };
  }

  private minZoom(): number {
    const { w, h: gh } = this.size();
    const vw = this.viewportWidth();
    const vh = this.viewport.clientHeight || MIN_HEIGHT;
    return Math.min(0.5, (vw - PAD) / w, (vh - PAD) / gh);
  }

  /** Zoom by `factor` about a viewport point (default: its centre). */
  zoomAt(factor: number, px?: number, py?: number): void {
    const vw = this.viewportWidth();
    const vh = this.viewport.clientHeight || MIN_HEIGHT;
    const cx = px ?? vw / 2;
    const cy = py ?? vh / 2;
    const k = Math.min(MAX_ZOOM, Math.max(this.minZoom(), this.view.k * factor));
    const gx = (cx - this.view.x) / this.view.k;
    const gy = (cy - this.view.y) / this.view.k;
    this.view = this.clamp({ k, x: cx - gx * k, y: cy - gy * k });
    this.apply();
  }

  panBy(dx: number, dy: number): boolean {
    const before = this.view;
    this.view = this.clamp({ k: before.k, x: before.x + dx, y: before.y + dy });
    this.apply();
    return this.view.x !== before.x || this.view.y !== before.y;
  }

  /** The enlargement of the far-out labels at zoom `k` (1: none; they show below the legible zoom). */
  private farScale = 1;

  /**
   * Below the legible zoom the nodes show their id alone, enlarged (up to ×{@link MAX_FAR})
   * so that it stays at about {@link MIN_TEXT_PX} on screen, clipped to the node's width.
   */
  private labels(k: number): void {
    const scale = k < MIN_LEGIBLE * 0.995 ? Math.min(MAX_FAR, round(MIN_LEGIBLE / k, 1)) : 1;
    if (scale === this.farScale && this.svg.dataset["labels"] === "set") return;
    this.farScale = scale;
    this.svg.dataset["labels"] = "set";
    this.viewport.classList.toggle("far", scale > 1);
    if (scale === 1) return;
    this.viewport.style.setProperty("--far-scale", String(scale)); // CSSOM, which the CSP allows (unlike style attributes)
    const fits = Math.max(3, Math.floor((W_NODE - 22) / (TITLE_PX * scale * 0.62)));
    for (const t of this.svg.querySelectorAll<SVGTextElement>(".node-far")) t.textContent = clipText(t.dataset["id"] ?? "", fits);
  }

  private apply(): void {
    const v = this.view;
    this.labels(v.k);
    const world = this.svg.querySelector<SVGGElement>(".dag-world");
    world?.setAttribute("transform", `translate(${round(v.x)},${round(v.y)}) scale(${round(v.k, 4)})`);
    this.viewport.dataset["zoom"] = String(round(v.k, 3));
    this.zoomLabel.textContent = `${Math.round(v.k * 100)}%`;
  }

  private listen(): void {
    const vp = this.viewport;
    vp.addEventListener("wheel", (e) => {
      if (!this.laid) return;
      const r = vp.getBoundingClientRect();
      const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? vp.clientHeight : 1;
      if (e.ctrlKey || e.metaKey) {
        e.preventDefault();
        this.zoomAt(Math.exp(-e.deltaY * unit * 0.0025), e.clientX - r.left, e.clientY - r.top);
        return;
      }
      // The wheel pans a graph that has the focus (clicked, dragged, tabbed to) while it can move
      // that way; at its edge, or before the graph was clicked, the page scrolls on (passing the
      // pointer over a tall graph does not trap the page's scrolling).
      if (!vp.contains(document.activeElement)) return;
      const dx = e.shiftKey && e.deltaX === 0 ? e.deltaY : e.deltaX;
      const dy = e.shiftKey && e.deltaX === 0 ? 0 : e.deltaY;
      if (this.panBy(-dx * unit, -dy * unit)) e.preventDefault();
    }, { passive: false });

    let start: { x: number; y: number; vx: number; vy: number; id: number } | undefined;
    vp.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 || (e.target as Element).closest(".dag-tools")) return;
      start = { x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y, id: e.pointerId };
      this.dragged = false;
    });
    vp.addEventListener("pointermove", (e) => {
      if (!start || e.pointerId !== start.id) return;
      const dx = e.clientX - start.x;
      const dy = e.clientY - start.y;
      if (!this.dragged && Math.hypot(dx, dy) < 4) return;
      if (!this.dragged) {
        this.dragged = true;
        vp.setPointerCapture(e.pointerId);
        vp.classList.add("dragging");
      }
      this.view = this.clamp({ k: this.view.k, x: start.vx + dx, y: start.vy + dy });
      this.apply();
    });
    const end = (e: PointerEvent): void => {
      if (!start || e.pointerId !== start.id) return;
      start = undefined;
      vp.classList.remove("dragging");
      if (vp.hasPointerCapture(e.pointerId)) vp.releasePointerCapture(e.pointerId);
      // The click that ends a drag selects nothing; the next one does.
      if (this.dragged) setTimeout(() => (this.dragged = false), 0);
    };
    vp.addEventListener("pointerup", end);
    vp.addEventListener("pointercancel", end);

    vp.addEventListener("keydown", (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const moves: Record<string, [number, number]> = { ArrowLeft: [KEY_STEP, 0], ArrowRight: [-KEY_STEP, 0], ArrowUp: [0, KEY_STEP], ArrowDown: [0, -KEY_STEP] };
      const m = moves[e.key];
      if (m) this.panBy(m[0], m[1]);
      else if (e.key === "+" || e.key === "=") this.zoomAt(1.25);
      else if (e.key === "-" || e.key === "_") this.zoomAt(1 / 1.25);
      else if (e.key === "0") this.fit();
      else if (e.key === "Home") this.reset();
      else return;
      e.preventDefault();
    });
  }
}

const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;
