/**
 * How a run's row follows its events: the one rule every store adapter applies in the same
 * transaction as the append (run_finished → its status and end time, run_waiting → waiting,
 * run_resumed → running again).
 */
import type { BatonEvent } from "../engine/events.js";
import type { RunStatus } from "./port.js";

/** The run-row columns an event sequence changes: `undefined` = left as it was. */
export interface RowChange {
  status: RunStatus | undefined;
  /** `null` clears ended_at (resumed), `undefined` leaves it. */
  endedAt: number | null | undefined;
}

/** The run-row change of a batch of events. */
export function rowChange(events: readonly BatonEvent[]): RowChange {
  const change: RowChange = { status: undefined, endedAt: undefined };
  for (const e of events) {
    if (e.type === "run_finished") {
      change.status = e.status;
      change.endedAt = e.at;
    } else if (e.type === "run_waiting") {
      change.status = "waiting";
    } else if (e.type === "run_resumed") {
      change.status = "running";
      change.endedAt = null;
    }
  }
  return change;
}

