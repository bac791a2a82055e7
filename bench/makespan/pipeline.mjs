/**
 * The benchmark's variant of the seed pipeline (examples/research-report-llm.yaml), derived
 * from the seed file at run time so it follows the seed. Changes, all in the template's
 * top-level settings (stages, prompts, schemas and routes are the seed's):
 *   - pools modes: `limits: { llm: { rpm, tpm } }` (the provider's limits) and `limit: llm` on
 *     every agent; pools-off mode: neither;
 *   - every agent's `max_tokens` set near its typical completion (provider.mjs STAGES), so the
 *     pool's estimate (prompt + max_tokens, until the real usage is known) is not wildly
 *     pessimistic;
 *   - `defaults.retry` with more attempts (knob), so 429 storms without pools still complete;
 *   - optional stage / run timeouts (knobs; the seed's by default).
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { STAGES, draftLoop, meanLatency, researchLoop } from "./provider.mjs";

const here = dirname(fileURLToPath(import.meta.url));
export const SEED = join(here, "..", "..", "examples", "research-report-llm.yaml");

/** YAML text of the variant. */
export function variantYaml({ pools, rpm, tpm, attempts, maxDelay, stageTimeout, runTimeout }) {
  const doc = parse(readFileSync(SEED, "utf8"));
  if (pools) doc.limits = { llm: { rpm, tpm } };
  else delete doc.limits;
  const maxTokens = Object.fromEntries(Object.values(STAGES).map((s) => [s.agent, s.maxTokens]));
  for (const [name, agent] of Object.entries(doc.agents)) {
    if (pools) agent.limit = "llm";
    else delete agent.limit;
    if (maxTokens[name] !== undefined) agent.max_tokens = maxTokens[name];
  }
  doc.defaults ??= {};
  doc.defaults.retry = { ...(doc.defaults.retry ?? {}), attempts, ...(maxDelay ? { max_delay: maxDelay } : {}) };
  if (stageTimeout) doc.defaults.timeout = stageTimeout;
  if (runTimeout) doc.timeout = runTimeout;
  return stringify(doc);
}

/**
 * Critical path of one run (ms): the longest chain of mean stage latencies through the plan's
 * dependency graph; a for_each stage takes ceil(items / its concurrency) × the mean. A run that
 * routes back adds the re-run suffix (research loop: the whole chain again; draft loop: draft
 * + verify). Returns the longest over the runs' topics.
 */
export function criticalPathMs(plan, runs, depth) {
  const len = new Map();
  for (const idx of plan.topo) {
    const s = plan.stages[idx];
    const waves = s.forEach ? Math.ceil(depth / Math.max(1, Math.min(depth, s.itemConcurrency || depth))) : 1;
    const own = (STAGES[s.id] ? meanLatency(s.id) : 0) * waves;
    let before = 0;
    for (const d of s.deps) before = Math.max(before, len.get(d));
    len.set(idx, before + own);
  }
  const chain = Math.max(...len.values());
  const redo = meanLatency("draft") + meanLatency("verify");
  let worst = 0;
  for (let n = 0; n < runs; n++) worst = Math.max(worst, chain * (researchLoop(n) ? 2 : 1) + (draftLoop(n) ? redo : 0));
  return { perRun: chain, worst };
}
