/**
 * The plan: the validated, immutable intermediate representation a template (YAML, JSON or
 * the TypeScript API) compiles to. The engine, the runtime and the trace read nothing else.
 *
 * Stages are addressed by their index in `Plan.stages` (`StageIdx`) on hot paths and by
 * their id in events and traces.
 */
import type { Expr, ValueTemplate } from "../expr/types.js";

/** Index of a stage in {@link Plan.stages}. */
export type StageIdx = number;

/** A retry policy, compiled once (durations in ms). */
export interface RetryPolicy {
  /** Total attempts including the first. @default 1 */
  readonly attempts: number;
  /** @default "exponential" */
  readonly backoff: "exponential" | "fixed";
  /** Base delay in ms. @default 1000 */
  readonly delayMs: number;
  /** Cap on one delay in ms. @default 30000 */
  readonly maxDelayMs: number;
  /** @default "full" */
  readonly jitter: "full" | "none";
}

/** What happens when a stage (or one for_each item) has failed for good. */
export type OnError =
  | { readonly kind: "fail" }
  | { readonly kind: "continue" }
  | { readonly kind: "fallback"; readonly stage: StageIdx }
  | { readonly kind: "escalate" };

/** One entry of a stage's `routes:`. Exactly one of goto / fail / escalate is set. */
export interface Route {
  readonly when: Expr;
  /** Target stage of a goto. */
  readonly goto?: StageIdx;
  /** true when the goto target is upstream of (or equal to) the routing stage. */
  readonly backward?: boolean;
  /** `with:` — data visible to the re-run target as `route`. Evaluated when the route is taken. */
  readonly with?: ValueTemplate;
  /** How many times this route may be taken in one run. @default 3 for goto */
  readonly max: number;
  readonly fail?: string;
  readonly escalate?: string;
}

/** A `run:` stage's handler reference (YAML) or function (TS API). */
export type RunSpec =
  | { readonly kind: "run"; readonly module: string; readonly export: string; readonly baseDir: string }
  | { readonly kind: "run"; readonly fn: (ctx: any) => unknown };

/** What a stage executes. Kinds other than run/value are compiled but executed by later stage kinds. */
export type StageSpec =
  | RunSpec
  | { readonly kind: "value"; readonly expr: Expr }
  | { readonly kind: "agent"; readonly agent: string; readonly prompt: ValueTemplate; readonly output?: unknown }
  | { readonly kind: "http"; readonly http: ValueTemplate }
  | { readonly kind: "pipeline"; readonly path: string; readonly inputs?: ValueTemplate }
  | {
    readonly kind: "approval"; readonly message?: ValueTemplate;
    /** `approval.timeout` (ms): the deadline from when the stage waits; `onTimeout` decides then (default reject). */
    readonly timeoutMs?: number; readonly onTimeout?: "reject" | "approve" | "fail";
  }
  /** `wait:` a named signal (`baton signal RUN NAME`); its data is the output. `onTimeout` default fail. */
  | { readonly kind: "wait"; readonly signal: string; readonly timeoutMs?: number; readonly onTimeout?: "fail" | "continue" }
  /** `sleep: DURATION` (`ms`) or `until: EXPR` (an ISO time or epoch ms): a durable timer. */
  | { readonly kind: "sleep"; readonly ms?: number; readonly until?: Expr };

export type StageKind = StageSpec["kind"];

/** One stage of the plan. */
export interface StagePlan {
  readonly id: string;
  readonly idx: StageIdx;
  readonly description?: string;
  readonly spec: StageSpec;
  /** `input:` evaluated when the stage starts; handed to the handler as `ctx.input`. */
  readonly input?: ValueTemplate;
  /** Everything this stage waits for: explicit `needs` plus stages its expressions read. Sorted, unique. */
  readonly deps: readonly StageIdx[];
  /** Stages that list this one in `deps`. Sorted, unique. */
  readonly dependents: readonly StageIdx[];
  /** Stage ids read by the stage's own expressions (input, prompt, if, for_each, value…), for the scope. */
  readonly reads: readonly string[];
  readonly if?: Expr;
  readonly forEach?: Expr;
  /** Name the current item is bound to (besides `item`). @default "item" */
  readonly as: string;
  /** for_each items in flight at once. @default Infinity */
  readonly itemConcurrency: number;
  readonly routes: readonly Route[];
  readonly retry: RetryPolicy;
  /** Per-attempt timeout in ms; undefined = none. */
  readonly timeoutMs?: number;
  readonly onError: OnError;
  /** true when some stage names this one as its fallback: it runs only when called as one. */
  readonly isFallback: boolean;
  /** Resource pool the stage draws from (issue 4). */
  readonly limit?: string;
  /** `limit: { pool, key }`: evaluated per execution, a pool instance per key (issue 12). */
  readonly limitKey?: ValueTemplate;
}

/** A tool agents may call (SPEC §8): a small stage run per call, with `args` in scope. */
export interface ToolPlan {
  readonly name: string;
  readonly description: string;
  /** JSON Schema (an object schema) of the arguments. */
  readonly input: Readonly<Record<string, unknown>>;
  /** What a call runs: a `run:` handler, an `http:` call, a sub-pipeline or a `value:` expression. */
  readonly spec: StageSpec;
  readonly retry: RetryPolicy;
  /** Per call attempt, ms. */
  readonly timeoutMs?: number;
  readonly limit?: string;
  /** `limit: { pool, key }`: evaluated per call (`args`, `inputs` in scope), a pool instance per key. */
  readonly limitKey?: ValueTemplate;
  /** `return` (default): a failed call is an error result for the model; `fail`: it fails the stage's attempt. */
  readonly onError: "return" | "fail";
  /** A human approves each call first: the message shown ({{ args }} allowed). */
  readonly approval?: ValueTemplate;
}

/** An `mcp:` server (SPEC §8): stdio (command) or Streamable HTTP (url). */
export interface McpServerPlan {
  readonly command?: string;
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly url?: string;
  readonly headers_env?: Readonly<Record<string, string>>;
  /** The template's directory (relative args and cwd resolve against it). */
  readonly baseDir: string;
}

/** What a cron trigger does with fires missed while no server ran (see `serve/cron.ts`). */
export type CatchUpPolicy = "latest" | "all" | "none";

/** A `triggers:` entry with `cron:`: runs on a schedule. */
export interface CronTriggerPlan {
  readonly kind: "cron";
  /** Position in the template's `triggers:` list. */
  readonly index: number;
  readonly name?: string;
  /** The cron expression as written: 5 fields or a nickname such as `@hourly`. */
  readonly cron: string;
  /** IANA time zone the expression is read in. @default "UTC" */
  readonly timezone: string;
  /** Literal run inputs, as written (checked against `inputs:` at compile time). @default {} */
  readonly inputs: Readonly<Record<string, unknown>>;
  /** @default "latest" */
  readonly catchUp: CatchUpPolicy;
}

/** A `triggers:` entry with `webhook:`: runs on a signed HTTP POST. */
export interface WebhookTriggerPlan {
  readonly kind: "webhook";
  readonly index: number;
  readonly name?: string;
  /** `/hooks/...`, unique in the template. */
  readonly path: string;
  /** Name of the env var holding the HMAC secret. */
  readonly secretEnv: string;
  /** JSONata over `{ body, headers, query }` giving the run inputs (source in `inputs.source`). @default body */
  readonly inputs: Expr;
}

/** A compiled trigger. Triggers do not change how a run executes: neither plan hash covers them. */
export type TriggerPlan = CronTriggerPlan | WebhookTriggerPlan;

/** Where a plan came from; stored with every run so resume uses the plan as it was. */
export interface PlanSource {
  /** Absolute path of the template file, when it came from one. */
  readonly file?: string;
  readonly format: "yaml" | "json" | "ts";
  /** The template text (YAML/JSON) — resume recompiles from this, not from the file. */
  readonly text?: string;
}

/** The compiled plan. Deeply immutable by convention. */
export interface Plan {
  readonly name: string;
  readonly description?: string;
  /** sha256 (hex) of the canonical plan; same template → same hash. */
  readonly hash: string;
  readonly source: PlanSource;
  /** JSON Schema (object) of the run's inputs, with defaults. */
  readonly inputsSchema: { readonly type: "object"; readonly properties: Record<string, unknown>; readonly required?: readonly string[] };
  readonly stages: readonly StagePlan[];
  readonly stageIndex: ReadonlyMap<string, StageIdx>;
  /** Final assembly; undefined = an object of every sink stage's output. */
  readonly output?: Expr;
  /** Stage executions in flight per run. @default Infinity */
  readonly concurrency: number;
  /** Whole-run timeout in ms. */
  readonly timeoutMs?: number;
  readonly budget?: { readonly tokens?: number; readonly usd?: number };
  readonly limits: Readonly<Record<string, { readonly concurrency?: number; readonly rpm?: number; readonly tpm?: number }>>;
  readonly agents: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Tools agents may call, by name (SPEC §8). */
  readonly tools: Readonly<Record<string, ToolPlan>>;
  /** MCP servers, by name. */
  readonly mcp: Readonly<Record<string, McpServerPlan>>;
  /** Topological order of stage indices (deps before dependents). */
  readonly topo: readonly StageIdx[];
  /** `triggers:` (for `baton serve`), when the template has any. Not covered by either hash. */
  readonly triggers?: readonly TriggerPlan[];
}
