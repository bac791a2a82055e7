/**
 * The seed pipeline written with the TypeScript API. It compiles to the same plan shape as
 * research-report.yaml (same stages, dependencies, routes and policies) and reuses its stage
 * functions. Run it with `npx tsx examples/research-report.ts` after `npm run build`.
 */
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { definePipeline, run } from "baton";
import * as stages from "./research-report/stages.ts";

export const researchReport = definePipeline({
  name: "research-report",
  description: "Research a topic, analyze and fact-check the sources in parallel, draft a report and verify it.",
  inputs: z.object({ topic: z.string().default("ocean tides"), depth: z.number().int().default(5) }),
  concurrency: 8,
  timeout: "5m",
  defaults: { retry: { attempts: 3, backoff: "exponential", delay: "100ms", max_delay: "2s", jitter: "full" }, timeout: "30s" },
})
  .stage("research", { run: stages.research, input: { topic: "{{ inputs.topic }}", depth: "{{ inputs.depth }}", strict: "{{ route.strict }}" } })
  .stage("analyze", { needs: ["research"], run: stages.analyze, input: "{{ research.sources }}" })
  .stage("fact_check", { needs: ["research"], for_each: "research.sources", as: "source", concurrency: 3, run: stages.factCheck, input: { url: "{{ source.url }}", claim: "{{ source.claim }}" } })
  .stage("draft", { needs: ["analyze", "fact_check"], run: stages.draft, input: { topic: "{{ inputs.topic }}", analysis: "{{ analyze }}", facts: "{{ fact_check[verified] }}" } })
  .stage("verify", {
    value: "{ 'score': $round($count(fact_check[verified]) / $count(fact_check), 2), 'failed': $count(fact_check[verified = false]), 'words': draft.words }",
    routes: [{ when: "$count(fact_check[verified = false]) / $count(fact_check) > 0.2", goto: "research", with: { strict: true }, max: 2 }],
  })
  .output<{ topic: string; report: string; citations: string[]; score: number }>("{ 'topic': inputs.topic, 'report': draft.text, 'citations': draft.citations, 'score': verify.score }");

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const report = await run(researchReport, { topic: "ocean tides", depth: 5 });
  console.log(report.report);
  console.log(`score ${report.score}, ${report.citations.length} citations`);
}
