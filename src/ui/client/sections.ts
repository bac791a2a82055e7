/// <reference lib="dom" />
/** The run page's lower sections: decisions, the final output with its provenance, errors. */
import type { Trace, TraceDecision } from "../../trace/types.js";
import { h, type Child } from "./dom.js";
import { between, duration } from "./format.js";
import { jsonView } from "./json-view.js";
import { latestOf } from "./model.js";

/** `{ a: 1 }` compactly, cut at `n` characters. */
function compact(v: unknown, n = 120): string {
  let t: string;
  try {
    t = JSON.stringify(v) ?? "undefined";
  } catch {
    t = String(v);
  }
  return t.length > n ? t.slice(0, n - 1) + "…" : t;
}

function stageLink(stage: string, label: string, onStage: ((stage: string) => void) | undefined): Child {
  if (!onStage) return h("span", { class: "mono" }, label);
  const b = h("button", { class: "linkish mono", type: "button", "data-stage": stage }, label);
  b.addEventListener("click", () => onStage(stage));
  return b;
}

function outcome(d: TraceDecision): Child {
  if (d.error) return h("span", { class: "pill st-failed" }, `error: ${d.error}`);
  switch (d.kind) {
    case "route":
      return d.taken
        ? h("span", { class: "pill route-taken" }, `taken → ${d.goto ?? (d.fail !== undefined ? "fail" : d.escalate !== undefined ? "escalate" : "?")}`)
        : h("span", { class: "pill st-skipped" }, "not taken");
    case "if":
      return d.result ? h("span", { class: "pill st-succeeded" }, "runs") : h("span", { class: "pill st-skipped" }, "skipped");
    case "for_each":
      return h("span", { class: "pill st-running" }, `${String(d.result)} items`);
    case "fallback":
      return h("span", { class: "pill st-fallback" }, `→ ${String(d.result)}`);
    case "approval":
      return d.taken ? h("span", { class: "pill st-succeeded" }, "approved") : h("span", { class: "pill st-failed" }, "rejected");
    default:
      return h("span", { class: "pill" }, compact(d.result, 40));
  }
}

/** One decision: when, where, what kind, the expression, the values it read and what came out. */
export function decisionRow(d: TraceDecision, trace: Trace, onStage: ((stage: string) => void) | undefined): HTMLElement {
  const reads = Object.entries(d.read);
  // An approval of one tool call names it (`call`, read loosely: traces before tool calls have none).
  const call = (d as { readonly call?: unknown }).call;
  const readEl = reads.length === 0 ? null : h("details", { class: "reads" },
    h("summary", null, "read ", ...reads.map(([k, v], i) => [i ? ", " : "", h("code", null, k), h("span", { class: "muted" }, ` = ${compact(v, 48)}`)])),
    ...reads.map(([k, v]) => h("div", { class: "read" }, h("div", { class: "read-name mono" }, k), jsonView(v))));
  return h("div", { class: `decision kind-${d.kind}`, "data-kind": d.kind, "data-stage": d.stage },
    h("div", { class: "decision-head" },
      h("span", { class: "muted mono" }, `+${duration(between(trace.run.started_at, d.at))}`),
      stageLink(d.stage, `${d.stage} #${d.visit}${d.item !== undefined ? ` [${d.item}]` : ""}`, onStage),
      h("span", { class: "chip" }, d.kind), outcome(d),
      typeof call === "string" ? h("span", { class: "chip mono decision-call", title: "the tool call this answered" }, `call ${call}`) : null),
    h("code", { class: "expr" }, d.expression),
    d.with !== undefined ? h("div", { class: "muted" }, "with ", h("code", null, compact(d.with))) : null,
    d.by || d.comment ? h("div", { class: "muted" }, d.by ? `by ${d.by}` : "", d.comment ? ` — “${d.comment}”` : "") : null,
    readEl);
}

/** Every decision of the run. */
export function decisionsSection(trace: Trace, onStage: (stage: string) => void): HTMLElement {
  if (trace.decisions.length === 0) return h("p", { class: "muted" }, "No decisions: no routes, conditions, fan-outs or approvals were evaluated.");
  return h("div", { class: "decisions" }, ...trace.decisions.map((d) => decisionRow(d, trace, onStage)));
}

/** The final output, the expression that assembled it and the stages it read; or the run's error. */
export function outputSection(trace: Trace, onStage: (stage: string) => void): HTMLElement {
  const { run, assembly } = trace;
  const parts: Child[] = [];
  if (run.error) {
    parts.push(h("div", { class: "run-error" }, h("strong", null, `${run.status}: `), run.error.stage ? [stageLink(run.error.stage, run.error.stage, onStage), " — "] : null, h("code", null, run.error.kind), " ", run.error.message));
  }
  if (run.status === "succeeded") {
    if (assembly.expression) parts.push(h("div", { class: "assembly" }, h("span", { class: "muted" }, "assembled by "), h("code", { class: "expr" }, assembly.expression)));
    if (assembly.read.length > 0) {
      parts.push(h("div", { class: "provenance" }, h("span", { class: "muted" }, "from stages "),
        ...assembly.read.map((id) => {
          const last = latestOf(trace, id);
          const b = h("button", { class: "chip-link", type: "button", "data-stage": id, title: last ? `${id} #${last.visit}` : id }, id);
          b.addEventListener("click", () => onStage(id));
          return b;
        })));
    }
    parts.push(jsonView(run.output, { label: "final output" }));
  } else if (!run.error) {
    parts.push(h("p", { class: "muted" }, run.status === "waiting" ? "The run is waiting for a human decision." : "The run has not finished yet."));
  }
  return h("div", { class: "output" }, ...parts);
}

/** Errors, with whether the run recovered from them. */
export function errorsSection(trace: Trace, onStage: (stage: string) => void): HTMLElement | null {
  if (trace.errors.length === 0) return null;
  return h("ul", { class: "errors" }, ...trace.errors.map((e) => h("li", { class: e.recovered ? "recovered" : "unrecovered" },
    h("span", { class: `pill ${e.recovered ? "st-continued" : "st-failed"}` }, e.recovered ? "recovered" : "failed the run"), " ",
    e.stage ? stageLink(e.stage, `${e.stage}${e.visit ? ` #${e.visit}` : ""}${e.item !== undefined ? ` [${e.item}]` : ""}${e.attempt ? ` attempt ${e.attempt}` : ""}`, onStage) : h("span", null, "run"),
    " ", h("code", null, e.kind), " ", e.message)));
}
