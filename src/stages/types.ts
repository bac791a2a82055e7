/**
 * Stage kinds: one file per kind. Each is `(ctx) → output` and knows nothing of scheduling.
 * The registry is open: later kinds (agent, http, pipeline, approval) register themselves here.
 */
import type { RunResult } from "../base/result.js";
import type { Scope } from "../expr/types.js";
import type { Plan, StagePlan, ToolPlan } from "../plan/types.js";
import type { AttemptUsage, StageError } from "../engine/events.js";
import type { BatonConfig } from "../agents/config.js";

/** What a `run:` handler receives (SPEC §1 "Stage inputs and handlers"). */
export interface StageContext<Input = unknown, Outputs = Record<string, unknown>, Inputs = Record<string, unknown>> {
  /** The stage's evaluated `input:` (undefined when it has none). */
  readonly input: Input;
  /** The run's inputs. */
  readonly inputs: Inputs;
  /** Outputs of the stages this stage reads or needs, by stage id. */
  readonly outputs: Outputs;
  /** for_each: the current item and its 0-based index. */
  readonly item: unknown;
  readonly index: number | undefined;
  /** 1 on the first visit, 2, 3… when a route brings the stage back. */
  readonly visit: number;
  /** 1 on the first attempt; retries count up. */
  readonly attempt: number;
  /** The `with:` of the route that brought the stage back, if any. */
  readonly route: unknown;
  /** This stage's output on the previous visit, if any. */
  readonly prev: unknown;
  /** Aborted when the attempt times out or the run is cancelled. */
  readonly signal: AbortSignal;
  /** Stable across attempts of the same stage, item and visit: use it to dedupe side effects. */
  readonly idempotencyKey: string;
  /** Record a line in the trace. */
  log(message: string): void;
  /** The run id. */
  readonly runId: string;
  /**
   * A durable step (SPEC §9): `fn` runs once per execution and its JSON result is recorded in the
   * run's log; on a retry, after a crash or on resume the recorded result is returned without
   * running `fn` again. Names are unique within the execution.
   */
  step<T>(name: string, fn: () => T | Promise<T>): Promise<T>;
  /**
   * Run a declared agent's tool loop from a handler (SPEC §8): the same pools, budget and journal
   * as an `agent:` stage. Resolves to its final answer (the parsed object when it has `output:`).
   * `step` names the call in the journal (default: `agent:NAME:N`, N counting this attempt's calls).
   */
  agent(name: string, opts: { prompt: string; output?: object; step?: string }): Promise<unknown>;
}

/** Everything a stage kind needs to execute one attempt. */
export interface ExecuteArgs {
  readonly plan: Plan;
  readonly stage: StagePlan;
  readonly ctx: StageContext;
  /** The expression scope of the stage (for kinds that evaluate expressions themselves). */
  readonly scope: Scope;
  /** The previous attempt's error when this is a retry (e.g. a malformed reply to repair). */
  readonly previous: StageError | undefined;
  /** Record model usage of this attempt: it lands on the attempt's event and the run's totals. */
  report(usage: AttemptUsage): void;
  /**
   * Wait for the stage's resource pool (its `limit:` or its agent's); resolves to undefined when
   * it has none. `tokens` is the call's estimate. Release the lease with what the call used.
   */
  acquire(tokens: number, pool?: string, key?: string): Promise<PoolLease | undefined>;
  /**
   * Check that an estimate fits what is left of the run's budget and hold it until the attempt is
   * over (atomically: concurrent calls of the run cannot overshoot it). Always ok without a budget.
   */
  hold(tokens: number, usd: number): Promise<BudgetHold>;
  /** End a hold early with what the call spent (an agent's turn, recorded as a step with its usage). */
  settle(h: BudgetHold, spent: Usage): void;
  /** Run-wide services. */
  readonly services: RunServices;
  /** The execution's durable steps (SPEC §9): recorded results of earlier attempts, and recording. */
  readonly journal: JournalPort;
  /** Streamed text of a model turn as it arrives (live views; not stored). */
  delta?(text: string, turn: number): void;
  /** Run one tool call with the tool's retry, timeout and pool (runtime/tool-call.ts). */
  callTool(req: ToolCallRequest): Promise<ToolOutcome>;
}

/** One tool call of an agent's turn, to run. */
export interface ToolCallRequest {
  /** The model's tool-call id. */
  readonly id: string;
  /** The tool's name as the model sees it. */
  readonly tool: string;
  readonly args: Record<string, unknown>;
  /** A declared tool (`tools:`), or an MCP server's. */
  readonly plan?: ToolPlan;
  readonly mcp?: { readonly server: string; readonly tool: string };
  /** Prefix of the call's own durable steps (a `run:` tool's ctx.step). */
  readonly journalPrefix: string;
  readonly startedAt: number;
}

/** How a tool call ended (recorded as its step; the model sees the output or the error). */
export interface ToolOutcome {
  readonly status: "succeeded" | "failed" | "declined";
  readonly output?: unknown;
  readonly error?: { readonly kind: string; readonly message: string; readonly retryable?: boolean };
  /** Attempts the call took (0: it never ran — invalid arguments, unknown tool, declined). */
  readonly attempts: number;
  readonly started_at: number;
  readonly ended_at: number;
  /** Set when read back from the log instead of running (not stored). */
  readonly replayed?: boolean;
}

/** What the runtime offers stage kinds beyond the stage itself. */
export interface RunServices {
  /** Providers and model facts from baton.config. */
  readonly config: BatonConfig;
  /** MCP servers' tools (SPEC §8 `mcp:`), fetched at run start; undefined when the plan declares none. */
  readonly mcp?: McpTools;
  /** Child runs (sub-pipelines). */
  readonly children: ChildRuns;
}

/** What a step records besides its output (agent turns: their usage). */
export interface StepMeta {
  readonly kind: "step" | "turn" | "tool_call";
  readonly model?: string;
  readonly tokens?: { readonly input: number; readonly output: number; readonly cached?: number };
  readonly cost_usd?: number;
  /** Turns: the messages sent (stored content-addressed, once). */
  readonly messages?: unknown;
}

/** An execution's durable steps (implemented by runtime/journal.ts). */
export interface JournalPort {
  /** The recorded result of `name`, if an earlier attempt completed it (marks it replayed). */
  lookup(name: string): { found: true; value: unknown } | { found: false };
  has(name: string): boolean;
  /** Claim a name for this attempt (a name used twice is an error). */
  claim(name: string): void;
  /** Record a completed step; resolves once it is in the run's log. */
  record(name: string, output: unknown, startedAt: number, meta: StepMeta): Promise<void>;
  step<T>(name: string, fn: () => T | Promise<T>): Promise<T>;
}

/** The MCP tools a run may call (runtime/mcp-tools.ts). */
export interface McpTools {
  /** The tools of `server` as listed at run start. */
  tools(server: string): readonly { readonly name: string; readonly description: string; readonly inputSchema: Record<string, unknown> }[];
  call(server: string, tool: string, args: Record<string, unknown>, signal: AbortSignal): Promise<unknown>;
}

/** Starting and resuming child runs of sub-pipeline stages. */
export interface ChildRuns {
  /**
   * Run `plan` as a child run with an id derived from `base`: an existing unfinished child is
   * resumed, a succeeded one reused; a failed one is replaced by a fresh child on a later
   * attempt. Aborting `signal` cancels the child.
   */
  run(plan: Plan, inputs: Record<string, unknown>, base: string, attempt: number, signal: AbortSignal): Promise<RunResult>;
}

/**
 * What a finished call reports back to its pool. (This and {@link PoolLease}, {@link Usage} and
 * {@link BudgetHold} are the stage kinds' view of the runtime's resources: declared here with the
 * rest of the stage contract, implemented by runtime/pools.ts, runtime/budget.ts and the Redis
 * pools and budget of distributed mode, so no arrow points from stages up to runtime.)
 */
export interface PoolOutcome {
  /** Tokens the provider counted (prompt + completion). */
  readonly tokens?: number;
  /** The provider said no (429 / overload). */
  readonly rejected?: boolean;
  readonly retryAfterMs?: number;
}

/** Capacity held by one call. */
export interface PoolLease {
  readonly pool: string;
  /** The key of a keyed pool instance (`limit: { pool, key }`). */
  readonly key?: string;
  /** How long the call waited for the pool, and the first reason it had to. */
  readonly waitedMs: number;
  readonly reason: string | undefined;
  release(outcome?: PoolOutcome): void;
}

/** Tokens and USD. */
export interface Usage {
  readonly tokens: number;
  readonly usd: number;
}

/** The outcome of a hold: `ok`, or which limit it would cross and what was used (spent + held) before it. */
export interface BudgetHold {
  readonly ok: boolean;
  readonly over?: "tokens" | "usd";
  readonly used: Usage;
  readonly tokens: number;
  readonly usd: number;
  /** Host-specific handle of the hold. */
  readonly ref?: string;
}

/** A stage kind's executor. */
export type StageKindExecutor = (args: ExecuteArgs) => unknown;
