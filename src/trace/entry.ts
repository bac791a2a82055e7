/**
 * The builder's accumulators (one {@link Entry} per stage execution, keyed by its id) and
 * their shaping into the public trace objects, with fields in SPEC §5 order.
 * @internal
 */
import type { Decision, StepRecorded } from "../engine/events.js";
import type { Plan } from "../plan/types.js";
import type { TraceAttempt, TraceAttemptError, TraceAttemptStatus, TraceDecision, TraceError, TraceStage, TraceStageStatus, TraceStep, TraceTokens, TraceTurn } from "./types.js";

export interface Attempt {
  readonly n: number;
  readonly startedAt: number;
  endedAt: number | undefined;
  status: TraceAttemptStatus;
  error: TraceAttemptError | undefined;
  retryInMs: number | undefined;
  readonly rerun: boolean;
  reason: string | undefined;
  logs: readonly string[] | undefined;
}

/** A tool call waiting for (or answered by) a human. */
export interface CallWait {
  message: string | undefined;
  answer: { approved: boolean; by: string | undefined; comment: string | undefined; at: number } | undefined;
}

/** What the builder keeps per execution about its durable steps (shaped by `steps.ts`). */
export interface StepState {
  /** First record of each name, in record order (the one later attempts reuse). */
  readonly recorded: Map<string, StepRecorded>;
  /** Names an outcome event said its attempt reused. */
  readonly replayed: Set<string>;
  /** Tool calls that waited for approval, by call id. */
  readonly waits: Map<string, CallWait>;
}

export const newStepState = (): StepState => ({ recorded: new Map(), replayed: new Set(), waits: new Map() });

export interface Entry {
  readonly id: string;
  readonly stage: string;
  readonly visit: number;
  readonly item: number | undefined;
  readonly fallbackFor: string | undefined;
  /** A for_each stage's own entry. */
  readonly whole: boolean;
  status: TraceStageStatus;
  reason: string | undefined;
  readonly startedAt: number;
  endedAt: number | undefined;
  queuedMs: number | null;
  input: unknown;
  output: unknown;
  readonly attempts: Attempt[];
  logs: readonly string[] | undefined;
  itemCount: number | undefined;
  completed: boolean;
  /** Settled for good by on_error continue or a fallback that succeeded. */
  settled: boolean;
  model: string | undefined;
  tokens: { input: number; output: number } | undefined;
  cost: number | undefined;
  /** Resource pool the stage drew from, and why it had to wait for it. */
  pool?: string;
  /** Its pool instance's key (`limit: { pool, key }`). */
  poolKey?: string;
  waitedFor?: string;
  /** ms its attempts waited for pools. */
  poolWaitMs?: number;
  child?: string;
  reusedFrom?: string;
  /** Durable steps (agent turns, tool calls, ctx.step), once the execution recorded one. */
  durable?: StepState;
}

export interface ErrorRow {
  readonly at: number;
  readonly entry: Entry | undefined;
  readonly stage: string | null;
  readonly attempt: number | null;
  readonly kind: string;
  readonly message: string;
  readonly retryable: boolean;
  /** Run-level errors: a later run_resumed recovered it. */
  resumed: boolean;
}

/**
 * The id of a stage entry: `STAGE#VISIT`, `[ITEM]` for a for_each item, `<-OWNER` for a
 * fallback call standing in for OWNER.
 *
 * @example
 * executionId("fb", 1, 0, "s7"); // "fb#1[0]<-s7"
 */
export function executionId(stage: string, visit: number, item?: number, fallbackFor?: string): string {
  return `${stage}#${visit}${item === undefined ? "" : `[${item}]`}${fallbackFor === undefined ? "" : `<-${fallbackFor}`}`;
}

let isoSecond = Number.NaN;
let isoPrefix = "";
/** ISO-8601 UTC of ms since epoch; memoises the whole-second prefix, since a log's times cluster. */
export function iso(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms >= 253_402_300_800_000) return new Date(ms).toISOString();
  const sec = Math.floor(ms / 1000);
  if (sec !== isoSecond) {
    isoSecond = sec;
    isoPrefix = new Date(sec * 1000).toISOString().slice(0, 19);
  }
  const frac = ms - sec * 1000;
  return `${isoPrefix}.${frac < 10 ? "00" : frac < 100 ? "0" : ""}${frac}Z`;
}

export const isoOrNull = (ms: number | undefined): string | null => (ms === undefined ? null : iso(ms));

/** A new running attempt. */
export function newAttempt(n: number, at: number, rerun: boolean): Attempt {
  return { n, startedAt: at, endedAt: undefined, status: "running", error: undefined, retryInMs: undefined, rerun, reason: undefined, logs: undefined };
}

/** The execution later succeeded or on_error settled it (continue, a fallback that succeeded). */
export const recovered = (x: Entry): boolean => x.status === "succeeded" || x.settled;

/** A decision event as a trace decision; route targets come from the plan when given. */
export function toDecision(e: Decision, plan: Plan | undefined): TraceDecision {
  const idx = plan?.stageIndex.get(e.stage);
  const route = e.kind === "route" && e.route !== undefined && idx !== undefined ? plan?.stages[idx]?.routes[e.route] : undefined;
  const target = route?.goto !== undefined ? plan?.stages[route.goto]?.id : undefined;
  return {
    at: iso(e.at), stage: e.stage, visit: e.visit,
    ...(e.item !== undefined ? { item: e.item } : {}),
    kind: e.kind, expression: e.expression, read: e.read, result: e.result,
    ...(e.taken !== undefined ? { taken: e.taken } : {}),
    ...(e.route !== undefined ? { route: e.route } : {}),
    ...(target !== undefined ? { goto: target } : e.goto !== undefined ? { goto: e.goto } : {}),
    ...(route?.fail !== undefined ? { fail: route.fail } : {}),
    ...(route?.escalate !== undefined ? { escalate: route.escalate } : {}),
    ...(e.with !== undefined ? { with: e.with } : {}),
    ...(e.error !== undefined ? { error: e.error } : {}),
  };
}

/** An error row as a trace error. */
export function toError(r: ErrorRow): TraceError {
  const x = r.entry;
  return {
    at: iso(r.at), stage: r.stage, visit: x ? x.visit : null,
    ...(x?.item !== undefined ? { item: x.item } : {}),
    ...(x?.fallbackFor !== undefined ? { fallback_for: x.fallbackFor } : {}),
    execution: x ? x.id : null, attempt: r.attempt, kind: r.kind, message: r.message, retryable: r.retryable,
    recovered: x ? recovered(x) : r.resumed,
  };
}

/** An attempt accumulator as a trace attempt. */
export function toAttempt(a: Attempt): TraceAttempt {
  return {
    n: a.n, started_at: iso(a.startedAt), ended_at: isoOrNull(a.endedAt), status: a.status,
    ...(a.error !== undefined ? { error: a.error } : {}),
    ...(a.retryInMs !== undefined ? { retry_in_ms: a.retryInMs } : {}),
    ...(a.rerun ? { rerun: true as const } : {}),
    ...(a.reason !== undefined ? { reason: a.reason } : {}),
    ...(a.logs !== undefined ? { logs: a.logs } : {}),
  };
}

/** An entry accumulator as a trace stage entry (`durable`: its turns and steps, when it recorded any). */
export function toStage(x: Entry, durable?: { readonly turns: readonly TraceTurn[]; readonly steps: readonly TraceStep[] }): TraceStage {
  const tokens: TraceTokens | undefined = x.tokens ? { ...x.tokens } : undefined;
  return {
    id: x.id, stage: x.stage, visit: x.visit,
    ...(x.item !== undefined ? { item: x.item } : {}),
    ...(x.fallbackFor !== undefined ? { fallback_for: x.fallbackFor } : {}),
    status: x.status,
    ...(x.reason !== undefined ? { reason: x.reason } : {}),
    started_at: iso(x.startedAt), ended_at: isoOrNull(x.endedAt),
    duration_ms: x.endedAt === undefined ? null : Math.max(0, x.endedAt - x.startedAt),
    queued_ms: x.queuedMs, input: x.input ?? null, output: x.output ?? null, attempts: x.attempts.map(toAttempt),
    ...(x.itemCount !== undefined ? { item_count: x.itemCount } : {}),
    ...(x.logs !== undefined ? { logs: x.logs } : {}),
    ...(x.model !== undefined ? { model: x.model } : {}),
    ...(tokens !== undefined ? { tokens } : {}),
    ...(x.cost !== undefined ? { cost_usd: x.cost } : {}),
    ...(x.pool !== undefined ? { pool: x.pool } : {}),
    ...(x.poolKey !== undefined ? { pool_key: x.poolKey } : {}),
    ...(x.waitedFor !== undefined ? { waited_for: x.waitedFor } : {}),
    ...(x.poolWaitMs !== undefined ? { pool_wait_ms: x.poolWaitMs } : {}),
    ...(x.child !== undefined ? { child_run: x.child } : {}),
    ...(x.reusedFrom !== undefined ? { reused_from: x.reusedFrom } : {}),
    ...(durable ? { turns: durable.turns, steps: durable.steps } : {}),
  };
}
