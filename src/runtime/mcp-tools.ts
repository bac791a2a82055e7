/**
 * The MCP tools of a plan (SPEC §8 `mcp:`): every server an agent names is asked for its tool
 * list when a run starts (or resumes, or a worker loads it), once per plan per process; a tool an
 * agent lists that its server does not offer stops the run before anything runs, naming the
 * server and the tools it offers. Calls go through the process-wide MCP clients (agents/mcp.ts).
 */
import { UserError } from "../base/errors.js";
import type { Plan } from "../plan/types.js";
import type { McpTools } from "../stages/types.js";

type ToolInfo = { readonly name: string; readonly description: string; readonly inputSchema: Record<string, unknown> };

const prepared = new WeakMap<Plan, Promise<McpTools | undefined>>();
let used = false;

/** The servers agents of `plan` name (`mcp.SERVER.…`), and the tools they name on each (`*` = all). */
function wanted(plan: Plan): Map<string, { agent: string; tool: string }[]> {
  const out = new Map<string, { agent: string; tool: string }[]>();
  for (const [agent, spec] of Object.entries(plan.agents)) {
    const tools = Array.isArray(spec.tools) ? (spec.tools as unknown[]) : [];
    for (const t of tools) {
      const m = typeof t === "string" ? /^mcp\.([^.]+)\.(.+)$/.exec(t) : null;
      if (!m) continue;
      const list = out.get(m[1]!) ?? [];
      list.push({ agent, tool: m[2]! });
      out.set(m[1]!, list);
    }
  }
  return out;
}

/** Fetch the plan's MCP tool lists (once per plan); undefined when its agents use no MCP server. */
export function mcpToolsFor(plan: Plan): Promise<McpTools | undefined> {
  let p = prepared.get(plan);
  if (!p) {
    p = load(plan);
    p.catch(() => prepared.delete(plan));
    prepared.set(plan, p);
  }
  return p;
}

/** The plan's MCP tools if they were fetched already (hosts build services synchronously). */
export function mcpToolsReady(plan: Plan): McpTools | undefined {
  return ready.get(plan);
}
const ready = new WeakMap<Plan, McpTools>();

async function load(plan: Plan): Promise<McpTools | undefined> {
  const servers = wanted(plan);
  if (servers.size === 0) return undefined;
  used = true;
  const { mcpClients } = await import("../agents/mcp.js");
  const lists = new Map<string, readonly ToolInfo[]>();
  await Promise.all([...servers.keys()].map(async (server) => {
    const spec = plan.mcp[server];
    if (!spec) throw new UserError(`MCP server '${server}' is not declared under mcp:`);
    try {
      lists.set(server, await mcpClients.tools(server, spec, spec.baseDir));
    } catch (err) {
      throw new UserError(`pipeline '${plan.name}': ${(err as Error).message}`);
    }
  }));
  for (const [server, refs] of servers) {
    const offered = lists.get(server)!;
    for (const r of refs) {
      if (r.tool === "*" || offered.some((t) => t.name === r.tool)) continue;
      throw new UserError(`agent '${r.agent}' lists mcp.${server}.${r.tool}, but MCP server '${server}' offers no tool '${r.tool}' (it offers: ${offered.map((t) => t.name).join(", ") || "none"}); fix the name in agents.${r.agent}.tools`);
    }
  }
  const tools: McpTools = {
    tools: (server) => lists.get(server) ?? [],
    call: (server, tool, args, signal) => {
      const spec = plan.mcp[server]!;
      return mcpClients.call(server, spec, spec.baseDir, tool, args, signal);
    },
  };
  ready.set(plan, tools);
  return tools;
}

/** End every MCP server connection this process opened (stdio servers are child processes). */
export async function closeMcp(): Promise<void> {
  if (!used) return;
  const { mcpClients } = await import("../agents/mcp.js");
  await mcpClients.close();
}
