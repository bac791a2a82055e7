/**
 * The MCP client layer: agents call the tools of Model Context Protocol servers declared in a
 * template's `mcp:` section, over stdio (a child process) or Streamable HTTP, with the official
 * SDK (`@modelcontextprotocol/sdk`).
 *
 * One connected client per (server name, spec, template directory), created on first use and
 * reused; a connection that closes or fails is dropped, so the next call reconnects (restarting
 * a stdio server). Calls in flight when a server dies reject at once with McpConnectionError.
 *
 * Lifetime: stdio servers are child processes with piped stdio, which keep Node's event loop
 * alive for as long as they run. Nothing here registers process-wide hooks; instead the runtime
 * calls `mcpClients.close()` when a run (or `baton run`) ends, which ends every child.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Readable } from "node:stream";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { getDefaultEnvironment, StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";
import type { McpServerPlan } from "../plan/types.js";

/**
 * An `mcp:` server as declared in a template (stdio: command/args/env/cwd; Streamable HTTP:
 * url/headers_env): the plan's, without the template directory (passed on its own). A `command`
 * or an arg starting with `./` or `../` is resolved against the template's directory; `env` is
 * added to the SDK's small default environment (HOME, PATH, …), values verbatim.
 */
export type McpServerSpec = Omit<McpServerPlan, "baseDir">;

/** One tool of a server, as listed by it. */
export interface McpToolInfo {
  readonly name: string;
  readonly description: string;
  readonly inputSchema: Record<string, unknown>;
}

/** The tool reported an error (a result with isError, or the server rejected the call). */
export class McpToolError extends Error {
  override readonly name = "McpToolError";
}

/** The server cannot be started or reached, or it closed or stopped answering. */
export class McpConnectionError extends Error {
  override readonly name = "McpConnectionError";
}

/** setTimeout's largest delay: the SDK always arms a request timer, so a call with a signal gets this one. */
const NO_TIMEOUT = 2_147_483_647;
const STDERR_KEEP = 5;

interface Conn {
  readonly client: Client;
  readonly transport: Transport;
  /** The last lines the server wrote to stderr (stdio), for error messages. */
  readonly stderr: string[];
  closed: boolean;
}

interface Entry {
  readonly connecting: Promise<Conn>;
  conn?: Conn;
}

/** How a server is named in messages, and how to fix it. */
interface Where {
  readonly name: string;
  /** `MCP server 'files' (node ./mcp/files.mjs)` */
  readonly label: string;
  readonly hint: string;
  readonly http: boolean;
}

function whereOf(server: string, spec: McpServerSpec): Where {
  if (spec.url !== undefined) {
    return { name: server, label: `MCP server '${server}' (${spec.url})`, hint: `is the server at ${spec.url} running?`, http: true };
  }
  const cmd = [spec.command ?? "", ...(spec.args ?? [])].join(" ");
  return { name: server, label: `MCP server '${server}' (${cmd})`, hint: `check that \`${cmd}\` starts an MCP server on stdio`, http: false };
}

const oneLine = (s: string): string => s.replace(/\s+/g, " ").trim();

function errText(err: unknown): string {
  return oneLine(err instanceof Error ? err.message : String(err)).replace(/^MCP error -?\d+: /, "");
}

/** The errno-like code of a network or spawn failure (fetch hides it in `cause`). */
function errCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function stderrTail(conn: Conn | undefined): string {
  const last = conn?.stderr.at(-1);
  return last ? ` (its stderr: ${oneLine(last).slice(0, 200)})` : "";
}

const isRelative = (s: string): boolean => s.startsWith("./") || s.startsWith("../");

/** A tool result → a JSON value: structuredContent, else the content (text JSON-parsed when it is JSON). */
function resultValue(result: Record<string, unknown>): unknown {
  if (result.structuredContent !== undefined && result.structuredContent !== null) return result.structuredContent;
  if (!Array.isArray(result.content)) return "toolResult" in result ? result.toolResult : null;
  const parts = (result.content as Array<Record<string, unknown>>).map((p) => {
    if (p.type !== "text" || typeof p.text !== "string") return p;
    try {
      return JSON.parse(p.text) as unknown;
    } catch {
      return p.text;
    }
  });
  return parts.length === 0 ? null : parts.length === 1 ? parts[0] : parts;
}

function errorText(result: Record<string, unknown>): string {
  const texts = Array.isArray(result.content)
    ? (result.content as Array<Record<string, unknown>>).filter((p) => p.type === "text" && typeof p.text === "string").map((p) => p.text as string)
    : [];
  return texts.join("\n");
}

/** The MCP clients of a process: connections are opened lazily and kept until close(). */
export class McpClients {
  private readonly entries = new Map<string, Entry>();
  private readonly toolLists = new Map<string, Promise<McpToolInfo[]>>();
  private readonly clientName: string;
  /** Where servers' stderr lines and transport errors go (default: dropped). */
  log: (line: string) => void;
  /** Request timeout for calls without a signal, and for the handshake. */
  readonly timeoutMs: number;

  constructor(opts?: { clientName?: string; log?: (line: string) => void; timeoutMs?: number }) {
    this.clientName = opts?.clientName ?? "baton";
    this.log = opts?.log ?? (() => {});
    this.timeoutMs = opts?.timeoutMs ?? 60_000;
  }

  /** The server's tools (listTools, all pages), cached per server for the process. */
  tools(server: string, spec: McpServerSpec, baseDir: string): Promise<McpToolInfo[]> {
    const key = keyOf(server, spec, baseDir);
    let list = this.toolLists.get(key);
    if (!list) {
      list = this.listTools(server, spec, baseDir, key);
      this.toolLists.set(key, list);
      list.catch(() => {
        if (this.toolLists.get(key) === list) this.toolLists.delete(key);
      });
    }
    return list;
  }

  private async listTools(server: string, spec: McpServerSpec, baseDir: string, key: string): Promise<McpToolInfo[]> {
    const where = whereOf(server, spec);
    const conn = await this.connection(key, server, spec, baseDir, undefined);
    const tools: McpToolInfo[] = [];
    let cursor: string | undefined;
    try {
      do {
        const page = await conn.client.listTools(cursor === undefined ? {} : { cursor }, { timeout: this.timeoutMs });
        for (const t of page.tools) tools.push({ name: t.name, description: t.description ?? "", inputSchema: t.inputSchema as Record<string, unknown> });
        cursor = page.nextCursor;
      } while (cursor);
    } catch (err) {
      throw this.callError(err, where, conn, "tools/list", "listing its tools");
    }
    return tools;
  }

  /**
   * Call a tool; resolves to a JSON value: structuredContent if present, else the text content
   * (JSON-parsed when it is JSON, else the string; several parts → array). A result with isError
   * → throws McpToolError (message = its text). Aborting `signal` rejects at once with its reason;
   * without a signal the call has a timeout (`timeoutMs`).
   */
  async call(server: string, spec: McpServerSpec, baseDir: string, tool: string, args: Record<string, unknown>, signal?: AbortSignal): Promise<unknown> {
    signal?.throwIfAborted();
    const where = whereOf(server, spec);
    const conn = await this.connection(keyOf(server, spec, baseDir), server, spec, baseDir, signal);
    // A per-call signal, so that listeners the SDK adds are not left on a long-lived caller's signal.
    const local = new AbortController();
    const onAbort = (): void => local.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    let result: Record<string, unknown>;
    try {
      result = (await conn.client.callTool({ name: tool, arguments: args }, undefined, {
        ...(signal ? { signal: local.signal, timeout: NO_TIMEOUT } : { timeout: this.timeoutMs }),
      })) as Record<string, unknown>;
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw this.callError(err, where, conn, tool, `the call to '${tool}'`);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    if (result.isError === true) throw new McpToolError(errorText(result) || `tool '${tool}' of ${where.label} reported an error`);
    return resultValue(result);
  }

  /** Close every client (stdio servers are ended); later calls connect again. */
  async close(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    this.toolLists.clear();
    await Promise.all(entries.map((e) => e.connecting.then((c) => closeConn(c), () => {})));
  }

  /** A connected client for the key: cached, or being connected (shared by concurrent callers). */
  private async connection(key: string, server: string, spec: McpServerSpec, baseDir: string, signal: AbortSignal | undefined): Promise<Conn> {
    let entry = this.entries.get(key);
    if (!entry || entry.conn?.closed) {
      const connecting = this.connect(server, spec, baseDir, () => {
        if (this.entries.get(key) === created) this.entries.delete(key);
      });
      const created: Entry = { connecting };
      entry = created;
      this.entries.set(key, created);
      connecting.then(
        (c) => {
          created.conn = c;
          if (c.closed && this.entries.get(key) === created) this.entries.delete(key);
        },
        () => {
          if (this.entries.get(key) === created) this.entries.delete(key);
        },
      );
    }
    if (!signal) return entry.connecting;
    return new Promise<Conn>((resolvePromise, reject) => {
      const onAbort = (): void => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      entry.connecting.then(
        (c) => {
          signal.removeEventListener("abort", onAbort);
          resolvePromise(c);
        },
        (err: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(err);
        },
      );
    });
  }

  private async connect(server: string, spec: McpServerSpec, baseDir: string, drop: () => void): Promise<Conn> {
    const where = whereOf(server, spec);
    if ((spec.url === undefined) === (spec.command === undefined)) {
      throw new McpConnectionError(`MCP server '${server}' needs either command: (stdio) or url: (Streamable HTTP)${spec.url !== undefined ? ", not both" : ""}`);
    }
    const client = new Client({ name: this.clientName, version: "1.0.0" });
    const stderr: string[] = [];
    // `conn` is set before connect() so that the fetch wrapper and close handlers can find it.
    let conn: Conn | undefined;
    const log = (line: string): void => this.log(`[mcp ${server}] ${line}`);
    let transport: Transport;
    if (spec.url !== undefined) {
      let url: URL;
      try {
        url = new URL(spec.url);
      } catch {
        throw new McpConnectionError(`${where.label}: url is not a valid URL — give e.g. http://127.0.0.1:3000/mcp`);
      }
      const headers: Record<string, string> = {};
      for (const [header, variable] of Object.entries(spec.headers_env ?? {})) {
        const value = process.env[variable];
        if (value === undefined || value === "") {
          throw new McpConnectionError(`${where.label}: header '${header}' comes from the environment variable ${variable}, which is not set — set ${variable}`);
        }
        headers[header] = value;
      }
      transport = new StreamableHTTPClientTransport(url, {
        requestInit: { headers },
        // A POST whose SSE response breaks (the server died) is not retried by the SDK, which
        // would leave the call waiting: treat it as the connection failing.
        fetch: async (input, init) => {
          const res = await fetch(input, init);
          if (init?.method !== "POST" || !res.body || !(res.headers.get("content-type") ?? "").includes("text/event-stream")) return res;
          return new Response(watchBody(res.body, (err) => {
            if (conn && !conn.closed) {
              log(`response stream broke (${errText(err)}); closing the connection`);
              void closeConn(conn);
            }
          }), { status: res.status, statusText: res.statusText, headers: res.headers });
        },
      });
    } else {
      const cwd = spec.cwd !== undefined ? resolve(baseDir, spec.cwd) : baseDir;
      if (!existsSync(cwd)) throw new McpConnectionError(`${where.label} could not be started: its working directory ${cwd} does not exist — check cwd:`);
      const command = spec.command!;
      const stdio = new StdioClientTransport({
        command: isRelative(command) ? resolve(baseDir, command) : command,
        // Arguments that look like relative paths (./x, ../x) are relative to the template's directory.
        args: (spec.args ?? []).map((a) => (isRelative(a) ? resolve(baseDir, a) : a)),
        env: { ...getDefaultEnvironment(), ...spec.env },
        cwd,
        stderr: "pipe",
      });
      pipeLines(stdio.stderr as Readable | null, (line) => {
        stderr.push(line);
        if (stderr.length > STDERR_KEEP) stderr.shift();
        log(line);
      });
      transport = stdio;
    }
    conn = { client, transport, stderr, closed: false };
    const c = conn;
    client.onclose = () => {
      c.closed = true;
      drop();
    };
    client.onerror = (err) => {
      const text = errText(err);
      log(`transport error: ${text}`);
      // The SDK gave up re-opening the HTTP event stream: the server is gone; reconnect next time.
      if (/Maximum reconnection attempts/.test(text) && !c.closed) void closeConn(c);
    };
    try {
      await client.connect(transport, { timeout: this.timeoutMs });
    } catch (err) {
      void closeConn(c);
      throw connectError(err, where, c, this.timeoutMs);
    }
    return c;
  }

  /** Classify a failed request; connection failures also drop the connection. */
  private callError(err: unknown, where: Where, conn: Conn, tool: string, what: string): Error {
    if (err instanceof McpError) {
      if (err.code === ErrorCode.ConnectionClosed) {
        void closeConn(conn);
        return new McpConnectionError(`${where.label} closed during ${what}${stderrTail(conn)} — ${where.hint}${where.http ? "" : "; the next call restarts it"}`);
      }
      if (err.code === ErrorCode.RequestTimeout) {
        return new McpConnectionError(`${where.label} did not answer ${what} within ${Math.round(this.timeoutMs / 1000)}s — ${where.hint}`);
      }
      return new McpToolError(`${where.label} rejected ${what}: ${errText(err)}`);
    }
    if (err instanceof StreamableHTTPError || errCode(err) !== undefined || (err instanceof Error && /fetch failed|not connected|terminated/i.test(err.message))) {
      void closeConn(conn);
      return new McpConnectionError(`${where.label} failed during ${what}: ${httpDetail(err)} — ${where.hint}`);
    }
    // Anything else came from checking the result (e.g. structuredContent against the tool's outputSchema).
    return new McpToolError(`${where.label}: ${what} returned an unusable result: ${errText(err)}`);
  }
}

function httpDetail(err: unknown): string {
  if (err instanceof StreamableHTTPError) return `HTTP ${err.code ?? "error"} (${errText(err).replace(/^Streamable HTTP error: /, "")})`;
  const code = errCode(err);
  return code ? `${errText(err)} (${code})` : errText(err);
}

function connectError(err: unknown, where: Where, conn: Conn, timeoutMs: number): McpConnectionError {
  if (err instanceof McpConnectionError) return err;
  const code = errCode(err);
  if (!where.http && (code === "ENOENT" || code === "EACCES")) {
    const what = code === "ENOENT" ? "not found" : "not executable";
    return new McpConnectionError(`${where.label} could not be started: the command is ${what} (spawn ${code}) — ${where.hint}`);
  }
  if (err instanceof McpError && err.code === ErrorCode.ConnectionClosed) {
    return new McpConnectionError(`${where.label} ${where.http ? "closed the connection" : "exited"} before completing the MCP handshake${stderrTail(conn)} — ${where.hint}`);
  }
  if (err instanceof McpError && err.code === ErrorCode.RequestTimeout) {
    return new McpConnectionError(`${where.label} did not complete the MCP handshake within ${Math.round(timeoutMs / 1000)}s — ${where.hint}`);
  }
  if (err instanceof StreamableHTTPError && (err.code === 401 || err.code === 403)) {
    return new McpConnectionError(`${where.label} refused the connection: ${httpDetail(err)} — check the credentials its headers_env gives`);
  }
  if (err instanceof StreamableHTTPError && err.code === 404) {
    return new McpConnectionError(`${where.label} answered ${httpDetail(err)} — check the URL's path (the Streamable HTTP endpoint, often /mcp)`);
  }
  if (where.http) return new McpConnectionError(`${where.label} cannot be reached: ${httpDetail(err)} — ${where.hint}`);
  return new McpConnectionError(`${where.label} could not be started: ${errText(err)}${stderrTail(conn)} — ${where.hint}`);
}

async function closeConn(conn: Conn): Promise<void> {
  if (conn.closed) return;
  conn.closed = true;
  const t = conn.transport;
  if (t instanceof StreamableHTTPClientTransport && t.sessionId !== undefined) {
    // End the session politely, but never wait long for a server that is gone.
    await Promise.race([t.terminateSession().catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())]);
  }
  await conn.client.close().catch(() => {});
}

function keyOf(server: string, spec: McpServerSpec, baseDir: string): string {
  return `${server}\u0000${JSON.stringify(spec)}\u0000${baseDir}`;
}

/** The body, passed through; `onBroken` hears of a failure while reading it. */
function watchBody(body: ReadableStream<Uint8Array>, onBroken: (err: unknown) => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      try {
        const { done, value } = await reader.read();
        if (done) ctrl.close();
        else ctrl.enqueue(value);
      } catch (err) {
        onBroken(err);
        ctrl.error(err);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

function pipeLines(stream: Readable | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let buf = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, "");
      buf = buf.slice(i + 1);
      if (line) onLine(line);
    }
  });
  stream.on("end", () => {
    if (buf) onLine(buf);
    buf = "";
  });
}

/** The process-wide instance (stdio servers are started once per process). */
export const mcpClients = new McpClients();
