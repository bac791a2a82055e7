/**
 * The JSON shapes of the web UI's API (see the README, "Web UI"). Shared by the server and the
 * browser client, which import them as types only. Field names follow the trace (SPEC §5):
 * snake_case, ISO-8601 UTC timestamps, durations in milliseconds.
 */
import type { RunStatus } from "../store/port.js";
import type { Trace, TraceRun, TraceTokens } from "../trace/types.js";
import type { StageKind } from "../plan/types.js";

/** One row of `GET /api/runs`. */
export interface RunSummary {
  readonly id: string;
  readonly pipeline: string;
  readonly status: RunStatus;
  readonly started_at: string;
  /** `null` while running or waiting. */
  readonly ended_at: string | null;
  readonly duration_ms: number | null;
  readonly tokens: TraceTokens;
  readonly cost_usd: number;
  /** The parent run of a sub-pipeline (or the run a rerun forked), else `null`. */
  readonly parent_id: string | null;
  /** A failed or cancelled run: why (the trace's `run.error`; `message` may span lines). */
  readonly error?: { readonly stage?: string; readonly kind: string; readonly message: string };
  /** A waiting run: what it waits for, one entry per waiting stage execution (the first is the run's `waiting`); a running run: its sleeping stages. */
  readonly waiting_for?: readonly WaitReason[];
}

/**
 * What a run waits for: `approval` (a human: `baton approve`/`reject`, tool calls included),
 * `signal` (a `wait:` stage: `baton signal RUN NAME`), `sleep` (a `sleep:`/`until:` stage, due
 * at `due_at`), `escalation` (an `escalate:` route). `due_at`: its deadline (`timeout:`), if any.
 */
export interface WaitReason {
  readonly kind: "approval" | "signal" | "sleep" | "escalation";
  readonly stage: string;
  readonly visit?: number;
  readonly item?: number;
  readonly message: string;
  /** `signal`: the signal's name. */
  readonly signal?: string;
  /** ISO-8601: the deadline (or a sleep's wake-up). */
  readonly due_at?: string;
  /** `approval` of an agent's tool calls: how many wait. */
  readonly calls?: number;
}

/** One route of a stage in {@link PlanView}: exactly one of goto / fail / escalate is set. */
export interface RouteView {
  /** The route's `when:` expression. */
  readonly when: string;
  readonly goto?: string;
  readonly fail?: string;
  readonly escalate?: string;
  /** How many times the route may be taken in one run. */
  readonly max: number;
}

/** One stage of {@link PlanView}: what `baton plan --json` says, plus what the graph draws. */
export interface StageView {
  readonly id: string;
  readonly kind: StageKind;
  readonly description?: string;
  /** Stage ids this stage waits for. */
  readonly deps: readonly string[];
  /** Parallel wave: 0 for stages without deps, else 1 + the highest level among its deps. */
  readonly level: number;
  /** Set (true) on for_each stages. */
  readonly for_each?: boolean;
  /** The for_each expression. */
  readonly for_each_expr?: string;
  /** The `if:` expression. */
  readonly if?: string;
  readonly routes: readonly RouteView[];
  /** `on_error: { fallback: STAGE }`: the fallback stage's id. */
  readonly fallback?: string;
  /** Set (true) on stages that run only when called as a fallback. */
  readonly is_fallback?: boolean;
}

/** The plan of a run, as the web app draws it. */
export interface PlanView {
  readonly name: string;
  readonly hash: string;
  /** The `output:` expression, `null` when the run's output is the sink stages' outputs. */
  readonly output: string | null;
  readonly stages: readonly StageView[];
  /** The longest dependency chain (stage ids). */
  readonly critical_path: readonly string[];
}

/** `GET /api/runs/:id`. */
export interface RunDetail {
  readonly run: TraceRun;
  /** `null` when the run's template cannot be recompiled (a TypeScript pipeline, or a template that no longer compiles). */
  readonly plan: PlanView | null;
  readonly trace: Trace;
  /** Sequence number of the last event in the trace: follow the run from here (`/stream?after=seq`). */
  readonly seq: number;
}

/** Error body of every failed API call. */
export interface ApiError {
  readonly error: string;
}
