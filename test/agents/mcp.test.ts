/**
 * The MCP client layer against a real MCP server (test/fixtures/mcp/server.mjs, written with the
 * official SDK), over stdio and over Streamable HTTP (a child process on a free port).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { McpClients, McpConnectionError, McpToolError, mcpClients, type McpServerSpec } from "../../src/agents/mcp.ts";

const SERVER = fileURLToPath(new URL("../fixtures/mcp/server.mjs", import.meta.url));
/** The "template directory": specs say `./server.mjs`, resolved against it. */
const BASE = dirname(SERVER);
const TOKEN_VAR = "BATON_TEST_MCP_TOKEN";

const work = mkdtempSync(join(tmpdir(), "baton-mcp-"));
const logs: string[] = [];
const clients = new McpClients({ clientName: "baton-test", log: (l) => logs.push(l) });
const children: ChildProcess[] = [];

/** Start the fixture in HTTP mode on a free port; resolves to its /mcp URL. */
async function startHttp(...extra: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [SERVER, "--http", "0", ...extra], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, COUNTER_FILE: join(work, `http-count-${children.length}`) },
  });
  children.push(child);
  child.stderr!.on("data", (d: Buffer) => logs.push(`[http server] ${String(d).trim()}`));
  const port = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += String(d);
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`the HTTP MCP server exited (${code}) before listening`)));
  });
  return { url: `http://127.0.0.1:${port}/mcp`, child };
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

let httpUrl = "";
let authUrl = "";

beforeAll(async () => {
  [{ url: httpUrl }, { url: authUrl }] = await Promise.all([startHttp(), startHttp("--require-auth", "s3cret")]);
});

afterAll(async () => {
  await clients.close();
  await mcpClients.close();
  for (const c of children) if (c.exitCode === null) c.kill();
  rmSync(work, { recursive: true, force: true });
});

const stdioSpec = (counter: string): McpServerSpec => ({ command: "node", args: ["./server.mjs"], env: { COUNTER_FILE: join(work, counter) } });

const transports: Array<{ name: string; spec: () => McpServerSpec }> = [
  { name: "stdio", spec: () => stdioSpec("stdio-count") },
  { name: "Streamable HTTP", spec: () => ({ url: httpUrl }) },
];

const abortReason = (): DOMException => new DOMException("stopped by the test", "AbortError");

describe.each(transports)("MCP over $name", ({ name, spec }) => {
  const server = name === "stdio" ? "files" : "remote";

  it("lists the tools with their input schemas", async () => {
    const tools = await clients.tools(server, spec(), BASE);
    expect(tools.map((t) => t.name).sort()).toEqual(["add", "count", "die", "echo", "fail", "slow"]);
    const add = tools.find((t) => t.name === "add")!;
    expect(add.description).toBe("Add two numbers");
    expect(add.inputSchema).toMatchObject({ type: "object", properties: { a: { type: "number" }, b: { type: "number" } }, required: ["a", "b"] });
    // Cached for the process: the same list again.
    expect(await clients.tools(server, spec(), BASE)).toBe(tools);
  });

  it("calls tools: structuredContent, text, text that is JSON", async () => {
    const signal = new AbortController().signal;
    expect(await clients.call(server, spec(), BASE, "add", { a: 2, b: 3 }, signal)).toEqual({ sum: 5 });
    expect(await clients.call(server, spec(), BASE, "echo", { text: "hi" }, signal)).toBe("hi");
    expect(await clients.call(server, spec(), BASE, "echo", { text: '{"x":[1,2]}' }, signal)).toEqual({ x: [1, 2] });
    // Without a signal (the request timeout applies instead).
    expect(await clients.call(server, spec(), BASE, "echo", { text: "no signal" })).toBe("no signal");
  });

  it("a tool's isError result throws McpToolError with its text", async () => {
    const err = await clients.call(server, spec(), BASE, "fail", { message: "disk full" }, new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(McpToolError);
    expect((err as Error).message).toBe("disk full");
  });

  it("aborting the signal rejects the call at once, and the connection stays usable", async () => {
    const ac = new AbortController();
    const slow = clients.call(server, spec(), BASE, "slow", { ms: 600_000 }, ac.signal);
    // Abort once the call is on the wire (the echo after it answers, so the server has both).
    await clients.call(server, spec(), BASE, "echo", { text: "before abort" }, new AbortController().signal);
    const reason = abortReason();
    ac.abort(reason);
    await expect(slow).rejects.toBe(reason);
    expect(await clients.call(server, spec(), BASE, "echo", { text: "after" }, new AbortController().signal)).toBe("after");
    // An already-aborted signal rejects before anything is sent.
    const gone = new AbortController();
    gone.abort(reason);
    await expect(clients.call(server, spec(), BASE, "echo", { text: "x" }, gone.signal)).rejects.toBe(reason);
  });
});

describe("MCP over stdio", () => {
  it("a server that dies mid-call → McpConnectionError; the next call restarts it", async () => {
    const own = new McpClients();
    const spec = stdioSpec("die-count");
    const signal = new AbortController().signal;
    try {
      expect(await own.call("files", spec, BASE, "count", {}, signal)).toBe(1);
      const err = await own.call("files", spec, BASE, "die", {}, signal).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(McpConnectionError);
      expect((err as Error).message).toMatch(/^MCP server 'files' \(node \.\/server\.mjs\) closed during the call to 'die' \(its stderr: die: exiting mid-call\) — check that `node \.\/server\.mjs` starts an MCP server on stdio; the next call restarts it$/);
      // A new process; the counter file shows each call ran exactly once.
      expect(await own.call("files", spec, BASE, "count", {}, signal)).toBe(2);
      expect(readFileSync(join(work, "die-count"), "utf8")).toBe("2");
    } finally {
      await own.close();
    }
  });

  it("concurrent first calls share one server process", async () => {
    const seen: string[] = [];
    const own = new McpClients({ log: (l) => seen.push(l) });
    const spec = stdioSpec("concurrent-count");
    try {
      const results = await Promise.all([1, 2, 3, 4, 5].map(() => own.call("files", spec, BASE, "count", {}, new AbortController().signal)));
      expect([...(results as number[])].sort()).toEqual([1, 2, 3, 4, 5]);
      expect(seen.filter((l) => l === "[mcp files] baton-test-server: stdio")).toHaveLength(1);
    } finally {
      await own.close();
    }
  });

  it("relative args are resolved against the template's directory, not cwd", async () => {
    const spec: McpServerSpec = { command: "node", args: ["./server.mjs"], cwd: work };
    expect(await clients.call("rel", spec, BASE, "echo", { text: "ok" }, new AbortController().signal)).toBe("ok");
  });

  it("a command that does not exist → McpConnectionError that says so", async () => {
    const spec: McpServerSpec = { command: "baton-no-such-mcp-server", args: ["--stdio"] };
    const err = await clients.tools("ghost", spec, BASE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(McpConnectionError);
    expect((err as Error).message).toBe(
      "MCP server 'ghost' (baton-no-such-mcp-server --stdio) could not be started: the command is not found (spawn ENOENT) — check that `baton-no-such-mcp-server --stdio` starts an MCP server on stdio",
    );
    // Not cached: the same error again, not a stale promise.
    await expect(clients.call("ghost", spec, BASE, "x", {}, new AbortController().signal)).rejects.toBeInstanceOf(McpConnectionError);
  });

  it("a program that is not an MCP server → McpConnectionError with its stderr", async () => {
    const spec: McpServerSpec = { command: "node", args: ["-e", "console.error('no MCP here'); process.exit(3)"] };
    const err = await clients.tools("notmcp", spec, BASE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(McpConnectionError);
    expect((err as Error).message).toMatch(/^MCP server 'notmcp' \(node -e .*\) exited before completing the MCP handshake \(its stderr: no MCP here\) — check that `node -e .*` starts an MCP server on stdio$/);
  });

  it("a spec with neither command nor url is refused", async () => {
    await expect(clients.tools("empty", {}, BASE)).rejects.toThrow(/MCP server 'empty' needs either command: \(stdio\) or url: \(Streamable HTTP\)/);
  });

  it("server stderr goes to the log, not the terminal", () => {
    expect(logs).toContain("[mcp files] baton-test-server: stdio");
  });
});

describe("MCP over Streamable HTTP", () => {
  it("headers_env supplies the Authorization header", async () => {
    process.env[TOKEN_VAR] = "Bearer s3cret";
    try {
      const spec: McpServerSpec = { url: authUrl, headers_env: { Authorization: TOKEN_VAR } };
      expect(await clients.call("secure", spec, BASE, "add", { a: 1, b: 1 }, new AbortController().signal)).toEqual({ sum: 2 });
    } finally {
      delete process.env[TOKEN_VAR];
    }
  });

  it("a missing headers_env variable is a clear McpConnectionError", async () => {
    delete process.env[TOKEN_VAR];
    const spec: McpServerSpec = { url: authUrl, headers_env: { Authorization: TOKEN_VAR } };
    const err = await clients.tools("secure2", spec, BASE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(McpConnectionError);
    expect((err as Error).message).toBe(
      `MCP server 'secure2' (${authUrl}): header 'Authorization' comes from the environment variable ${TOKEN_VAR}, which is not set — set ${TOKEN_VAR}`,
    );
  });

  it("a wrong token → McpConnectionError naming the 401", async () => {
    process.env[TOKEN_VAR] = "Bearer wrong";
    try {
      const spec: McpServerSpec = { url: authUrl, headers_env: { Authorization: TOKEN_VAR } };
      const err = await clients.tools("secure3", spec, BASE).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(McpConnectionError);
      expect((err as Error).message).toMatch(/^MCP server 'secure3' \(http:\/\/127\.0\.0\.1:\d+\/mcp\) refused the connection: HTTP 401 .* — check the credentials its headers_env gives$/);
    } finally {
      delete process.env[TOKEN_VAR];
    }
  });

  it("a server not listening → McpConnectionError", async () => {
    const url = `http://127.0.0.1:${await freePort()}/mcp`;
    const err = await clients.call("down", { url }, BASE, "echo", { text: "x" }, new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(McpConnectionError);
    expect((err as Error).message).toMatch(new RegExp(`^MCP server 'down' \\(${url.replace(/[.]/g, "\\.")}\\) cannot be reached: .*ECONNREFUSED.* — is the server at ${url.replace(/[.]/g, "\\.")} running\\?$`));
  });

  it("a server that dies mid-call → McpConnectionError at once; then it cannot be reached", async () => {
    const { url, child } = await startHttp();
    const own = new McpClients();
    const signal = new AbortController().signal;
    try {
      expect(await own.call("remote", { url }, BASE, "echo", { text: "up" }, signal)).toBe("up");
      const err = await own.call("remote", { url }, BASE, "die", {}, signal).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(McpConnectionError);
      expect((err as Error).message).toBe(`MCP server 'remote' (${url}) closed during the call to 'die' — is the server at ${url} running?`);
      await new Promise((r) => (child.exitCode === null ? child.once("exit", r) : r(undefined)));
      const again = await own.call("remote", { url }, BASE, "echo", { text: "x" }, signal).catch((e: unknown) => e);
      expect(again).toBeInstanceOf(McpConnectionError);
      expect((again as Error).message).toMatch(/cannot be reached: .*ECONNREFUSED/);
    } finally {
      await own.close();
    }
  });
});

describe("the process-wide instance", () => {
  it("is an McpClients that connects on demand", async () => {
    expect(mcpClients).toBeInstanceOf(McpClients);
    expect(await mcpClients.call("files", stdioSpec("global-count"), BASE, "count", {}, new AbortController().signal)).toBe(1);
  });
});
