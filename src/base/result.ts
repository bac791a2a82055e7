/**
 * Run status and the result of a run, declared once for the engine (run state), the store
 * (run rows), the runtime and workers (what a run ended as), the trace, the UI and the CLI.
 * Imports nothing.
 */

/** Every status a run can have, in lifecycle order. The type comes from this array. */
export const RUN_STATUSES = ["running", "waiting", "succeeded", "failed", "cancelled"] as const;

/** One of {@link RUN_STATUSES}. */
export type RunStatus = (typeof RUN_STATUSES)[number];

/** Whether `v` is one of {@link RUN_STATUSES}. */
export function isRunStatus(v: unknown): v is RunStatus {
  return typeof v === "string" && (RUN_STATUSES as readonly string[]).includes(v);
}

/** What a run ended as (SPEC §4 `--json`): any status but `running`. */
export interface RunResult {
  readonly id: string;
  readonly pipeline: string;
  readonly status: Exclude<RunStatus, "running">;
  readonly output?: unknown;
  readonly error?: { readonly stage?: string; readonly kind: string; readonly message: string };
  readonly duration_ms: number;
}
