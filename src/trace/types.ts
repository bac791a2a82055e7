/**
 * The trace (SPEC §5): a read-only JSON view over a run's event log. It is derived from the
 * {@link BatonEvent} union by {@link buildTrace} and holds nothing the events do not say
 * (plus, when the plan is given, the assembly expression and route targets).
 *
 * Field names are public contract: add, don't break. Timestamps are ISO-8601 UTC strings,
 * durations are milliseconds. Optional fields are absent (not `undefined`) when unknown.
 */
import type { RunStatus } from "../base/result.js";
import type { ErrorKind } from "../engine/events.js";

/** Status of the run: the last of `run_finished`, `run_waiting`, `run_resumed` decides it. */
export type TraceRunStatus = RunStatus;

/**
 * Status of one stage entry.
 * - `running`: an attempt is in flight (or, for a for_each entry, items are).
 * - `retrying`: an attempt failed and a retry is scheduled.
 * - `succeeded` / `failed`: settled by its own attempts (`failed` = on_error fail, or its fallback failed too).
 * - `continued`: failed for good and `on_error: continue` made its output `null`.
 * - `fallback`: failed for good and handed to its fallback stage; `output` is the fallback's
 *   output once that succeeds (`ended_at` stays `null` until then).
 * - `skipped`: never ran (see `reason`).
 * - `cancelled`: cut off by a route back, a run failure or a run cancel (see `reason`).
 */
export type TraceStageStatus =
  | "running"
  | "retrying"
  | "succeeded"
  | "failed"
  | "continued"
  | "fallback"
  | "skipped"
  | "cancelled"
  | "waiting"
  | "escalated";

/** Status of one attempt. An attempt cut short by a process crash is `cancelled` with error kind `interrupted`. */
/** `answered`: the attempt paused for tool calls waiting for approval, and every one was answered (the next attempt continued from its recorded turns). */
export type TraceAttemptStatus = "running" | "succeeded" | "failed" | "cancelled" | "waiting" | "answered";

/** Token usage (summed from events that report it; agent stages). */
export interface TraceTokens {
  readonly input: number;
  readonly output: number;
}

/** An error as stored on an attempt. */
export interface TraceAttemptError {
  readonly kind: ErrorKind;
  readonly message: string;
  readonly retryable: boolean;
  readonly retry_after_ms?: number;
}

/** One attempt of an execution (attempts are numbered from 1). */
export interface TraceAttempt {
  readonly n: number;
  readonly started_at: string;
  /** `null` while running, or when a crash cut it short at an unknown time. */
  readonly ended_at: string | null;
  readonly status: TraceAttemptStatus;
  readonly error?: TraceAttemptError;
  /** Delay of the retry scheduled after this attempt failed (`retry_scheduled.delay_ms`). */
  readonly retry_in_ms?: number;
  /** true when this attempt re-ran one interrupted by a crash or cancel of the run. */
  readonly rerun?: true;
  /** Why the attempt was cancelled (`stage_cancelled.reason`). */
  readonly reason?: string;
  /** Lines the handler wrote with `ctx.log` during this attempt. */
  readonly logs?: readonly string[];
}

/**
 * One execution of a stage on a visit: a plain stage, one for_each item, a for_each stage as a
 * whole, a skipped stage, or a fallback call.
 *
 * `id` is `STAGE#VISIT`, then `[ITEM]` for a for_each item, then `<-OWNER` for a fallback
 * call standing in for stage OWNER: `research#1`, `fact_check#2[17]`, `fb#1[0]<-s7`.
 * Stage ids are `[A-Za-z_][A-Za-z0-9_]*`, so ids are unambiguous and stable across rebuilds.
 */
export interface TraceStage {
  readonly id: string;
  readonly stage: string;
  readonly visit: number;
  /** 0-based for_each item index; absent on plain stages and a for_each stage's own entry. */
  readonly item?: number;
  /** Set on a fallback call: the stage (same visit and item) it stands in for. */
  readonly fallback_for?: string;
  readonly status: TraceStageStatus;
  /** Why it was skipped or cancelled. */
  readonly reason?: string;
  /** First attempt's start; for a for_each entry its `for_each` decision; for a skipped stage the skip. */
  readonly started_at: string;
  readonly ended_at: string | null;
  readonly duration_ms: number | null;
  /** ms the first attempt waited between becoming ready and starting; `null` when it never started. */
  readonly queued_ms: number | null;
  /** The last attempt's evaluated `input:` (`null` when none). */
  readonly input: unknown;
  /** The entry's output (`null` until it has one); for a for_each entry, the item outputs in order. */
  readonly output: unknown;
  readonly attempts: readonly TraceAttempt[];
  /** for_each entry only: number of items. */
  readonly item_count?: number;
  /** The last attempt's `ctx.log` lines. */
  readonly logs?: readonly string[];
  readonly model?: string;
  /** The resource pool the stage drew from; `queued_ms` includes its wait for it. */
  readonly pool?: string;
  /** The key of its pool instance, when its limit is `{ pool, key }` (one instance of the pool per key). */
  readonly pool_key?: string;
  /** Why the stage waited for its pool (its first reason), e.g. "pool 'llm' at its 60 requests per minute". */
  readonly waited_for?: string;
  /** ms its attempts waited for pools in all (part of `queued_ms`; never counted against `timeout:`). */
  readonly pool_wait_ms?: number;
  /** pipeline stages: the child run (its own trace). */
  readonly child_run?: string;
  /** `baton rerun`: the output was reused from this run, not executed. */
  readonly reused_from?: string;
  readonly tokens?: TraceTokens;
  readonly cost_usd?: number;
  /**
   * Agent loops (SPEC §8–9): the model turns the execution recorded, across its attempts, in
   * the order they were recorded, each with its tool calls. Present (maybe empty) on every entry
   * that recorded a durable step; absent otherwise.
   */
  readonly turns?: readonly TraceTurn[];
  /** `ctx.step` steps the execution recorded (a tool's own steps are named `call:ID/NAME`). Present with `turns`. */
  readonly steps?: readonly TraceStep[];
}

/** Token usage of one model turn. */
export interface TraceTurnTokens extends TraceTokens {
  /** Input tokens read from the provider's prompt cache (included in `input`). */
  readonly cached?: number;
}

/**
 * Status of one tool call.
 * - `succeeded` / `failed` / `declined`: its recorded outcome (`declined`: a human rejected it).
 * - `waiting`: it waits for a human's approval (`baton approve RUN STAGE --call ID`).
 * - `running`: no outcome yet and the execution goes on (in flight, approved and about to run, or
 *   to run again on the next attempt).
 * - `cancelled`: the execution ended without an outcome for it.
 */
export type TraceToolCallStatus = "succeeded" | "failed" | "declined" | "waiting" | "running" | "cancelled";

/** A human's answer to a tool call that needed approval. */
export interface TraceCallApproval {
  /** The tool's `approval:` message. */
  readonly message?: string;
  /** Absent while the call waits. */
  readonly approved?: boolean;
  readonly by?: string;
  readonly comment?: string;
  /** When it was answered. */
  readonly at?: string;
}

/** One tool call of a model turn. */
export interface TraceToolCall {
  /** The model's tool-call id. */
  readonly id: string;
  readonly tool: string;
  /** The arguments the model passed (a string when they were not valid JSON). */
  readonly args: unknown;
  readonly status: TraceToolCallStatus;
  readonly output?: unknown;
  readonly error?: { readonly kind: string; readonly message: string; readonly retryable?: boolean };
  /** Attempts the call took (0: it never ran — invalid arguments, unknown tool, declined, no outcome yet). */
  readonly attempts: number;
  /** `null` until the call has an outcome. */
  readonly started_at: string | null;
  readonly ended_at: string | null;
  readonly duration_ms: number | null;
  /** Its recorded outcome was reused by a later attempt instead of running again. */
  readonly replayed?: true;
  /** The call could not be parsed (e.g. its arguments were not valid JSON): why. */
  readonly invalid?: string;
  /** The attempt that recorded its outcome. */
  readonly attempt?: number;
  /** Calls of tools with `approval:`: the message and the human's answer. */
  readonly approval?: TraceCallApproval;
}

/** One model turn of an agent loop. */
export interface TraceTurn {
  /** 1-based, per loop (a `ctx.agent` call numbers its own turns). */
  readonly n: number;
  readonly started_at: string;
  readonly ended_at: string;
  readonly duration_ms: number;
  /** provider:model */
  readonly model: string;
  readonly tokens: TraceTurnTokens;
  readonly cost_usd?: number;
  /** `stop`, `tool_calls`, `length`, … */
  readonly finish_reason: string;
  /** sha256 (hex) of the JSON of the messages sent in this turn: the key of `Trace.messages` and of the store's blob. */
  readonly messages_ref?: string;
  /** The reply's text (absent when empty). */
  readonly text?: string;
  readonly tool_calls: readonly TraceToolCall[];
  /** Its recorded reply was reused by a later attempt instead of asking the model again. */
  readonly replayed?: true;
  /** The `ctx.agent` loop it belongs to (its step namespace, e.g. `agent:researcher:1`); absent for the stage's own loop. */
  readonly agent?: string;
  /** The attempt that recorded it. */
  readonly attempt: number;
}

/** One `ctx.step` of an execution (recorded once it completed; a step that threw is not recorded). */
export interface TraceStep {
  readonly name: string;
  readonly status: "succeeded";
  readonly started_at: string;
  readonly ended_at: string;
  readonly duration_ms: number;
  /** Its recorded result was reused by a later attempt instead of running again. */
  readonly replayed?: true;
  /** The attempt that recorded it. */
  readonly attempt: number;
}

/** One evaluated decision (every `decision` event). */
export interface TraceDecision {
  readonly at: string;
  readonly stage: string;
  readonly visit: number;
  readonly item?: number;
  readonly kind: "route" | "if" | "for_each" | "fallback" | "escalate" | "approval";
  readonly expression: string;
  /** The values the expression read, by name. */
  readonly read: Readonly<Record<string, unknown>>;
  /** `if`/`route`: a boolean; `for_each`: the item count; `fallback`: the fallback stage id. */
  readonly result: unknown;
  /** route: whether it was taken. */
  readonly taken?: boolean;
  /** route: index in the stage's `routes:`. */
  readonly route?: number;
  /** route: the `goto` target (from the plan, when given to {@link buildTrace}). */
  readonly goto?: string;
  /** route: the `fail:` message (from the plan). */
  readonly fail?: string;
  /** route: the `escalate:` message (from the plan). */
  readonly escalate?: string;
  /** route: the evaluated `with:`. */
  readonly with?: unknown;
  /** Error while evaluating. */
  readonly error?: string;
  /**
   * route: its `max` was used up, so the engine passed it over without evaluating its `when`
   * (`result` is `null`, `taken` false): how many times it had been taken, and its `max`.
   * Derived from the log and the plan (when given to {@link buildTrace}); the engine records no
   * event for a route it passes over.
   */
  readonly exhausted?: { readonly taken: number; readonly max: number };
  /**
   * route with `exhausted`, when no later route of the stage was left to decide: the stages
   * that need this one (where the run went on; `[]` when none does).
   */
  readonly continues_to?: readonly string[];
  /** approval: who answered (`signal`, `timeout` and `timer` answer waits by themselves), and their comment. */
  readonly by?: string;
  readonly comment?: string;
  /** approval of a tool call: the call it answered (`approval.call`). */
  readonly call?: string;
  /** approval of a `wait:` stage by a signal: the signal it took, who sent it and when. */
  readonly signal?: { readonly name: string; readonly by?: string; readonly at: string };
}

/**
 * One failure. Stage errors come from `stage_failed` (one per failed attempt); a run-level
 * error (run timeout, output expression, `if`/`for_each` expression, route `fail:`, cancel)
 * comes from `run_finished` when no unrecovered stage error explains it — then `attempt`,
 * `visit` and `execution` are `null`, and `stage` is `null` unless the error names one.
 */
export interface TraceError {
  readonly at: string;
  readonly stage: string | null;
  readonly visit: number | null;
  readonly item?: number;
  readonly fallback_for?: string;
  /** Id of the {@link TraceStage} entry the failed attempt belongs to. */
  readonly execution: string | null;
  readonly attempt: number | null;
  readonly kind: string;
  readonly message: string;
  readonly retryable: boolean;
  /**
   * true when the failure did not fail the run: the execution later succeeded, or on_error
   * continue / a successful fallback settled it; for a run-level error, the run was resumed.
   */
  readonly recovered: boolean;
}

/** The run as a whole. */
export interface TraceRun {
  readonly id: string;
  readonly pipeline: string;
  readonly plan_hash: string;
  readonly status: TraceRunStatus;
  readonly inputs: Readonly<Record<string, unknown>>;
  /** The final output (`null` unless the run succeeded). */
  readonly output: unknown;
  readonly started_at: string;
  /** `null` while running or waiting. */
  readonly ended_at: string | null;
  readonly duration_ms: number | null;
  readonly tokens: TraceTokens;
  readonly cost_usd: number;
  readonly error?: { readonly stage?: string; readonly kind: string; readonly message: string };
  /** Set while the run waits for a human. */
  readonly waiting?: { readonly at: string; readonly stage: string; readonly message: string };
  readonly parent_id?: string;
  /** `baton rerun`: the run this one forks and the stage it re-executed from. */
  readonly rerun_of?: string;
  readonly rerun_from?: string;
  /**
   * Every named signal sent to the run (`baton signal RUN NAME`), in the order sent: who sent it,
   * its data, and the execution whose `wait:` took it (absent while none has). Absent when none was sent.
   */
  readonly signals?: readonly { readonly at: string; readonly name: string; readonly by?: string; readonly data?: unknown; readonly taken_by?: string }[];
  /** Code pinning: each time the run continued although its `run:` modules changed (`--allow-code-change`), their old and new sha256 (`to: null`: missing). */
  readonly code_changed?: readonly { readonly at: string; readonly files: Readonly<Record<string, { readonly from: string; readonly to: string | null }>>; readonly by?: string }[];
}

/** How the final output was assembled. */
export interface TraceAssembly {
  /** The plan's `output:` expression; `"outputs of sink stages"` when it has none; `null` without a plan. */
  readonly expression: string | null;
  /** Stage ids whose outputs the final output read (`run_finished.read`). */
  readonly read: readonly string[];
}

/** The whole trace document (`baton trace RUN --json`). */
export interface Trace {
  readonly run: TraceRun;
  readonly stages: readonly TraceStage[];
  readonly decisions: readonly TraceDecision[];
  readonly errors: readonly TraceError[];
  readonly assembly: TraceAssembly;
  /**
   * Only with `buildTrace(…, { messages: true })` (`baton trace RUN --messages`): the messages
   * each turn sent, by `messages_ref`.
   */
  readonly messages?: Readonly<Record<string, unknown>>;
}

/** Options of {@link buildTrace}. */
export interface TraceOptions {
  /** Add `messages` (the messages of every turn, by `messages_ref`). @default false */
  readonly messages?: boolean;
}
