/**
 * The provider of the makespan benchmark, in its own process (a provider is remote: its CPU
 * is not Baton's). Started by worker.mjs with an IPC channel; settings in MAKESPAN_CFG (JSON:
 * rpm, tpm, timescale, epoch). Sends `{ url }` once listening; answers `"stats"` with
 * `{ stats, requests, served }`; exits on `"close"`.
 *
 * The fake (`startFakeOpenAI` from baton/testing) enforces rpm/tpm over a 60 s sliding window
 * with 429 + Retry-After; replies, latencies and usage come from provider.mjs.
 */
import { virtualClock, warpTimers } from "./clock.mjs";
import { replyTo } from "./provider.mjs";

const cfg = JSON.parse(process.env.MAKESPAN_CFG ?? "{}");
warpTimers(cfg.timescale);
const clock = virtualClock(cfg.timescale, cfg.epoch);
const { startFakeOpenAI } = await import("../../dist/testing/index.js");

const served = { requests: 0, tokens: 0, prompt: 0, completion: 0, byStage: {} };
const fake = await startFakeOpenAI({
  limits: { rpm: cfg.rpm, tpm: cfg.tpm },
  now: clock.now,
  defaultReply: (req) => {
    const r = replyTo(req);
    // Only admitted requests get here (429s are answered before a reply is chosen).
    served.requests++;
    served.prompt += r.usage.prompt_tokens;
    served.completion += r.usage.completion_tokens;
    served.tokens += r.usage.prompt_tokens + r.usage.completion_tokens;
    served.byStage[r.stage] = (served.byStage[r.stage] ?? 0) + 1;
    return { content: r.content, latencyMs: r.latencyMs, usage: r.usage };
  },
});

process.on("message", async (m) => {
  if (m === "stats") {
    process.send({ stats: { ...fake.stats }, requests: fake.requests.length, served, arrivals: cfg.probe ? fake.requests.map((r) => r.at) : undefined });
  } else if (m === "close") {
    await fake.close();
    process.exit(0);
  }
});
process.on("disconnect", () => process.exit(0));
process.send({ url: fake.url });
