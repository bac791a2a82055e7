/**
 * Stage functions of the research-report example. Deterministic and offline: "sources" are
 * generated from the topic, latencies are fixed per source, and analyze fails its first attempt
 * the way a provider answers 503 under load.
 */
import type { StageContext } from "baton";

export interface Source {
  url: string;
  claim: string;
  primary: boolean;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });

const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");

/** Find `depth` sources about a topic; sources 2, 5, 8… are secondary unless `strict`. */
export async function research(ctx: StageContext<{ topic: string; depth: number; strict?: boolean }>): Promise<{ sources: Source[] }> {
  const { topic, depth, strict } = ctx.input;
  await sleep(40, ctx.signal);
  const sources: Source[] = [];
  for (let i = 1; sources.length < depth; i++) {
    const primary = i % 3 !== 2;
    if (strict && !primary) continue;
    sources.push({
      url: `https://${primary ? "journals" : "blogs"}.example/${slug(topic)}/${i}`,
      claim: `${topic}: finding ${i}`,
      primary,
    });
  }
  ctx.log(`${sources.length} sources (${strict ? "primary only" : "mixed"}) on visit ${ctx.visit}`);
  return { sources };
}

/** Summarise the sources. The first attempt fails like an overloaded provider (retryable). */
export async function analyze(ctx: StageContext<Source[]>): Promise<{ summary: string; themes: string[] }> {
  await sleep(30, ctx.signal);
  if (ctx.attempt === 1) throw Object.assign(new Error("provider answered 503 Service Unavailable (simulated)"), { kind: "overloaded" });
  const themes = [...new Set(ctx.input.map((s) => s.claim.split(":")[0]!))];
  return { summary: `${ctx.input.length} sources agree on ${themes.join(", ")}`, themes };
}

/** Check one citation: secondary sources cannot be verified. */
export async function factCheck(ctx: StageContext<{ url: string; claim: string }>): Promise<{ url: string; claim: string; verified: boolean }> {
  await sleep(10 + (ctx.index ?? 0) * 5, ctx.signal);
  return { url: ctx.input.url, claim: ctx.input.claim, verified: ctx.input.url.includes("journals.") };
}

/** Write the report from verified facts only. */
export async function draft(ctx: StageContext<{ topic: string; analysis: { summary: string }; facts: { url: string; claim: string }[] | { url: string; claim: string } }>): Promise<{ text: string; citations: string[]; words: number }> {
  await sleep(20, ctx.signal);
  const facts = Array.isArray(ctx.input.facts) ? ctx.input.facts : ctx.input.facts ? [ctx.input.facts] : [];
  const text = [`# ${ctx.input.topic}`, "", ctx.input.analysis.summary + ".", ...facts.map((f, i) => `- ${f.claim} [${i + 1}]`)].join("\n");
  return { text, citations: facts.map((f) => f.url), words: text.split(/\s+/).length };
}
