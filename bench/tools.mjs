// Agent tool-loop overhead (not a test; CI does not run it):  npm run bench:tools
//
// Baton's overhead per model turn and per tool call against a hand-written loop over raw
// `generateText` with the same tools, on the same fake OpenAI server (127.0.0.1, no latency), in
// one process run. Baton runs with the embedded SQLite store (a temp file, WAL, synchronous=NORMAL),
// so every turn and every call is a durable step (one append each, plus the run's own events).
//
//   turns:  a loop of T turns, each calling one tool, then a final answer (T+1 model calls)
//   calls:  one turn calling K tools at once, then a final answer
// overhead/turn = (Baton − raw) / model calls; overhead/call = (Baton − raw, K calls) − (same, 0
// calls) over K. Raw and Baton alternate run by run; medians of the per-pair differences over
// REPS pairs after WARMUP. Knobs: TOOLS_REPS (default 41), TOOLS_TURNS
// (default 8), TOOLS_CALLS (default 8). Loads Baton from dist/ (npm run build first).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, streamText } from "ai";
import { compileSource, execute, SqliteStore } from "../dist/index.js";
import { startFakeOpenAI } from "../dist/testing/index.js";

const REPS = Number(process.env.TOOLS_REPS || 41);
const WARMUP = 3;
const TURNS = Number(process.env.TOOLS_TURNS || 8);
const CALLS = Number(process.env.TOOLS_CALLS || 8);
process.env.OPENAI_API_KEY = "sk-bench";

const toolMsgs = (r) => r.messages.filter((m) => m.role === "tool").length;
const fake = await startFakeOpenAI();
let mode = { turns: TURNS, calls: 1 };
fake.addRule({
  reply: (r) => {
    const done = toolMsgs(r);
    if (mode.calls === 1 ? done >= mode.turns : done >= mode.calls) return { content: "done", usage: { prompt_tokens: 50, completion_tokens: 5 } };
    const n = mode.calls === 1 ? 1 : mode.calls;
    return { toolCalls: Array.from({ length: n }, (_, i) => ({ id: `c${done}_${i}`, name: "double", arguments: { x: done + i } })), usage: { prompt_tokens: 50, completion_tokens: 5 } };
  },
});

const schema = { type: "object", required: ["x"], properties: { x: { type: "number" } } };
const double = (args) => args.x * 2;

/** The hand-written loop: generateText (or streamText) with tools (no execute), run the calls, send results back. */
async function rawLoop(stream) {
  const model = createOpenAI({ baseURL: fake.url, apiKey: "sk-bench" }).chat("gpt-4o-mini");
  const tools = { double: { description: "Double a number", inputSchema: jsonSchema(schema) } };
  const messages = [{ role: "user", content: "Go" }];
  for (let turn = 0; turn < 100; turn++) {
    let r;
    if (stream) {
      const s = streamText({ model, messages, tools, maxRetries: 0, maxOutputTokens: 100 });
      let text = "";
      for await (const p of s.fullStream) if (p.type === "text-delta") text += p.text;
      r = { text, toolCalls: await s.toolCalls, response: await s.response };
    } else r = await generateText({ model, messages, tools, maxRetries: 0, maxOutputTokens: 100 });
    if (r.toolCalls.length === 0) return r.text;
    messages.push(...r.response.messages);
    messages.push({ role: "tool", content: r.toolCalls.map((c) => ({ type: "tool-result", toolCallId: c.toolCallId, toolName: c.toolName, output: { type: "json", value: double(c.input) } })) });
  }
  throw new Error("no answer");
}

const raw = () => rawLoop(false);
const rawStream = () => rawLoop(true);
const planOf = (stream) => compileSource(`
baton: 1
name: tool-bench
tools:
  double: { description: Double a number, input: ${JSON.stringify(schema)}, value: "args.x * 2" }
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 100, tools: [double], max_steps: 200, stream: ${stream} }
stages:
  go: { agent: bot, prompt: "Go" }
output: go
`, { format: "yaml", baseDir: process.cwd() });
const plain = planOf(false);
const streamed = planOf(true);
const dir = mkdtempSync(join(tmpdir(), "baton-bench-tools-"));
const store = SqliteStore.open(join(dir, "baton.db"));

async function batonRun(plan, onDelta) {
  const r = await execute({ name: plan.name, plan, parseInputs: (x) => x }, {}, { store, telemetry: false, ...(onDelta ? { onDelta } : {}) });
  if (r.status !== "succeeded") throw new Error(`run ${r.status}: ${JSON.stringify(r.error)}`);
  return r.output;
}

const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Time `a` and `b` alternately, REPS pairs after WARMUP: medians of each and of the per-pair difference. */
async function paired(a, b) {
  for (let i = 0; i < WARMUP; i++) {
    await a();
    await b();
  }
  const ta = [];
  const tb = [];
  const d = [];
  for (let i = 0; i < REPS; i++) {
    let t = performance.now();
    await a();
    const x = performance.now() - t;
    t = performance.now();
    await b();
    const y = performance.now() - t;
    ta.push(x);
    tb.push(y);
    d.push(y - x);
  }
  return { a: med(ta), b: med(tb), diff: med(d) };
}

// Interleave raw and Baton per scenario so machine noise hits both alike.
const out = [];
const modelCalls = TURNS + 1;
out.push(`| workload | raw loop (ms) | Baton, SQLite (ms) | Baton − raw (ms) |`);
out.push(`|---|---:|---:|---:|`);
const summary = [];
for (const [label, rawF, plan, onDelta] of [["generateText", raw, plain, undefined], ["streamText, deltas to a live view", rawStream, streamed, () => undefined]]) {
  const baton = () => batonRun(plan, onDelta);
  mode = { turns: 0, calls: 1 };
  const one = await paired(rawF, baton);
  mode = { turns: TURNS, calls: 1 };
  const turns = await paired(rawF, baton);
  mode = { turns: 1, calls: CALLS };
  const calls = await paired(rawF, baton);
  const perTurn = (turns.diff - one.diff) / (modelCalls - 1);
  const perCall = (calls.diff - one.diff - perTurn) / CALLS;
  out.push(`| ${label}: 1 turn, no tool call (a run's fixed cost) | ${one.a.toFixed(2)} | ${one.b.toFixed(2)} | ${one.diff.toFixed(2)} |`);
  out.push(`| ${label}: ${modelCalls} turns, 1 call each | ${turns.a.toFixed(2)} | ${turns.b.toFixed(2)} | ${turns.diff.toFixed(2)} |`);
  out.push(`| ${label}: 2 turns, ${CALLS} calls in one | ${calls.a.toFixed(2)} | ${calls.b.toFixed(2)} | ${calls.diff.toFixed(2)} |`);
  summary.push(`${label}: overhead per model turn (with its tool call) **${perTurn.toFixed(3)} ms**, per extra tool call **${perCall.toFixed(3)} ms**`);
}
out.push("");
for (const s of summary) out.push(`- ${s}`);
out.push(`- target ≤ 1 ms per turn; medians of ${REPS} runs, Node ${process.version}.`);
console.log(out.join("\n"));
await store.close();
await fake.close();
rmSync(dir, { recursive: true, force: true });
