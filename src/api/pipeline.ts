/**
 * The TypeScript API (SPEC §7): `definePipeline` builds the same template object a YAML file
 * holds (with functions for `run:`), compiled by the same compiler to the same plan.
 * Stage handlers are typed: a stage's `ctx.outputs` knows the output types of what it needs.
 */
import { z } from "zod";
import type { Plan } from "../plan/types.js";
import type { StageContext } from "../stages/types.js";
import { compileObject, loadPlanFile, validateInputs } from "../template/index.js";

type Duration = string;

/** Schema of a pipeline without inputs (built once: zod compiles a schema on its first parse). */
const NO_INPUTS = z.object({});

/** Retry policy, as in templates. */
export interface RetrySpec {
  /** Total attempts including the first. @default 1 */
  attempts?: number;
  /** @default "exponential" */
  backoff?: "exponential" | "fixed";
  /** @default "1s" */
  delay?: Duration;
  /** @default "30s" */
  max_delay?: Duration;
  /** @default "full" */
  jitter?: "full" | "none";
}

/** A route, as in templates (`when` is a JSONata expression). */
export interface RouteSpec {
  when: string;
  goto?: string;
  with?: unknown;
  max?: number;
  fail?: string;
  escalate?: string;
}

/** Fields every stage may have (same names as in YAML). */
export interface StageCommon<D extends string> {
  description?: string;
  /** Stages to wait for; their outputs are typed in `ctx.outputs`. */
  needs?: readonly D[];
  /** `input:` with `{{ }}` interpolations, handed to the handler as `ctx.input`. */
  input?: unknown;
  if?: string;
  for_each?: string;
  as?: string;
  concurrency?: number;
  routes?: RouteSpec[];
  retry?: RetrySpec;
  timeout?: Duration;
  on_error?: "fail" | "continue" | "escalate" | { fallback: string };
  limit?: LimitRef;
}

/** A pool (in `limits:`): its name, or `{ pool, key }` — an instance of the pool per key (a value template such as `"{{ inputs.tenant }}"`). */
export type LimitRef = string | { pool: string; key: string };

/** A stage definition: a typed function, or a JSONata `value`. */
export type StageDef<In, Outs, D extends string, R> =
  | (StageCommon<D> & { run(ctx: StageContext<any, Pick<Outs, D & keyof Outs>, In>): R | Promise<R>; value?: never; agent?: never })
  | (StageCommon<D> & { value: string; run?: never; agent?: never })
  | (StageCommon<D> & { agent: string; prompt: string; output?: Record<string, unknown>; run?: never; value?: never });

/** An agent (SPEC §8): a model and the tools it may call. */
export interface AgentDef {
  /** provider:model, e.g. openai:gpt-4o-mini */
  model: string;
  system?: string;
  temperature?: number;
  max_tokens?: number;
  limit?: LimitRef;
  base_url?: string;
  api_key_env?: string;
  output?: Record<string, unknown>;
  /** Tool names (keys of `tools`), `mcp.SERVER.TOOL` or `mcp.SERVER.*`. */
  tools?: readonly string[];
  /** Model turns per execution. @default 10 */
  max_steps?: number;
  /** Run the calls of one turn concurrently. @default true */
  parallel_tools?: boolean;
  /** Stream turns to live views when one is attached. @default true */
  stream?: boolean;
}

/** A tool as the template format declares it (what {@link tool} returns). */
export interface ToolDef {
  description: string;
  input: Record<string, unknown>;
  run?: ((ctx: StageContext) => unknown) | string;
  value?: string;
  http?: Record<string, unknown>;
  pipeline?: string;
  inputs?: Record<string, unknown>;
  retry?: RetrySpec;
  timeout?: Duration;
  limit?: LimitRef;
  on_error?: "fail" | "return";
  approval?: string;
}

/** An `mcp:` server: `command` (+ args, env, cwd) for stdio, or `url` (+ headers_env) for Streamable HTTP. */
export interface McpServerDef {
  command?: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  url?: string;
  headers_env?: Record<string, string>;
}

/**
 * Declare a tool with a typed handler (SPEC §8): `input` is a zod object (sent to the model as
 * JSON Schema; arguments are validated against it before the handler runs), `run` gets the
 * arguments and the call's `ctx` (`idempotencyKey` stable per call, `signal`, `log`, `step`).
 *
 * @example
 * const search = tool({
 *   description: "Search the web",
 *   input: z.object({ query: z.string() }),
 *   run: async ({ query }, ctx) => fetchResults(query, ctx.signal),
 * });
 * definePipeline({ name: "r", tools: { search }, agents: { researcher: { model: "openai:gpt-4o-mini", tools: ["search"] } } })
 */
export function tool<A extends z.ZodObject>(def: Omit<ToolDef, "input" | "run"> & { input: A; run?: (args: z.infer<A>, ctx: StageContext<z.infer<A>>) => unknown }): ToolDef {
  const { input, run: handler, ...rest } = def;
  const schema = z.toJSONSchema(input) as Record<string, unknown>;
  delete schema.$schema;
  return {
    ...rest,
    input: schema,
    ...(handler ? { run: (ctx: StageContext) => handler(ctx.input as z.infer<A>, ctx as StageContext<z.infer<A>>) } : {}),
  };
}

/** Pipeline-wide settings (same names as the template's top level). */
export interface PipelineConfig<I extends z.ZodObject> {
  name: string;
  description?: string;
  /** Inputs as a zod object; converted to JSON Schema for the plan. */
  inputs?: I;
  concurrency?: number;
  timeout?: Duration;
  defaults?: { retry?: RetrySpec; timeout?: Duration; on_error?: "fail" | "continue" | "escalate" };
  limits?: Record<string, { concurrency?: number; rpm?: number; tpm?: number }>;
  budget?: { tokens?: number; usd?: number };
  /** Agents: models and the tools they may call (SPEC §8). */
  agents?: Record<string, AgentDef>;
  /** Tools agents may call; build them with {@link tool}. */
  tools?: Record<string, ToolDef>;
  /** MCP servers whose tools agents may call. */
  mcp?: Record<string, McpServerDef>;
  /** Untyped stages given all at once (the builder's `.stage()` types them one by one). */
  stages?: Record<string, StageDef<z.infer<I>, Record<string, unknown>, string, unknown>>;
  /** Final assembly expression. */
  output?: string;
  /** Directory `run:` module strings resolve against. @default process.cwd() */
  baseDir?: string;
}

/** A compiled, runnable pipeline. `Out` is the run's output type. */
export interface Pipeline<In = Record<string, unknown>, Out = unknown> {
  readonly name: string;
  /** The compiled plan (compiled on first use, then cached). */
  readonly plan: Plan;
  /** Validate and default raw inputs. */
  parseInputs(raw: unknown): In;
  /** @internal phantom for the output type */
  readonly __out?: Out;
}

/**
 * The stages added with `.stage()`, newest first: each builder adds one link and shares the
 * rest, so building N stages costs O(N) (copying a record per `.stage()` cost O(N²)).
 */
interface StageLink {
  readonly name: string;
  readonly def: unknown;
  readonly prev: StageLink | undefined;
  readonly length: number;
}

/** The linked stages as a record, oldest first: what spreading them one by one would give. */
function stageRecord(last: StageLink | undefined): Record<string, unknown> {
  const links: StageLink[] = new Array<StageLink>(last?.length ?? 0);
  for (let l = last; l !== undefined; l = l.prev) links[l.length - 1] = l;
  const out: Record<string, unknown> = {};
  for (const l of links) {
    // As an object literal's `[name]: def` does: `__proto__` is an own property here too.
    if (l.name === "__proto__") Object.defineProperty(out, l.name, { value: l.def, enumerable: true, writable: true, configurable: true });
    else out[l.name] = l.def;
  }
  return out;
}

/**
 * Builder returned by {@link definePipeline}. Each `.stage()` returns a new builder whose
 * type knows the new stage's output.
 */
export class PipelineBuilder<In, Outs extends Record<string, unknown>, Out = Outs> implements Pipeline<In, Out> {
  private compiled: Plan | undefined;
  declare readonly __out?: Out;

  constructor(
    private readonly config: PipelineConfig<z.ZodObject>,
    private readonly stageDefs: StageLink | undefined,
    private readonly outputExpr: string | undefined,
  ) {}

  get name(): string {
    return this.config.name;
  }

  /**
   * Add a stage.
   *
   * @example
   * definePipeline({ name: "p" })
   *   .stage("fetch", { run: async () => ({ n: 2 }) })
   *   .stage("double", { needs: ["fetch"], run: (ctx) => ctx.outputs.fetch.n * 2 });
   */
  stage<N extends string, R, D extends keyof Outs & string = never>(
    name: N,
    def: StageDef<In, Outs, D, R>,
  ): PipelineBuilder<In, Outs & { [K in N]: Awaited<R> }, Outs & { [K in N]: Awaited<R> }> {
    const link: StageLink = { name, def, prev: this.stageDefs, length: (this.stageDefs?.length ?? 0) + 1 };
    return new PipelineBuilder(this.config, link, this.outputExpr);
  }

  /** The run's output is this stage's output. */
  returns<K extends keyof Outs & string>(stage: K): PipelineBuilder<In, Outs, Outs[K]> {
    return new PipelineBuilder(this.config, this.stageDefs, stage);
  }

  /** The run's output is this JSONata expression over inputs and stage outputs. */
  output<T = unknown>(expr: string): PipelineBuilder<In, Outs, T> {
    return new PipelineBuilder(this.config, this.stageDefs, expr);
  }

  get plan(): Plan {
    this.compiled ??= compileObject(this.template(), { format: "ts", name: this.config.name, baseDir: this.config.baseDir ?? process.cwd() });
    return this.compiled;
  }

  parseInputs(raw: unknown): In {
    const schema = this.config.inputs ?? NO_INPUTS;
    const r = schema.safeParse(raw ?? {});
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new TypeError(`input '${issue.path.join(".") || "(root)"}': ${issue.message}`);
    }
    return r.data as In;
  }

  /** The template object this pipeline compiles from (what a YAML file would hold). */
  template(): Record<string, unknown> {
    const c = this.config;
    const inputs = c.inputs ? ((z.toJSONSchema(c.inputs) as { properties?: Record<string, unknown> }).properties ?? {}) : undefined;
    const t: Record<string, unknown> = { baton: 1, name: c.name, stages: { ...(c.stages ?? {}), ...stageRecord(this.stageDefs) } };
    for (const k of ["description", "concurrency", "timeout", "defaults", "limits", "budget", "agents", "tools", "mcp"] as const) if (c[k] !== undefined) t[k] = c[k];
    if (inputs) t.inputs = inputs;
    const out = this.outputExpr ?? c.output;
    if (out !== undefined) t.output = out;
    return t;
  }
}

/**
 * Define a pipeline in TypeScript.
 *
 * @example
 * const p = definePipeline({ name: "report", inputs: z.object({ topic: z.string() }) })
 *   .stage("research", { run: async (ctx) => ({ sources: [ctx.inputs.topic] }) })
 *   .stage("draft", { needs: ["research"], run: (ctx) => ctx.outputs.research.sources.join(", ") })
 *   .returns("draft");
 * const text: string = await run(p, { topic: "tides" });
 */
export function definePipeline<I extends z.ZodObject = z.ZodObject<{}>>(config: PipelineConfig<I>): PipelineBuilder<z.infer<I>, {}, Record<string, unknown>> {
  return new PipelineBuilder(config as unknown as PipelineConfig<z.ZodObject>, undefined, undefined);
}

/** A pipeline from a YAML or JSON template file (untyped). */
export function loadTemplate(file: string): Pipeline<Record<string, unknown>, unknown> {
  const plan = loadPlanFile(file);
  return {
    name: plan.name,
    plan,
    parseInputs: (raw) => validateInputs(plan, (raw ?? {}) as Record<string, unknown>),
  };
}
