/**
 * The OpenAI chat-completions wire format as the fake server speaks it: request
 * normalisation, token estimates, response bodies, stream chunks, error bodies, and the
 * sliding-window rate limiter. Internal to `baton/testing`; nothing here touches a socket.
 */

/** Rough token count the fake uses when a reply gives no `usage`: ceil(chars / 4). */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** The text of a chat message's `content`: a string, or the text parts of a part array. */
export function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  let out = "";
  for (const part of content) {
    if (typeof part === "string") out += part;
    else if (part !== null && typeof part === "object" && typeof (part as { text?: unknown }).text === "string") {
      out += (part as { text: string }).text;
    }
  }
  return out;
}

/** A tool call as an assistant message of a request carries it: `arguments` is the raw JSON string sent. */
export interface WireToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** A request message, its content flattened to text, tool traffic kept. */
export interface ParsedMessage {
  role: string;
  content: string;
  /** An assistant message's `tool_calls` (present only when the message had some). */
  toolCalls?: WireToolCall[];
  /** A `role: "tool"` message's `tool_call_id` (present only when sent). */
  toolCallId?: string;
}

/** A tool the request offers (`tools: [{ type: "function", function: {...} }]`). */
export interface OfferedTool {
  name: string;
  description?: string;
  parameters?: unknown;
}

/** What the server reads from a chat-completions request body. */
export interface ParsedChat {
  model: string;
  messages: ParsedMessage[];
  stream: boolean;
  includeUsage: boolean;
  tools: OfferedTool[];
  /** The raw `tool_choice`, if sent. */
  toolChoice: unknown;
  /** The raw `response_format`, if sent. */
  responseFormat: unknown;
  /** Why the body is not a chat-completions request (no object, no `messages` array), if it is not. */
  invalid: string | undefined;
}

function record(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function parseMessage(m: unknown): ParsedMessage {
  const msg = record(m);
  const out: ParsedMessage = { role: str(msg["role"]), content: contentText(msg["content"]) };
  if (Array.isArray(msg["tool_calls"])) {
    out.toolCalls = (msg["tool_calls"] as unknown[]).map((c) => {
      const call = record(c);
      const fn = record(call["function"]);
      const args = fn["arguments"];
      return { id: str(call["id"]), name: str(fn["name"]), arguments: typeof args === "string" ? args : args === undefined ? "" : JSON.stringify(args) };
    });
  }
  if (typeof msg["tool_call_id"] === "string") out.toolCallId = msg["tool_call_id"];
  return out;
}

function parseTool(t: unknown): OfferedTool {
  const entry = record(t);
  const fn = entry["function"] !== undefined ? record(entry["function"]) : entry;
  const tool: OfferedTool = { name: str(fn["name"]) };
  if (typeof fn["description"] === "string") tool.description = fn["description"];
  if (fn["parameters"] !== undefined) tool.parameters = fn["parameters"];
  return tool;
}

/** Pull model, messages, tools and stream flags out of a parsed body; tolerant of odd shapes. */
export function parseChatBody(body: unknown): ParsedChat {
  const b = record(body);
  const raw = Array.isArray(b["messages"]) ? (b["messages"] as unknown[]) : [];
  const messages = raw.map(parseMessage);
  const tools = Array.isArray(b["tools"]) ? (b["tools"] as unknown[]).map(parseTool) : [];
  const includeUsage = record(b["stream_options"])["include_usage"] === true;
  const invalid =
    body === null || typeof body !== "object" || Array.isArray(body)
      ? "The request body must be a JSON object."
      : Array.isArray(b["messages"])
        ? undefined
        : "'messages' is a required property (an array).";
  return {
    model: str(b["model"]),
    messages,
    stream: b["stream"] === true,
    includeUsage,
    tools,
    toolChoice: b["tool_choice"],
    responseFormat: b["response_format"],
    invalid,
  };
}

/** OpenAI usage object. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

/** OpenAI finish reasons the fake can send. */
export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter";

/** A tool call as the assistant message of a response carries it. */
export interface ReplyToolCall {
  id: string;
  name: string;
  /** The JSON string sent as `function.arguments` (verbatim; may be malformed on purpose). */
  arguments: string;
}

/** What a completion says besides its text. */
export interface CompletionExtras {
  toolCalls?: ReplyToolCall[];
  /** Default `"tool_calls"` when there are tool calls, else `"stop"`. */
  finishReason?: FinishReason;
}

function finishOf(extras: CompletionExtras): FinishReason {
  return extras.finishReason ?? ((extras.toolCalls?.length ?? 0) > 0 ? "tool_calls" : "stop");
}

/** A plain `chat.completion` response body. `content` null is sent as `null` (tool calls only). */
export function completionBody(
  id: string,
  model: string,
  content: string | null,
  usage: Usage,
  created: number,
  extras: CompletionExtras = {},
): object {
  const message: Record<string, unknown> = { role: "assistant", content };
  const calls = extras.toolCalls ?? [];
  if (calls.length > 0) {
    message["tool_calls"] = calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }));
  }
  return {
    id,
    object: "chat.completion",
    created,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishOf(extras) }],
    usage,
  };
}

/** Split `text` into at most `parts` non-empty pieces (one empty piece for empty text). */
export function splitContent(text: string, parts = 3): string[] {
  if (text.length === 0) return [""];
  const size = Math.max(1, Math.ceil(text.length / parts));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/**
 * The SSE `data:` payloads of a streamed completion, `[DONE]` included, as OpenAI sends them:
 * a role chunk, the text in several pieces, then per tool call a chunk naming it (`id`,
 * `type`, `function.name`, empty `arguments`) followed by its arguments in pieces, a chunk
 * with the finish reason, and the usage chunk when `includeUsage`.
 */
export function streamEvents(
  id: string,
  model: string,
  content: string | null,
  usage: Usage,
  created: number,
  includeUsage: boolean,
  extras: CompletionExtras = {},
): string[] {
  const chunk = (choices: object[], extra: object = {}): string =>
    JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices, ...extra });
  const delta = (d: object): string => chunk([{ index: 0, delta: d, finish_reason: null }]);
  // OpenAI opens a tool-call-only stream with `content: null`; an empty string would be an (empty) text part.
  const events = [delta({ role: "assistant", content: content === null ? null : "" })];
  if (content !== null) {
    for (const piece of splitContent(content)) if (piece !== "") events.push(delta({ content: piece }));
  }
  (extras.toolCalls ?? []).forEach((c, index) => {
    events.push(delta({ tool_calls: [{ index, id: c.id, type: "function", function: { name: c.name, arguments: "" } }] }));
    for (const piece of splitContent(c.arguments)) {
      if (piece !== "") events.push(delta({ tool_calls: [{ index, function: { arguments: piece } }] }));
    }
  });
  events.push(chunk([{ index: 0, delta: {}, finish_reason: finishOf(extras) }]));
  if (includeUsage) events.push(chunk([], { usage }));
  events.push("[DONE]");
  return events;
}

/** A body that starts like a completion and stops mid-way: not JSON. */
export const MALFORMED_BODY = '{"id": "chatcmpl-1", "choices": [';

const ERROR_TYPES: Record<number, [type: string, code: string]> = {
  400: ["invalid_request_error", "invalid_request"],
  401: ["invalid_request_error", "invalid_api_key"],
  403: ["permission_error", "permission_denied"],
  404: ["invalid_request_error", "not_found"],
  408: ["timeout_error", "timeout"],
  409: ["invalid_request_error", "conflict"],
  413: ["invalid_request_error", "request_too_large"],
  429: ["requests", "rate_limit_exceeded"],
  500: ["server_error", "internal_error"],
  502: ["server_error", "bad_gateway"],
  503: ["server_error", "overloaded"],
  504: ["server_error", "timeout"],
};

/** An OpenAI-style error body `{ error: { message, type, code } }`. */
export function errorBody(status: number, message?: string): { error: { message: string; type: string; code: string } } {
  const [type, code] = ERROR_TYPES[status] ?? (status >= 500 ? ["server_error", "server_error"] : ["invalid_request_error", "error"]);
  return { error: { message: message ?? `Fake error ${status}`, type, code } };
}

/** Result of a rate-limit admission check. */
export type Admission =
  | { ok: true; entry: { at: number; tokens: number } }
  | { ok: false; retryAfter: number; reason: string };

/**
 * Requests-per-minute and tokens-per-minute over a 60 s sliding window, like a provider.
 * A request is admitted when fewer than `rpm` requests were admitted in the last 60 s and
 * its prompt tokens fit in what is left of `tpm`; the caller then corrects the entry's
 * tokens to the usage it actually reported.
 */
export class RateWindow {
  private entries: { at: number; tokens: number }[] = [];
  constructor(
    private readonly limits: { rpm?: number; tpm?: number },
    private readonly now: () => number,
  ) {}

  private prune(now: number): void {
    while (this.entries.length > 0 && (this.entries[0]?.at ?? 0) + 60_000 <= now) this.entries.shift();
  }

  /** Check a request costing `tokens` (its prompt estimate) and record it when admitted. */
  admit(tokens: number): Admission {
    const now = this.now();
    this.prune(now);
    const { rpm, tpm } = this.limits;
    if (rpm !== undefined && this.entries.length >= rpm) {
      const oldest = this.entries[this.entries.length - rpm];
      return { ok: false, retryAfter: seconds((oldest?.at ?? now) + 60_000 - now), reason: `requests per minute (${rpm})` };
    }
    if (tpm !== undefined) {
      if (tokens > tpm) return { ok: false, retryAfter: 60, reason: `tokens per minute (${tpm}); request needs ${tokens}` };
      let used = this.used();
      if (used + tokens > tpm) {
        let wait = 60_000;
        for (const e of this.entries) {
          used -= e.tokens;
          if (used + tokens <= tpm) {
            wait = e.at + 60_000 - now;
            break;
          }
        }
        return { ok: false, retryAfter: seconds(wait), reason: `tokens per minute (${tpm})` };
      }
    }
    const entry = { at: now, tokens };
    this.entries.push(entry);
    return { ok: true, entry };
  }

  private used(): number {
    return this.entries.reduce((s, e) => s + e.tokens, 0);
  }

  /** `x-ratelimit-*` headers describing the window now. */
  headers(): Record<string, string> {
    const now = this.now();
    this.prune(now);
    const h: Record<string, string> = {};
    const { rpm, tpm } = this.limits;
    const resetIn = this.entries[0] ? `${seconds(this.entries[0].at + 60_000 - now)}s` : "0s";
    if (rpm !== undefined) {
      h["x-ratelimit-limit-requests"] = String(rpm);
      h["x-ratelimit-remaining-requests"] = String(Math.max(0, rpm - this.entries.length));
      h["x-ratelimit-reset-requests"] = resetIn;
    }
    if (tpm !== undefined) {
      h["x-ratelimit-limit-tokens"] = String(tpm);
      h["x-ratelimit-remaining-tokens"] = String(Math.max(0, tpm - this.used()));
      h["x-ratelimit-reset-tokens"] = resetIn;
    }
    return h;
  }

  clear(): void {
    this.entries = [];
  }
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
