/**
 * Live progress for `baton run` / `resume` / `approve` on stderr: a table of stages (state,
 * attempt, elapsed) redrawn every second on a TTY, plain lines otherwise. On a TTY a running
 * agent stage also gets a line with its model turn, the tool calls recorded since that turn, and
 * the tail of the text streaming in ({@link Progress.onDelta}); a stage waiting for a resource
 * pool says so, with how long it has waited ({@link Progress.onPoolWait}).
 *
 * The table shows the run being followed (the first one fed): a continued run's earlier events
 * come first ({@link Progress.history}) so its finished stages show as finished; sub-pipeline
 * runs never change its rows (they print as their own lines, off a TTY).
 */
import type { BatonEvent } from "../engine/events.js";
import type { Plan } from "../plan/types.js";
import { descendants } from "../engine/state.js";
import { parseLiveKey } from "../store/port.js";
import type { PoolWait } from "../runtime/attempt.js";

/** What an agent stage is doing now (TTY view). */
interface AgentLine {
  /** The for_each item of the latest turn, if any. */
  item: number | undefined;
  turn: number;
  /** Text streaming in for `turn` (empty once the turn is recorded). */
  text: string;
  /** Tool calls of the latest recorded turn: id → tool name. */
  calls: Map<string, string>;
  /** Those calls as they were recorded: "search ✓". */
  done: string[];
}

/** A wait of one execution for a pool (TTY note, ticking). */
interface PoolWaitNote {
  readonly pool: string;
  readonly key: string | undefined;
  readonly limit: string;
  /** Date.now() when it began. */
  readonly since: number;
}

interface Row {
  state: string;
  attempt: number;
  visit: number;
  startedAt: number | undefined;
  endedAt: number | undefined;
  items: number;
  itemsDone: number;
  note: string;
  agent?: AgentLine | undefined;
  /** Pool waits in progress, by execution key (`stage#visit[item]`). */
  waits?: Map<string, PoolWaitNote> | undefined;
}

const SYMBOL: Record<string, string> = {
  pending: "·", running: "▶", succeeded: "✓", failed: "✗", retrying: "↻", skipped: "⊘", cancelled: "■", continued: "✓", fallback: "✓", waiting: "⏸",
};
const COLOR: Record<string, string> = {
  running: "\x1b[36m", succeeded: "\x1b[32m", failed: "\x1b[31m", retrying: "\x1b[33m", skipped: "\x1b[90m", cancelled: "\x1b[90m", continued: "\x1b[33m", fallback: "\x1b[33m", waiting: "\x1b[35m",
};

const TOOL_MARK: Record<string, string> = { succeeded: "✓", failed: "✗", declined: "⊘" };

/** One line of model text, safe for the terminal: control characters (escapes) dropped, whitespace collapsed. */
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ").replace(/\s+/g, " ").trim();
}

/** The turn number of a turn step's name (`turn:3`, `agent:x/turn:3`), or undefined. */
function turnOf(name: string): number | undefined {
  const m = /(?:^|\/)turn:(\d+)$/.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/** Terminal columns of one code point: 2 for East Asian wide and emoji, 0 for combining marks. */
function cellWidth(cp: number): number {
  if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0xfe00 && cp <= 0xfe0f)) return 0;
  if (
    (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) || (cp >= 0x20000 && cp <= 0x3fffd)
  ) return 2;
  return 1;
}

/** Terminal columns of `s` (no escapes in it). */
function columns(s: string): number {
  let n = 0;
  for (const ch of s) n += cellWidth(ch.codePointAt(0)!);
  return n;
}

/** `s` in at most `cols` columns: its tail after "…" (`tail`), or its head before "…". */
function fitTail(s: string, cols: number, tail: boolean): string {
  if (columns(s) <= cols) return s;
  const chars = [...s];
  const kept: string[] = [];
  let used = 1; // the ellipsis
  for (let i = tail ? chars.length - 1 : 0; tail ? i >= 0 : i < chars.length; i += tail ? -1 : 1) {
    const w = cellWidth(chars[i]!.codePointAt(0)!);
    if (used + w > cols) break;
    used += w;
    kept.push(chars[i]!);
  }
  return tail ? `…${kept.reverse().join("")}` : `${kept.join("")}…`;
}

function secs(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/** Renders progress of one run (and the sub-pipeline runs it starts) to a stream. */
export class Progress {
  private readonly rows = new Map<string, Row>();
  private order: string[] = [];
  private lines = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Redraws the table every second (elapsed times tick while nothing happens). */
  private ticker: NodeJS.Timeout | undefined;
  private ended = false;
  /** Offsets (`+1.2s`) and the header's elapsed time count from here: the run's start, or this resume. */
  private startedAt: number | undefined;
  private resumed = false;
  /** The run whose stages the table shows (the first one fed). */
  private mainRun: string | undefined;
  /** Earlier events of the run being continued, applied (silently) before its first new batch. */
  private earlier: readonly BatonEvent[] | undefined;
  /** While replaying earlier events: no lines. */
  private muted = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly tty: boolean,
  ) {}

  /** Whether live turn text is shown (a TTY): only then is {@link onDelta} worth calling. */
  get showsDeltas(): boolean {
    return this.tty;
  }

  /**
   * The stored events of a run that this process continues (`resume`, `approve`, `signal`), given
   * before the run goes on: its finished stages show as finished, its for_each stages their
   * items, and its offsets count from now instead of from the run's first start.
   */
  history(runId: string, events: readonly BatonEvent[]): void {
    this.mainRun ??= runId;
    if (runId === this.mainRun) this.earlier = events;
  }

  /**
   * Text streaming in for a model turn (`key`: `stage#visit[item]:turn:N`, `text`: the turn's
   * text so far), as `RuntimeOptions.onDelta` gives it. TTY only; ignored otherwise.
   */
  onDelta(runId: string, key: string, text: string): void {
    if (!this.tty || runId !== this.mainRun) return;
    const k = parseLiveKey(key);
    const row = k === undefined ? undefined : this.rows.get(k.stage);
    if (k === undefined || row === undefined || row.visit !== k.visit) return;
    const a = (row.agent ??= { item: undefined, turn: k.turn, text: "", calls: new Map(), done: [] });
    a.item = k.item;
    a.turn = k.turn;
    a.text = text;
    this.schedule();
  }

  /**
   * An execution of the run waits for a resource pool, or no longer does (`RuntimeOptions.onPoolWait`;
   * `key`: `stage#visit[item]`): on a TTY the stage's row says "waiting for pool llm (rpm) 12s"
   * while it waits; off a TTY a line when it starts waiting and one when the pool grants.
   */
  onPoolWait(runId: string, key: string, w: PoolWait): void {
    if (runId !== this.mainRun) return;
    const m = /^(.+)#(\d+)(?:\[(\d+)\])?$/.exec(key);
    if (m === null) return;
    const row = this.rows.get(m[1]!);
    const name = `${m[1]}${m[3] !== undefined ? `[${m[3]}]` : ""}`;
    const pool = `pool ${w.pool}${w.key !== undefined ? ` (key ${w.key})` : ""}`;
    if (w.state === "waiting") {
      if (row) (row.waits ??= new Map()).set(key, { pool: w.pool, key: w.key, limit: w.limit, since: Date.now() });
      this.line(`${this.offset(Date.now())} ${name} waits for ${pool}: ${w.reason}`);
    } else {
      row?.waits?.delete(key);
      if (w.state === "granted") this.line(`${this.offset(Date.now())} ${name} got ${pool} after ${secs(w.waitedMs ?? 0)}`);
    }
    if (this.tty) this.schedule();
  }

  /** Feed events of a run (the one followed, or a sub-pipeline run it started). */
  onEvents(runId: string, events: readonly BatonEvent[], plan: Plan): void {
    this.mainRun ??= runId;
    if (runId === this.mainRun && this.order.length === 0) {
      this.order = plan.stages.filter((s) => !s.isFallback).map((s) => s.id);
      for (const id of this.order) this.rows.set(id, { state: "pending", attempt: 0, visit: 1, startedAt: undefined, endedAt: undefined, items: 0, itemsDone: 0, note: "" });
      if (this.earlier) {
        this.muted = true;
        try {
          for (const e of this.earlier) this.apply(runId, e, plan);
        } finally {
          this.muted = false;
          this.earlier = undefined;
          // What follows counts from this continuation (its run_resumed), not from the first start.
          this.startedAt = undefined;
        }
      }
    }
    for (const e of events) this.apply(runId, e, plan);
    if (this.tty && !this.ended) {
      this.schedule();
      if (!this.ticker) {
        this.ticker = setInterval(() => this.draw(), 1000);
        this.ticker.unref();
      }
    }
  }

  /** Print a message (an interrupt's notice): above the table on a TTY, which is then redrawn below it. */
  message(text: string): void {
    if (!this.tty) {
      this.out.write(text + "\n");
      return;
    }
    this.out.write((this.lines > 0 ? `\x1b[${this.lines}F\x1b[J` : "") + text + "\n");
    this.lines = 0;
    if (this.order.length > 0) this.draw();
  }

  private line(text: string): void {
    if (!this.tty && !this.muted) this.out.write(text + "\n");
  }

  /** `+1.2s` from the start of what this process follows. */
  private offset(at: number): string {
    return `+${secs(Math.max(0, at - (this.startedAt ?? at)))}`;
  }

  private apply(runId: string, e: BatonEvent, plan: Plan): void {
    if (runId !== this.mainRun) return this.child(runId, e);
    const at = this.offset(e.at);
    switch (e.type) {
      case "run_started":
        this.startedAt = e.at;
        this.line(`run ${runId} of '${e.pipeline}' started`);
        return;
      case "run_resumed": {
        // Offsets count from this resume (not from the run's first start, maybe days ago).
        if (!this.muted) {
          this.startedAt ??= e.at;
          this.resumed = true;
        }
        const done = [...this.rows.values()].filter((r) => FINAL.has(r.state)).length;
        this.line(`run ${runId} resumed (${done} of ${this.rows.size} stages done before)`);
        return;
      }
      case "stage_started": {
        const row = this.rows.get(e.fallback_for ?? e.stage);
        if (row) {
          if (row.visit !== e.visit) Object.assign(row, { visit: e.visit, itemsDone: 0, note: "", startedAt: e.at, attempt: 0, agent: undefined, waits: undefined });
          // Started again after it was interrupted (a resume): its time counts from now.
          if (row.state === "cancelled") Object.assign(row, { startedAt: e.at, note: "" });
          if (e.item === undefined || row.state !== "waiting") row.state = "running";
          row.attempt = Math.max(row.attempt, e.attempt);
          row.startedAt ??= e.at;
          row.endedAt = undefined;
        }
        if (e.item === undefined) this.line(`${at} ${e.stage}${e.visit > 1 ? `#${e.visit}` : ""} started${e.attempt > 1 ? ` (attempt ${e.attempt})` : ""}${e.fallback_for ? ` as fallback for ${e.fallback_for}` : ""}`);
        return;
      }
      case "stage_succeeded": {
        const row = this.rows.get(e.fallback_for ?? e.stage);
        if (row && e.item !== undefined) {
          row.itemsDone++;
        } else if (row) {
          Object.assign(row, { state: e.fallback_for ? "fallback" : "succeeded", endedAt: e.at, note: "", waits: undefined });
          this.line(`${at} ${e.stage}${e.visit > 1 ? `#${e.visit}` : ""} succeeded${row.startedAt !== undefined ? ` in ${secs(e.at - row.startedAt)}` : ""}`);
        }
        return;
      }
      case "stage_reused": {
        const row = this.rows.get(e.stage);
        if (row) Object.assign(row, { state: e.outcome, note: `reused from ${e.from_run}` });
        this.line(`${at} ${e.stage} reused from run ${e.from_run}`);
        return;
      }
      case "step_recorded": {
        if (!this.tty) return;
        const row = this.rows.get(e.fallback_for ?? e.stage);
        if (row === undefined || row.visit !== e.visit) return;
        if (e.kind === "turn") {
          const n = turnOf(e.name);
          if (n === undefined) return;
          const calls = (e.output as { calls?: readonly { id: string; tool: string }[] } | null)?.calls ?? [];
          row.agent = { item: e.item, turn: n, text: "", calls: new Map(calls.map((c) => [c.id, c.tool])), done: [] };
        } else if (e.kind === "tool_call" && row.agent) {
          const id = e.name.slice(e.name.lastIndexOf("call:") + 5);
          const status = (e.output as { status?: string } | null)?.status ?? "";
          row.agent.done.push(`tool ${row.agent.calls.get(id) ?? id} ${TOOL_MARK[status] ?? "?"}`);
        }
        return;
      }
      case "stage_failed":
        if (this.tty) {
          const row = this.rows.get(e.fallback_for ?? e.stage);
          if (row?.agent) row.agent.text = "";
        }
        this.line(`${at} ${e.stage}${e.item !== undefined ? `[${e.item}]` : ""} attempt ${e.attempt} failed: ${e.error.kind}: ${e.error.message}`);
        return;
      case "retry_scheduled": {
        const row = this.rows.get(e.fallback_for ?? e.stage);
        if (row && row.state !== "waiting") row.state = "retrying";
        this.line(`${at} ${e.stage}${e.item !== undefined ? `[${e.item}]` : ""} retries in ${secs(e.delay_ms)} (attempt ${e.attempt})`);
        return;
      }
      case "stage_skipped": {
        const row = this.rows.get(e.stage);
        if (row) Object.assign(row, { state: "skipped", note: e.reason });
        this.line(`${at} ${e.stage} skipped: ${e.reason}`);
        return;
      }
      case "stage_settled": {
        const row = this.rows.get(e.stage);
        if (row && e.item === undefined) Object.assign(row, { state: e.outcome === "failed" ? "failed" : e.outcome, endedAt: e.at, waits: undefined });
        if (row && e.item !== undefined) row.itemsDone++;
        this.line(`${at} ${e.stage}${e.item !== undefined ? `[${e.item}]` : ""} ${e.outcome === "failed" ? "failed for good" : e.outcome === "continued" ? "failed; continuing with null" : "settled by its fallback"}`);
        return;
      }
      case "stage_completed": {
        const row = this.rows.get(e.stage);
        if (row) Object.assign(row, { state: "succeeded", endedAt: e.at, note: "", waits: undefined });
        this.line(`${at} ${e.stage} completed (${row?.items ?? 0} items)`);
        return;
      }
      case "stage_waiting":
      case "stage_escalated": {
        const row = this.rows.get(e.fallback_for ?? e.stage);
        const message = oneLine(e.message);
        if (row && row.visit === e.visit) Object.assign(row, { state: "waiting", note: `${e.item !== undefined ? `[${e.item}] ` : ""}${message}` });
        if (e.type === "stage_escalated") this.line(`${at} ${e.stage}${e.item !== undefined ? `[${e.item}]` : ""} escalated: ${message}`);
        else this.line(`${at} ${e.stage}${e.item !== undefined ? `[${e.item}]` : ""} waits: ${message}`);
        return;
      }
      case "approval": {
        const row = this.rows.get(e.stage);
        if (row && row.state === "waiting" && e.call === undefined) Object.assign(row, { state: "running", note: "" });
        this.line(`${at} ${e.stage}${e.item !== undefined ? `[${e.item}]` : ""} ${e.approved ? "approved" : "rejected"}${e.by ? ` by ${e.by}` : ""}`);
        return;
      }
      case "decision": {
        const row = this.rows.get(e.stage);
        if (e.kind === "for_each" && row) {
          row.items = e.items?.length ?? 0;
          row.itemsDone = 0;
          row.state = "running";
          row.startedAt ??= e.at;
          this.line(`${at} ${e.stage} fans out over ${row.items} items`);
        } else if (e.kind === "route" && e.taken) {
          const route = plan.stages[plan.stageIndex.get(e.stage)!]!.routes[e.route ?? 0];
          const where = route?.goto !== undefined ? `goto ${plan.stages[route.goto]!.id}` : route?.fail !== undefined ? `fail: ${route.fail}` : `escalate: ${route?.escalate ?? ""}`;
          this.line(`${at} ${e.stage} route taken (${e.expression}) → ${where}`);
          if (route?.goto !== undefined && route.backward) {
            for (const idx of [route.goto, ...descendants(plan, route.goto)]) {
              const r = this.rows.get(plan.stages[idx]!.id);
              if (r) Object.assign(r, { state: "pending", startedAt: undefined, endedAt: undefined, items: 0, itemsDone: 0, note: `visit ${r.visit + 1} next`, waits: undefined });
            }
          }
        }
        return;
      }
      case "stage_cancelled": {
        const row = this.rows.get(e.fallback_for ?? e.stage);
        if (row && e.item === undefined && row.visit === e.visit && LIVE.has(row.state)) {
          Object.assign(row, { state: "cancelled", endedAt: e.at, note: e.reason, agent: undefined, waits: undefined });
        }
        row?.waits?.delete(`${e.stage}#${e.visit}${e.item !== undefined ? `[${e.item}]` : ""}`);
        this.line(`${at} ${e.stage}${e.item !== undefined ? `[${e.item}]` : ""} cancelled (${e.reason})`);
        return;
      }
      case "run_waiting":
        this.line(`${at} run waiting at '${e.stage}': ${e.message}`);
        return;
      case "run_cancel_requested":
        this.line(`${at} cancelling: ${e.reason}`);
        return;
      case "run_finished":
        // Nothing runs once the run has finished: what was still running was cancelled with it.
        for (const r of this.rows.values()) {
          if (LIVE.has(r.state)) Object.assign(r, { state: "cancelled", endedAt: r.startedAt === undefined ? undefined : e.at, agent: undefined });
          r.waits = undefined;
        }
        this.line(`${at} run ${e.status}${e.error ? `: ${e.error.stage ? `stage '${e.error.stage}': ` : ""}${e.error.message}` : ""}`);
        return;
    }
  }

  /** An event of a sub-pipeline run: its own line off a TTY (labelled with its id after the parent's); never a row. */
  private child(runId: string, e: BatonEvent): void {
    if (this.tty || this.muted) return;
    const label = this.mainRun !== undefined && runId.startsWith(this.mainRun) ? runId.slice(this.mainRun.length) : runId;
    const at = this.offset(e.at);
    const what = (() => {
      switch (e.type) {
        case "run_started": return `run ${runId} of '${e.pipeline}' started`;
        case "stage_started": return e.item === undefined ? `${e.stage} started${e.attempt > 1 ? ` (attempt ${e.attempt})` : ""}` : undefined;
        case "stage_succeeded": return e.item === undefined ? `${e.stage} succeeded` : undefined;
        case "stage_failed": return `${e.stage}${e.item !== undefined ? `[${e.item}]` : ""} attempt ${e.attempt} failed: ${e.error.kind}: ${e.error.message}`;
        case "stage_waiting": return `${e.stage} waits: ${oneLine(e.message)}`;
        case "run_finished": return `run ${e.status}`;
        default: return undefined;
      }
    })();
    if (what !== undefined) this.out.write(`${at} ${label}: ${what}\n`);
  }

  private schedule(): void {
    if (this.timer || this.ended) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.draw();
    }, 50);
    this.timer.unref();
  }

  /** Redraw the table (TTY only). */
  draw(): void {
    if (!this.tty || this.order.length === 0) return;
    const now = Date.now();
    const width = Math.max(...this.order.map((s) => s.length), 5);
    const since = this.startedAt === undefined ? "" : `  ${this.resumed ? "resumed " : ""}${secs(Math.max(0, now - this.startedAt))}`;
    const out: string[] = [`run ${this.mainRun ?? ""}${since}`];
    for (const id of this.order) {
      const r = this.rows.get(id)!;
      const elapsed = r.startedAt === undefined ? "" : secs(Math.max(0, (r.endedAt ?? now) - r.startedAt));
      const items = r.items ? ` ${r.itemsDone}/${r.items} items` : "";
      const attempt = r.attempt > 1 ? ` attempt ${r.attempt}` : "";
      const visit = r.visit > 1 ? ` visit ${r.visit}` : "";
      const color = COLOR[r.state] ?? "";
      const note = this.waitNote(r, now) ?? r.note;
      const head = `  ${color}${SYMBOL[r.state] ?? "?"} ${id.padEnd(width)} ${r.state.padEnd(9)}\x1b[0m ${elapsed.padStart(6)}${items}${attempt}${visit}`;
      out.push(note ? `${head}  \x1b[90m${fitTail(note, Math.max(10, (this.out.columns || 80) - 1 - columns(head.replace(ANSI_ESC, ""))), false)}\x1b[0m` : head);
      if (r.agent && (r.state === "running" || r.state === "retrying")) out.push(this.agentLine(r.agent));
    }
    let s = this.lines > 0 ? `\x1b[${this.lines}F\x1b[J` : "";
    s += out.join("\n") + "\n";
    this.lines = out.length;
    this.out.write(s);
  }

  /** "waiting for pool llm (rpm) 12s" (the longest wait of the row; "3 waiting …" for several items). */
  private waitNote(r: Row, now: number): string | undefined {
    if (!r.waits || r.waits.size === 0) return undefined;
    let first: PoolWaitNote | undefined;
    for (const w of r.waits.values()) if (first === undefined || w.since < first.since) first = w;
    const n = r.waits.size;
    return `${n > 1 ? `${n} ` : ""}waiting for pool ${first!.pool}${first!.key !== undefined ? ` (key ${first!.key})` : ""} (${first!.limit}) ${secs(Math.max(0, now - first!.since))}`;
  }

  /**
   * `    ↳ turn 2 · tool search ✓ · tail of the text…`, cut to the terminal's width (a wrapped
   * line would break the redraw).
   */
  private agentLine(a: AgentLine): string {
    const cols = Math.max(20, (this.out.columns || 80) - 1);
    const head = `    ↳ ${a.item !== undefined ? `[${a.item}] ` : ""}turn ${a.turn}${a.done.map((d) => ` · ${d}`).join("")}`;
    const text = oneLine(a.text);
    if (columns(head) > cols) return `\x1b[90m${fitTail(head, cols, false)}\x1b[0m`;
    const room = cols - columns(head) - 3; // " · "
    if (text === "" || room < 4) return `\x1b[90m${head}\x1b[0m`;
    return `\x1b[90m${head} · \x1b[0m${fitTail(text, room, true)}`;
  }

  /** Final redraw; nothing is drawn after it. */
  end(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.ticker) clearInterval(this.ticker);
    this.timer = undefined;
    this.ticker = undefined;
    this.draw();
    this.ended = true;
  }
}

/** States in which a stage is still doing something (or waiting for someone). */
const LIVE = new Set(["running", "retrying", "waiting"]);
/** States of a stage that is done. */
const FINAL = new Set(["succeeded", "failed", "skipped", "continued", "fallback"]);
// eslint-disable-next-line no-control-regex
const ANSI_ESC = /\x1b\[[0-9;]*[A-Za-z]/g;
