/**
 * Agents calling MCP tools (SPEC §8 `mcp:`): a real MCP server (test/fixtures/mcp/server.mjs,
 * written with the official SDK) over stdio and over Streamable HTTP, the agent's model played
 * by the fake OpenAI server. Tool lists are fetched at run start; a listed tool the server lacks
 * refuses the run; a server that dies mid-call is an error result for the model, not a hang.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { execute } from "../../src/index.js";
import { compileSource } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI, type FakeRequest } from "../../src/testing/index.js";
import type { Pipeline } from "../../src/api/pipeline.js";
import { MemoryStore } from "../../src/store/memory.js";
import { closeMcp } from "../../src/runtime/mcp-tools.js";

const SERVER = resolve(import.meta.dirname, "../fixtures/mcp/server.mjs");
let fake: FakeOpenAI;
let http: ChildProcess;
let httpUrl: string;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  process.env.OPENAI_API_KEY = "sk-test";
  process.env.WEB_MCP_AUTH = "Bearer s3cret";
  http = spawn(process.execPath, [SERVER, "--http", "0", "--require-auth", "s3cret"], { stdio: ["ignore", "pipe", "inherit"] });
  httpUrl = await new Promise<string>((res, rej) => {
    let out = "";
    http.stdout!.on("data", (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) res(`http://127.0.0.1:${m[1]}/mcp`);
    });
    http.on("exit", (c) => rej(new Error(`MCP http server exited ${c}`)));
  });
});
afterAll(async () => {
  await closeMcp();
  http.kill();
  await fake.close();
});
beforeEach(() => fake.reset());

const lastRole = (r: FakeRequest): string | undefined => r.messages.at(-1)?.role;

function pipeline(tools: string): Pipeline<Record<string, unknown>, unknown> {
  const text = `
baton: 1
name: mcp-agent
mcp:
  files: { command: node, args: ["${SERVER}"] }
  web: { url: "${httpUrl}", headers_env: { Authorization: WEB_MCP_AUTH } }
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 100, tools: ${tools} }
stages:
  ask: { agent: bot, prompt: "Use the tools" }
output: ask
`;
  const plan = compileSource(text, { format: "yaml", baseDir: process.cwd() });
  return { name: plan.name, plan, parseInputs: (r) => r as Record<string, unknown> };
}

describe("MCP tools in agents", () => {
  it("calls tools on a stdio server and a Streamable HTTP server in one turn; results and errors go back to the model", async () => {
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [
      { id: "a", name: "add", arguments: { a: 2, b: 3 } },
      { id: "e", name: "echo", arguments: { text: "hi" } },
      { id: "f", name: "fail", arguments: { message: "no such file" } },
    ] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "all done" } });
    const r = await execute(pipeline("[mcp.files.add, mcp.web.echo, mcp.web.fail]"), {}, { store: new MemoryStore() });
    expect(r).toMatchObject({ status: "succeeded", output: "all done" });
    expect(fake.requests[0]!.tools.map((t) => t.name)).toEqual(["add", "echo", "fail"]);
    expect(fake.requests[0]!.tools.find((t) => t.name === "add")!.parameters).toMatchObject({ type: "object", properties: { a: { type: "number" } } });
    const tool = new Map(fake.requests[1]!.messages.filter((m) => m.role === "tool").map((m) => [m.toolCallId, m.content]));
    expect(JSON.parse(tool.get("a")!)).toEqual({ sum: 5 });
    expect(tool.get("e")).toBe('"hi"');
    expect(tool.get("f")).toMatch(/no such file/);
  });

  it("mcp.SERVER.* offers every tool; names two servers share are prefixed SERVER__", async () => {
    fake.addRule({ reply: { content: "fine" } });
    const r = await execute(pipeline("[mcp.files.*, mcp.web.echo]"), {}, { store: new MemoryStore() });
    expect(r.status).toBe("succeeded");
    const names = fake.requests[0]!.tools.map((t) => t.name).sort();
    expect(names).toEqual(["add", "count", "die", "fail", "files__echo", "slow", "web__echo"].sort());
  });

  it("a tool the server does not offer refuses the run at start, naming the server and what it offers", async () => {
    await expect(execute(pipeline("[mcp.files.read_file]"), {}, { store: new MemoryStore() })).rejects.toThrow(
      /agent 'bot' lists mcp\.files\.read_file, but MCP server 'files' offers no tool 'read_file' \(it offers: add, echo, fail, slow, die, count\)/,
    );
    expect(fake.requests).toHaveLength(0);
  });

  it("a server that dies mid-call is an error result for the model (no hang), and the next run reconnects", async () => {
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "d", name: "die", arguments: {} }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "the server died" } });
    const r = await execute(pipeline("[mcp.files.die, mcp.files.add]"), {}, { store: new MemoryStore() });
    expect(r).toMatchObject({ status: "succeeded", output: "the server died" });
    const tool = fake.requests[1]!.messages.find((m) => m.role === "tool")!;
    expect(tool.content).toMatch(/MCP server 'files' .*closed during the call to 'die'/);
    fake.reset();
    fake.addRule({ match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "a", name: "add", arguments: { a: 1, b: 1 } }] } });
    fake.addRule({ match: (r) => lastRole(r) === "tool", reply: { content: "two" } });
    expect(await execute(pipeline("[mcp.files.die, mcp.files.add]"), {}, { store: new MemoryStore() })).toMatchObject({ status: "succeeded", output: "two" });
  });

  it("validate: an undeclared MCP server and a malformed reference are template errors", () => {
    expect(() => compileSource(`
baton: 1
name: bad
agents:
  bot: { model: "openai:gpt-4o-mini", tools: [mcp.nowhere.x, mcp.bad, nosuch] }
stages:
  a: { agent: bot, prompt: hi }
`, { format: "yaml", baseDir: process.cwd() })).toThrow(/MCP server 'nowhere' is not declared: declare it under mcp:[\s\S]*'mcp\.bad' must be mcp\.SERVER\.TOOL or mcp\.SERVER\.\*[\s\S]*unknown tool 'nosuch': declare it under tools:/);
  });
});
