/// <reference lib="dom" />
/**
 * What the web app asks about agent stages (SPEC §8–9): the turns, tool calls and steps of a
 * trace entry ("Trace additions"), the tool calls that wait for a human (folded from the
 * run's `stage_waiting` / `approval` events, which carry each call's approval message), and
 * the text of a turn the model is still writing (the stream's `delta` events).
 */
import type { BatonEvent, WaitingCall } from "../../engine/events.js";
import type { Trace, TraceStage, TraceStep, TraceTurn } from "../../trace/types.js";

export type { TraceStep, TraceToolCall, TraceTurn } from "../../trace/types.js";

/** The entry's turns, in order (none for stages that ran no model turn). */
export function turnsOf(entry: TraceStage): readonly TraceTurn[] {
  return entry.turns ?? [];
}

/** The entry's `ctx.step` steps. */
export function stepsOf(entry: TraceStage): readonly TraceStep[] {
  return entry.steps ?? [];
}

/** How the engine keys waits and approvals: `STAGE#VISIT[ITEM]` (approvals carry no fallback owner). */
export function waitKey(stage: string, visit: number, item?: number): string {
  return `${stage}#${visit}${item === undefined ? "" : `[${item}]`}`;
}

/** A tool call waiting for approval (the `calls` of a `stage_waiting` event). */
export type { WaitingCall } from "../../engine/events.js";

/** One event of `GET /api/runs/:id/events`: its sequence number in the run's log, and the event. */
export type LogEvent = BatonEvent & { readonly seq: number };

/** Event types {@link CallWaits} folds: ask the API for these only. */
export const CALL_EVENT_TYPES: readonly BatonEvent["type"][] = ["stage_waiting", "approval", "stage_started", "stage_succeeded", "stage_failed", "stage_cancelled", "run_finished"];

/**
 * Tool calls waiting for approval, per execution, folded from the run's events the way the
 * engine folds them: a `stage_waiting` with `calls` sets them, an `approval` with `call`
 * answers one (without, all), the execution starting or settling again clears them.
 */
export class CallWaits {
  private last = 0;
  private read = false;
  private readonly waits = new Map<string, Map<string, WaitingCall>>();

  /** Sequence number of the last event folded: fetch events after it. */
  get cursor(): number {
    return this.last;
  }

  /** Fold events (in order; those at or before the cursor are ignored). */
  apply(events: readonly LogEvent[]): void {
    this.read = true;
    for (const e of events) {
      if (e.seq <= this.last) continue;
      this.last = e.seq;
      switch (e.type) {
        case "run_finished":
          this.waits.clear();
          break;
        case "stage_waiting": {
          const key = waitKey(e.stage, e.visit, e.item);
          if (e.calls && e.calls.length > 0) this.waits.set(key, new Map(e.calls.map((c) => [c.id, c])));
          else this.waits.delete(key);
          break;
        }
        case "approval": {
          const key = waitKey(e.stage, e.visit, e.item);
          const w = this.waits.get(key);
          if (!w) break;
          if (e.call === undefined) w.clear();
          else w.delete(e.call);
          if (w.size === 0) this.waits.delete(key);
          break;
        }
        case "stage_started":
        case "stage_succeeded":
        case "stage_failed":
        case "stage_cancelled":
          this.waits.delete(waitKey(e.stage, e.visit, e.item));
          break;
      }
    }
  }

  /**
   * The calls of this entry that still wait (only while the trace says the entry waits). Until
   * the events could be read, the trace's own `waiting` calls (with their approval message).
   */
  of(entry: TraceStage): readonly WaitingCall[] {
    if (entry.status !== "waiting") return [];
    if (this.read) return [...(this.waits.get(waitKey(entry.stage, entry.visit, entry.item))?.values() ?? [])];
    return turnsOf(entry).flatMap((t) => t.tool_calls).filter((c) => c.status === "waiting")
      .map((c) => ({ id: c.id, tool: c.tool, args: c.args, message: c.approval?.message ?? `${c.tool} waits for approval` }));
  }

  /** Whether any call waits anywhere. */
  get any(): boolean {
    return this.waits.size > 0;
  }
}

/** Text a model is writing for a turn that has not been recorded yet (the stream's `delta`). */
export interface LiveTurn {
  readonly turn: number;
  readonly text: string;
}

/** A `delta` event's data: `{ stage, visit, item?, turn, text }` (the full text so far). */
export function parseDelta(data: string): { key: string; live: LiveTurn } | undefined {
  let d: unknown;
  try {
    d = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof d !== "object" || d === null) return undefined;
  const { stage, visit, item, turn, text } = d as Record<string, unknown>;
  if (typeof stage !== "string" || typeof visit !== "number" || typeof turn !== "number" || typeof text !== "string") return undefined;
  if (item !== undefined && typeof item !== "number") return undefined;
  return { key: waitKey(stage, visit, item as number | undefined), live: { turn, text } };
}

const SETTLED = new Set(["succeeded", "failed", "continued", "fallback", "skipped", "cancelled"]);

/**
 * Whether a live turn is over for the trace: the turn is in it, or its execution settled.
 * While the trace has not caught up (no entry yet, or still waiting), the text stays.
 */
export function liveTurnOver(trace: Trace, key: string, live: LiveTurn): boolean {
  const entry = trace.stages.find((s) => s.fallback_for === undefined && waitKey(s.stage, s.visit, s.item) === key);
  if (!entry) return false;
  if (turnsOf(entry).some((t) => t.n === live.turn)) return true;
  return SETTLED.has(entry.status);
}
