/**
 * `renderTrace`: the human view of a trace for `baton trace RUN` — a header, a timeline tree
 * (one line per stage visit in start order, for_each items and fallback calls under their
 * stage, retries and decisions where they happened), the errors, and the final output.
 */
import { executionId } from "./entry.js";
import { clip, compact, count, duration, jsonLines, paint, reads, type Seg } from "./format.js";
import type { Trace, TraceAttempt, TraceDecision, TraceRunStatus, TraceStage, TraceStageStatus, TraceStep, TraceToolCall, TraceToolCallStatus, TraceTurn } from "./types.js";

/** Options of {@link renderTrace}. */
export interface RenderOptions {
  /** Emit ANSI colour codes (a TTY that wants them). With `false` the text has no escape codes. */
  readonly color: boolean;
  /** Columns per line; longer lines are cut with `…`. @default 100 */
  readonly width?: number;
  /** for_each items listed per stage before the rest are summarised (unusual ones first). @default 10 */
  readonly maxItems?: number;
  /** Lines of the final output's JSON shown. @default 20 */
  readonly outputLines?: number;
  /** Errors listed before the rest are summarised. @default 20 */
  readonly maxErrors?: number;
  /** Agent turns listed per stage entry (the first and the last ones) before the rest are summarised. @default 20 */
  readonly maxTurns?: number;
}

const SYMBOL: Record<TraceStageStatus, Seg> = {
  succeeded: ["✓", "green"], failed: ["✗", "red"], retrying: ["↻", "yellow"], running: ["…", "cyan"],
  skipped: ["⊘", "dim"], cancelled: ["⊗", "magenta"], continued: ["↷", "yellow"], fallback: ["⇢", "blue"],
  waiting: ["⏸", "magenta"], escalated: ["⏸", "red"],
};
const RUN_SYMBOL: Record<TraceRunStatus, Seg> = {
  succeeded: ["✓", "green"], failed: ["✗", "red"], cancelled: ["⊗", "magenta"], running: ["…", "cyan"], waiting: ["‖", "yellow"],
};
const ATTEMPT_SYMBOL: Record<TraceAttempt["status"], Seg> = {
  succeeded: ["✓", "green"], failed: ["✗", "red"], cancelled: ["⊗", "magenta"], running: ["…", "cyan"], waiting: ["⏸", "magenta"], answered: ["⏵", "green"],
};
const CALL_SYMBOL: Record<TraceToolCallStatus, Seg> = {
  succeeded: ["✓", "green"], failed: ["✗", "red"], declined: ["⊘", "yellow"], waiting: ["⏸", "magenta"], running: ["…", "cyan"], cancelled: ["⊗", "magenta"],
};
/** Characters of a final answer shown on its turn's line. */
const TEXT_CHARS = 120;
/** Characters of a tool call's arguments shown at most. */
const ARGS_CHARS = 80;

type Row = { readonly at: string; readonly stage?: TraceStage; readonly decision?: TraceDecision };

/**
 * Render a trace as text for a terminal or a log file.
 *
 * @example
 * const text = renderTrace(buildTrace(events, plan), { color: process.stdout.isTTY === true, width: process.stdout.columns });
 * process.stdout.write(text + "\n");
 */
export function renderTrace(trace: Trace, opts: RenderOptions): string {
  const r = new Renderer(trace, opts);
  return r.render();
}

class Renderer {
  private readonly out: string[] = [];
  private readonly width: number;
  private readonly items = new Map<string, TraceStage[]>();
  private readonly fallbacks = new Map<string, TraceStage[]>();
  private readonly decisions = new Map<string, TraceDecision[]>();
  private nameWidth = 0;

  constructor(private readonly trace: Trace, private readonly opts: RenderOptions) {
    this.width = Math.max(40, opts.width ?? 100);
  }

  private line(indent: number, ...segs: Seg[]): void {
    this.out.push(paint([[" ".repeat(indent)], ...segs], this.width, this.opts.color));
  }

  render(): string {
    this.header();
    this.out.push("");
    this.timeline();
    this.out.push("");
    this.errors();
    this.output();
    return this.out.join("\n");
  }

  private header(): void {
    const run = this.trace.run;
    const sym = RUN_SYMBOL[run.status];
    const took = run.duration_ms === null ? "" : ` in ${duration(run.duration_ms)}`;
    this.line(0, ["run ", "bold"], [run.id, "bold"], ["  "], [run.pipeline], ["  "], sym, [` ${run.status}`, sym[1]], [took]);
    const ended = run.ended_at === null ? "" : `  ended ${run.ended_at}`;
    this.line(0, [`started ${run.started_at}${ended}  plan ${run.plan_hash.slice(0, 12)}`, "dim"]);
    if (run.tokens.input + run.tokens.output > 0 || run.cost_usd > 0) {
      this.line(0, [`tokens ${count(run.tokens.input)} in / ${count(run.tokens.output)} out  $${run.cost_usd.toFixed(4)}`, "dim"]);
    }
    if (run.error) {
      const where = run.error.stage !== undefined ? `stage '${run.error.stage}': ` : "";
      this.line(0, ["error ", "red"], [`${where}${run.error.kind}: ${run.error.message}`]);
    }
    if (run.waiting) this.line(0, ["waiting ", "yellow"], [`on '${run.waiting.stage}': ${run.waiting.message}`]);
    for (const sg of run.signals ?? []) {
      // Signals a wait took show under that stage; the others wait here for one.
      if (sg.taken_by !== undefined) continue;
      this.line(0, ["signal ", "yellow"], [`'${sg.name}'${sg.by !== undefined ? ` from ${sg.by}` : ""} at ${sg.at}, not taken yet${sg.data !== undefined ? ` → ${compact(sg.data, 60)}` : ""}`]);
    }
    if (run.rerun_of !== undefined) this.line(0, ["rerun ", "blue"], [`of run ${run.rerun_of} from '${run.rerun_from ?? "?"}' (↺ reused from it, not executed)`]);
    for (const c of run.code_changed ?? []) {
      const files = Object.entries(c.files).map(([f, h]) => `${f} ${h.from.slice(0, 12)} → ${h.to === null ? "missing" : h.to.slice(0, 12)}`).join(", ");
      this.line(0, ["code changed: ", "yellow"], [`${files} (${c.at}${c.by ? `, by ${c.by}` : ""})`]);
    }
  }

  private timeline(): void {
    const ids = new Set<string>();
    const top: Row[] = [];
    for (const s of this.trace.stages) ids.add(s.id);
    for (const s of this.trace.stages) {
      const owner = s.fallback_for !== undefined ? executionId(s.fallback_for, s.visit, s.item) : undefined;
      const whole = s.item !== undefined && owner === undefined ? executionId(s.stage, s.visit) : undefined;
      if (owner !== undefined && ids.has(owner)) push(this.fallbacks, owner, s);
      else if (whole !== undefined && ids.has(whole)) push(this.items, whole, s);
      else {
        top.push({ at: s.started_at, stage: s });
        this.nameWidth = Math.max(this.nameWidth, label(s).length);
      }
    }
    for (const d of this.trace.decisions) {
      const key = executionId(d.stage, d.visit, d.kind === "fallback" || d.kind === "escalate" || d.kind === "approval" ? d.item : undefined);
      if (ids.has(key)) push(this.decisions, key, d);
      else top.push({ at: d.at, decision: d });
    }
    this.nameWidth = Math.min(this.nameWidth, 30);
    top.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    this.line(0, ["timeline", "bold"]);
    if (top.length === 0) this.line(2, ["(nothing ran yet)", "dim"]);
    for (const row of top) {
      if (row.stage) this.entry(row.stage, 0, this.nameWidth, true, true);
      else if (row.decision) this.decision(row.decision, 0);
    }
  }

  /** One stage entry; `detail`: its agent turns, tool calls and steps line by line (else summed up on its line). */
  private entry(s: TraceStage, indent: number, nameWidth: number, showLogs: boolean, detail: boolean): void {
    const sym = SYMBOL[s.status];
    const name = (s.fallback_for !== undefined ? `${label(s)} (fallback for ${s.fallback_for})` : s.item !== undefined ? `[${s.item}]` : label(s)).padEnd(nameWidth);
    const segs: Seg[] = [s.reused_from !== undefined ? REUSED : sym, [" "], [name]];
    if (s.reused_from !== undefined) {
      // Not executed: its outcome was taken from the run this one forks (`baton rerun --from`).
      this.line(indent, ...segs, [`  reused from run ${s.reused_from}${s.status !== "succeeded" ? ` (${s.status} there)` : ""}`, REUSED[1]]);
      return;
    }
    if (s.status === "skipped" || s.status === "cancelled") segs.push([`  ${s.status}: ${s.reason ?? ""}`, sym[1]]);
    else if (s.status !== "succeeded") segs.push([`  ${s.status}`, sym[1]]);
    if (s.status !== "skipped") segs.push([`  ${s.duration_ms === null ? "…" : duration(s.duration_ms)}`]);
    const extra: string[] = [];
    if (s.item_count !== undefined) extra.push(itemsText(s.item_count));
    if (s.attempts.length > 1) extra.push(`${s.attempts.length} attempts`);
    if (s.queued_ms !== null && s.queued_ms >= 1000) extra.push(`queued ${duration(s.queued_ms)}`);
    if (s.model !== undefined) extra.push(s.model);
    if (s.tokens) extra.push(`${count(s.tokens.input + s.tokens.output)} tokens`);
    if (s.cost_usd !== undefined && s.cost_usd > 0) extra.push(`$${s.cost_usd.toFixed(4)}`);
    if (!detail && s.turns && s.turns.length > 0) {
      const calls = s.turns.reduce((n, t) => n + t.tool_calls.length, 0);
      extra.push(`${count(s.turns.length)} ${s.turns.length === 1 ? "turn" : "turns"}${calls > 0 ? `, ${count(calls)} tool ${calls === 1 ? "call" : "calls"}` : ""}`);
    }
    if (extra.length) segs.push([`  ${extra.join(" · ")}`, "dim"]);
    this.line(indent, ...segs);

    const inner = indent + 2;
    const ds = this.decisions.get(s.id) ?? [];
    for (const d of ds) if (d.kind === "if" || d.kind === "for_each") this.decision(d, inner);
    if (s.pool !== undefined && s.waited_for !== undefined && s.pool_wait_ms !== undefined) {
      this.line(inner, [`waited ${duration(s.pool_wait_ms)} for pool ${s.pool}${s.pool_key !== undefined ? ` (key ${s.pool_key})` : ""}: ${s.waited_for}`, "dim"]);
    }
    if (s.attempts.length > 1 || s.attempts.some((a) => a.status === "failed" || a.status === "cancelled")) {
      for (const a of s.attempts) this.attempt(a, inner);
    }
    if (s.turns || s.steps) this.durable(s, inner, detail);
    if (showLogs && s.logs) {
      for (const l of s.logs.slice(0, 3)) this.line(inner, [`log: ${l}`, "dim"]);
      if (s.logs.length > 3) this.line(inner, [`log: … ${count(s.logs.length - 3)} more lines`, "dim"]);
    }
    for (const d of ds) if (d.kind === "fallback") this.decision(d, inner);
    for (const f of this.fallbacks.get(s.id) ?? []) this.entry(f, inner, 0, false, true);
    const items = this.items.get(s.id);
    if (items || s.item_count !== undefined) this.itemList(s, items ?? [], inner);
    // Routes, escalations and the human answers to them, in the order they happened.
    for (const d of ds) if (d.kind === "route" || d.kind === "escalate" || d.kind === "approval") this.decision(d, inner);
  }

  private itemList(whole: TraceStage, items: readonly TraceStage[], indent: number): void {
    const max = this.opts.maxItems ?? 10;
    const picked = new Set<TraceStage>();
    for (const x of items) {
      if (picked.size >= max) break;
      if (x.status !== "succeeded" || x.attempts.length > 1 || this.fallbacks.has(x.id)) picked.add(x);
    }
    for (const x of items) {
      if (picked.size >= max) break;
      picked.add(x);
    }
    const shown = [...picked].sort((a, b) => (a.item ?? 0) - (b.item ?? 0));
    const w = shown.reduce((m, x) => Math.max(m, `[${x.item ?? 0}]`.length), 0);
    for (const x of shown) this.entry(x, indent, w, false, false);
    const hidden = new Map<TraceStageStatus, number>();
    for (const x of items) if (!picked.has(x)) hidden.set(x.status, (hidden.get(x.status) ?? 0) + 1);
    const notStarted = Math.max(0, (whole.item_count ?? 0) - items.length);
    const rest = items.length - picked.size;
    if (rest > 0 || notStarted > 0) {
      const parts = [...hidden].map(([st, n]) => `${count(n)} ${st}`);
      if (notStarted > 0) parts.push(`${count(notStarted)} not started`);
      this.line(indent, [`… ${count(rest + notStarted)} more: ${parts.join(", ")}`, "dim"]);
    }
  }

  /**
   * An entry's agent turns (one line each, its tool calls indented under it) and `ctx.step`
   * steps. Without `detail` only the calls that wait for approval are listed.
   */
  private durable(s: TraceStage, indent: number, detail: boolean): void {
    const turns = s.turns ?? [];
    if (!detail) {
      for (const t of turns) for (const c of t.tool_calls) if (c.status === "waiting") this.toolCall(s, c, indent);
      return;
    }
    const max = Math.max(2, this.opts.maxTurns ?? 20);
    const head = turns.length > max ? Math.ceil(max / 2) : turns.length;
    const tail = turns.length > max ? Math.floor(max / 2) : 0;
    turns.forEach((t, i) => {
      if (i < head || i >= turns.length - tail) {
        this.turn(t, indent);
        for (const c of t.tool_calls) this.toolCall(s, c, indent + 2);
      } else if (i === head) {
        const hidden = turns.slice(head, turns.length - tail);
        const calls = hidden.reduce((n, x) => n + x.tool_calls.length, 0);
        this.line(indent, [`… ${count(hidden.length)} more turns (${count(calls)} tool calls; baton trace RUN --json shows them)`, "dim"]);
      }
    });
    for (const st of s.steps ?? []) this.step(st, indent);
  }

  private turn(t: TraceTurn, indent: number): void {
    const segs: Seg[] = [[`${t.agent !== undefined ? `${t.agent} ` : ""}turn ${t.n}`, "bold"], [`  ${t.model}  ${count(t.tokens.input)}→${count(t.tokens.output)} tokens  ${t.finish_reason}`]];
    const extra = [duration(t.duration_ms)];
    if (t.replayed) extra.push("replayed");
    segs.push([`  ${extra.join(" · ")}`, "dim"]);
    if (t.tool_calls.length === 0 && t.text !== undefined) segs.push([`  ${JSON.stringify(clip(t.text.replace(/\s+/g, " ").trim(), TEXT_CHARS))}`]);
    this.line(indent, ...segs);
  }

  private toolCall(s: TraceStage, c: TraceToolCall, indent: number): void {
    const sym = CALL_SYMBOL[c.status];
    const details: string[] = [];
    let status = "";
    if (c.status === "waiting") status = `waiting for approval (baton approve ${this.trace.run.id} ${s.stage} --call ${c.id})`;
    else {
      if (c.status !== "succeeded") status = c.error ? `${c.status}: ${c.error.message}` : c.status;
      if (c.attempts > 0) details.push(`${count(c.attempts)} ${c.attempts === 1 ? "attempt" : "attempts"}`);
      if (c.duration_ms !== null) details.push(duration(c.duration_ms));
      if (c.replayed) details.push("replayed");
      const a = c.approval;
      if (a?.approved !== undefined) details.push(`${a.approved ? "approved" : "rejected"}${a.by !== undefined ? ` by ${a.by}` : ""}`);
    }
    const tail = `${status ? `  ${status}` : ""}${details.length ? `  ${details.join(" · ")}` : ""}`;
    // The arguments give way first, so the status (and a waiting call's command) stays visible.
    const room = this.width - indent - 2 - c.tool.length - 1 - tail.length;
    const args = compact(c.args, Math.max(16, Math.min(ARGS_CHARS, room)));
    this.line(indent, sym, [` ${c.tool} `], [args, "dim"], [status ? `  ${status}` : "", sym[1]], [details.length ? `  ${details.join(" · ")}` : "", "dim"]);
  }

  private step(st: TraceStep, indent: number): void {
    const extra = [duration(st.duration_ms)];
    if (st.replayed) extra.push("replayed");
    this.line(indent, ["✓", "green"], [` step ${st.name}`], [`  ${extra.join(" · ")}`, "dim"]);
  }

  private attempt(a: TraceAttempt, indent: number): void {
    const sym = ATTEMPT_SYMBOL[a.status];
    const segs: Seg[] = [sym, [` attempt ${a.n}${a.rerun ? " (rerun)" : ""}`]];
    if (a.ended_at !== null) segs.push([`  ${duration(Date.parse(a.ended_at) - Date.parse(a.started_at))}`]);
    if (a.error) segs.push([`  ${a.error.kind}: ${a.error.message}`, sym[1]]);
    else if (a.reason !== undefined) segs.push([`  cancelled: ${a.reason}`, "dim"]);
    if (a.retry_in_ms !== undefined) segs.push([`  → retry in ${duration(a.retry_in_ms)}`, "yellow"]);
    this.line(indent, ...segs);
  }

  private decision(d: TraceDecision, indent: number): void {
    const where = indent === 0 ? `${d.stage}${d.visit > 1 ? ` #${d.visit}` : ""}${d.item !== undefined ? `[${d.item}]` : ""}: ` : "";
    const read = reads(d.read);
    // The expression gives way first so that what it read stays visible.
    const why = (prefix: string, head: string): string => {
      const readPart = read ? ` read ${read}` : "";
      const room = this.width - indent - 2 - head.length - 3 - prefix.length - readPart.length;
      return ` (${prefix}${clip(d.expression, Math.max(16, room))}${readPart})`;
    };
    const mark: Seg = ["◇ ", "dim"];
    if (d.error !== undefined) {
      this.line(indent, mark, [`${where}${d.kind} `], ["✗ ", "red"], [d.error, "red"]);
      return;
    }
    switch (d.kind) {
      case "if": {
        const head = `${where}if ${d.result === true} → ${d.result === true ? "run" : "skipped"}`;
        this.line(indent, mark, [head], [why("if: ", head), "dim"]);
        return;
      }
      case "for_each": {
        const head = `${where}for_each → ${typeof d.result === "number" ? itemsText(d.result) : compact(d.result)}`;
        this.line(indent, mark, [head], [why("", head), "dim"]);
        return;
      }
      case "route": {
        if (d.exhausted !== undefined) {
          const target = d.goto ?? (d.fail !== undefined ? `fail "${d.fail}"` : d.escalate !== undefined ? `escalate "${d.escalate}"` : `[${d.route ?? "?"}]`);
          const next = d.continues_to === undefined ? "the next route decides" : d.continues_to.length > 0 ? `continuing to ${d.continues_to.join(", ")}` : "continuing (no stage needs it)";
          const head = `${where}route ${d.stage} → ${target} exhausted (${d.exhausted.taken}/${d.exhausted.max}): ${next}`;
          this.line(indent, mark, [head, "yellow"], [` (when: ${clip(d.expression, Math.max(16, this.width - indent - head.length - 24))}, not evaluated)`, "dim"]);
          return;
        }
        const target = d.goto ?? (d.fail !== undefined ? `fail "${d.fail}"` : d.escalate !== undefined ? `escalate "${d.escalate}"` : undefined);
        const name = target !== undefined ? `route → ${target}` : `route[${d.route ?? "?"}]`;
        const withText = d.with !== undefined ? ` with ${compact(d.with)}` : "";
        const head = `${where}${d.taken === true ? `${name}${target === undefined ? " taken" : ""}${withText}` : `${name} not taken`}`;
        this.line(indent, mark, [head, d.taken === true ? "bold" : undefined], [why("when: ", head), "dim"]);
        return;
      }
      case "fallback": {
        const e = d.read["error"] as { kind?: unknown; message?: unknown } | undefined;
        const after = e && typeof e === "object" ? `${String(e.kind)}: ${String(e.message)}` : read;
        this.line(indent, mark, [`${where}fallback → ${String(d.result)}`], [after ? ` (after ${after})` : "", "dim"]);
        return;
      }
      case "escalate":
        // on_error: escalate handed the failed stage to a human (its message says how to answer).
        this.line(indent, mark, [`${where}escalated: `, "red"], [typeof d.result === "string" ? d.result : compact(d.result, 60)]);
        return;
      case "approval": {
        // A human's answer (or a wait's own: a signal, a deadline, a timer): who, why, and the data it gave.
        const data = d.taken === true && d.call === undefined && !jsonIsApproved(d.result) ? ` → ${compact(d.result, 60)}` : "";
        if (d.signal !== undefined) {
          this.line(indent, mark, [`${where}signal '${d.signal.name}'${d.signal.by !== undefined ? ` from ${d.signal.by}` : ""}`, "bold"], [data]);
          return;
        }
        const verdict = `${d.call !== undefined ? `call ${d.call} ` : ""}${d.taken === true ? "approved" : "rejected"}`;
        this.line(indent, mark, [`${where}${verdict}`, d.taken === true ? "green" : "red"], [`${d.by !== undefined ? ` by ${d.by}` : ""}${d.comment ? `: ${d.comment}` : ""}`], [data]);
        return;
      }
    }
  }

  private errors(): void {
    const errs = this.trace.errors;
    if (errs.length === 0) {
      this.line(0, ["errors: none", "bold"]);
      return;
    }
    this.line(0, [`errors (${count(errs.length)})`, "bold"]);
    const max = this.opts.maxErrors ?? 20;
    for (const e of errs.slice(0, max)) {
      const where = e.execution ?? (e.stage !== null ? `${e.stage} (run)` : "run");
      const segs: Seg[] = [["✗ ", e.recovered ? "yellow" : "red"], [where]];
      if (e.attempt !== null) segs.push([`  attempt ${e.attempt}`]);
      segs.push([`  ${e.kind}: ${e.message}`], [`  ${e.retryable ? "retryable" : "not retryable"} · `, "dim"]);
      segs.push(e.recovered ? ["recovered", "green"] : ["not recovered", "red"]);
      this.line(2, ...segs);
    }
    if (errs.length > max) {
      const rest = errs.slice(max);
      this.line(2, [`… ${count(rest.length)} more errors (${count(rest.filter((e) => e.recovered).length)} recovered)`, "dim"]);
    }
  }

  private output(): void {
    const { run, assembly } = this.trace;
    if (run.status !== "succeeded") return;
    this.out.push("");
    const from = assembly.read.length ? ` from ${assembly.read.join(", ")}` : "";
    const expr = assembly.expression !== null ? ` (${assembly.expression})` : "";
    this.line(0, ["output", "bold"], [`${from}${expr}`, "dim"]);
    for (const l of jsonLines(run.output, this.width - 2, this.opts.outputLines ?? 20)) this.line(2, [l]);
  }
}

/** How a reused stage (`baton rerun --from`) is marked. */
const REUSED: Seg = ["↺", "blue"];

/** An approval's default output (`{ approved: true }`): nothing worth showing. */
function jsonIsApproved(v: unknown): boolean {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && (v as Record<string, unknown>)["approved"] === true;
}

const itemsText = (n: number): string => `${count(n)} ${n === 1 ? "item" : "items"}`;

function label(s: TraceStage): string {
  return s.visit > 1 ? `${s.stage} #${s.visit}` : s.stage;
}

function push<T>(m: Map<string, T[]>, k: string, v: T): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}
