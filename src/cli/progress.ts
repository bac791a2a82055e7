/**
 * Live progress for `baton run` / `resume` on stderr: a redrawn table of stages (state,
 * attempt, elapsed) on a TTY, plain lines otherwise.
 */
import type { BatonEvent } from "../engine/events.js";
import type { Plan } from "../plan/types.js";
import { descendants } from "../engine/state.js";

interface Row {
  state: string;
  attempt: number;
  visit: number;
  startedAt: number | undefined;
  endedAt: number | undefined;
  items: number;
  itemsDone: number;
  note: string;
}

const SYMBOL: Record<string, string> = {
  pending: "·", running: "▶", succeeded: "✓", failed: "✗", retrying: "↻", skipped: "⊘", cancelled: "■", continued: "✓", fallback: "✓", waiting: "⏸",
};
const COLOR: Record<string, string> = {
  running: "\x1b[36m", succeeded: "\x1b[32m", failed: "\x1b[31m", retrying: "\x1b[33m", skipped: "\x1b[90m", cancelled: "\x1b[90m", continued: "\x1b[33m", fallback: "\x1b[33m", waiting: "\x1b[35m",
};

function secs(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/** Renders progress of one or more runs to a stream. */
export class Progress {
  private readonly rows = new Map<string, Row>();
  private order: string[] = [];
  private lines = 0;
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private runId = "";

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly tty: boolean,
  ) {}

  /** Feed events of a run. */
  onEvents(runId: string, events: readonly BatonEvent[], plan: Plan): void {
    if (this.order.length === 0) {
      this.order = plan.stages.filter((s) => !s.isFallback).map((s) => s.id);
      for (const id of this.order) this.rows.set(id, { state: "pending", attempt: 0, visit: 1, startedAt: undefined, endedAt: undefined, items: 0, itemsDone: 0, note: "" });
    }
    for (const e of events) this.apply(runId, e, plan);
    if (this.tty) this.schedule();
  }

  private line(text: string): void {
    if (!this.tty) this.out.write(text + "\n");
  }

  private apply(runId: string, e: BatonEvent, plan: Plan): void {
    const at = `+${secs(Math.max(0, e.at - this.startedAt))}`;
    switch (e.type) {
      case "run_started":
        this.startedAt = e.at;
        this.runId = runId;
        this.line(`run ${runId} of '${e.pipeline}' started`);
        return;
      case "run_resumed":
        if (!this.startedAt) this.startedAt = e.at;
        this.runId = runId;
        this.line(`run ${runId} resumed`);
        return;
      case "stage_started": {
        const row = this.rows.get(e.fallback_for ?? e.stage);
        if (row) {
          if (row.visit !== e.visit) Object.assign(row, { visit: e.visit, itemsDone: 0, note: "", startedAt: e.at, attempt: 0 });
          row.state = "running";
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
          row.state = e.fallback_for ? "fallback" : "succeeded";
          row.endedAt = e.at;
          this.line(`${at} ${e.stage}${e.visit > 1 ? `#${e.visit}` : ""} succeeded${row.startedAt !== undefined ? ` in ${secs(e.at - row.startedAt)}` : ""}`);
        }
        return;
      }
      case "stage_failed":
        this.line(`${at} ${e.stage}${e.item !== undefined ? `[${e.item}]` : ""} attempt ${e.attempt} failed: ${e.error.kind}: ${e.error.message}`);
        return;
      case "retry_scheduled": {
        const row = this.rows.get(e.fallback_for ?? e.stage);
        if (row) row.state = "retrying";
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
        if (row && e.item === undefined) Object.assign(row, { state: e.outcome === "failed" ? "failed" : e.outcome, endedAt: e.at });
        if (row && e.item !== undefined) row.itemsDone++;
        this.line(`${at} ${e.stage}${e.item !== undefined ? `[${e.item}]` : ""} ${e.outcome === "failed" ? "failed for good" : e.outcome === "continued" ? "failed; continuing with null" : "settled by its fallback"}`);
        return;
      }
      case "stage_completed": {
        const row = this.rows.get(e.stage);
        if (row) Object.assign(row, { state: "succeeded", endedAt: e.at });
        this.line(`${at} ${e.stage} completed (${row?.items ?? 0} items)`);
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
              if (r) Object.assign(r, { state: "pending", startedAt: undefined, endedAt: undefined, items: 0, itemsDone: 0, note: `visit ${r.visit + 1} next` });
            }
          }
        }
        return;
      }
      case "stage_cancelled":
        this.line(`${at} ${e.stage}${e.item !== undefined ? `[${e.item}]` : ""} cancelled (${e.reason})`);
        return;
      case "run_waiting":
        this.line(`${at} run waiting at '${e.stage}': ${e.message}`);
        return;
      case "run_cancel_requested":
        this.line(`${at} cancelling: ${e.reason}`);
        return;
      case "run_finished":
        this.line(`${at} run ${e.status}${e.error ? `: ${e.error.stage ? `stage '${e.error.stage}': ` : ""}${e.error.message}` : ""}`);
        return;
    }
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.draw();
    }, 50);
    this.timer.unref();
  }

  /** Redraw the table (TTY only). */
  draw(): void {
    if (!this.tty) return;
    const now = Date.now();
    const width = Math.max(...this.order.map((s) => s.length), 5);
    const out: string[] = [`run ${this.runId}  ${secs(Math.max(0, now - this.startedAt))}`];
    for (const id of this.order) {
      const r = this.rows.get(id)!;
      const elapsed = r.startedAt === undefined ? "" : secs((r.endedAt ?? now) - r.startedAt);
      const items = r.items ? ` ${r.itemsDone}/${r.items} items` : "";
      const attempt = r.attempt > 1 ? ` attempt ${r.attempt}` : "";
      const visit = r.visit > 1 ? ` visit ${r.visit}` : "";
      const color = COLOR[r.state] ?? "";
      out.push(`  ${color}${SYMBOL[r.state] ?? "?"} ${id.padEnd(width)} ${r.state.padEnd(9)}\x1b[0m ${elapsed.padStart(6)}${items}${attempt}${visit}${r.note ? `  \x1b[90m${r.note}\x1b[0m` : ""}`);
    }
    let s = this.lines > 0 ? `\x1b[${this.lines}F\x1b[J` : "";
    s += out.join("\n") + "\n";
    this.lines = out.length;
    this.out.write(s);
  }

  /** Final redraw. */
  end(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.draw();
  }
}
