/**
 * `baton/testing`: a fake LLM provider for tests. {@link startFakeOpenAI} starts a real HTTP
 * server on 127.0.0.1 that speaks the OpenAI chat-completions protocol (plain and streamed),
 * so the real AI SDK clients (`@ai-sdk/openai`'s `.chat()`, `@ai-sdk/openai-compatible`) run
 * against it unchanged. Replies are scripted by rules; errors, malformed bodies, latency,
 * hangs, reset connections and provider-style rate limits can all be provoked on purpose.
 *
 * Tool-calling agents can be tested offline too: a reply's `toolCalls` become the assistant
 * message's OpenAI `tool_calls` (streamed the way OpenAI streams them), every request records
 * the `tools` it offered and its tool traffic (`toolCalls` on assistant messages, `toolCallId`
 * on `role: "tool"` messages), and a rule can look at the last message to script a loop:
 *
 * ```ts
 * const fake = await startFakeOpenAI({
 *   rules: [
 *     // Second turn: the client sent the tool result back → answer in text.
 *     { match: (r) => lastMessage(r)?.role === "tool", reply: { content: "It is 18°C in Oslo." } },
 *     // First turn: call the tool.
 *     { match: (r) => r.tools.some((t) => t.name === "weather"), reply: { toolCalls: [{ name: "weather", arguments: { city: "Oslo" } }] } },
 *   ],
 * });
 * ```
 *
 * @packageDocumentation
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import {
  MALFORMED_BODY,
  RateWindow,
  completionBody,
  errorBody,
  estimateTokens,
  parseChatBody,
  streamEvents,
  type CompletionExtras,
  type FinishReason,
  type OfferedTool,
  type ParsedMessage,
  type ReplyToolCall,
  type Usage,
  type WireToolCall,
} from "./protocol.js";

export type { FinishReason };

/** A tool call a {@link FakeReply} makes the assistant send. */
export interface FakeToolCall {
  /** Default `call_<n>`, `n` counting up over the server's lifetime (unique per server, `reset()` included). */
  id?: string;
  /** The function name (one of the request's `tools`, or not: the client decides what to do with an unknown one). */
  name: string;
  /** An object is `JSON.stringify`ed; a string is sent verbatim (so `'{"query": '` sends malformed JSON). Default `"{}"`. */
  arguments?: object | string;
}

/** A request message: content flattened to text (text parts concatenated), tool traffic kept. */
export type FakeMessage = ParsedMessage;
/** A tool call on an assistant message of a request; `arguments` is the JSON string as sent. */
export type FakeMessageToolCall = WireToolCall;
/** A tool a request offered. */
export type FakeTool = OfferedTool;

/** One scripted answer. With nothing set it is a 200 completion whose text is `"ok"`. */
export interface FakeReply {
  /** Assistant message text; an object is `JSON.stringify`ed. Default `"ok"`, or `null` when the
   * reply has `toolCalls`. With a non-2xx `status`, a string is the error message and an object
   * is sent as the whole error body. */
  content?: string | object;
  /** Tool calls on the assistant message (OpenAI `tool_calls`); the finish reason becomes `"tool_calls"`. */
  toolCalls?: FakeToolCall[];
  /** Override the finish reason, e.g. `"length"` for a reply cut at `max_tokens`.
   * @default `"tool_calls"` with tool calls, else `"stop"` */
  finishReason?: FinishReason;
  /** Non-2xx → an OpenAI-style error body `{ error: { message, type, code } }`. */
  status?: number;
  /** Seconds → `Retry-After` header (use with 429/503). */
  retryAfter?: number;
  /** 200 with a body that is not JSON (a truncated completion). */
  malformed?: boolean;
  /** Never answer: the request stays open until the client aborts or the server closes. */
  hang?: boolean;
  /** Delay before answering (overrides the server's `latencyMs`); stops waiting when the client goes away. */
  latencyMs?: number;
  /** Reported usage. Default: ceil(chars / 4) of the messages / of the content and tool-call
   * arguments. `cached_tokens` is sent as `usage.prompt_tokens_details.cached_tokens`. */
  usage?: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number };
  /** Streaming only: delay between SSE chunks, so a test can watch deltas arrive over time. Default 0. */
  chunkDelayMs?: number;
  /** Destroy the socket without answering (a network error for the client). */
  resetConnection?: boolean;
}

/** A chat-completions request as the server received it. */
export interface FakeRequest {
  /** 1-based sequence number (since start or the last `reset()`). */
  n: number;
  /** Arrival time, ms since epoch. */
  at: number;
  model: string;
  /** Messages with their content flattened to text (text parts concatenated); an assistant
   * message with tool calls has `toolCalls`, a `role: "tool"` message has `toolCallId`. */
  messages: FakeMessage[];
  /** All message contents joined with `"\n"` (tool results included). */
  prompt: string;
  /** Tools the request offered (from the body's `tools`), in order; `[]` when none. */
  tools: FakeTool[];
  /** The body's raw `tool_choice` (`undefined` when absent). */
  toolChoice: unknown;
  /** The body's raw `response_format` (`undefined` when absent), e.g. `{ type: "json_schema", json_schema: {...} }`. */
  responseFormat: unknown;
  stream: boolean;
  /** The parsed JSON body (the raw text when it was not JSON). */
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
}

/** A scripted rule: which requests it answers and how. */
export interface FakeRule {
  /** A string matches as a substring of `req.prompt`; absent matches any request. */
  match?: string | RegExp | ((req: FakeRequest) => boolean);
  /** An array is served in order, its last element repeating; `nth` = how many times this rule matched before (0-based). */
  reply: FakeReply | FakeReply[] | ((req: FakeRequest, nth: number) => FakeReply);
  /** The rule applies at most this many times, then later rules are tried. */
  times?: number;
}

/** Options of {@link startFakeOpenAI}. */
export interface FakeOpenAIOptions {
  rules?: FakeRule[];
  /** Used when no rule matches. Default `{}` (a 200 saying `"ok"`). */
  defaultReply?: FakeReply | ((req: FakeRequest) => FakeReply);
  /** Delay before every answer unless the reply sets its own. */
  latencyMs?: number;
  /** Provider-style limits over a 60 s sliding window; over them → 429 with `Retry-After`. */
  limits?: { rpm?: number; tpm?: number };
  /** Port on 127.0.0.1. Default 0 (any free port). */
  port?: number;
  /** Clock for request timestamps and the rate-limit window (tests can move time). Default `Date.now`. */
  now?: () => number;
}

/** A running fake server. */
export interface FakeOpenAI {
  /** Base URL including `/v1`, e.g. `http://127.0.0.1:41234/v1`. */
  readonly url: string;
  /** Every chat-completions request, in arrival order (also those answered with errors). */
  readonly requests: FakeRequest[];
  /**
   * Outcomes of chat-completions requests: `served` (well-formed 2xx completions), `errors`
   * (non-2xx replies, 400 bad JSON, malformed bodies, reset connections), `rateLimited`
   * (429s from `limits`), `aborted` (the client went away before the answer).
   */
  readonly stats: { served: number; errors: number; rateLimited: number; aborted: number };
  /** Append a rule after the existing ones. */
  addRule(rule: FakeRule): void;
  /** Insert a rule before the existing ones. */
  prependRule(rule: FakeRule): void;
  /** Clear rules, requests, stats and the rate-limit window. */
  reset(): void;
  /** Close the server and every open connection (hanging requests too). */
  close(): Promise<void>;
}

interface RuleState {
  rule: FakeRule;
  count: number;
}

/** Per-request bookkeeping. */
interface Flight {
  gone: boolean;
  settled: boolean;
  served: boolean;
  entry: { tokens: number } | undefined;
}

const KNOWN_MODELS = ["gpt-4o-mini", "gpt-4o", "llama3"];

/**
 * Start a fake OpenAI chat-completions server on 127.0.0.1.
 *
 * @example
 * ```ts
 * import { createOpenAI } from "@ai-sdk/openai";
 * import { generateText } from "ai";
 * import { startFakeOpenAI } from "baton/testing";
 *
 * const fake = await startFakeOpenAI({
 *   rules: [
 *     { match: /sources/, reply: { content: { sources: ["a", "b"] } } },
 *     { match: "flaky", reply: [{ status: 429, retryAfter: 1 }, { content: "fine" }] },
 *   ],
 * });
 * const model = createOpenAI({ baseURL: fake.url, apiKey: "test" }).chat("gpt-4o-mini");
 * const { text } = await generateText({ model, prompt: "Find sources", maxRetries: 0 });
 * // text === '{"sources":["a","b"]}'; fake.requests[0].prompt === "Find sources"
 * await fake.close();
 * ```
 */
export async function startFakeOpenAI(opts: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const now = opts.now ?? Date.now;
  let rules: RuleState[] = (opts.rules ?? []).map((rule) => ({ rule, count: 0 }));
  const requests: FakeRequest[] = [];
  const stats = { served: 0, errors: 0, rateLimited: 0, aborted: 0 };
  const window = opts.limits ? new RateWindow(opts.limits, now) : undefined;
  const sockets = new Set<Socket>();
  let closing = false;
  let seq = 0;
  let callSeq = 0;

  const choose = (req: FakeRequest): FakeReply => {
    for (const st of rules) {
      if (st.rule.times !== undefined && st.count >= st.rule.times) continue;
      if (!matches(st.rule.match, req)) continue;
      const nth = st.count++;
      const r = st.rule.reply;
      if (typeof r === "function") return r(req, nth);
      if (Array.isArray(r)) return r[Math.min(nth, r.length - 1)] ?? {};
      return r;
    }
    const d = opts.defaultReply;
    return typeof d === "function" ? d(req) : (d ?? {});
  };

  const limitHeaders = (): Record<string, string> => (window ? window.headers() : {});

  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };

  const handleChat = async (req: IncomingMessage, res: ServerResponse, flight: Flight): Promise<void> => {
    const raw = await readBody(req);
    let body: unknown;
    let bad = false;
    try {
      body = JSON.parse(raw);
    } catch {
      body = raw;
      bad = true;
    }
    const chat = parseChatBody(body);
    const prompt = chat.messages.map((m) => m.content).join("\n");
    const fr: FakeRequest = {
      n: ++seq,
      at: now(),
      model: chat.model,
      messages: chat.messages,
      prompt,
      tools: chat.tools,
      toolChoice: chat.toolChoice,
      responseFormat: chat.responseFormat,
      stream: chat.stream,
      body,
      headers: req.headers,
    };
    requests.push(fr);
    if (bad || chat.invalid !== undefined) {
      flight.settled = true;
      stats.errors++;
      return sendJson(res, 400, errorBody(400, bad ? "We could not parse the JSON body of your request." : chat.invalid));
    }

    const promptTokens = estimateTokens(chat.messages.map((m) => m.content).join(""));
    if (window) {
      const admission = window.admit(promptTokens);
      if (!admission.ok) {
        flight.settled = true;
        stats.rateLimited++;
        const body = errorBody(429, `Rate limit reached for ${admission.reason}. Please try again in ${admission.retryAfter}s.`);
        if (admission.reason.startsWith("tokens")) body.error.type = "tokens";
        return sendJson(res, 429, body, { "retry-after": String(admission.retryAfter), ...limitHeaders() });
      }
      flight.entry = admission.entry;
    }

    const reply = choose(fr);
    const latency = reply.latencyMs ?? opts.latencyMs ?? 0;
    if (latency > 0 && !(await wait(latency, res, flight))) return;
    if (flight.gone) return;
    if (reply.hang) return;
    flight.settled = true;
    if (reply.resetConnection) {
      stats.errors++;
      req.socket.destroy();
      return;
    }

    const status = reply.status ?? 200;
    const ok = status >= 200 && status <= 299 && !reply.malformed;
    // Ids are drawn only for completions that carry the calls.
    const toolCalls: ReplyToolCall[] = ok ? (reply.toolCalls ?? []).map((c) => toWire(c, () => `call_${++callSeq}`)) : [];
    const content =
      reply.content === undefined
        ? toolCalls.length > 0
          ? null
          : "ok"
        : typeof reply.content === "string"
          ? reply.content
          : JSON.stringify(reply.content);
    const completionText = (content ?? "") + toolCalls.map((c) => c.name + c.arguments).join("");
    const u = reply.usage ?? { prompt_tokens: promptTokens, completion_tokens: estimateTokens(completionText) };
    const usage: Usage = { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.prompt_tokens + u.completion_tokens };
    if (u.cached_tokens !== undefined) usage.prompt_tokens_details = { cached_tokens: u.cached_tokens };
    const extras: CompletionExtras = { toolCalls };
    if (reply.finishReason !== undefined) extras.finishReason = reply.finishReason;
    // Only well-formed completions spend tokens from the window (set before the headers describe it).
    if (flight.entry) flight.entry.tokens = ok ? usage.total_tokens : 0;
    const headers: Record<string, string> = { "x-request-id": `req_fake_${fr.n}`, ...limitHeaders() };
    if (reply.retryAfter !== undefined) headers["retry-after"] = String(reply.retryAfter);
    if (status < 200 || status > 299) {
      stats.errors++;
      const c = reply.content;
      const err = c !== undefined && typeof c === "object" ? c : errorBody(status, c);
      return sendJson(res, status, err, headers);
    }
    if (reply.malformed) {
      stats.errors++;
      if (chat.stream) {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...headers });
        res.end(`data: ${MALFORMED_BODY}\n\n`);
      } else {
        res.writeHead(200, { "content-type": "application/json", ...headers });
        res.end(MALFORMED_BODY);
      }
      return;
    }

    flight.served = true;
    stats.served++;
    const id = `chatcmpl-fake-${fr.n}`;
    const created = Math.floor(fr.at / 1000);
    const model = chat.model || "fake-model";
    if (!chat.stream) return sendJson(res, 200, completionBody(id, model, content, usage, created, extras), headers);
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...headers });
    const delay = reply.chunkDelayMs ?? 0;
    let first = true;
    for (const event of streamEvents(id, model, content, usage, created, chat.includeUsage, extras)) {
      if (!first && delay > 0 && !(await wait(delay, res, flight))) return;
      if (flight.gone) return;
      first = false;
      res.write(`data: ${event}\n\n`);
    }
    res.end();
  };

  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/v1/models" && req.method === "GET") {
      const ids = [...new Set([...KNOWN_MODELS, ...requests.map((r) => r.model).filter((m) => m !== "")])];
      return sendJson(res, 200, { object: "list", data: ids.map((id) => ({ id, object: "model", created: 0, owned_by: "baton-fake" })) });
    }
    if (path !== "/v1/chat/completions" || req.method !== "POST") {
      req.resume();
      return sendJson(res, 404, errorBody(404, `Unknown request URL: ${req.method ?? "?"} ${path ?? "/"}`));
    }
    const flight: Flight = { gone: false, settled: false, served: false, entry: undefined };
    res.on("close", () => {
      if (!flight.served && flight.entry) flight.entry.tokens = 0;
      if (res.writableFinished) return;
      flight.gone = true;
      if (!flight.settled && !closing) stats.aborted++;
    });
    handleChat(req, res, flight).catch((e: unknown) => {
      if (res.headersSent || flight.gone) return void res.destroy();
      flight.settled = true;
      stats.errors++;
      sendJson(res, 500, errorBody(500, `Fake server error: ${e instanceof Error ? e.message : String(e)}`));
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = address !== null && typeof address === "object" ? address.port : 0;
  let closed: Promise<void> | undefined;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    stats,
    addRule: (rule) => void rules.push({ rule, count: 0 }),
    prependRule: (rule) => void rules.unshift({ rule, count: 0 }),
    reset() {
      rules = [];
      requests.length = 0;
      seq = 0;
      Object.assign(stats, { served: 0, errors: 0, rateLimited: 0, aborted: 0 });
      window?.clear();
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closed;
    },
  };
}

/**
 * The last message of a request (`undefined` when it has none): handy in `match` functions that
 * script a tool loop, e.g. `match: (r) => lastMessage(r)?.role === "tool"` answers once the
 * client has sent a tool result back.
 */
export function lastMessage(req: FakeRequest): FakeMessage | undefined {
  return req.messages.at(-1);
}

function toWire(call: FakeToolCall, nextId: () => string): ReplyToolCall {
  const args = call.arguments === undefined ? "{}" : typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments);
  return { id: call.id ?? nextId(), name: call.name, arguments: args };
}

function matches(match: FakeRule["match"], req: FakeRequest): boolean {
  if (match === undefined) return true;
  if (typeof match === "string") return req.prompt.includes(match);
  if (match instanceof RegExp) {
    match.lastIndex = 0;
    return match.test(req.prompt);
  }
  return match(req);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
    req.on("close", () => {
      if (!req.complete) reject(new Error("client went away before sending the whole body"));
    });
  });
}

/** Wait `ms`; false when the client went away first. */
function wait(ms: number, res: ServerResponse, flight: Flight): Promise<boolean> {
  if (flight.gone) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      res.off("close", onClose);
      resolve(true);
    }, ms);
    res.once("close", onClose);
  });
}
