/**
 * `tools:`, `mcp:` and the tool fields of agents (SPEC §8), checked and compiled. A tool is a
 * small stage run per call: exactly one of run, http, pipeline (+ inputs) or value, with `args`
 * (the call's validated arguments) and `inputs` in scope, and its own retry, timeout and pool.
 */
import { resolve } from "node:path";
import type { McpServerPlan, RetryPolicy, StageSpec, ToolPlan } from "../plan/types.js";
import { checkJsonSchema, durationOf, isRec, retryOf, type Rec } from "./fields.js";
import type { ExprChecker, Where } from "./refs.js";
import type { DocPath, Reporter } from "./source.js";
import { didYouMean } from "./suggest.js";
import { analyzeLimit } from "./limit.js";

const TOOL_KINDS = ["run", "http", "pipeline", "value"] as const;

/** Check `tools:`; compile every tool without errors. */
export function analyzeTools(raw: Rec, ctx: { report: Reporter; exprs: ExprChecker; limits: ReadonlySet<string>; retry: RetryPolicy; baseDir: string }): Record<string, ToolPlan> {
  const { report, exprs } = ctx;
  const out: Record<string, ToolPlan> = {};
  for (const [name, t] of Object.entries(raw)) {
    if (!isRec(t)) continue; // the schema check reported it
    const at = (...p: (string | number)[]): DocPath => ["tools", name, ...p];
    const kinds = TOOL_KINDS.filter((k) => t[k] !== undefined);
    if (kinds.length === 0) report.key(["tools", name], `tool '${name}' has nothing to run: give it one of ${TOOL_KINDS.join(", ")}`);
    if (kinds.length > 1) report.key(["tools", name], `tool '${name}' has ${kinds.length} kinds (${kinds.join(", ")}): keep exactly one`);
    if (t.inputs !== undefined && t.pipeline === undefined) report.key(at("inputs"), `tool '${name}': 'inputs' is only for pipeline tools`);
    if (t.input !== undefined) {
      checkJsonSchema(t.input, at("input"), `tool '${name}': input`, report);
      if (isRec(t.input) && t.input.type !== "object") report.value(at("input"), `tool '${name}': input must be an object schema (type: object, with properties): models pass arguments as an object`);
    }
    const w: Where = { field: "tool", perItem: false, tool: name };
    let spec: StageSpec | undefined;
    switch (kinds.length === 1 ? kinds[0] : undefined) {
      case "run": {
        const r = t.run;
        if (typeof r === "function") {
          spec = { kind: "run", fn: r as (c: unknown) => unknown };
          break;
        }
        if (typeof r !== "string") break;
        const hash = r.lastIndexOf("#");
        const module = hash < 0 ? r : r.slice(0, hash);
        const exp = hash < 0 ? "default" : r.slice(hash + 1);
        if (module === "" || !/^[A-Za-z_$][\w$]*$/.test(exp)) report.value(at("run"), `tool '${name}': run '${r}' must be MODULE or MODULE#EXPORT, such as ./tools.ts#search`);
        else spec = { kind: "run", module, export: exp, baseDir: ctx.baseDir };
        break;
      }
      case "http": {
        const http = isRec(t.http) ? exprs.template(at("http"), t.http, w) : undefined;
        if (http) spec = { kind: "http", http };
        break;
      }
      case "pipeline": {
        const inputs = t.inputs !== undefined ? exprs.template(at("inputs"), t.inputs, w) : undefined;
        if (typeof t.pipeline === "string") spec = { kind: "pipeline", path: resolve(ctx.baseDir, t.pipeline), ...(inputs ? { inputs } : {}) };
        break;
      }
      case "value": {
        const e = exprs.expr(at("value"), t.value, w);
        if (e) spec = { kind: "value", expr: e };
        break;
      }
      default:
        break;
    }
    const approval = t.approval !== undefined ? exprs.template(at("approval"), t.approval, w) : undefined;
    const { pool: limit, key: limitKey } = analyzeLimit(t.limit, at("limit"), ctx, w);
    const retry = isRec(t.retry) ? retryOf(t.retry, ctx.retry, at("retry"), `tool '${name}'`, report) : ctx.retry;
    const timeoutMs = durationOf(t.timeout);
    if (!spec || typeof t.description !== "string" || !isRec(t.input)) continue;
    out[name] = {
      name,
      description: t.description,
      input: t.input,
      spec,
      retry,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(limit !== undefined ? { limit } : {}),
      ...(limit !== undefined && limitKey !== undefined ? { limitKey } : {}),
      onError: t.on_error === "fail" ? "fail" : "return",
      ...(approval ? { approval } : {}),
    };
  }
  return out;
}

/** Check `mcp:` servers. */
export function analyzeMcp(raw: Rec, baseDir: string, report: Reporter): Record<string, McpServerPlan> {
  const out: Record<string, McpServerPlan> = {};
  for (const [name, m] of Object.entries(raw)) {
    if (!isRec(m)) continue;
    const both = m.command !== undefined && m.url !== undefined;
    if (both || (m.command === undefined && m.url === undefined)) {
      report.key(["mcp", name], `MCP server '${name}' needs ${both ? "either" : "one of"} command: (stdio) or url: (Streamable HTTP)${both ? ", not both" : ""}`);
    }
    if (m.url === undefined && m.headers_env !== undefined) report.key(["mcp", name, "headers_env"], `MCP server '${name}': headers_env is only for url: servers`);
    if (m.command === undefined && (m.args !== undefined || m.env !== undefined || m.cwd !== undefined)) report.key(["mcp", name], `MCP server '${name}': args, env and cwd are only for command: (stdio) servers`);
    out[name] = {
      ...(typeof m.command === "string" ? { command: m.command } : {}),
      ...(Array.isArray(m.args) ? { args: m.args.map(String) } : {}),
      ...(isRec(m.env) ? { env: m.env as Record<string, string> } : {}),
      ...(typeof m.cwd === "string" ? { cwd: m.cwd } : {}),
      ...(typeof m.url === "string" ? { url: m.url } : {}),
      ...(isRec(m.headers_env) ? { headers_env: m.headers_env as Record<string, string> } : {}),
      baseDir,
    };
  }
  return out;
}

/** Check an agent's `tools:` entries: declared tools, `mcp.SERVER.TOOL` or `mcp.SERVER.*` of a declared server. */
export function checkAgentTools(agent: string, agentRaw: Rec, tools: ReadonlySet<string>, mcp: ReadonlySet<string>, report: Reporter): void {
  if (!Array.isArray(agentRaw.tools)) return;
  const seen = new Set<string>();
  agentRaw.tools.forEach((t: unknown, i: number) => {
    if (typeof t !== "string") return;
    const path: DocPath = ["agents", agent, "tools", i];
    if (seen.has(t)) report.value(path, `agent '${agent}' lists tool '${t}' twice`);
    seen.add(t);
    if (t.startsWith("mcp.")) {
      const m = /^mcp\.([^.]+)\.(.+)$/.exec(t);
      if (!m) return report.value(path, `agent '${agent}': '${t}' must be mcp.SERVER.TOOL or mcp.SERVER.*`);
      if (!mcp.has(m[1]!)) report.value(path, `agent '${agent}': MCP server '${m[1]}' is not declared${mcp.size === 0 ? ": declare it under mcp:" : didYouMean(m[1]!, mcp)}`);
      return;
    }
    if (!tools.has(t)) report.value(path, `agent '${agent}': unknown tool '${t}'${tools.size === 0 ? ": declare it under tools:" : didYouMean(t, tools)}`);
  });
}
