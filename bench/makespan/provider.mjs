/**
 * The scripted provider of the makespan benchmark: what each agent of the seed pipeline
 * (examples/research-report-llm.yaml) replies, after how long, and what usage it reports.
 *
 * Everything is a function of the request's prompt (seeded PRNG keyed by a hash of it), so a
 * run's replies, latencies and token counts are the same in every mode and on every retry.
 * Topics are "topic N"; N decides the run's routes:
 *   N % 10 == 3  the first research visit returns 2 of 5 sources the checker cannot verify
 *                → verify routes back to research (strict) once: ≈ 2× the calls
 *   N % 5 == 1   the first draft scores 0.6 → verify routes back to draft once (+2 calls)
 * Usage is what a provider would count: prompt tokens = the o200k count of the messages
 * (the same count Baton estimates with), completion tokens = the o200k count of the reply.
 */
import { countTokens } from "gpt-tokenizer/encoding/o200k_base";

/** Per-stage simulated latency (ms, uniform in [lo, hi]) and completion size (tokens, uniform). */
export const STAGES = {
  research: { agent: "researcher", latency: [300, 600], completion: [350, 600], maxTokens: 700 },
  analyze: { agent: "analyst", latency: [200, 400], completion: [150, 330], maxTokens: 400 },
  fact_check: { agent: "checker", latency: [100, 300], completion: [30, 75], maxTokens: 100 },
  draft: { agent: "writer", latency: [400, 800], completion: [500, 950], maxTokens: 1100 },
  verify: { agent: "qa", latency: [150, 300], completion: [40, 110], maxTokens: 150 },
};

export const meanLatency = (stage) => (STAGES[stage].latency[0] + STAGES[stage].latency[1]) / 2;

/** Which runs route back (see the header). */
export const researchLoop = (n) => n % 10 === 3;
export const draftLoop = (n) => n % 5 === 1;

/** FNV-1a of a string → 32-bit seed. */
function hash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const uniform = (rnd, [lo, hi]) => lo + rnd() * (hi - lo);

/** Prose to fill replies with: ordinary English (≈ 4.3 characters per o200k token, like real model output). */
const SENTENCES = [
  "Tides are the rise and fall of sea levels caused by the combined effects of the gravitational forces exerted by the Moon and the Sun, and the rotation of the Earth.",
  "Most coastal areas experience two high tides and two low tides every lunar day, which lasts about 24 hours and 50 minutes.",
  "The tidal range varies with the shape of the coastline and the depth of the sea floor; in the Bay of Fundy it can exceed 16 m.",
  "Spring tides occur when the Sun and Moon are aligned, at new and full moon, and neap tides about a week later, when they are at right angles.",
  "Tide gauges have recorded sea levels at some ports, such as Brest and Amsterdam, for more than 200 years.",
  "Since 1993, satellite altimetry (TOPEX/Poseidon, Jason-1 to 3) has measured the ocean surface to within a few centimetres.",
  "Tidal friction slowly lengthens the day, by about 2.3 ms per century, and moves the Moon away from the Earth at 3.8 cm per year.",
  "Resonance in semi-enclosed basins amplifies some tidal constituents: M2, the principal lunar semidiurnal one, dominates almost everywhere.",
  "In 2020 a study in Nature found that rising seas will change tidal ranges in many estuaries, not always in the same direction.",
  "It's worth noting that local weather, wind set-up and pressure, can shift water levels by tens of centimetres for hours at a time.",
];

const SENTENCE_TOKENS = SENTENCES.map((t) => countTokens(t));
const WORD_TOKENS = 1.3; // about, for these sentences

/** Prose of about `tokens` o200k tokens (cheap: sentence counts are precomputed). */
function prose(rnd, tokens) {
  const parts = [];
  let n = 0;
  while (n < tokens) {
    const i = Math.floor(rnd() * SENTENCES.length);
    parts.push(SENTENCES[i]);
    n += SENTENCE_TOKENS[i];
  }
  if (n === tokens) return parts.join(" ");
  const words = parts.join(" ").split(" ");
  return words.slice(0, Math.max(1, words.length - Math.round((n - tokens) / WORD_TOKENS))).join(" ");
}

/** Shrink a reply builder's size until the reply fits `max` tokens. */
function fit(build, target, max) {
  let t = target;
  for (;;) {
    const content = build(t);
    const tokens = countTokens(content);
    if (tokens <= max || t < 10) return { content, tokens };
    t = Math.floor(t * 0.9);
  }
}

/** The stage a prompt belongs to (from the seed pipeline's prompts). */
export function stageOf(prompt) {
  if (prompt.includes("Check this citation.")) return "fact_check";
  if (prompt.includes("Score this draft")) return "verify";
  if (prompt.includes("Write a short report on")) return "draft";
  if (prompt.includes("Analyze these sources about")) return "analyze";
  if (/Find \d+ sources about/.test(prompt)) return "research";
  return undefined;
}

const systemTokens = new Map();
/** Tokens of chat messages as Baton counts them (3 + Σ(4 + tokens of content)); system prompts counted once. */
export function promptTokens(messages) {
  let n = 3;
  for (const m of messages) {
    let c = m.role === "system" ? systemTokens.get(m.content) : undefined;
    if (c === undefined) {
      c = countTokens(m.content);
      if (m.role === "system") systemTokens.set(m.content, c);
    }
    n += 4 + c;
  }
  return n;
}

/**
 * The reply to a request: { content, latencyMs, usage, stage }. `req` is the fake server's
 * FakeRequest (prompt = all message contents joined).
 */
export function replyTo(req) {
  const prompt = req.prompt;
  const stage = stageOf(prompt);
  const user = req.messages.filter((m) => m.role === "user").map((m) => m.content).join("\n");
  const rnd = prng(hash(`${stage}|${user}`));
  const latencyMs = Math.round(uniform(rnd, STAGES[stage]?.latency ?? [100, 100]));
  const topicN = Number(/topic (\d+)/.exec(user)?.[1] ?? 0);
  const s = STAGES[stage];
  const target = s ? Math.round(uniform(rnd, s.completion)) : 20;
  let built;
  switch (stage) {
    case "research": {
      const depth = Number(/Find (\d+) sources/.exec(user)?.[1] ?? 5);
      const strict = user.includes("Use only primary");
      const bad = researchLoop(topicN) && !strict;
      built = fit((t) => JSON.stringify({
        sources: Array.from({ length: depth }, (_, k) => ({
          url: bad && (k === 1 || k === 3) ? `https://blog.example.com/topic-${topicN}/${k}` : `https://journal.example.org/topic-${topicN}/${strict ? "p" : ""}${k}`,
          claim: prose(rnd, Math.max(5, Math.round(t / depth) - 20)),
        })),
      }), target, s.maxTokens);
      break;
    }
    case "analyze":
      built = fit((t) => JSON.stringify({ summary: prose(rnd, t - 25), themes: ["tidal forcing", "coastal records", "long-term trends"] }), target, s.maxTokens);
      break;
    case "fact_check": {
      const verified = !/URL: https:\/\/blog\./.test(user);
      built = fit((t) => JSON.stringify({ verified, note: prose(rnd, t - 10) }), target, s.maxTokens);
      break;
    }
    case "draft": {
      const revised = user.includes("Editor's feedback on the last draft");
      built = fit((t) => JSON.stringify({
        title: `Tides: a short report on topic ${topicN}${revised ? " (revised)" : ""}`,
        text: prose(rnd, t - 60),
        citations: [`https://journal.example.org/topic-${topicN}/0`, `https://journal.example.org/topic-${topicN}/2`],
      }), target, s.maxTokens);
      break;
    }
    case "verify": {
      const low = draftLoop(topicN) && !user.includes("(revised)");
      built = fit((t) => JSON.stringify({ score: low ? 0.6 : 0.86, feedback: prose(rnd, t - 12) }), target, s.maxTokens);
      break;
    }
    default:
      built = { content: "ok", tokens: 1 };
  }
  return {
    stage: stage ?? "unknown",
    content: built.content,
    latencyMs,
    usage: { prompt_tokens: promptTokens(req.messages), completion_tokens: built.tokens },
  };
}
