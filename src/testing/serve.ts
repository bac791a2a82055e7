#!/usr/bin/env node
/**
 * A fake OpenAI chat-completions server from the command line, for demos and manual testing:
 *
 * ```sh
 * node dist/testing/serve.js --port 8787 --script replies.json [--latency 200] [--rpm 60] [--tpm 90000]
 * ```
 *
 * The script is a JSON array of rules (`{ "match": "sources", "reply": { "content": {...} } }`),
 * or an object `{ "rules": [...], "defaultReply": {...}, "latencyMs": 0, "limits": {...} }`.
 * A `match` string of the form `"/pattern/flags"` is a regular expression; any other string
 * is a substring of the prompt. Prints the base URL (with `/v1`) on stdout; Ctrl-C stops it.
 */
import { readFileSync, realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { startFakeOpenAI, type FakeOpenAIOptions, type FakeReply, type FakeRule } from "./index.js";

const USAGE = `usage: serve [--port 8787] [--script replies.json] [--latency MS] [--rpm N] [--tpm N]`;

/** A rule as written in a script file: `match` is a string (`"/re/flags"` for a regex). */
interface ScriptRule {
  match?: string;
  reply: FakeReply | FakeReply[];
  times?: number;
}

/** `"/pattern/flags"` → RegExp; any other string stays a substring match. */
export function parseMatch(match: string): string | RegExp {
  const m = /^\/(.*)\/([dgimsuvy]*)$/s.exec(match);
  return m ? new RegExp(m[1] ?? "", m[2]) : match;
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
    if (sr.match !== undefined && typeof sr.match !== "string") throw new Error(`script: rule ${i}: \`match\` must be a string`);
    const rule: FakeRule = { reply: sr.reply };
    if (sr.match !== undefined) rule.match = parseMatch(sr.match);
    if (sr.times !== undefined) rule.times = sr.times;
    return rule;
  });
  const opts: FakeOpenAIOptions = { rules };
  if (obj["defaultReply"] !== undefined) opts.defaultReply = obj["defaultReply"] as FakeReply;
  if (typeof obj["latencyMs"] === "number") opts.latencyMs = obj["latencyMs"];
  if (obj["limits"] !== undefined) opts.limits = obj["limits"] as { rpm?: number; tpm?: number };
  return opts;
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
    opts = args.script !== undefined ? optionsFromScript(JSON.parse(readFileSync(args.script, "utf8"))) : {};
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
  process.stdout.write(`${fake.url}\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
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
