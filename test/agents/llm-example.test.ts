/**
 * examples/research-report-llm.yaml end to end through the CLI, against the fake OpenAI-compatible
 * server: a 429 storm during fact-checking, a malformed draft that the writer repairs, a route back
 * to research when too many citations fail, and token/cost totals in the trace.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeOpenAI, type FakeOpenAI, type FakeRequest } from "../../src/testing/index.js";

const CLI = resolve("dist/cli/main.js");
let fake: FakeOpenAI;

const sources = (strict: boolean) =>
  Array.from({ length: 5 }, (_, i) => ({
    url: strict || i % 3 !== 1 ? `https://journals.example/tides/${i}` : `https://blog.example/tides/${i}`,
    claim: `tides finding ${i}`,
  }));

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  fake = await startFakeOpenAI({
    rules: [
      { match: "Use only primary", reply: { content: { sources: sources(true) } } },
      { match: /Find \d+ sources/, reply: { content: { sources: sources(false) } } },
      { match: "Analyze these sources", reply: { content: { summary: "The sources agree that tides follow the moon.", themes: ["moon", "gravity"] } } },
      // A 429 storm: the first six fact-check calls are turned away with Retry-After: 1.
      { match: "Check this citation", times: 6, reply: { status: 429, retryAfter: 1, content: "Rate limit reached for requests" } },
      { match: "Check this citation", reply: (req: FakeRequest) => ({ content: { verified: req.prompt.includes("journals."), note: "checked" } }) },
      // The writer's first answer is prose, not the JSON asked for; the repair attempt is valid.
      {
        match: "Write a short report",
        reply: [
          { content: "Sure! Here is a lovely report about tides, written in prose as you wished." },
          { content: { title: "Tides", text: "Tides follow the moon [1].", citations: ["https://journals.example/tides/0"] } },
        ],
      },
      { match: "Score this draft", reply: { content: { score: 0.9, feedback: "Clear and accurate." } } },
    ],
  });
});
afterAll(async () => {
  await fake.close();
});

function baton(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => res({ code, stdout, stderr }));
  });
}

describe("examples/research-report-llm.yaml against an OpenAI-compatible server", () => {
  it("completes through a 429 storm and a repaired reply, routing back once to research", async () => {
    const db = join(mkdtempSync(join(tmpdir(), "baton-llm-")), "llm.db");
    const env = { REPORT_MODEL: "openai-compatible:gpt-4o-mini", REPORT_BASE_URL: fake.url, BATON_DB: db };
    const r = await baton(["run", "examples/research-report-llm.yaml", "--input", "topic=tides", "--json"], env);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.output).toEqual({ topic: "tides", title: "Tides", report: "Tides follow the moon [1].", citations: ["https://journals.example/tides/0"], score: 0.9 });

    const t = await baton(["trace", result.id, "--json"], env);
    const trace = JSON.parse(t.stdout);
    // research ran twice: 2 of 5 citations failed on the first list (40% > 20%).
    expect(trace.stages.filter((s: { stage: string; item?: number }) => s.stage === "research").map((s: { visit: number }) => s.visit)).toEqual([1, 2]);
    const kinds = trace.errors.map((e: { kind: string }) => e.kind);
    expect(kinds.filter((k: string) => k === "rate_limited")).toHaveLength(6);
    expect(kinds.filter((k: string) => k === "malformed_output")).toHaveLength(1);
    expect(trace.errors.every((e: { recovered: boolean }) => e.recovered)).toBe(true);
    const rateLimited = trace.errors.find((e: { kind: string }) => e.kind === "rate_limited");
    expect(rateLimited.retryable).toBe(true);
    // Every call's tokens are counted; gpt-4o-mini has a price, so the run has a cost.
    expect(trace.run.tokens.input).toBeGreaterThan(0);
    expect(trace.run.tokens.output).toBeGreaterThan(0);
    expect(trace.run.cost_usd).toBeGreaterThan(0);
    const draft = trace.stages.find((s: { stage: string }) => s.stage === "draft");
    expect(draft.model).toBe("openai-compatible:gpt-4o-mini");
    expect(draft.attempts.map((a: { status: string }) => a.status)).toEqual(["failed", "succeeded"]);
    // The repair request showed the model its prose reply.
    const repair = fake.requests.filter((q) => q.prompt.includes("Write a short report"))[1]!;
    expect(repair.messages.some((m) => m.role === "assistant" && m.content.startsWith("Sure! Here is a lovely report"))).toBe(true);
    // A local OpenAI-compatible server needs no key (issue 15.6): none is required, none is sent.
    expect(fake.requests.every((q) => q.headers.authorization === undefined)).toBe(true);
  }, 60_000);
});
