/**
 * `renderDiff`: the human view of a {@link RunDiff} for `baton diff RUN_A RUN_B` — both runs
 * side by side, the plan verdict, changed inputs and output, the stage executions that changed
 * (with their JSON changes), those that ran in one run only, the decisions that went
 * differently, and error counts.
 */
import type { DecisionDiff, DecisionSide, JsonChange, Pair, RunDiff, RunSide, StageDiff } from "./diff.js";
import { compact, count, duration, paint, reads, type Seg, type Style } from "./format.js";
import type { TraceTokens } from "./types.js";

/** Options of {@link renderDiff}. */
export interface DiffRenderOptions {
  /** Emit ANSI colour codes. With `false` the text has no escape codes. */
  readonly color: boolean;
  /** Columns per line; longer lines are cut with `…`. @default 100 */
  readonly width?: number;
  /** Stage entries listed before the rest are counted. @default 50 */
  readonly maxStages?: number;
  /** JSON changes listed per value before the rest are counted. @default 20 */
  readonly maxChanges?: number;
  /** Decisions listed before the rest are counted. @default 30 */
  readonly maxDecisions?: number;
}

const RUN_STYLE: Record<RunSide["status"], Style> = { succeeded: "green", failed: "red", cancelled: "magenta", running: "cyan", waiting: "yellow" };
const OP: Record<JsonChange["op"], Seg> = { added: ["+", "green"], removed: ["-", "red"], changed: ["~", "yellow"], more: ["…", "dim"] };

/**
 * Render a run diff as text for a terminal or a log file.
 *
 * @example
 * process.stdout.write(renderDiff(diffTraces(traceA, traceB), { color: process.stdout.isTTY === true }) + "\n");
 */
export function renderDiff(d: RunDiff, opts: DiffRenderOptions): string {
  return new DiffRenderer(d, opts).render();
}

/** `a → b` of two durations, with the change when both are known. */
function durations([a, b]: Pair<number | null>): string {
  const text = `${a === null ? "…" : duration(a)} → ${b === null ? "…" : duration(b)}`;
  if (a === null || b === null || a === b) return text;
  const delta = b - a;
  return `${text} (${delta > 0 ? "+" : "-"}${duration(Math.abs(delta))})`;
}

const tokenTotal = (t: TraceTokens | null): number => (t === null ? 0 : t.input + t.output);
const usd = (n: number | null): string => (n === null ? "—" : `$${n.toFixed(4)}`);
const plural = (n: number, one: string, many = `${one}s`): string => `${count(n)} ${n === 1 ? one : many}`;
/** Changes in a list, the `more` marker's count included. */
const changeCount = (cs: readonly JsonChange[]): number => cs.reduce((n, c) => n + (c.op === "more" ? (c.more ?? 0) : 1), 0);

class DiffRenderer {
  private readonly out: string[] = [];
  private readonly width: number;

  constructor(private readonly d: RunDiff, private readonly opts: DiffRenderOptions) {
    this.width = Math.max(40, opts.width ?? 100);
  }

  private line(indent: number, ...segs: Seg[]): void {
    this.out.push(paint([[" ".repeat(indent)], ...segs], this.width, this.opts.color));
  }

  render(): string {
    this.header();
    this.values("inputs", this.d.inputs);
    this.values("output", this.d.output);
    this.stages();
    this.decisions();
    this.errors();
    return this.out.join("\n");
  }

  private header(): void {
    const { a, b } = this.d;
    const idW = Math.max(a.id.length, b.id.length);
    const pipeW = Math.max(a.pipeline.length, b.pipeline.length);
    const stW = Math.max(a.status.length, b.status.length);
    for (const [name, r] of [["A", a], ["B", b]] as const) {
      const took = r.duration_ms === null ? "…" : duration(r.duration_ms);
      this.line(0, [`${name} `, "bold"], [r.id.padEnd(idW), "bold"], [`  ${r.pipeline.padEnd(pipeW)}  `], [r.status.padEnd(stW), RUN_STYLE[r.status]], [`  ${took.padStart(8)}`], [`  plan ${r.plan_hash.slice(0, 12)}  ${r.started_at.slice(0, 19).replace("T", " ")}Z`, "dim"]);
    }
    const parts: Seg[] = [["plan ", "bold"], this.d.same_plan ? ["same", "green"] : ["different", "yellow"]];
    const t = this.d.totals;
    parts.push([`  duration ${durations(t.duration_ms)}`]);
    const [ta, tb] = t.tokens;
    if (tokenTotal(ta) + tokenTotal(tb) > 0) parts.push([`  tokens ${count(tokenTotal(ta))} → ${count(tokenTotal(tb))}`]);
    if (t.cost_usd[0] + t.cost_usd[1] > 0) parts.push([`  cost ${usd(t.cost_usd[0])} → ${usd(t.cost_usd[1])}`]);
    this.line(0, ...parts);
    if (a.pipeline !== b.pipeline) this.line(0, [`note: different pipelines ('${a.pipeline}' vs '${b.pipeline}')`, "yellow"]);
  }

  private values(name: "inputs" | "output", changes: readonly JsonChange[]): void {
    this.out.push("");
    if (changes.length === 0) {
      this.line(0, [`${name}: `, "bold"], ["same", "dim"]);
      return;
    }
    this.line(0, [`${name}: `, "bold"], [plural(changeCount(changes), "change")]);
    this.changes(name, changes, 2);
  }

  /** One line per JSON change: `- path: a`, `+ path: b`, `~ path: a → b`. */
  private changes(root: string, changes: readonly JsonChange[], indent: number): void {
    const max = this.opts.maxChanges ?? 20;
    let listed = 0;
    let shownLeft = 0;
    for (const c of changes) {
      if (c.op === "more") {
        shownLeft += c.more ?? 0;
        continue;
      }
      if (listed >= max) {
        shownLeft++;
        continue;
      }
      listed++;
      const path = c.path === "" ? root : c.path.startsWith("[") ? `${root}${c.path}` : `${root}.${c.path}`;
      const head = `${path}: `;
      const room = this.width - indent - 2 - head.length;
      if (c.op === "changed") {
        const each = Math.max(16, Math.floor((room - 3) / 2));
        this.line(indent, OP.changed, [` ${head}`], [compact(c.a, each), "red"], [" → "], [compact(c.b, each), "green"]);
      } else {
        const v = c.op === "added" ? c.b : c.a;
        this.line(indent, OP[c.op], [` ${head}`], [compact(v, Math.max(16, room)), c.op === "added" ? "green" : "red"]);
      }
    }
    if (shownLeft > 0) this.line(indent, [`… ${plural(shownLeft, "more change")} (baton diff --json shows up to 50 per value)`, "dim"]);
  }

  private stages(): void {
    const { stages, unchanged } = this.d;
    const changed = stages.filter((s) => s.changed && s.only_in === undefined).length;
    const onlyA = stages.filter((s) => s.only_in === "a").length;
    const onlyB = stages.filter((s) => s.only_in === "b").length;
    const parts = [`${count(changed)} changed`];
    if (onlyA) parts.push(`${count(onlyA)} only in A`);
    if (onlyB) parts.push(`${count(onlyB)} only in B`);
    parts.push(`${count(unchanged)} unchanged`);
    this.out.push("");
    this.line(0, ["stages: ", "bold"], [parts.join(", ")]);
    const max = this.opts.maxStages ?? 50;
    let shown = 0;
    for (const s of stages) {
      if (shown >= max) break;
      shown++;
      this.stage(s);
    }
    if (stages.length > shown) this.line(2, [`… ${plural(stages.length - shown, "more stage execution")} (baton diff --json lists them all)`, "dim"]);
  }

  private stage(s: StageDiff): void {
    if (s.only_in !== undefined) {
      const [sa, sb] = s.status ?? [null, null];
      const status = s.only_in === "a" ? sa : sb;
      const took = s.duration_ms[s.only_in === "a" ? 0 : 1];
      const info = [status, took === null ? null : duration(took)].filter((x) => x !== null).join(", ");
      const sym: Seg = s.only_in === "a" ? ["-", "red"] : ["+", "green"];
      this.line(2, sym, [` ${s.key}`, "bold"], [`  only in ${s.only_in === "a" ? "A" : "B"}${info ? ` (${info})` : ""}`]);
      return;
    }
    const parts: string[] = [];
    if (s.reused) {
      // Reused by a rerun: not executed on that side, so no timing or attempts to compare.
      const [ra, rb] = s.reused;
      const from = (r: string): string => (r === this.d.a.id ? "A" : r === this.d.b.id ? "B" : `run ${r}`);
      parts.push(ra !== null && rb !== null ? `reused in both (from ${from(ra)}, from ${from(rb)})` : rb !== null ? `reused in B from ${from(rb)}` : `reused in A from ${from(ra!)}`);
      if (!s.changed) parts.push("unchanged");
    }
    if (s.status) parts.push(`${s.status[0]} → ${s.status[1]}`);
    if (s.input) parts.push(`input changed (${count(changeCount(s.input))})`);
    if (s.output) parts.push(`output changed (${count(changeCount(s.output))})`);
    if (!s.reused) parts.push(durations(s.duration_ms));
    if (s.attempts) parts.push(`attempts ${s.attempts[0]} → ${s.attempts[1]}`);
    if (s.model) parts.push(`model ${s.model[0] ?? "—"} → ${s.model[1] ?? "—"}`);
    if (s.tokens) parts.push(`tokens ${count(tokenTotal(s.tokens[0]))} → ${count(tokenTotal(s.tokens[1]))}`);
    if (s.cost_usd) parts.push(`cost ${usd(s.cost_usd[0])} → ${usd(s.cost_usd[1])}`);
    if (s.turns) parts.push(`turns ${count(s.turns[0])} → ${count(s.turns[1])}`);
    if (s.tool_calls) parts.push(`tool calls ${count(s.tool_calls[0])} → ${count(s.tool_calls[1])}`);
    const sym: Seg = s.changed ? ["~", "yellow"] : ["=", "dim"];
    this.line(2, sym, [` ${s.key}`, "bold"], [`  ${parts.join(", ")}`, s.changed ? undefined : "dim"]);
    if (s.error) {
      if (s.error[0] !== null) this.line(6, ["A ", "bold"], [s.error[0], "red"]);
      if (s.error[1] !== null) this.line(6, ["B ", "bold"], [s.error[1], "red"]);
    }
    if (s.input) this.changes("input", s.input, 6);
    if (s.output) this.changes("output", s.output, 6);
  }

  private decisions(): void {
    const ds = this.d.decisions;
    this.out.push("");
    if (ds.length === 0) {
      this.line(0, ["decisions: ", "bold"], ["same", "dim"]);
      return;
    }
    this.line(0, ["decisions: ", "bold"], [`${count(ds.length)} ${ds.length === 1 ? "differs" : "differ"}`]);
    const max = this.opts.maxDecisions ?? 30;
    for (const d of ds.slice(0, max)) this.decision(d);
    if (ds.length > max) this.line(2, [`… ${plural(ds.length - max, "more decision")}`, "dim"]);
  }

  private decision(d: DecisionDiff): void {
    const where = `${d.stage}#${d.visit}${d.item !== undefined ? `[${d.item}]` : ""} ${d.kind}${d.route !== undefined ? ` ${d.route}` : ""}${d.goto !== undefined ? ` (→ ${d.goto})` : ""}`;
    const readA = d.a ? reads(d.a.read) : "";
    const readB = d.b ? reads(d.b.read) : "";
    const read = readA && readB && readA !== readB ? `${readA} → ${readB}` : readB || readA;
    const why: Seg = [read ? ` (read ${read})` : "", "dim"];
    if (d.a && d.b) {
      this.line(2, ["~", "yellow"], [` ${where}: `], [outcome(d, d.a)], [" → "], [outcome(d, d.b), "bold"], why);
    } else {
      const only = d.a ? "A" : "B";
      const sideOf = (d.a ?? d.b)!;
      this.line(2, d.a ? ["-", "red"] : ["+", "green"], [` ${where}: `], [`only in ${only}: `, "dim"], [outcome(d, sideOf)], why);
    }
  }

  private errors(): void {
    const kinds = Object.entries(this.d.errors);
    this.out.push("");
    if (kinds.length === 0) {
      this.line(0, ["errors: ", "bold"], ["none in either run", "dim"]);
      return;
    }
    const segs: Seg[] = [["errors: ", "bold"]];
    kinds.forEach(([kind, [na, nb]], i) => {
      segs.push([`${i > 0 ? ", " : ""}${kind} `], [`${count(na)} → ${count(nb)}`, nb > na ? "red" : nb < na ? "green" : "dim"]);
    });
    this.line(0, ...segs);
  }
}

/** How a decision went in one run, in words. */
function outcome(d: DecisionDiff, s: DecisionSide): string {
  if (s.error !== undefined) return `error: ${s.error}`;
  switch (d.kind) {
    case "route":
      if (s.exhausted !== undefined) return `exhausted (${s.exhausted.taken}/${s.exhausted.max})`;
      return s.taken === true ? "taken" : "not taken";
    case "if":
      return s.result === true ? "true (ran)" : `${compact(s.result, 20)} (skipped)`;
    case "for_each":
      return typeof s.result === "number" ? plural(s.result, "item") : compact(s.result, 30);
    case "fallback":
      return `→ ${String(s.result)}`;
    default:
      return compact(s.result, 40);
  }
}
