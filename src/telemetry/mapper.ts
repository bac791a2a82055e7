/**
 * Events → spans. A read-only view over the event stream (like `trace/`): it never changes a
 * run, it only mirrors what the log says, with every start and end time taken from the events.
 *
 * Shape of one run (one *segment*: from `run_started` or a resume to `run_finished` or a pause):
 *
 * ```
 * baton.run <pipeline>                      run segment (root; trace id derived from the run id)
 * ├─ baton.stage <stage>                    one execution: a stage visit, or a fallback call
 * │  ├─ attempt 1                           error status + exception event when it failed
 * │  └─ attempt 2                           (an agent's: gen_ai.operation.name invoke_agent once it has turns)
 * │     ├─ chat <model>                     a model turn the attempt recorded (GenAI inference span)
 * │     ├─ execute_tool <tool>              a tool call it recorded (error status when it failed)
 * │     └─ baton.step <name>                a ctx.step it recorded
 * ├─ baton.for_each <stage>                 a for_each visit, from its items decision to completion
 * │  └─ baton.stage <stage>  (item i)       one per item, attempts below it
 * └─ baton.stage <fallback>  under the stage it stands in for
 * ```
 *
 * A run that pauses for a human (`run_waiting`) ends its segment span there with status
 * `waiting`; the resume opens a new segment span linked to the previous one. Sub-pipeline runs
 * are children of the attempt that ran them. Every segment of a run (and of its sub-runs)
 * shares one trace id, derived from the root run id, so a run resumed by another process, days
 * later, still lands in the same trace.
 *
 * Turns, tool calls and steps come from `step_recorded` events: each is a finished span under the
 * attempt that recorded it, timed by the record. What a later attempt replays from the log is not
 * run again and gets no span (the attempt lists it in `baton.replayed`). Message content (the
 * turn's messages and reply, a call's arguments and result) is exported only when enabled
 * (`captureMessages`).
 */
import { createHash } from "node:crypto";
import type { Attributes, Context, HrTime, Link, Span, SpanContext, Tracer } from "@opentelemetry/api";
import type { BatonEvent, StageError } from "../engine/events.js";
import { usageBeyondSteps } from "../engine/usage.js";
import type { Plan, StageKind } from "../plan/types.js";
import { ATTR, EVENT, OPERATION, SPAN, splitModel } from "./attributes.js";
import { inputMessages, json, outputMessages } from "./messages.js";

/** The `@opentelemetry/api` module, handed in by `otel.ts`, which loads it only when telemetry is on. */
export type Api = typeof import("@opentelemetry/api");

/** Lets the mapper choose the trace id of the next root span (see `RunTraceIdGenerator`). */
export interface TraceIdHint {
  next: string | undefined;
}

/**
 * The OpenTelemetry trace id (32 hex digits) of a run: sha256 of the root run id (a sub-run's id
 * is its parent's id + `~…`), so every segment of a run tree lands in the same trace.
 *
 * @example
 * traceIdOf("lx2k9a0b1c2d3e4f5") === traceIdOf("lx2k9a0b1c2d3e4f5~review") // true
 */
export function traceIdOf(runId: string): string {
  const tilde = runId.indexOf("~");
  const root = tilde < 0 ? runId : runId.slice(0, tilde);
  const hex = createHash("sha256").update(root).digest("hex").slice(0, 32);
  return /^0+$/.test(hex) ? "00000000000000000000000000000001" : hex;
}

/** ms since epoch → HrTime (an HrTime is never mistaken for a performance.now() reading). */
export function hr(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  const ns = Math.round((ms - s * 1000) * 1e6);
  return ns >= 1e9 ? [s + 1, ns - 1e9] : [s, ns];
}

interface AttemptRec {
  readonly span: Span;
  readonly n: number;
  /** Its start (ms): its turn, call and step spans start no earlier. */
  readonly startMs: number;
  /** Turn spans made under it (it is then an agent invocation, not one chat call). */
  turns: number;
  /** Key of the execution it belongs to. */
  readonly exec: string;
  /** Set once the attempt failed: ended at the end of the batch, after retry_scheduled had its say. */
  endAt?: number;
}

interface ExecRec {
  readonly key: string;
  readonly span: Span;
  readonly ctx: Context;
  readonly startMs: number;
  readonly stage: string;
  readonly visit: number;
  readonly item: number | undefined;
  readonly kind: StageKind | undefined;
  attempt: AttemptRec | undefined;
  attempts: number;
  /** What became of it so far: running, failed, retry_wait, waiting, escalated, fallback. */
  status: string;
  lastError: StageError | undefined;
  /** The fallback execution standing in for this one (ended with it). */
  fallback: ExecRec | undefined;
  /** An agent stage's agent (from the plan). */
  readonly agent: string | undefined;
  /** Tool calls of the turns seen so far, by their step name (`[ns/]call:ID`): a call's record names neither tool nor arguments. */
  readonly calls: Map<string, { readonly id: string; readonly tool: string; readonly args: unknown }>;
}

interface GroupRec {
  readonly span: Span;
  readonly ctx: Context;
  readonly startMs: number;
  readonly visit: number;
}

interface RunRec {
  readonly id: string;
  readonly span: Span;
  readonly ctx: Context;
  readonly startMs: number;
  readonly execs: Map<string, ExecRec>;
  /** for_each groups by stage id (the current visit's). */
  readonly groups: Map<string, GroupRec>;
  input: number;
  output: number;
  usd: number;
}

type ExecKeyed = { readonly stage: string; readonly visit: number; readonly item?: number; readonly fallback_for?: string };

const keyOf = (stage: string, visit: number, item: number | undefined, fallbackFor: string | undefined): string =>
  `${stage}\u0000${visit}\u0000${item ?? ""}\u0000${fallbackFor ?? ""}`;
const keyOfEvent = (e: ExecKeyed): string => keyOf(e.stage, e.visit, e.item, e.fallback_for);

/** What an execution still open when its segment ends became. */
function leftoverOutcome(run: string, exec: string): string {
  if (run === "waiting") return exec === "escalated" ? "escalated" : "waiting";
  if (run === "failed" && (exec === "failed" || exec === "retry_wait")) return "failed";
  return run === "succeeded" ? "abandoned" : run;
}

/** How many paused runs keep their last segment's span context (for the link from the resume). */
const MAX_REMEMBERED = 10_000;

/** Options of {@link SpanMapper}. */
export interface MapperOptions {
  /** Export message content (turn messages and replies, tool-call arguments and results). @default false */
  readonly captureMessages?: boolean;
}

type Obj = Record<string, unknown>;
const objOf = (v: unknown): Obj | undefined => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : undefined);
const numOf = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const TURN_NAME = /^(?:(.*)\/)?turn:\d+$/;
const CALL_NAME = /^(?:.*\/)?call:([^/]*)$/;
/** `agent:NAME:K` (a `ctx.agent` call's step namespace) → NAME. */
const agentOfNamespace = (ns: string): string | undefined => /^agent:(.+):\d+$/.exec(ns)?.[1];

/** Turns each run's event stream into spans on the given tracer. */
export class SpanMapper {
  private readonly runs = new Map<string, RunRec>();
  private readonly previous = new Map<string, SpanContext>();
  private ending: AttemptRec[] = [];

  private readonly capture: boolean;

  constructor(
    private readonly api: Api,
    private readonly tracer: Tracer,
    private readonly hint: TraceIdHint,
    opts: MapperOptions = {},
  ) {
    this.capture = opts.captureMessages === true;
  }

  /** Mirror one batch of a run's events. */
  onEvents(runId: string, events: readonly BatonEvent[], plan?: Plan): void {
    let run = this.runs.get(runId);
    try {
      for (const e of events) run = this.apply(runId, run, e, plan);
    } finally {
      this.endFailedAttempts();
    }
  }

  /** End every open span at `at` (process shutdown): the runs are still going, their spans say so. */
  endAll(at: number, status: string): void {
    for (const run of [...this.runs.values()]) {
      run.span.addEvent(EVENT.shutdown, {}, hr(at));
      this.endSegment(run, at, status);
    }
    this.endFailedAttempts();
  }

  private apply(runId: string, run: RunRec | undefined, e: BatonEvent, plan: Plan | undefined): RunRec | undefined {
    switch (e.type) {
      case "run_started": {
        if (run) this.endSegment(run, e.at, "restarted");
        const attrs: Attributes = { [ATTR.runId]: runId, [ATTR.pipeline]: e.pipeline, [ATTR.planHash]: e.plan_hash };
        if (e.parent_id !== undefined) attrs[ATTR.runParent] = e.parent_id;
        const rerunOf = (e as { rerun_of?: unknown }).rerun_of;
        if (typeof rerunOf === "string") attrs[ATTR.runRerunOf] = rerunOf;
        return this.openSegment(runId, e.pipeline, e.at, attrs, e.parent_id);
      }
      case "run_resumed": {
        const r = run ?? this.lazySegment(runId, e.at, plan);
        r.span.addEvent(EVENT.resumed, {}, hr(e.at));
        return r;
      }
      case "run_cancel_requested":
        run?.span.addEvent(EVENT.cancelRequested, { [ATTR.cancelReason]: e.reason }, hr(e.at));
        return run;
      case "run_waiting": {
        if (!run) return undefined;
        run.span.setAttributes({ [ATTR.runWaitingStage]: e.stage, [ATTR.runMessage]: e.message });
        this.endSegment(run, e.at, "waiting");
        return undefined;
      }
      case "run_finished": {
        this.previous.delete(runId);
        if (!run) return undefined;
        const { span } = run;
        if (e.status === "succeeded") span.setStatus({ code: this.api.SpanStatusCode.OK });
        else if (e.status === "failed") {
          const msg = e.error ? `${e.error.stage !== undefined ? `stage '${e.error.stage}': ` : ""}${e.error.message}` : "run failed";
          span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: msg });
          if (e.error) span.setAttribute(ATTR.errorType, e.error.kind);
        }
        this.endSegment(run, e.at, e.status);
        return undefined;
      }
      case "stage_started": {
        const r = run ?? this.lazySegment(runId, e.at, plan);
        this.startAttempt(r, e, plan);
        return r;
      }
      case "stage_succeeded": {
        const x = run?.execs.get(keyOfEvent(e));
        if (!run || !x) return run;
        const a = x.attempt;
        x.attempt = undefined;
        if (a && a.n === e.attempt) {
          this.usage(run, a, e);
          a.span.setAttribute(ATTR.attemptStatus, "succeeded");
          a.span.setStatus({ code: this.api.SpanStatusCode.OK });
          a.span.end(hr(e.at));
        }
        this.endExec(run, x, e.at, "succeeded");
        if (e.fallback_for !== undefined) {
          const owner = run.execs.get(keyOf(e.fallback_for, e.visit, e.item, undefined));
          if (owner) this.endExec(run, owner, e.at, "fallback");
        }
        return run;
      }
      case "stage_failed": {
        const x = run?.execs.get(keyOfEvent(e));
        if (!run || !x) return run;
        x.status = "failed";
        x.lastError = e.error;
        const a = x.attempt;
        x.attempt = undefined;
        if (a && a.n === e.attempt) {
          this.usage(run, a, e);
          a.span.setAttribute(ATTR.attemptStatus, "failed");
          this.fail(a.span, e.error, e.at);
          a.endAt = e.at;
          this.ending.push(a);
        }
        return run;
      }
      case "retry_scheduled": {
        const x = run?.execs.get(keyOfEvent(e));
        if (!x) return run;
        x.status = "retry_wait";
        const retry = { [ATTR.retryNextAttempt]: e.attempt, [ATTR.retryDelayMs]: e.delay_ms, [ATTR.retryDueAt]: e.due_at };
        x.span.addEvent(EVENT.retry, retry, hr(e.at));
        const failed = this.ending.find((a) => a.exec === x.key && a.n === e.attempt - 1);
        failed?.span.setAttributes(retry);
        return run;
      }
      case "stage_settled": {
        const x = run?.execs.get(keyOfEvent(e));
        if (!run || !x) return run;
        if (e.error) x.lastError = e.error;
        this.endExec(run, x, e.at, e.outcome);
        return run;
      }
      case "stage_cancelled": {
        const x = run?.execs.get(keyOfEvent(e));
        if (!run || !x) return run;
        const a = x.attempt;
        if (a && a.n === e.attempt) {
          x.attempt = undefined;
          this.cancel(a.span, e.reason, e.at);
        }
        x.span.setAttribute(ATTR.cancelReason, e.reason);
        this.endExec(run, x, e.at, "cancelled");
        return run;
      }
      case "stage_waiting": {
        const x = run?.execs.get(keyOfEvent(e));
        if (!x) return run;
        x.status = "waiting";
        x.attempt?.span.addEvent(EVENT.waiting, { [ATTR.runMessage]: e.message }, hr(e.at));
        x.attempt?.span.setAttribute(ATTR.attemptStatus, "waiting");
        if (e.calls && e.calls.length > 0) x.attempt?.span.setAttribute(ATTR.waitingCalls, e.calls.map((c) => c.id));
        if (e.replayed && e.replayed.length > 0) x.attempt?.span.setAttribute(ATTR.replayed, [...e.replayed]);
        return run;
      }
      case "step_recorded": {
        if (!run) return run;
        // A turn's usage counts once, here (its attempt's outcome says it was recorded).
        if (e.tokens) {
          run.input += e.tokens.input;
          run.output += e.tokens.output;
          run.usd += e.cost_usd ?? 0;
        }
        const x = run.execs.get(keyOfEvent(e));
        const a = x?.attempt;
        if (x && a && a.n === e.attempt) this.step(x, a, e);
        return run;
      }
      case "stage_escalated": {
        const x = run?.execs.get(keyOfEvent(e));
        if (!x) return run;
        x.status = "escalated";
        x.span.addEvent(EVENT.escalated, { [ATTR.runMessage]: e.message }, hr(e.at));
        return run;
      }
      case "approval": {
        const r = run ?? this.lazySegment(runId, e.at, plan);
        const attrs: Attributes = { [ATTR.stageId]: e.stage, [ATTR.visit]: e.visit, "baton.approval.approved": e.approved };
        if (e.item !== undefined) attrs[ATTR.item] = e.item;
        if (e.by !== undefined) attrs["baton.approval.by"] = e.by;
        r.span.addEvent(EVENT.approval, attrs, hr(e.at));
        const x = r.execs.get(keyOf(e.stage, e.visit, e.item, undefined));
        if (!x) return r;
        const a = x.attempt;
        if (a) {
          // An approval stage: the human's answer ends its attempt.
          x.attempt = undefined;
          a.span.setAttributes({ [ATTR.attemptStatus]: e.approved ? "approved" : "rejected", "baton.approval.approved": e.approved });
          if (e.approved) a.span.setStatus({ code: this.api.SpanStatusCode.OK });
          else {
            x.status = "failed";
            x.lastError = { kind: "handler", message: `rejected by ${e.by ?? "a human"}${e.comment ? `: ${e.comment}` : ""}`, retryable: false };
            this.fail(a.span, x.lastError, e.at);
          }
          a.span.end(hr(e.at));
          if (e.approved) this.endExec(r, x, e.at, "succeeded");
        } else if (x.status === "escalated") {
          this.endExec(r, x, e.at, e.approved ? (e.data === undefined ? "continued" : "fallback") : "failed");
        }
        return r;
      }
      case "decision":
        if (!run) return run;
        if (e.kind === "for_each" && e.error === undefined) this.openGroup(run, e.stage, e.visit, e.at, e.items?.length ?? 0);
        else if (e.kind === "route" && e.taken === true) {
          const attrs: Attributes = { [ATTR.stageId]: e.stage, [ATTR.visit]: e.visit, "baton.route.expression": e.expression };
          if (e.route !== undefined) attrs["baton.route.index"] = e.route;
          if (e.goto !== undefined) attrs["baton.route.goto"] = e.goto;
          run.span.addEvent(EVENT.route, attrs, hr(e.at));
        } else if (e.kind === "fallback") {
          const x = run.execs.get(keyOf(e.stage, e.visit, e.item, undefined));
          if (x) {
            x.status = "fallback";
            x.span.addEvent(EVENT.fallback, { "baton.fallback.stage": String(e.result) }, hr(e.at));
          }
        }
        return run;
      case "stage_completed": {
        const g = run?.groups.get(e.stage);
        if (!run || !g || g.visit !== e.visit) return run;
        run.groups.delete(e.stage);
        g.span.setAttribute(ATTR.stageStatus, "succeeded");
        g.span.setStatus({ code: this.api.SpanStatusCode.OK });
        g.span.end(hr(e.at));
        return run;
      }
      case "stage_skipped":
        run?.span.addEvent(EVENT.skipped, { [ATTR.stageId]: e.stage, [ATTR.visit]: e.visit, "baton.skip.reason": e.reason }, hr(e.at));
        return run;
      default: {
        // Kinds this view does not draw (and kinds added after it was written).
        const other = e as { type: string; at: number; stage?: unknown; from_run?: unknown };
        if (run && other.type === "stage_reused" && typeof other.stage === "string") {
          const attrs: Attributes = { [ATTR.stageId]: other.stage };
          if (typeof other.from_run === "string") attrs["baton.reused.from_run"] = other.from_run;
          run.span.addEvent(EVENT.reused, attrs, hr(other.at));
        }
        return run;
      }
    }
  }

  // ── segments ────────────────────────────────────────────────────────────────────────────

  private openSegment(runId: string, pipeline: string, at: number, attrs: Attributes, parentId: string | undefined): RunRec {
    const links: Link[] = [];
    const prev = this.previous.get(runId);
    if (prev) {
      links.push({ context: prev, attributes: { "baton.link": "previous_segment" } });
      this.previous.delete(runId);
    }
    const parent = this.parentOf(runId, parentId);
    if (!parent) this.hint.next = traceIdOf(runId);
    let span: Span;
    try {
      span = this.tracer.startSpan(
        `${SPAN.run} ${pipeline}`,
        { kind: this.api.SpanKind.INTERNAL, startTime: hr(at), attributes: attrs, links },
        parent ?? this.api.ROOT_CONTEXT,
      );
    } finally {
      this.hint.next = undefined;
    }
    const run: RunRec = {
      id: runId, span, ctx: this.api.trace.setSpan(this.api.ROOT_CONTEXT, span), startMs: at,
      execs: new Map(), groups: new Map(), input: 0, output: 0, usd: 0,
    };
    this.runs.set(runId, run);
    return run;
  }

  /** A segment opened by something other than run_started: a resume (here or in another process). */
  private lazySegment(runId: string, at: number, plan: Plan | undefined): RunRec {
    const attrs: Attributes = { [ATTR.runId]: runId, [ATTR.runResumed]: true };
    if (plan) {
      attrs[ATTR.pipeline] = plan.name;
      attrs[ATTR.planHash] = plan.hash;
    }
    const tilde = runId.lastIndexOf("~");
    const parentId = tilde < 0 ? undefined : runId.slice(0, tilde);
    if (parentId !== undefined) attrs[ATTR.runParent] = parentId;
    return this.openSegment(runId, plan?.name ?? "run", at, attrs, parentId);
  }

  /**
   * The context a sub-run's segment hangs under: the open attempt of the parent's pipeline stage
   * that started it (child ids are `<parent>~<stage>[-v<visit>][-i<item>][-a<attempt>]`), else
   * the parent's run span, else none (a root in the same trace).
   */
  private parentOf(runId: string, parentId: string | undefined): Context | undefined {
    if (parentId === undefined) return undefined;
    const parent = this.runs.get(parentId);
    if (!parent) return undefined;
    for (const x of parent.execs.values()) {
      if (!x.attempt || (x.kind !== undefined && x.kind !== "pipeline")) continue;
      const base = `${parentId}~${x.stage}${x.visit > 1 ? `-v${x.visit}` : ""}${x.item !== undefined ? `-i${x.item}` : ""}`;
      if (runId === base || (runId.startsWith(base) && /^-a\d+$/.test(runId.slice(base.length)))) {
        return this.api.trace.setSpan(this.api.ROOT_CONTEXT, x.attempt.span);
      }
    }
    return parent.ctx;
  }

  /**
   * End a segment and everything still open in it. `status` is the run's: succeeded, failed,
   * cancelled, waiting (paused for a human) or interrupted (telemetry shut down first).
   */
  private endSegment(run: RunRec, at: number, status: string): void {
    for (const x of [...run.execs.values()]) {
      if (x.attempt) {
        const a = x.attempt;
        x.attempt = undefined;
        if (status === "waiting" && x.status === "waiting") {
          a.span.setAttribute(ATTR.attemptStatus, "waiting");
          a.span.end(hr(Math.max(at, x.startMs)));
        } else this.cancel(a.span, `run ${status}`, Math.max(at, x.startMs));
      }
      this.endExec(run, x, at, leftoverOutcome(status, x.status));
    }
    for (const g of run.groups.values()) {
      g.span.setAttribute(ATTR.stageStatus, status === "succeeded" ? "abandoned" : status);
      g.span.end(hr(Math.max(at, g.startMs)));
    }
    run.groups.clear();
    const { span } = run;
    span.setAttribute(ATTR.runStatus, status);
    if (run.input > 0 || run.output > 0) span.setAttributes({ [ATTR.usageInput]: run.input, [ATTR.usageOutput]: run.output });
    if (run.usd > 0) span.setAttribute(ATTR.costUsd, run.usd);
    span.end(hr(Math.max(at, run.startMs)));
    this.runs.delete(run.id);
    if (status === "waiting" || status === "interrupted") {
      if (this.previous.size >= MAX_REMEMBERED) this.previous.delete(this.previous.keys().next().value!);
      this.previous.set(run.id, span.spanContext());
    }
  }

  // ── executions ──────────────────────────────────────────────────────────────────────────

  private openGroup(run: RunRec, stage: string, visit: number, at: number, items: number): void {
    const old = run.groups.get(stage);
    if (old) {
      old.span.setAttribute(ATTR.stageStatus, "superseded");
      old.span.end(hr(Math.max(at, old.startMs)));
    }
    const span = this.tracer.startSpan(
      `${SPAN.forEach} ${stage}`,
      { kind: this.api.SpanKind.INTERNAL, startTime: hr(at), attributes: { [ATTR.stageId]: stage, [ATTR.visit]: visit, [ATTR.items]: items } },
      run.ctx,
    );
    run.groups.set(stage, { span, ctx: this.api.trace.setSpan(this.api.ROOT_CONTEXT, span), startMs: at, visit });
  }

  private startAttempt(run: RunRec, e: Extract<BatonEvent, { type: "stage_started" }>, plan: Plan | undefined): void {
    const key = keyOfEvent(e);
    const stagePlan = plan ? plan.stages[plan.stageIndex.get(e.stage) ?? -1] : undefined;
    const kind = stagePlan?.spec.kind;
    let x = run.execs.get(key);
    if (!x) {
      let parent: { ctx: Context; startMs: number } = run;
      const owner = e.fallback_for !== undefined ? run.execs.get(keyOf(e.fallback_for, e.visit, e.item, undefined)) : undefined;
      if (owner) parent = owner;
      else if (e.item !== undefined) {
        const g = run.groups.get(e.stage);
        if (g && g.visit === e.visit) parent = g;
      }
      const startMs = Math.max(parent.startMs, e.at - (e.queued_ms > 0 ? e.queued_ms : 0));
      const attrs: Attributes = { [ATTR.stageId]: e.stage, [ATTR.visit]: e.visit };
      if (e.item !== undefined) attrs[ATTR.item] = e.item;
      if (e.fallback_for !== undefined) attrs[ATTR.fallbackFor] = e.fallback_for;
      if (kind !== undefined) attrs[ATTR.stageKind] = kind;
      const span = this.tracer.startSpan(`${SPAN.stage} ${e.stage}`, { kind: this.api.SpanKind.INTERNAL, startTime: hr(startMs), attributes: attrs }, parent.ctx);
      x = {
        key, span, ctx: this.api.trace.setSpan(this.api.ROOT_CONTEXT, span), startMs, stage: e.stage, visit: e.visit, item: e.item, kind,
        attempt: undefined, attempts: 0, status: "running", lastError: undefined, fallback: undefined,
        agent: stagePlan?.spec.kind === "agent" ? stagePlan.spec.agent : undefined, calls: new Map(),
      };
      run.execs.set(key, x);
      if (owner) owner.fallback = x;
    }
    if (x.attempt) this.cancel(x.attempt.span, "superseded by a new attempt", e.at);
    x.status = "running";
    x.attempts++;
    const attrs: Attributes = { [ATTR.stageId]: e.stage, [ATTR.attempt]: e.attempt, [ATTR.queuedMs]: e.queued_ms };
    if (e.rerun === true) attrs[ATTR.rerun] = true;
    if (kind === "agent" && stagePlan?.spec.kind === "agent") {
      attrs[ATTR.genAiOperation] = "chat";
      attrs[ATTR.genAiAgentName] = stagePlan.spec.agent;
      const agent = plan?.agents[stagePlan.spec.agent];
      const model = agent?.["model"];
      const m = typeof model === "string" && !model.includes("${") ? splitModel(model) : undefined;
      if (m) Object.assign(attrs, { [ATTR.genAiProvider]: m.provider, [ATTR.genAiSystem]: m.provider, [ATTR.genAiRequestModel]: m.model });
      if (typeof agent?.["temperature"] === "number") attrs[ATTR.genAiTemperature] = agent["temperature"];
      if (typeof agent?.["max_tokens"] === "number") attrs[ATTR.genAiMaxTokens] = agent["max_tokens"];
    }
    const client = kind === "agent" || kind === "http";
    const startMs = Math.max(e.at, x.startMs);
    const span = this.tracer.startSpan(
      `${SPAN.attempt} ${e.attempt}`,
      { kind: client ? this.api.SpanKind.CLIENT : this.api.SpanKind.INTERNAL, startTime: hr(startMs), attributes: attrs },
      x.ctx,
    );
    x.attempt = { span, n: e.attempt, exec: key, startMs, turns: 0 };
  }

  /** End an execution's span with its outcome (succeeded, failed, continued, fallback, cancelled, waiting…). */
  private endExec(run: RunRec, x: ExecRec, at: number, outcome: string): void {
    if (run.execs.get(x.key) !== x) return;
    run.execs.delete(x.key);
    if (x.fallback && run.execs.get(x.fallback.key) === x.fallback) this.endExec(run, x.fallback, at, outcome === "failed" ? "failed" : "abandoned");
    const { span } = x;
    span.setAttributes({ [ATTR.stageStatus]: outcome, [ATTR.attempts]: x.attempts });
    if (outcome === "succeeded") span.setStatus({ code: this.api.SpanStatusCode.OK });
    else if (outcome === "failed") {
      const err = x.lastError;
      span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: err ? `${err.kind}: ${err.message}` : "failed" });
      if (err) span.setAttribute(ATTR.errorType, err.kind);
    }
    span.end(hr(Math.max(at, x.startMs)));
  }

  // ── attempts ────────────────────────────────────────────────────────────────────────────

  /**
   * Usage of an agent (or sub-pipeline) attempt: GenAI attributes, cost, pool. The run's totals
   * take only what no recorded turn counted (`recorded_tokens`), so nothing is counted twice.
   */
  private usage(run: RunRec, a: AttemptRec, e: Extract<BatonEvent, { type: "stage_succeeded" | "stage_failed" }>): void {
    const { span } = a;
    const attrs: Attributes = {};
    if (e.model !== undefined) {
      // An attempt with turn spans is the agent's invocation; the turns are the chat calls.
      attrs[ATTR.genAiOperation] = a.turns > 0 ? OPERATION.invokeAgent : OPERATION.chat;
      const m = splitModel(e.model);
      if (m) Object.assign(attrs, { [ATTR.genAiProvider]: m.provider, [ATTR.genAiSystem]: m.provider, [ATTR.genAiRequestModel]: m.model });
    }
    if (e.tokens) {
      attrs[ATTR.genAiInputTokens] = e.tokens.input;
      attrs[ATTR.genAiOutputTokens] = e.tokens.output;
      const u = usageBeyondSteps(e);
      run.input += u.input;
      run.output += u.output;
      run.usd += u.usd;
    }
    if (e.cost_usd !== undefined) attrs[ATTR.costUsd] = e.cost_usd;
    if (e.replayed && e.replayed.length > 0) attrs[ATTR.replayed] = [...e.replayed];
    if (e.child_run !== undefined) attrs[ATTR.childRun] = e.child_run;
    if (e.pool !== undefined) attrs[ATTR.pool] = e.pool;
    if (e.pool_wait_ms !== undefined) attrs[ATTR.poolWaitMs] = e.pool_wait_ms;
    if (e.pool_wait_reason !== undefined) attrs[ATTR.poolWaitReason] = e.pool_wait_reason;
    span.setAttributes(attrs);
  }

  // ── durable steps ───────────────────────────────────────────────────────────────────────

  /** A recorded turn, tool call or ctx.step: a finished span under the attempt that recorded it. */
  private step(x: ExecRec, a: AttemptRec, e: Extract<BatonEvent, { type: "step_recorded" }>): void {
    const out = objOf(e.output) ?? {};
    const start = Math.max(a.startMs, numOf(out["started_at"]) ?? e.started_at);
    const end = Math.max(start, numOf(out["ended_at"]) ?? e.at);
    const parent = this.api.trace.setSpan(this.api.ROOT_CONTEXT, a.span);
    const attrs: Attributes = { [ATTR.stepName]: e.name };
    if (e.kind === "turn") {
      const ns = TURN_NAME.exec(e.name)?.[1];
      const model = e.model ?? (typeof out["model"] === "string" ? out["model"] : undefined);
      const m = model !== undefined ? splitModel(model) : undefined;
      attrs[ATTR.genAiOperation] = OPERATION.chat;
      if (m) Object.assign(attrs, { [ATTR.genAiProvider]: m.provider, [ATTR.genAiSystem]: m.provider, [ATTR.genAiRequestModel]: m.model });
      else if (model !== undefined) attrs[ATTR.genAiRequestModel] = model;
      const agent = ns !== undefined ? agentOfNamespace(ns) : x.agent;
      if (agent !== undefined) attrs[ATTR.genAiAgentName] = agent;
      const n = numOf(out["n"]);
      if (n !== undefined) attrs[ATTR.turn] = n;
      const tokens = e.tokens ?? (objOf(out["tokens"]) as { input?: number; output?: number; cached?: number } | undefined);
      if (tokens) {
        if (numOf(tokens.input) !== undefined) attrs[ATTR.genAiInputTokens] = tokens.input!;
        if (numOf(tokens.output) !== undefined) attrs[ATTR.genAiOutputTokens] = tokens.output!;
        if (numOf(tokens.cached)) attrs[ATTR.genAiCachedInputTokens] = tokens.cached!;
      }
      const cost = e.cost_usd ?? numOf(out["cost_usd"]);
      if (cost !== undefined) attrs[ATTR.costUsd] = cost;
      if (typeof out["finish_reason"] === "string") attrs[ATTR.genAiFinishReasons] = [out["finish_reason"]];
      for (const c of Array.isArray(out["calls"]) ? (out["calls"] as unknown[]) : []) {
        const call = objOf(c);
        if (call && typeof call["id"] === "string") {
          x.calls.set(`${ns !== undefined ? `${ns}/` : ""}call:${call["id"]}`, { id: call["id"], tool: typeof call["tool"] === "string" ? call["tool"] : "", args: call["args"] });
        }
      }
      if (this.capture) {
        if (e.messages !== undefined) attrs[ATTR.genAiInputMessages] = json(inputMessages(e.messages));
        attrs[ATTR.genAiOutputMessages] = json(outputMessages(out));
      }
      if (a.turns++ === 0) a.span.setAttribute(ATTR.genAiOperation, OPERATION.invokeAgent);
      const span = this.tracer.startSpan(`${SPAN.chat} ${m?.model ?? model ?? "model"}`, { kind: this.api.SpanKind.CLIENT, startTime: hr(start), attributes: attrs }, parent);
      span.end(hr(end));
      return;
    }
    if (e.kind === "tool_call") {
      const known = x.calls.get(e.name);
      const id = known?.id ?? CALL_NAME.exec(e.name)?.[1] ?? e.name;
      attrs[ATTR.genAiOperation] = OPERATION.executeTool;
      if (known?.tool) attrs[ATTR.genAiToolName] = known.tool;
      attrs[ATTR.genAiToolCallId] = id;
      const status = typeof out["status"] === "string" ? out["status"] : "failed";
      attrs[ATTR.toolStatus] = status;
      const attempts = numOf(out["attempts"]);
      if (attempts !== undefined) attrs[ATTR.toolAttempts] = attempts;
      const err = objOf(out["error"]);
      if (status === "failed" && typeof err?.["kind"] === "string") attrs[ATTR.errorType] = err["kind"];
      if (this.capture) {
        if (known) attrs[ATTR.genAiToolArguments] = json(known.args ?? null);
        attrs[ATTR.genAiToolResult] = json(status === "succeeded" ? (out["output"] ?? null) : (err ?? null));
      }
      const span = this.tracer.startSpan(`${SPAN.executeTool}${known?.tool ? ` ${known.tool}` : ""}`, { kind: this.api.SpanKind.INTERNAL, startTime: hr(start), attributes: attrs }, parent);
      if (status === "failed") {
        const message = typeof err?.["message"] === "string" ? err["message"] : "the tool call failed";
        span.setStatus({ code: this.api.SpanStatusCode.ERROR, message });
      } else if (status === "succeeded") span.setStatus({ code: this.api.SpanStatusCode.OK });
      span.end(hr(end));
      return;
    }
    const span = this.tracer.startSpan(`${SPAN.step} ${e.name}`, { kind: this.api.SpanKind.INTERNAL, startTime: hr(start), attributes: attrs }, parent);
    span.end(hr(end));
  }

  /** Error status and an `exception` event (kind, message, retryable). */
  private fail(span: Span, err: StageError, at: number): void {
    span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: `${err.kind}: ${err.message}` });
    span.setAttributes({ [ATTR.errorType]: err.kind, [ATTR.errorKind]: err.kind, [ATTR.errorRetryable]: err.retryable });
    span.addEvent(EVENT.exception, {
      [ATTR.exceptionType]: err.kind,
      [ATTR.exceptionMessage]: err.message,
      [ATTR.errorRetryable]: err.retryable,
      ...(err.retry_after_ms !== undefined ? { "baton.error.retry_after_ms": err.retry_after_ms } : {}),
    }, hr(at));
  }

  /** A cancelled attempt: status left unset (it did not fail), the reason as attribute and event. */
  private cancel(span: Span, reason: string, at: number): void {
    span.setAttributes({ [ATTR.attemptStatus]: "cancelled", [ATTR.cancelReason]: reason });
    span.addEvent(EVENT.cancelled, { [ATTR.cancelReason]: reason }, hr(at));
    span.end(hr(at));
  }

  private endFailedAttempts(): void {
    if (this.ending.length === 0) return;
    const list = this.ending;
    this.ending = [];
    for (const a of list) a.span.end(hr(a.endAt ?? Date.now()));
  }
}
