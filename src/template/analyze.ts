/**
 * The template-wide checks: inputs, limits, agents, defaults, every stage and the final
 * output. Produces drafts for the graph pass; reports everything it finds.
 */
import type { CompiledExpr } from "../expr/compile.js";
import type { McpServerPlan, RetryPolicy, ToolPlan, TriggerPlan } from "../plan/types.js";
import { analyzeMcp, analyzeTools, checkAgentTools } from "./tools.js";
import { BUILTIN_RETRY, checkJsonSchema, durationOf, isRec, retryOf, type Rec } from "./fields.js";
import { ExprChecker, objectNameProblem } from "./refs.js";
import { sharedAjv, showValue } from "./schema.js";
import type { Reporter } from "./source.js";
import { analyzeStage, type OnErrorDraft, type StageDraft } from "./stage.js";
import { didYouMean } from "./suggest.js";
import { analyzeLimit } from "./limit.js";
import { analyzeTriggers } from "./triggers.js";

/** Everything the graph pass and the plan builder need. */
export interface Analysis {
  readonly name: string;
  readonly description?: string;
  readonly inputsSchema: { type: "object"; properties: Record<string, unknown>; required: string[] };
  readonly stages: readonly StageDraft[];
  readonly stageIndex: ReadonlyMap<string, number>;
  readonly output?: CompiledExpr;
  readonly concurrency: number;
  readonly timeoutMs?: number;
  readonly budget?: { tokens?: number; usd?: number };
  readonly limits: Record<string, { concurrency?: number; rpm?: number; tpm?: number }>;
  readonly agents: Record<string, Rec>;
  readonly tools: Record<string, ToolPlan>;
  readonly mcp: Record<string, McpServerPlan>;
  readonly triggers: TriggerPlan[];
}

function recOf(v: unknown): Rec {
  return isRec(v) ? v : {};
}

/** Check each input's schema and that its default matches it; build the inputs schema. */
function analyzeInputs(raw: Rec, report: Reporter): Analysis["inputsSchema"] {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const [name, schema] of Object.entries(raw)) {
    if (!isRec(schema) && typeof schema !== "boolean") continue; // the schema check reported it
    const reserved = objectNameProblem(name, "input name");
    if (reserved) {
      report.key(["inputs", name], `${reserved}: rename the input`);
      continue;
    }
    properties[name] = schema;
    if (!isRec(schema) || !("default" in schema)) required.push(name);
    checkJsonSchema(schema, ["inputs", name], `input '${name}'`, report);
  }
  const withDefaults = Object.entries(properties).filter(([, s]) => isRec(s) && "default" in s);
  if (withDefaults.length > 0) {
    const ajv = sharedAjv();
    for (const [name, schema] of withDefaults) {
      try {
        const check = ajv.compile(schema as Rec);
        if (!check((schema as Rec).default)) {
          const why = check.errors?.[0]?.message ?? "does not match";
          report.value(["inputs", name, "default"], `input '${name}': default ${showValue((schema as Rec).default)} ${why.startsWith("must") ? why : `does not match its schema: ${why}`}`);
        }
      } catch {
        // An invalid schema was reported above.
      } finally {
        ajv.removeSchema(schema as Rec);
      }
    }
  }
  return { type: "object", properties, required };
}

/** Run every template-wide and per-stage check. Returns undefined when the template is not a mapping. */
export function analyze(data: unknown, report: Reporter, opts: { baseDir: string; format: "yaml" | "json" | "ts"; name?: string }): Analysis | undefined {
  if (!isRec(data)) return undefined;
  const inputsSchema = analyzeInputs(recOf(data.inputs), report);
  const limits = recOf(data.limits) as Analysis["limits"];
  const limitNames = new Set(Object.keys(limits));
  const agents: Record<string, Rec> = {};
  const toolNames = new Set(Object.keys(recOf(data.tools)));
  const mcpNames = new Set(Object.keys(recOf(data.mcp)));
  for (const [name, agent] of Object.entries(recOf(data.agents))) {
    if (!isRec(agent)) continue;
    agents[name] = agent;
    if (agent.output !== undefined) checkJsonSchema(agent.output, ["agents", name, "output"], `agent '${name}': output`, report);
    checkAgentTools(name, agent, toolNames, mcpNames, report);
  }

  const defaultsRaw = recOf(data.defaults);
  const retry: RetryPolicy = isRec(defaultsRaw.retry) ? retryOf(defaultsRaw.retry, BUILTIN_RETRY, ["defaults", "retry"], "defaults", report) : BUILTIN_RETRY;
  const defaultTimeout = durationOf(defaultsRaw.timeout);
  const onError: OnErrorDraft =
    defaultsRaw.on_error === "continue" || defaultsRaw.on_error === "escalate" ? { kind: defaultsRaw.on_error } : { kind: "fail" };

  const stagesRaw = recOf(data.stages);
  const ids = Object.keys(stagesRaw);
  const stageIds = new Set(ids);
  const fallbacks = new Set<string>();
  for (const s of Object.values(stagesRaw)) {
    if (isRec(s) && isRec(s.on_error) && typeof s.on_error.fallback === "string") fallbacks.add(s.on_error.fallback);
  }
  const exprs = new ExprChecker(report, { stageIds, inputs: new Set(Object.keys(inputsSchema.properties)) });
  // An agent's limit key is evaluated in the scope of each stage that runs the agent.
  for (const [name, agent] of Object.entries(agents)) {
    const scope = { id: name, itemNames: new Set(["item", "index"]), isFallback: false, reads: new Set<string>() };
    analyzeLimit(agent.limit, ["agents", name, "limit"], { report, exprs, limits: limitNames }, { stage: scope, field: "limit", perItem: true });
  }
  const ctx = {
    report,
    exprs,
    stageIds,
    agents,
    agentNames: new Set(Object.keys(recOf(data.agents))),
    limits: limitNames,
    fallbacks,
    defaults: { retry, onError, ...(defaultTimeout !== undefined ? { timeoutMs: defaultTimeout } : {}) },
    baseDir: opts.baseDir,
  };
  const stages = ids.map((id, i) => analyzeStage(id, i, stagesRaw[id], ctx));
  const tools = analyzeTools(recOf(data.tools), { report, exprs, limits: limitNames, retry, baseDir: opts.baseDir });
  const mcp = analyzeMcp(recOf(data.mcp), opts.baseDir, report);
  const triggers = analyzeTriggers(data.triggers, { report, inputsSchema });
  const output = data.output === undefined ? undefined : exprs.expr(["output"], data.output, { field: "output", perItem: false });
  const timeoutMs = durationOf(data.timeout);
  const budget = isRec(data.budget) ? (data.budget as Analysis["budget"]) : undefined;

  return {
    name: typeof data.name === "string" ? data.name : (opts.name ?? ""),
    ...(typeof data.description === "string" ? { description: data.description } : {}),
    inputsSchema,
    stages,
    stageIndex: new Map(ids.map((id, i) => [id, i])),
    ...(output ? { output } : {}),
    concurrency: typeof data.concurrency === "number" ? data.concurrency : Infinity,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(budget ? { budget } : {}),
    limits,
    agents,
    tools,
    mcp,
    triggers,
  };
}
