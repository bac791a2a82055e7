/**
 * The cost of resolving an agent's model per call (issue 14: the AI SDK model object was rebuilt
 * on every call), against raw `generateText` with a model built once (not a test):
 *   npm run build && node bench/agent-call.mjs
 * A local fake OpenAI server (in this process) answers every chat completion at once; the
 * variants are interleaved (raw, cached, rebuilt, raw, …) so load on the machine hits them alike.
 * Prints wall µs and CPU µs (process.cpuUsage: on a loaded machine wall time mostly measures
 * the wait for a core) per call, medians of repetitions of CALLS calls, and their ratios to raw.
 * Knobs: AGENT_CALLS (per repetition, default 200), AGENT_REPS (default 15).
 */
import { createServer } from "node:http";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText } from "ai";
import { resolveModel } from "../dist/agents/providers.js";

const CALLS = Number(process.env.AGENT_CALLS || 200);
const REPS = Number(process.env.AGENT_REPS || 15);
const reply = JSON.stringify({
  id: "c1", object: "chat.completion", created: 1, model: "gpt-4o-mini",
  choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
});
const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end(reply));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const baseURL = `http://127.0.0.1:${server.address().port}/v1`;
process.env.BENCH_AGENT_KEY = "sk-bench-0000000000000000";
const agent = { model: "openai:gpt-4o-mini", base_url: baseURL, api_key_env: "BENCH_AGENT_KEY" };

const once = createOpenAI({ apiKey: process.env.BENCH_AGENT_KEY, baseURL }).chat("gpt-4o-mini");
const client = createOpenAI({ apiKey: process.env.BENCH_AGENT_KEY, baseURL });
const variants = {
  // raw: the AI SDK with a model built once
  raw: () => once,
  // Baton: resolveModel as every agent call does (cached model object)
  baton: () => resolveModel("w", agent, {}).model,
  // before the cache: the client was reused, the model object built per call
  rebuilt: () => (resolveModel("w", agent, {}), client.chat("gpt-4o-mini")),
};
const times = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
const cpu = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let r = -3; r < REPS; r++) {
  for (const [name, model] of Object.entries(variants)) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (let i = 0; i < CALLS; i++) await generateText({ model: model(), prompt: "hi", maxRetries: 0 });
    const c = process.cpuUsage(c0);
    if (r >= 0) {
      times[name].push(((performance.now() - t0) * 1000) / CALLS);
      cpu[name].push((c.user + c.system) / CALLS);
    }
  }
}
server.close();
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const raw = med(times.raw);
const rawCpu = med(cpu.raw);
console.log(`| per call (local fake server, ${CALLS} calls × ${REPS} reps, medians) | wall µs | ÷ raw | CPU µs | ÷ raw |\n|---|---:|---:|---:|---:|`);
for (const [name, label] of [["raw", "raw generateText, model built once"], ["baton", "resolveModel (cached model object) + generateText"], ["rebuilt", "model object rebuilt per call + generateText (before)"]]) {
  console.log(`| ${label} | ${med(times[name]).toFixed(0)} | ${(med(times[name]) / raw).toFixed(2)}× | ${med(cpu[name]).toFixed(0)} | ${(med(cpu[name]) / rawCpu).toFixed(2)}× |`);
}

// The model lookup alone (no request): what the cache saves per call.
const N = 20_000;
const lookup = (f) => {
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / N;
};
const look = { baton: [], rebuilt: [] };
for (let r = -2; r < REPS; r++) {
  const a = lookup(variants.baton);
  const b = lookup(variants.rebuilt);
  if (r >= 0) (look.baton.push(a), look.rebuilt.push(b));
}
console.log(`\n| model lookup alone (${N.toLocaleString("en")} calls, CPU µs per call, median) | µs |\n|---|---:|\n| resolveModel, cached model object | ${med(look.baton).toFixed(2)} |\n| resolveModel + model object rebuilt (before) | ${med(look.rebuilt).toFixed(2)} |`);
