/**
 * The event union: what is stored, what the engine folds, what the trace and UI render.
 * One model, no second trace model. Every event carries `at` (ms since epoch, UTC).
 *
 * Executions are identified by (stage, visit, item, attempt); `item` is absent for a
 * stage that is not a for_each and for a for_each stage's own entry.
 */

import type { ErrorKind } from "../base/errors.js";

/** Error kinds (SPEC §1 Errors): declared once, as `ERROR_KINDS`, in ../base/errors.ts. */
export type { ErrorKind };

/** A failure as stored: retryability is data, not a guess at the catch site. */
export interface StageError {
  readonly kind: ErrorKind;
  readonly message: string;
  readonly retryable: boolean;
  /** A provider's Retry-After, in ms. */
  readonly retry_after_ms?: number;
  /** malformed_output: the reply that failed (truncated), so the next attempt can ask for a repair. */
  readonly reply?: string;
}

/** Model usage of one attempt (agent stages). */
export interface AttemptUsage {
  /** provider:model */
  readonly model?: string;
  readonly tokens?: { readonly input: number; readonly output: number };
  readonly cost_usd?: number;
  /** pipeline stages: the child run this attempt ran. */
  readonly child_run?: string;
  /** The resource pool the attempt drew from, how long it waited for it, and why. */
  readonly pool?: string;
  /** The key of its pool instance (`limit: { pool, key }`). */
  readonly pool_key?: string;
  readonly pool_wait_ms?: number;
  readonly pool_wait_reason?: string;
  /**
   * Of `tokens`/`cost_usd`, what this attempt's recorded steps (agent turns, `step_recorded`)
   * already counted: the run's totals add only the rest.
   */
  readonly recorded_tokens?: { readonly input: number; readonly output: number };
  readonly recorded_cost_usd?: number;
}

interface Base {
  /** ms since epoch. */
  readonly at: number;
}

export interface ExecKey {
  readonly stage: string;
  readonly visit: number;
  readonly item?: number;
  /** Set on executions of a fallback stage: the stage (same visit and item) it stands in for. */
  readonly fallback_for?: string;
}

/** First event of every run. */
export interface RunStarted extends Base {
  readonly type: "run_started";
  readonly run_id: string;
  readonly pipeline: string;
  /** sha256 of the template's data (see `Plan.hash`). */
  readonly plan_hash: string;
  /** The engine's semantics version that started the run (`ENGINE_VERSION`); absent in logs recorded before it was kept. */
  readonly engine?: number;
  /** sha256 of the compiled plan (`compiledPlanHash`): resume refuses a plan that compiles differently; absent in older logs. */
  readonly compiled_hash?: string;
  /** Template text and format so resume recompiles the plan as it was. */
  readonly source: {
    readonly format: "yaml" | "json" | "ts";
    /** The template file: relative to `root` when it was under the submitter's working directory, else absolute. */
    readonly file?: string;
    /** The submitter's working directory (project root) when `file` is relative to it. */
    readonly root?: string;
    readonly text?: string;
  };
  readonly inputs: Readonly<Record<string, unknown>>;
  /** Seed of the run's jitter source. */
  readonly seed: number;
  readonly parent_id?: string;
  /** `baton rerun`: the run this one forks, and the stage it re-executes from. */
  readonly rerun_of?: string;
  readonly rerun_from?: string;
  /**
   * Code pinning: sha256 of every `run:` module the plan references (stages and tools), keyed
   * like `source.file` (relative to `source.root` when under it, else absolute). Continuing the
   * run refuses changed or missing files (see runtime/code.ts); absent in older logs and for plans
   * without `run:` modules.
   */
  readonly code?: Readonly<Record<string, string>>;
}

/**
 * The run continued although `run:` modules it pinned changed (`--allow-code-change`): their
 * recorded and new hashes (`to: null`: the file is missing). The new hashes are the run's pin
 * from here on. Recorded before anything executes with the new code; the engine places it
 * without a change of state.
 */
export interface CodeChanged extends Base {
  readonly type: "code_changed";
  readonly files: Readonly<Record<string, { readonly from: string; readonly to: string | null }>>;
  /** Who continued it: a user name, or the worker's id. */
  readonly by?: string;
}

/** An execution (one attempt) began. */
export interface StageStarted extends Base, ExecKey {
  readonly type: "stage_started";
  readonly attempt: number;
  /** ms the execution waited between becoming ready and starting. */
  readonly queued_ms: number;
  /** true when this attempt re-runs one interrupted by a crash, cancel or timeout of the run. */
  readonly rerun?: boolean;
}

export interface StageSucceeded extends Base, ExecKey, AttemptUsage {
  readonly type: "stage_succeeded";
  readonly attempt: number;
  readonly input?: unknown;
  readonly output: unknown;
  /** Lines the handler wrote with `ctx.log`. */
  readonly logs?: readonly string[];
  /** Durable steps (SPEC §9) this attempt reused from earlier attempts instead of running them. */
  readonly replayed?: readonly string[];
}

export interface StageFailed extends Base, ExecKey, AttemptUsage {
  readonly type: "stage_failed";
  readonly attempt: number;
  readonly input?: unknown;
  readonly error: StageError;
  readonly logs?: readonly string[];
  readonly replayed?: readonly string[];
}

/** A failed attempt will be retried at `due_at`. */
export interface RetryScheduled extends Base, ExecKey {
  readonly type: "retry_scheduled";
  /** The attempt that will run next. */
  readonly attempt: number;
  readonly delay_ms: number;
  readonly due_at: number;
}

/** A stage (visit) was skipped: its `if` was false, it needs a skipped stage, or a forward goto jumped over it. */
export interface StageSkipped extends Base {
  readonly type: "stage_skipped";
  readonly stage: string;
  readonly visit: number;
  readonly reason: string;
}

/** A stage (visit or item) failed for good and its on_error settled it. */
export interface StageSettled extends Base, ExecKey {
  readonly type: "stage_settled";
  /** "failed": on_error fail; "continued": output null; "fallback": the fallback's output stands in. */
  readonly outcome: "failed" | "continued" | "fallback";
  readonly output?: unknown;
  /** outcome failed: the error that failed it (when it is not the stage's own last error, e.g. its fallback's). */
  readonly error?: StageError;
}

/** Every item of a for_each stage (visit) has settled; its output is the item outputs in order. */
export interface StageCompleted extends Base {
  readonly type: "stage_completed";
  readonly stage: string;
  readonly visit: number;
}

/** An evaluated decision, with the values the expression read. */
export interface Decision extends Base {
  readonly type: "decision";
  readonly stage: string;
  readonly visit: number;
  readonly item?: number;
  readonly kind: "route" | "if" | "for_each" | "fallback" | "escalate";
  readonly expression: string;
  readonly read: Readonly<Record<string, unknown>>;
  readonly result: unknown;
  /** route: index of the route in the stage's `routes:`. */
  readonly route?: number;
  /** route: whether this route was taken (its `when` held and its `max` was not used up). */
  readonly taken?: boolean;
  /** route: the goto target's stage id (absent for fail/escalate routes). */
  readonly goto?: string;
  /** for_each: the items (stored so replay never re-evaluates). */
  readonly items?: readonly unknown[];
  /** route `with:` evaluated. */
  readonly with?: unknown;
  /** Error while evaluating (the stage then fails with kind "expression"). */
  readonly error?: string;
}

/** A rerun took this stage's settled output from the run it forks (`baton rerun --from`). */
export interface StageReused extends Base {
  readonly type: "stage_reused";
  readonly stage: string;
  readonly visit: number;
  readonly outcome: "succeeded" | "continued" | "fallback" | "skipped";
  readonly output: unknown;
  /** The run the output was recorded in. */
  readonly from_run: string;
}

/** Executions cancelled by the engine (route back, run failure, run cancel) — their results are ignored. */
export interface ExecCancelled extends Base, ExecKey {
  readonly type: "stage_cancelled";
  readonly attempt: number;
  readonly reason: string;
}

/** A tool call that waits for a human's approval before it runs (SPEC §8 `approval:`). */
export interface WaitingCall {
  /** The model's tool-call id. */
  readonly id: string;
  readonly tool: string;
  readonly args: unknown;
  /** The tool's `approval:` message, evaluated. */
  readonly message: string;
}

/**
 * An approval stage (or for_each item) now waits for a human decision — or, with `calls`, an
 * agent's attempt stopped before tool calls that need approval: once every call is answered
 * the execution runs again, its recorded turns and calls replayed.
 */
export interface StageWaiting extends Base, ExecKey, AttemptUsage {
  readonly type: "stage_waiting";
  readonly attempt: number;
  readonly message: string;
  readonly calls?: readonly WaitingCall[];
  readonly replayed?: readonly string[];
  /** A deadline (ms since epoch): when it passes, `decide` records the stage's `on_timeout` (a sleep: its wake-up). */
  readonly due_at?: number;
  /** A `wait:` stage: the named signal it waits for. */
  readonly signal?: string;
  /** A `sleep:`/`until:` stage: no human answers it; it succeeds at `due_at`. */
  readonly sleep?: true;
}

/**
 * A named signal sent to a run (`baton signal RUN NAME --data JSON`). A `wait:` stage waiting
 * for it takes it (its data is the stage's output, recorded as an `approval` by "signal"); a
 * signal nothing waits for yet is kept, and the next stage to wait for that name takes it.
 * Each signal is taken by one wait, in the order sent.
 */
export interface SignalSent extends Base {
  readonly type: "signal";
  readonly name: string;
  readonly data?: unknown;
  readonly by?: string;
}

/**
 * A durable step of an execution completed (SPEC §9): a `ctx.step`, a model turn or a tool
 * call. Recorded as it completes; a later attempt of the same execution (a retry, a resume
 * after a crash, the re-run after a tool approval) reads `output` back instead of running it.
 * Turns carry their model usage, which counts towards the run's totals and budget here.
 */
export interface StepRecorded extends Base, ExecKey {
  readonly type: "step_recorded";
  /** The attempt that ran it. */
  readonly attempt: number;
  /** Unique within the execution: `ctx.step` names as given; `turn:N` and `call:ID` for agents. */
  readonly name: string;
  readonly kind: "step" | "turn" | "tool_call";
  readonly started_at: number;
  /** The step's result, as its replay returns it (a turn's reply, a call's result). */
  readonly output: unknown;
  /** Turns: provider:model, usage and cost. */
  readonly model?: string;
  readonly tokens?: { readonly input: number; readonly output: number; readonly cached?: number };
  readonly cost_usd?: number;
  /** Turns: the messages sent to the model (stores keep them content-addressed in `blobs`). */
  readonly messages?: unknown;
}

/** A stage failed for good and its `on_error: escalate` hands it to a human. */
export interface StageEscalated extends Base, ExecKey {
  readonly type: "stage_escalated";
  readonly message: string;
}

/**
 * A human answered a waiting stage (approval stage, escalating route or on_error escalate).
 * Approved: `data` (default `{ approved: true }`) is the stage's output — for an escalating
 * route the stage keeps its own output unless data is given. Rejected: the stage fails.
 */
export interface Approval extends Base {
  readonly type: "approval";
  readonly stage: string;
  readonly visit: number;
  readonly item?: number;
  readonly approved: boolean;
  readonly data?: unknown;
  /** Who answered (user name, if known). */
  readonly by?: string;
  readonly comment?: string;
  /** Answers one tool call waiting for approval (its id), not the stage. */
  readonly call?: string;
  /** Rejected: the error the stage fails with instead of "rejected by …" (a deadline's `on_timeout: fail`). */
  readonly error?: StageError;
}

/** Nothing can progress until a human answers: the run pauses (status `waiting`). */
export interface RunWaiting extends Base {
  readonly type: "run_waiting";
  /** The first stage waiting, and its message. */
  readonly stage: string;
  readonly message: string;
  /** Every waiting stage (id#visit[item]) when more than one waits. */
  readonly waiting?: readonly { readonly stage: string; readonly visit: number; readonly item?: number; readonly message: string }[];
}

export interface RunCancelRequested extends Base {
  readonly type: "run_cancel_requested";
  readonly reason: string;
}

export interface RunResumed extends Base {
  readonly type: "run_resumed";
}

export interface RunFinished extends Base {
  readonly type: "run_finished";
  readonly status: "succeeded" | "failed" | "cancelled";
  readonly output?: unknown;
  readonly error?: { readonly stage?: string; readonly kind: string; readonly message: string };
  /** Stage ids the final output read. */
  readonly read?: readonly string[];
}

/** Every event Baton stores. */
export type BatonEvent =
  | RunStarted
  | StageStarted
  | StageSucceeded
  | StageFailed
  | RetryScheduled
  | StageSkipped
  | StageSettled
  | StageCompleted
  | StageReused
  | Decision
  | ExecCancelled
  | StageWaiting
  | StepRecorded
  | StageEscalated
  | Approval
  | SignalSent
  | RunWaiting
  | RunCancelRequested
  | RunResumed
  | CodeChanged
  | RunFinished;

export type EventType = BatonEvent["type"];
