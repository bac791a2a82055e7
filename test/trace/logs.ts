/**
 * A small builder of hand-written event logs for trace tests: every event is a valid member
 * of the BatonEvent union, stamped at T0 + the offset set with `at(ms)`.
 */
import type { AttemptUsage, BatonEvent, Decision, ErrorKind, StageError, StepRecorded, WaitingCall } from "../../src/engine/events.js";

/** 2025-01-02T03:04:05.000Z */
export const T0 = Date.UTC(2025, 0, 2, 3, 4, 5);
/** ISO time of an offset from T0. */
export const iso = (ms: number): string => new Date(T0 + ms).toISOString();

export interface Key {
  stage: string;
  visit?: number;
  item?: number;
  fallback_for?: string;
}

const key = (k: Key): { stage: string; visit: number; item?: number; fallback_for?: string } => ({
  stage: k.stage, visit: k.visit ?? 1,
  ...(k.item !== undefined ? { item: k.item } : {}),
  ...(k.fallback_for !== undefined ? { fallback_for: k.fallback_for } : {}),
});

export const err = (kind: ErrorKind, message: string, retryable: boolean): StageError => ({ kind, message, retryable });

export class LogBuilder {
  readonly events: BatonEvent[] = [];
  private t = 0;

  constructor(opts: { runId?: string; pipeline?: string; planHash?: string; inputs?: Record<string, unknown> } = {}) {
    this.events.push({
      type: "run_started", at: T0, run_id: opts.runId ?? "r1", pipeline: opts.pipeline ?? "demo", plan_hash: opts.planHash ?? "h1",
      source: { format: "yaml", file: "/tmp/demo.yaml" }, inputs: opts.inputs ?? { topic: "tides" }, seed: 7,
    });
  }

  /** Set the time (ms after T0) of the next events. */
  at(ms: number): this {
    this.t = ms;
    return this;
  }

  private push(e: BatonEvent): this {
    this.events.push(e);
    return this;
  }

  private get now(): number {
    return T0 + this.t;
  }

  started(k: Key, attempt = 1, o: { queued_ms?: number; rerun?: boolean } = {}): this {
    return this.push({ type: "stage_started", at: this.now, ...key(k), attempt, queued_ms: o.queued_ms ?? 0, ...(o.rerun ? { rerun: true } : {}) });
  }

  succeeded(k: Key, attempt: number, output: unknown, o: { input?: unknown; logs?: string[]; replayed?: string[] } & AttemptUsage = {}): this {
    return this.push({ type: "stage_succeeded", at: this.now, ...key(k), attempt, output, ...o });
  }

  failed(k: Key, attempt: number, error: StageError, o: { input?: unknown; logs?: string[]; replayed?: string[] } & AttemptUsage = {}): this {
    return this.push({ type: "stage_failed", at: this.now, ...key(k), attempt, error, ...o });
  }

  /** A durable step recorded now, started at offset `from` (ms after T0). */
  step(k: Key, attempt: number, name: string, kind: StepRecorded["kind"], from: number, output: unknown,
    o: Pick<StepRecorded, "model" | "tokens" | "cost_usd" | "messages"> = {}): this {
    return this.push({ type: "step_recorded", at: this.now, ...key(k), attempt, name, kind, started_at: T0 + from, output, ...o });
  }

  /** An agent turn recorded now (its record as `stages/agent.ts` writes it), started at offset `from`. */
  turn(k: Key, attempt: number, name: string, from: number, t: { n: number; text?: string; calls?: { id: string; tool: string; args: unknown; invalid?: string }[];
    finish_reason?: string; model?: string; tokens: { input: number; output: number; cached?: number }; cost_usd?: number; messages?: unknown }): this {
    const model = t.model ?? "openai:gpt-4o-mini";
    const calls = t.calls ?? [];
    const record = {
      n: t.n, text: t.text ?? "", calls, finish_reason: t.finish_reason ?? (calls.length > 0 ? "tool_calls" : "stop"), model, tokens: t.tokens,
      ...(t.cost_usd !== undefined ? { cost_usd: t.cost_usd } : {}), started_at: T0 + from, ended_at: this.now,
    };
    return this.step(k, attempt, name, "turn", from, record, {
      model, tokens: t.tokens, ...(t.cost_usd !== undefined ? { cost_usd: t.cost_usd } : {}), messages: t.messages ?? [{ role: "user", content: `turn ${t.n}` }],
    });
  }

  /** A tool call's outcome recorded now (a ToolOutcome), started at offset `from`. */
  call(k: Key, attempt: number, name: string, from: number, outcome: { status: "succeeded" | "failed" | "declined"; output?: unknown; error?: { kind: string; message: string; retryable?: boolean }; attempts?: number }): this {
    return this.step(k, attempt, name, "tool_call", from, { attempts: 1, ...outcome, started_at: T0 + from, ended_at: this.now });
  }

  /** The attempt stopped before tool calls that need approval. */
  waitingCalls(k: Key, attempt: number, message: string, calls: WaitingCall[], o: { replayed?: string[] } = {}): this {
    return this.push({ type: "stage_waiting", at: this.now, ...key(k), attempt, message, calls, ...o });
  }

  approval(stage: string, approved: boolean, o: { call?: string; by?: string; comment?: string; data?: unknown; visit?: number; item?: number } = {}): this {
    const { visit, ...rest } = o;
    return this.push({ type: "approval", at: this.now, stage, visit: visit ?? 1, approved, ...rest });
  }

  /** A retry of `k`: `attempt` is the attempt that will run next. */
  retry(k: Key, attempt: number, delay_ms: number): this {
    return this.push({ type: "retry_scheduled", at: this.now, ...key(k), attempt, delay_ms, due_at: this.now + delay_ms });
  }

  settled(k: Key, outcome: "failed" | "continued" | "fallback", output?: unknown): this {
    return this.push({ type: "stage_settled", at: this.now, ...key(k), outcome, ...(output !== undefined ? { output } : {}) });
  }

  cancelled(k: Key, attempt: number, reason: string): this {
    return this.push({ type: "stage_cancelled", at: this.now, ...key(k), attempt, reason });
  }

  skipped(stage: string, reason: string, visit = 1): this {
    return this.push({ type: "stage_skipped", at: this.now, stage, visit, reason });
  }

  completed(stage: string, visit = 1): this {
    return this.push({ type: "stage_completed", at: this.now, stage, visit });
  }

  decision(d: Omit<Decision, "type" | "at" | "visit" | "read"> & { visit?: number; read?: Record<string, unknown> }): this {
    return this.push({ type: "decision", at: this.now, ...d, visit: d.visit ?? 1, read: d.read ?? {} });
  }

  /** A plain stage that runs once and succeeds: started at `from`, succeeded at `to`. */
  ok(stage: string, from: number, to: number, output: unknown, visit = 1): this {
    return this.at(from).started({ stage, visit }).at(to).succeeded({ stage, visit }, 1, output);
  }

  waiting(stage: string, message: string): this {
    return this.push({ type: "run_waiting", at: this.now, stage, message });
  }

  cancelRequested(reason = "user"): this {
    return this.push({ type: "run_cancel_requested", at: this.now, reason });
  }

  resumed(): this {
    return this.push({ type: "run_resumed", at: this.now });
  }

  finished(
    status: "succeeded" | "failed" | "cancelled",
    o: { output?: unknown; read?: string[]; error?: { stage?: string; kind: string; message: string } } = {},
  ): this {
    return this.push({ type: "run_finished", at: this.now, status, ...o });
  }
}
