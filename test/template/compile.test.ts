import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { Plan } from "../../src/plan/types.js";
import { compileSource, describePlan, loadPlanFile, validateFile } from "../../src/template/index.js";

const dir = fileURLToPath(new URL("../fixtures/templates/", import.meta.url));
const read = (name: string): string => readFileSync(dir + name, "utf8");

function yaml(text: string): Plan {
  return compileSource(text, { file: "t.yaml", format: "yaml", baseDir: "/base" });
}

/** A template from a stages block (indented two spaces under `stages:`). */
function stages(body: string, head = ""): Plan {
  return yaml(`baton: 1\nname: t\n${head}stages:\n${body}`);
}

function deps(plan: Plan): Record<string, string[]> {
  return Object.fromEntries(plan.stages.map((s) => [s.id, s.deps.map((d) => plan.stages[d]?.id ?? "?")]));
}

describe("the SPEC §1 example", () => {
  it("validates clean", () => {
    expect(validateFile(dir + "research-report.yaml")).toEqual([]);
    expect(validateFile(dir + "research-report.json")).toEqual([]);
  });

  it("compiles to the expected deps, levels and critical path", () => {
    const plan = loadPlanFile(dir + "research-report.yaml");
    expect(deps(plan)).toEqual({
      research: [],
      analyze: ["research"],
      fact_check: ["research"],
      draft: ["analyze", "fact_check"],
      verify: ["fact_check", "draft"],
    });
    const d = describePlan(plan);
    expect(d.levels).toEqual([["research"], ["analyze", "fact_check"], ["draft"], ["verify"]]);
    expect(d.critical_path).toEqual(["research", "analyze", "draft", "verify"]);
    expect(d.stages.map((s) => [s.id, s.kind, s.level])).toEqual([
      ["research", "agent", 0],
      ["analyze", "agent", 1],
      ["fact_check", "agent", 1],
      ["draft", "agent", 2],
      ["verify", "agent", 3],
    ]);
    // Weighted by measured durations, the fact-checking branch is the long one.
    expect(describePlan(plan, { research: 10, analyze: 5, fact_check: 50, draft: 10, verify: 5 }).critical_path).toEqual([
      "research",
      "fact_check",
      "draft",
      "verify",
    ]);
  });

  it("compiles stages, routes, agents and policies", () => {
    const plan = loadPlanFile(dir + "research-report.yaml");
    expect(plan.name).toBe("research-report");
    expect(plan.source).toEqual({ file: dir + "research-report.yaml", format: "yaml", text: read("research-report.yaml") });
    expect(plan.topo).toEqual([0, 1, 2, 3, 4]);
    expect(plan.concurrency).toBe(8);
    expect(plan.timeoutMs).toBe(30 * 60_000);
    expect(plan.budget).toEqual({ tokens: 400000, usd: 2 });
    expect(plan.limits).toEqual({ llm: { concurrency: 4, rpm: 60, tpm: 90000 } });
    expect(plan.inputsSchema).toEqual({
      type: "object",
      properties: { topic: { type: "string" }, depth: { type: "integer", default: 5 } },
      required: ["topic"],
    });
    const [research, , factCheck, draft, verify] = plan.stages;
    expect(research?.spec).toMatchObject({ kind: "agent", agent: "researcher", output: { required: ["sources"] } });
    expect(research?.limit).toBe("llm"); // from its agent
    expect(research?.retry).toEqual({ attempts: 3, backoff: "exponential", delayMs: 1000, maxDelayMs: 30_000, jitter: "full" });
    expect(research?.timeoutMs).toBe(120_000);
    expect(research?.dependents).toEqual([1, 2]);
    expect(factCheck?.forEach?.source).toBe("research.sources");
    expect(factCheck?.as).toBe("source");
    expect(factCheck?.itemConcurrency).toBe(3);
    expect(factCheck?.reads).toEqual(["research"]);
    expect(draft?.itemConcurrency).toBe(Infinity);
    expect(verify?.reads).toEqual(["draft", "fact_check", "verify"]);
    expect(verify?.routes.map((r) => [r.when.source, r.goto, r.backward, r.max])).toEqual([
      ["$count(fact_check[verified = false]) / $count(fact_check) > 0.2", 0, true, 2],
      ["verify.score < 0.8", 3, true, 1],
    ]);
    expect(verify?.routes[1]?.with?.evaluate({})).toEqual({ strict: true });
    expect(plan.output?.roots).toEqual(["draft", "verify"]);
  });

  it("is deeply frozen", () => {
    const plan = loadPlanFile(dir + "research-report.yaml");
    expect(Object.isFrozen(plan)).toBe(true);
    expect(Object.isFrozen(plan.stages[0]?.retry)).toBe(true);
    expect(Object.isFrozen(plan.inputsSchema.properties)).toBe(true);
    expect(Object.isFrozen(plan.agents.researcher)).toBe(true);
    expect(() => (plan.stageIndex as Map<string, number>).set("x", 9)).toThrow(TypeError);
    expect(plan.stageIndex.get("draft")).toBe(3);
  });
});

describe("the plan hash", () => {
  it("ignores key order, comments, spacing and YAML vs JSON", () => {
    const hash = loadPlanFile(dir + "research-report.yaml").hash;
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(loadPlanFile(dir + "research-report-reordered.yaml").hash).toBe(hash);
    expect(loadPlanFile(dir + "research-report.json").hash).toBe(hash);
    expect(compileSource(read("research-report.yaml"), { format: "yaml", baseDir: "/elsewhere" }).hash).toBe(hash);
  });

  it("changes when the template changes", () => {
    const text = read("research-report.yaml");
    const hash = yaml(text).hash;
    expect(yaml(text.replace("Score this draft:", "Grade this draft:")).hash).not.toBe(hash);
    expect(yaml(text.replace("max: 2 ", "max: 3 ")).hash).not.toBe(hash);
  });
});

describe("dependency inference from the expression AST", () => {
  const head = "inputs:\n  q: { type: string }\n";
  const plan = stages(
    [
      "  research:\n    run: ./r.ts",
      "  fact_check:\n    run: ./f.ts",
      "  analyze:\n    run: ./a.ts",
      "  filtered:\n    value: \"fact_check[verified = false]\"",
      "  counted:\n    value: \"$count(fact_check[url = 'research'])\"",
      "  mapped:\n    value: \"$map(research.sources, function($s) { $s.url & analyze.summary })\"",
      "  built:\n    value: \"{ 'a': analyze.summary, 'n': $count(research) }\"",
      "  rooted:\n    value: \"research.sources[url = $$.analyze.url]\"",
      "  literal:\n    value: \"'research' & \\\"analyze\\\" & inputs.q\"",
      "  relative:\n    value: \"research.sources{url: analyze}\"",
      "  prompt_reads:\n    run: ./p.ts\n    input: { text: \"{{ research.sources }} {{ $count(fact_check) }}\", n: 3 }",
      "  route_reads:\n    run: ./x.ts\n    routes:\n      - when: \"analyze.score < 0.5\"\n        goto: research\n        with: { hint: \"{{ built.a }}\" }",
      "  needs_only:\n    run: ./n.ts\n    needs: [literal, relative]",
      "  conditional:\n    run: ./c.ts\n    if: \"inputs.q = 'x' and counted > 0\"\n    for_each: \"mapped\"",
    ].join("\n") + "\n",
    head,
  );

  it("counts only names read from the root scope", () => {
    expect(deps(plan)).toEqual({
      research: [],
      fact_check: [],
      analyze: [],
      filtered: ["fact_check"],
      counted: ["fact_check"],
      mapped: ["research", "analyze"],
      built: ["research", "analyze"],
      rooted: ["research", "analyze"],
      literal: [],
      relative: ["research"],
      prompt_reads: ["research", "fact_check"],
      route_reads: ["analyze", "built"],
      needs_only: ["literal", "relative"],
      conditional: ["counted", "mapped"],
    });
  });

  it("keeps reads (for the scope) apart from needs, and includes the stage itself", () => {
    const byId = (id: string) => plan.stages[plan.stageIndex.get(id) as number];
    expect(byId("needs_only")?.reads).toEqual([]);
    expect(byId("route_reads")?.reads).toEqual(["analyze", "built"]);
    expect(byId("route_reads")?.routes[0]).toMatchObject({ goto: 0, backward: true }); // research is upstream through built
    const self = stages("  a:\n    run: ./a.ts\n    routes:\n      - when: \"a.retry = true\"\n        goto: a\n");
    expect(self.stages[0]?.deps).toEqual([]);
    expect(self.stages[0]?.reads).toEqual(["a"]);
    expect(self.stages[0]?.routes[0]).toMatchObject({ goto: 0, backward: true, max: 3 });
  });
});

describe("compiling", () => {
  it("applies built-in defaults", () => {
    const s = stages("  a:\n    run: ./mods/a.ts#go\n  b:\n    value: a\n    routes:\n      - when: \"b\"\n        fail: stop\n").stages;
    expect(s[0]).toMatchObject({
      spec: { kind: "run", module: "./mods/a.ts", export: "go", baseDir: "/base" },
      as: "item",
      itemConcurrency: Infinity,
      retry: { attempts: 1, backoff: "exponential", delayMs: 1000, maxDelayMs: 30_000, jitter: "full" },
      onError: { kind: "fail" },
      isFallback: false,
      routes: [],
    });
    expect(s[0]?.timeoutMs).toBeUndefined();
    expect(s[1]?.routes[0]).toMatchObject({ fail: "stop", max: Infinity });
    expect(s[1]?.routes[0]?.goto).toBeUndefined();
  });

  it("merges defaults.retry with a stage's retry field by field", () => {
    const plan = stages("  a:\n    run: ./a.ts\n    retry: { attempts: 5, max_delay: 1m }\n  b:\n    run: ./b.ts\n    on_error: continue\n    timeout: 1m30s\n", "defaults:\n  retry: { attempts: 2, delay: 500ms, jitter: none }\n  timeout: 10s\n  on_error: escalate\n");
    expect(plan.stages[0]?.retry).toEqual({ attempts: 5, backoff: "exponential", delayMs: 500, maxDelayMs: 60_000, jitter: "none" });
    expect(plan.stages[0]?.timeoutMs).toBe(10_000);
    expect(plan.stages[0]?.onError).toEqual({ kind: "escalate" });
    expect(plan.stages[1]?.timeoutMs).toBe(90_000);
    expect(plan.stages[1]?.onError).toEqual({ kind: "continue" });
  });

  it("compiles every stage kind, fallbacks and forward routes", () => {
    const plan = loadPlanFile(dir + "all-features.yaml");
    const byId = (id: string) => plan.stages[plan.stageIndex.get(id) as number];
    expect(plan.stages.map((s) => s.spec.kind)).toEqual(["run", "value", "agent", "http", "run", "approval", "pipeline", "value", "value"]);
    expect(byId("publish")?.onError).toEqual({ kind: "fallback", stage: plan.stageIndex.get("save_locally") });
    expect(byId("save_locally")?.isFallback).toBe(true);
    expect(byId("sub")?.spec).toMatchObject({ kind: "pipeline", path: dir + "child.yaml" });
    expect(byId("check")?.routes.map((r) => [r.goto, r.backward, r.max, r.fail, r.escalate])).toEqual([
      [0, true, 3, undefined, undefined],
      [plan.stageIndex.get("finish"), false, 3, undefined, undefined],
      [undefined, undefined, Infinity, "nothing to publish", undefined],
      [undefined, undefined, Infinity, undefined, "look at this"],
    ]);
    const d = describePlan(plan);
    // save_locally is publish's fallback: it comes after publish (issue 15.7), not beside it.
    expect(d.levels).toEqual([["fetch", "sub"], ["extract"], ["summarize"], ["publish"], ["save_locally", "review"], ["check"], ["finish"]]);
    expect(d.critical_path).toEqual(["fetch", "extract", "summarize", "publish", "review", "check", "finish"]);
  });

  it("evaluates compiled value templates and expressions", async () => {
    const plan = loadPlanFile(dir + "all-features.yaml");
    const fetch = plan.stages[0];
    expect(fetch?.input?.evaluate({ inputs: { topic: "tides", depth: 3 } })).toEqual({ topic: "tides", depth: 3 });
    const publish = plan.stages[3];
    const http = publish?.spec.kind === "http" ? publish.spec.http : undefined;
    expect(http?.evaluate({ inputs: { topic: "tides" }, summarize: ["s1"] })).toEqual({
      url: "https://example.test/publish/tides",
      method: "POST",
      headers: { "content-type": "application/json" },
      body: { summaries: ["s1"] },
      timeout: "10s",
    });
    expect(await plan.output?.evaluate({ finish: { n: 1 }, inputs: { topic: "t" } })).toEqual({ summary: { n: 1 }, topic: "t" });
  });

  // How long this takes is measured by bench/micro.mjs (`npm run bench:micro`), not asserted here.
  it("compiles a 200-stage template: every stage, its inferred deps, retry and routes", () => {
    const n = 200;
    const lines = ["baton: 1", "name: big", "inputs:", "  topic: { type: string }", "agents:", "  w: { model: 'mock:echo' }", "stages:"];
    for (let i = 0; i < n; i++) {
      const reads = i === 0 ? "inputs.topic" : `s${i - 1}.text & s${i >> 1}.text`;
      if (i % 3 === 0) lines.push(`  s${i}:`, "    agent: w", `    prompt: "Step ${i}: {{ ${reads} }} and {{ inputs.topic }}"`);
      else if (i % 3 === 1) lines.push(`  s${i}:`, `    value: "${reads}"`, "    retry: { attempts: 2, delay: 1s }");
      else lines.push(`  s${i}:`, `    run: ./x.ts#f${i}`, `    input: { a: "{{ ${reads} }}" }`, "    routes:", `      - when: "s${i}.ok = false"`, `        goto: s${i - 1}`);
    }
    const plan = yaml(lines.join("\n"));
    expect(plan.stages).toHaveLength(n);
    const d = deps(plan);
    for (let i = 0; i < n; i++) {
      expect(d[`s${i}`], `deps of s${i}`).toEqual(i === 0 ? [] : [...new Set([`s${i >> 1}`, `s${i - 1}`])].sort((x, y) => Number(x.slice(1)) - Number(y.slice(1))));
      const st = plan.stages[i]!;
      expect(st.spec.kind).toBe(["agent", "value", "run"][i % 3]);
      if (i % 3 === 1) expect(st.retry.attempts).toBe(2);
      if (i % 3 === 2) expect(st.routes.map((r) => [r.goto, r.backward])).toEqual([[i - 1, true]]);
    }
    // deps before dependents
    const pos = new Map(plan.topo.map((idx, k) => [idx, k]));
    expect(plan.topo).toHaveLength(n);
    for (const st of plan.stages) for (const dep of st.deps) expect(pos.get(dep)!).toBeLessThan(pos.get(st.idx)!);
  });
});
