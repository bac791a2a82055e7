#!/usr/bin/env node
/**
 * A fake OpenAI chat-completions server from the command line, for demos and manual testing:
 *
 * ```sh
 * node dist/testing/serve.js --port 8787 --script replies.json [--latency 200] [--rpm 60] [--tpm 90000]
 * ```
 *
 * Prints the base URL (with `/v1`) on stdout; Ctrl-C (or SIGTERM) stops it and prints the
 * served / error / rate-limited / aborted counts on stderr. Flags override the script's
 * `latencyMs` and `limits`.
 *
 * ## Script format
 *
 * The script is a JSON array of rules, or an object
 * `{ "rules": [...], "defaultReply": {...}, "latencyMs": 0, "limits": { "rpm": 60, "tpm": 90000 } }`.
 * Rules are tried in order; the first that matches (and has `times` left) answers. A request
 * no rule matches gets `defaultReply` (default: a 200 saying `"ok"`).
 *
 * A rule is `{ "match": ..., "reply": ..., "times": N }`:
 *
 * - `match` (optional; absent matches every request):
 *   - a string: a substring of the prompt (all message contents joined with newlines, tool
 *     results included); `"/pattern/flags"` is a regular expression over the prompt;
 *   - an object, every key of which must hold:
 *     - `{ "last_role": "tool" }`: the last message has that role (`"tool"` once the client
 *       sent a tool result back, `"user"` on a fresh turn; any role works);
 *     - `{ "has_tool": "NAME" }`: the request offers a tool (function) of that name;
 *     - `{ "prompt": "text" }`: the same as a string `match` (substring or `"/re/flags"`).
 * - `reply`: one reply, or an array served in order whose last element repeats.
 * - `times`: the rule answers at most this many times, then later rules are tried.
 *
 * A reply (every field optional; `{}` is a 200 saying `"ok"`):
 *
 * - `content`: the assistant text; an object or array is sent as its JSON text. Default `"ok"`,
 *   or `null` when the reply has `toolCalls`. With a non-2xx `status`: a string is the error
 *   message, an object is the whole error body.
 * - `toolCalls`: `[{ "id": "call_1", "name": "search", "arguments": { "query": "tides" } }]`,
 *   sent as OpenAI `tool_calls` (`{ id, type: "function", function: { name, arguments } }`).
 *   `arguments` as an object is sent as its JSON text, as a string verbatim (so
 *   `"{\"query\": "` sends malformed JSON); default `"{}"`. `id` defaults to `call_<n>`,
 *   unique per server. Streamed like OpenAI: a chunk naming each call, then its arguments
 *   in pieces.
 * - `finishReason`: `"stop"`, `"length"` (a reply cut at max tokens), `"tool_calls"` or
 *   `"content_filter"`. Default `"tool_calls"` when there are tool calls, else `"stop"`.
 * - `usage`: `{ "prompt_tokens": 120, "completion_tokens": 30, "cached_tokens": 100 }`;
 *   `cached_tokens` (optional) is sent as `usage.prompt_tokens_details.cached_tokens`.
 *   Default: about one token per 4 characters of the messages / of the reply.
 * - `status`: a non-2xx status answers with an OpenAI-style error body; `retryAfter`: seconds
 *   sent as `Retry-After`.
 * - `malformed: true`: a 200 whose body is not JSON; `resetConnection: true`: the socket is
 *   destroyed; `hang: true`: never answers.
 * - `latencyMs`: delay before answering (overrides the server's); `chunkDelayMs`: when
 *   streaming, delay between chunks.
 *
 * A two-turn tool loop:
 *
 * ```json
 * [
 *   { "match": { "last_role": "tool" }, "reply": { "content": "It is 18°C in Oslo." } },
 *   { "match": { "has_tool": "weather" }, "reply": { "toolCalls": [{ "name": "weather", "arguments": { "city": "Oslo" } }] } }
 * ]
 * ```
 */
import { readFileSync, realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { lastMessage, startFakeOpenAI, type FakeOpenAIOptions, type FakeReply, type FakeRequest, type FakeRule } from "./index.js";

const USAGE = `usage: serve [--port 8787] [--script replies.json] [--latency MS] [--rpm N] [--tpm N]`;

/** An object `match` of a script file: every key given must hold. */
export interface ScriptMatcher {
  /** The last message has this role (`"tool"`, `"user"`, ...). */
  last_role?: string;
  /** The request offers a tool of this name. */
  has_tool?: string;
  /** A substring of the prompt, or `"/re/flags"`. */
  prompt?: string;
}

/** A rule as written in a script file: `match` is a string (`"/re/flags"` for a regex) or a {@link ScriptMatcher}. */
interface ScriptRule {
  match?: string | ScriptMatcher;
  reply: FakeReply | FakeReply[];
  times?: number;
}

const MATCHER_KEYS = ["last_role", "has_tool", "prompt"] as const;

/** `"/pattern/flags"` → RegExp; any other string stays a substring match. */
export function parseMatch(match: string): string | RegExp {
  const m = /^\/(.*)\/([dgimsuvy]*)$/s.exec(match);
  return m ? new RegExp(m[1] ?? "", m[2]) : match;
}

/** A script's object matcher as a `match` function; throws on unknown keys or non-string values. */
export function parseMatcher(m: object, where = "match"): (req: FakeRequest) => boolean {
  const obj = m as Record<string, unknown>;
  const keys = Object.keys(obj);
  for (const k of keys) {
    if (!(MATCHER_KEYS as readonly string[]).includes(k)) {
      throw new Error(`script: ${where}: unknown matcher key "${k}"; expected one of ${MATCHER_KEYS.join(", ")}`);
    }
    if (typeof obj[k] !== "string") throw new Error(`script: ${where}: "${k}" must be a string, got ${JSON.stringify(obj[k])}`);
  }
  if (keys.length === 0) throw new Error(`script: ${where}: an object matcher needs at least one of ${MATCHER_KEYS.join(", ")}`);
  const { last_role: role, has_tool: tool, prompt } = obj as ScriptMatcher;
  const text = prompt === undefined ? undefined : parseMatch(prompt);
  return (req) => {
    if (role !== undefined && lastMessage(req)?.role !== role) return false;
    if (tool !== undefined && !req.tools.some((t) => t.name === tool)) return false;
    if (typeof text === "string" && !req.prompt.includes(text)) return false;
    if (text instanceof RegExp) {
      text.lastIndex = 0;
      if (!text.test(req.prompt)) return false;
    }
    return true;
  };
}

/** Turn a parsed script (array of rules, or an options object) into server options. */
export function optionsFromScript(script: unknown): FakeOpenAIOptions {
  const obj: Record<string, unknown> = Array.isArray(script)
    ? { rules: script }
    : script !== null && typeof script === "object"
      ? (script as Record<string, unknown>)
      : {};
  const raw = obj["rules"] ?? [];
  if (!Array.isArray(raw)) throw new Error("script: `rules` must be an array");
  const rules: FakeRule[] = raw.map((r: unknown, i) => {
    if (r === null || typeof r !== "object" || !("reply" in r)) throw new Error(`script: rule ${i} needs a \`reply\``);
    const sr = r as ScriptRule;
    const m: unknown = sr.match;
    if (m !== undefined && typeof m !== "string" && (m === null || typeof m !== "object" || Array.isArray(m))) {
      throw new Error(`script: rule ${i}: \`match\` must be a string or an object like {"last_role": "tool"}, got ${JSON.stringify(m)}`);
    }
    const rule: FakeRule = { reply: sr.reply };
    if (typeof m === "string") rule.match = parseMatch(m);
    else if (m !== undefined) rule.match = parseMatcher(m, `rule ${i}`);
    if (sr.times !== undefined) rule.times = sr.times;
    return rule;
  });
  const opts: FakeOpenAIOptions = { rules };
  if (obj["defaultReply"] !== undefined) opts.defaultReply = obj["defaultReply"] as FakeReply;
  if (typeof obj["latencyMs"] === "number") opts.latencyMs = obj["latencyMs"];
  if (obj["limits"] !== undefined) opts.limits = obj["limits"] as { rpm?: number; tpm?: number };
  return opts;
}

/** `FILE:LINE:COL` of a character offset. */
function place(file: string, text: string, offset: number): string {
  const before = text.slice(0, offset).split("\n");
  return `${file}:${before.length}:${(before.at(-1) ?? "").length + 1}`;
}

/**
 * Read and check a script file. Every problem is one line naming the file (and, for JSON
 * syntax, the line and column; for a rule, its index) and what to write instead.
 */
export function readScript(file: string): FakeOpenAIOptions {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`cannot read the script ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; --script takes a JSON file of rules`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const at = /at position (\d+)/.exec(msg);
    const where = at ? place(file, text, Number(at[1])) : file;
    throw new Error(`${where}: the script is not valid JSON (${msg.replace(/ in JSON at position \d+.*$/, "")}); write an array of rules or { "rules": [...] }`);
  }
  try {
    return optionsFromScript(parsed);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message.replace(/^script: /, "")}`);
  }
}

function int(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${value}"`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        port: { type: "string" },
        script: { type: "string" },
        latency: { type: "string" },
        rpm: { type: "string" },
        tpm: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let opts: FakeOpenAIOptions;
  try {
    opts = args.script !== undefined ? readScript(args.script) : {};
    const port = int("port", args.port);
    const latency = int("latency", args.latency);
    const rpm = int("rpm", args.rpm);
    const tpm = int("tpm", args.tpm);
    if (port !== undefined) opts.port = port;
    if (latency !== undefined) opts.latencyMs = latency;
    if (rpm !== undefined || tpm !== undefined) {
      opts.limits = { ...opts.limits, ...(rpm !== undefined ? { rpm } : {}), ...(tpm !== undefined ? { tpm } : {}) };
    }
  } catch (e) {
    process.stderr.write(`serve: ${e instanceof Error ? e.message : String(e)}\n${USAGE}\n`);
    return 2;
  }
  const fake = await startFakeOpenAI(opts);
  if (args.script === undefined) {
    // Without rules every request gets the default reply, which no output schema accepts.
    process.stderr.write(`serve: no --script: every request is answered "ok"; give --script FILE with rules (e.g. examples/research-report-llm/fake-model.json)\n`);
  }
  // Ready to stop cleanly before the URL tells anyone it is up.
  const stop = new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  process.stdout.write(`${fake.url}\n`);
  await stop;
  await fake.close();
  process.stderr.write(`served ${fake.stats.served}, errors ${fake.stats.errors}, rate-limited ${fake.stats.rateLimited}, aborted ${fake.stats.aborted}\n`);
  return 0;
}

function isEntry(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntry()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`serve: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
