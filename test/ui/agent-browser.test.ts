/**
 * Agent stages in the web UI, in headless Chromium: a real run whose agent (the fake OpenAI
 * server of baton/testing) stops before two tool calls that need approval — both shown with
 * tool, message and arguments, one approved and one rejected with the buttons, the run goes on;
 * the turns and tool calls of the finished run in the stage panel; a turn's text streamed by
 * `delta` events; and a hand-made trace of 10 turns × 5 calls rendered by the client's panel.
 * Screenshots go to test-results/ui/.
 */
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeOpenAI, type FakeOpenAI } from "../../src/testing/index.js";
import type { Trace, TraceStage, TraceToolCall, TraceTurn } from "../../src/trace/types.js";
import { FINAL, STREAMED, startPublishFake, writePublishTemplate, writeStreamTemplate } from "./agent-fixture.js";
import { ensureBuilt, launch, SHOTS } from "./browser.js";
import { panelPage, renderPanel } from "./client-bundle.js";
import { req, setup, startFile, until, type Env } from "./helpers.js";

let env: Env;
let ctx: BrowserContext;
let fake: FakeOpenAI;
let template: string;

beforeAll(async () => {
  ensureBuilt();
  ctx = await launch();
  fake = await startPublishFake();
  template = writePublishTemplate(fake.url);
  env = await setup();
}, 60_000);

afterAll(async () => {
  await ctx?.close();
  await env?.close();
  await fake?.close();
});

/** A page that records script errors and console errors; `before` runs before it navigates (routes). */
async function open(path: string, before?: (page: Page) => Promise<unknown>): Promise<{ page: Page; problems: string[] }> {
  const page = await ctx.newPage();
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  await before?.(page);
  await page.goto(new URL(path, env.ui.url).href);
  return { page, problems };
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

async function waitingRun(): Promise<string> {
  const h = await startFile(env.runtime, template);
  expect((await h.done).status).toBe("waiting");
  return h.id;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("agent stages in the web UI", () => {
  it("a run waiting on two tool calls shows both (tool, message, args); a 400 from the runtime shows in the form; Approve one, Reject the other: the run goes on", async () => {
    const id = await waitingRun();
    // The first approve the page sends loses its call id on the way, so the runtime answers 400 (two calls wait).
    let strip = true;
    const { page, problems } = await open(`/runs/${id}`, (p) => p.route("**/api/runs/*/approve", async (route) => {
      if (!strip) return route.continue();
      strip = false;
      const body = JSON.parse(route.request().postData() ?? "{}") as Record<string, unknown>;
      delete body["call"];
      await route.continue({ postData: JSON.stringify(body) });
    }));
    const group = page.locator('.banners .call-approvals[data-stage="report"]');
    await group.waitFor();
    expect(await group.locator(".call-approvals-title").textContent()).toMatch(/^report #1: 2 tool calls wait for approval/);
    const forms = group.locator(".call-approval");
    expect(await forms.evaluateAll((els) => els.map((e) => e.getAttribute("data-call")))).toEqual(["p1", "p2"]);
    const p1 = group.locator('.call-approval[data-call="p1"]');
    const p2 = group.locator('.call-approval[data-call="p2"]');
    expect(await p1.locator(".call-tool").textContent()).toBe("publish");
    expect(await p1.locator(".approval-message").textContent()).toBe("Publish Tides?");
    expect(await p1.locator('.json[data-label="args"]').textContent()).toContain('"Tides"');
    expect(await p2.locator(".call-tool").textContent()).toBe("publish");
    expect(await p2.locator(".approval-message").textContent()).toBe("Publish Moons?");
    expect(await p2.locator('.json[data-label="args"]').textContent()).toContain('"Moons"');
    expect(await page.locator('.node[data-stage="report"]').getAttribute("data-status")).toBe("waiting");
    await shot(page, "agent-waiting-calls");

    await p1.locator('[data-action="approve"]').click();
    await until(async () => ((await p1.locator(".form-error").textContent()) ?? "") !== "", 5000, "the error to show");
    expect(await p1.locator(".form-error").textContent()).toMatch(/^stage 'report' has 2 tool calls waiting for approval: .*p1 \(publish/);
    expect(await p1.locator('[data-action="approve"]').isEnabled()).toBe(true);
    expect((await env.store.load(id)).events.filter((e) => e.type === "approval")).toEqual([]);

    // Approve p1 for real: its form goes, p2's stays, the run still waits.
    await p1.locator('[data-action="approve"]').click();
    await until(async () => (await forms.count()) === 1, 8000, "p1's form to go");
    expect(await forms.first().getAttribute("data-call")).toBe("p2");
    expect(await page.locator("[data-run-status]").getAttribute("data-run-status")).toBe("waiting");

    // The stage panel shows the turn with both calls, and the form of the call that still waits.
    await page.locator('.node[data-stage="report"]').click();
    const panel = page.locator('.panel-body[data-entry="report#1"]');
    await panel.waitFor();
    const p2InPanel = panel.locator('.call-approval[data-call="p2"]');
    await p2InPanel.waitFor();
    expect(await panel.locator('.call-approval[data-call="p1"]').count()).toBe(0);
    expect(await panel.locator('.turns-section .tool-call[data-call="p2"]').getAttribute("data-status")).toBe("waiting");
    await p2InPanel.locator("input.approve-comment").fill("not now");
    await p2InPanel.locator('[data-action="reject"]').click();

    await page.locator('[data-run-status="succeeded"]').waitFor({ timeout: 10_000 });
    await until(async () => (await page.locator(".call-approval").count()) === 0, 5000, "the forms to go");
    expect(await page.locator(".output-card .json").textContent()).toContain(FINAL);
    const answers = (await env.store.load(id)).events.filter((e) => e.type === "approval").map((e) => [e.call, e.approved, e.comment]);
    expect(answers).toEqual([["p1", true, undefined], ["p2", false, "not now"]]);
    await shot(page, "agent-calls-answered");
    // Only the 400 provoked above.
    expect(problems).toEqual(["console: Failed to load resource: the server responded with a status of 400 (Bad Request)"]);
    await page.close();
  });

  it("a finished tool-using run: the panel shows its turns (model, tokens, finish reason, cost, text) and each call (tool, args, status, attempts, output or error, replayed)", async () => {
    const id = await waitingRun();
    expect((await req(env.ui, `/api/runs/${id}/approve`, { method: "POST", body: { stage: "report", call: "p1" } })).status).toBe(200);
    expect((await req(env.ui, `/api/runs/${id}/reject`, { method: "POST", body: { stage: "report", call: "p2", comment: "later" } })).status).toBe(200);
    await until(async () => (await env.store.get(id))?.status === "succeeded", 8000, "the run to finish");

    const { page, problems } = await open(`/runs/${id}?sel=${encodeURIComponent("report#1")}`);
    const panel = page.locator('.panel-body[data-entry="report#1"]');
    await panel.waitFor();
    const section = panel.locator(".turns-section");
    expect(await section.locator("h3").textContent()).toBe("Turns (2)");
    expect(await section.locator(".section-summary").textContent()).toBe("2 turns · 2 tool calls · 200 in / 28 out");
    const turns = section.locator(".turn");
    expect(await turns.evaluateAll((els) => els.map((e) => e.getAttribute("data-turn")))).toEqual(["1", "2"]);

    const t1 = section.locator('.turn[data-turn="1"]');
    expect(await t1.locator(".turn-model").textContent()).toBe("openai:gpt-4o-mini");
    expect(await t1.locator(".turn-tokens").textContent()).toBe("80 in / 20 out");
    expect(await t1.locator(".chip.finish").textContent()).toBe("tool_calls");
    expect(await t1.locator(".turn-cost").textContent()).toBe("$0.000024");
    expect(await t1.locator(".turn-head .chip.replayed").count()).toBe(1); // read back when the run went on after the approvals
    const c1 = t1.locator('.tool-call[data-call="p1"]');
    expect(await c1.getAttribute("data-status")).toBe("succeeded");
    expect(await c1.locator(".call-tool").textContent()).toBe("publish");
    expect(await c1.locator(".call-meta").textContent()).toMatch(/^1 attempt · \d+ ms$/);
    expect(await c1.locator('.json[data-label="args"]').textContent()).toContain('"Tides"');
    expect(await c1.locator('.json[data-label="call output"]').textContent()).toContain("ok: true");
    expect(await c1.locator(".call-approval-line").textContent()).toBe("approval: “Publish Tides?” approved by web ui");
    const c2 = t1.locator('.tool-call[data-call="p2"]');
    expect(await c2.getAttribute("data-status")).toBe("declined");
    expect(await c2.locator(".call-error").textContent()).toBe("tool the user declined this call: later");
    expect(await c2.locator(".call-approval-line").textContent()).toBe("approval: “Publish Moons?” rejected by web ui — “later”");

    const t2 = section.locator('.turn[data-turn="2"]');
    expect(await t2.locator(".chip.finish").textContent()).toBe("stop");
    expect(await t2.locator(".turn-text").textContent()).toBe(FINAL);
    expect(await t2.locator(".tool-call").count()).toBe(0);
    expect(await section.locator(".turn-live").count()).toBe(0);
    // The approvals are decisions of the stage, naming the call they answered.
    expect(await panel.locator('.decision[data-kind="approval"] .decision-call').allTextContents()).toEqual(["call p1", "call p2"]);
    await shot(page, "agent-turns");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("live text: each delta replaces the running turn's text under 'turn N — streaming…'; a turn already in the trace gets none; it goes once the turn is recorded", async () => {
    const id = await waitingRun(); // turn 1 is recorded; turn 2 comes once both calls are answered
    const delta = (d: Record<string, unknown>): string => `event: delta\ndata: ${JSON.stringify(d)}\n\n`;
    // The page's event stream: first two hand-made streams of deltas (each ends; the browser
    // reconnects after `retry:`), then the real one. Each waits for the test to let it through.
    const bodies = [
      delta({ stage: "report", visit: 1, turn: 1, text: "stale: turn 1 is in the trace" }) + delta({ stage: "report", visit: 1, turn: 2, text: "Publish" }),
      delta({ stage: "report", visit: 1, turn: 2, text: "Publishing Tides" }) + delta({ stage: "other", visit: 1, turn: 1, text: "another stage" }),
    ];
    const gates = [deferred(), deferred()];
    let n = 0;
    const { page, problems } = await open(`/runs/${id}?sel=${encodeURIComponent("report#1")}`, (p) => p.route("**/api/runs/*/stream*", async (route) => {
      const i = n++;
      if (i > 0) await gates[Math.min(i, bodies.length) - 1]!.promise;
      if (i < bodies.length) await route.fulfill({ status: 200, headers: { "Content-Type": "text/event-stream", "Cache-Control": "no-store" }, body: `retry: 50\n\n${bodies[i]}` });
      else await route.continue();
    }));
    const panel = page.locator('.panel-body[data-entry="report#1"]');
    const live = panel.locator(".turns-section .turn-live");
    await panel.locator('.turn-live[data-turn="2"]').waitFor();
    expect(await live.count()).toBe(1);
    expect(await live.locator(".turn-head").textContent()).toBe("turn 2 — streaming…");
    expect(await live.locator(".live-text").textContent()).toBe("Publish");
    expect(await panel.locator(".turn").count()).toBe(1); // turn 1, from the trace

    gates[0]!.resolve();
    await until(async () => (await live.locator(".live-text").textContent()) === "Publishing Tides", 5000, "the second delta");
    expect(await live.count()).toBe(1);
    expect(await live.getAttribute("data-turn")).toBe("2");
    await shot(page, "agent-live-turn");

    // The real stream from here on: answer both calls; turn 2 is recorded and replaces the live text.
    gates[1]!.resolve();
    await req(env.ui, `/api/runs/${id}/approve`, { method: "POST", body: { stage: "report", call: "p1" } });
    await req(env.ui, `/api/runs/${id}/approve`, { method: "POST", body: { stage: "report", call: "p2" } });
    await page.locator('[data-run-status="succeeded"]').waitFor({ timeout: 10_000 });
    await panel.locator('.turn[data-turn="2"]').waitFor();
    expect(await panel.locator('.turn[data-turn="2"] .turn-text').textContent()).toBe(FINAL);
    expect(await panel.locator(".turn-live").count()).toBe(0);
    expect(problems).toEqual([]);
    await page.close();
  });

  it("live text end to end: the model's answer appears under 'turn 1 — streaming…' as the fake streams it, then the recorded turn replaces it", async () => {
    const slow = await startFakeOpenAI({ rules: [{ reply: { content: STREAMED, chunkDelayMs: 1000 } }] });
    try {
      const h = await startFile(env.runtime, writeStreamTemplate(slow.url));
      expect((await h.done).status).toBe("waiting"); // at the gate: the page follows the run before the agent starts
      const { page, problems } = await open(`/runs/${h.id}?sel=${encodeURIComponent("stage:report")}`);
      await page.locator(".live-dot").waitFor();
      expect((await req(env.ui, `/api/runs/${h.id}/approve`, { method: "POST", body: { stage: "gate" } })).status).toBe(200);
      const live = page.locator('.panel-body[data-entry="report#1"] .turns-section .turn-live[data-turn="1"]');
      await live.waitFor({ timeout: 10_000 });
      expect(await live.locator(".turn-head").textContent()).toBe("turn 1 — streaming…");
      const text = (await live.locator(".live-text").textContent()) ?? "";
      expect(text.length).toBeGreaterThan(0);
      expect(STREAMED.startsWith(text)).toBe(true);
      await page.locator('[data-run-status="succeeded"]').waitFor({ timeout: 15_000 });
      const turn = page.locator('.panel-body[data-entry="report#1"] .turn[data-turn="1"]');
      await turn.waitFor();
      expect(await turn.locator(".turn-text").textContent()).toBe(STREAMED);
      expect(await page.locator(".turn-live").count()).toBe(0);
      expect(slow.requests[0]!.stream).toBe(true);
      expect(problems).toEqual([]);
      await page.close();
    } finally {
      await slow.close();
    }
  });

  it("a hand-made trace of 10 turns × 5 calls stays inside the panel: turns scroll in their section, long text collapses, every call has its badges; steps and a streaming turn show", async () => {
    const page = await ctx.newPage();
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    await panelPage(page);
    const at = (ms: number): string => new Date(Date.UTC(2026, 0, 1, 8, 0, 0, ms)).toISOString();
    const long = Array.from({ length: 60 }, (_, i) => `Line ${i + 1} of a long answer about tides, moons and the harbour at dawn.`).join("\n");
    const statuses = ["succeeded", "failed", "declined", "succeeded", "waiting"] as const;
    const turns = Array.from({ length: 10 }, (_, t): TraceTurn => ({
      n: t + 1, started_at: at(t * 1000), ended_at: at(t * 1000 + 400), duration_ms: 400, model: "openai:gpt-4o-mini",
      tokens: { input: 1000 + t, output: 50 + t }, cost_usd: 0.0012, finish_reason: t === 9 ? "stop" : "tool_calls",
      ...(t === 0 ? { replayed: true as const } : {}), ...(t === 2 ? { text: long } : t === 9 ? { text: "Done." } : {}), attempt: 1,
      tool_calls: t === 9 ? [] : statuses.map((status, c): TraceToolCall => ({
        id: `call_${t}_${c}_with_a_rather_long_identifier_from_the_provider`, tool: c === 3 ? "mcp.files.read_a_file_with_an_extremely_long_tool_name_indeed" : "search",
        args: { query: `q${t}.${c} ${"x".repeat(c === 1 ? 400 : 10)}`, page: c }, status,
        ...(status === "succeeded" ? { output: { results: [`https://example.org/${"deep/".repeat(30)}${t}/${c}`] } } : {}),
        ...(status === "failed" ? { error: { kind: "tool", message: "503 from the search service after 3 attempts" } } : {}),
        ...(status === "declined" ? { error: { kind: "tool", message: "the user declined this call" }, approval: { message: "Search?", approved: false, by: "ana" } } : {}),
        ...(status === "waiting" ? { approval: { message: "Search again?" } } : {}),
        attempts: status === "failed" ? 3 : status === "succeeded" ? 1 : 0,
        started_at: status === "waiting" ? null : at(t * 1000 + 400), ended_at: status === "waiting" ? null : at(t * 1000 + 450), duration_ms: status === "waiting" ? null : 50,
        ...(t === 0 && c === 0 ? { replayed: true as const } : {}),
      })),
    }));
    const entry: TraceStage = {
      id: "research#1", stage: "research", visit: 1, status: "running", started_at: at(0), ended_at: null, duration_ms: null, queued_ms: 0,
      input: null, output: null, attempts: [{ n: 1, started_at: at(0), ended_at: null, status: "running" }], model: "openai:gpt-4o-mini",
      tokens: { input: 10045, output: 545 }, turns,
      steps: [
        { name: "fetch", status: "succeeded", started_at: at(10), ended_at: at(20), duration_ms: 10, replayed: true, attempt: 1 },
        { name: "extract", status: "succeeded", started_at: at(20), ended_at: at(45), duration_ms: 25, attempt: 1 },
      ],
    };
    const trace: Trace = {
      run: { id: "r1", pipeline: "p", plan_hash: "h", status: "running", inputs: {}, output: null, started_at: at(0), ended_at: null, duration_ms: null, tokens: { input: 0, output: 0 }, cost_usd: 0 },
      stages: [entry], decisions: [], errors: [], assembly: { expression: null, read: [] },
    };
    await renderPanel(page, trace, 0, { agent: true, live: { turn: 11, text: "Writing the report…" } });
    const panel = page.locator("#panel .panel-body");
    await panel.waitFor();
    expect(await panel.locator(".turn").count()).toBe(10);
    expect(await panel.locator(".tool-call").count()).toBe(45);
    expect(await panel.locator('.tool-call[data-status="waiting"] .call-status').first().textContent()).toBe("waiting");
    expect(await panel.locator('.tool-call[data-status="failed"] .call-error').first().textContent()).toBe("tool 503 from the search service after 3 attempts");
    expect(await panel.locator('.tool-call[data-status="failed"] .call-meta').first().textContent()).toBe("3 attempts · 50 ms");
    expect(await panel.locator('.tool-call[data-status="waiting"] .call-meta').first().textContent()).toBe("0 attempts · waiting for approval");
    expect(await panel.locator(".chip.replayed").count()).toBe(3); // turn 1, its first call, step fetch
    expect(await panel.locator(".steps .step").evaluateAll((els) => els.map((e) => e.getAttribute("data-step")))).toEqual(["fetch", "extract"]);
    expect(await panel.locator(".turn-live .turn-head").textContent()).toBe("turn 11 — streaming…");

    // Sizes: the turns scroll inside their section, nothing overflows the panel sideways.
    const box = await panel.locator(".turns-box").evaluate((el) => ({ client: el.clientHeight, scroll: el.scrollHeight }));
    expect(box.client).toBeLessThanOrEqual(480);
    expect(box.scroll).toBeGreaterThan(box.client * 3);
    const wide = await page.evaluate(() => {
      const side = document.querySelector(".side-col")!;
      const body = document.querySelector("#panel .panel-body")!;
      return { side: [side.scrollWidth, side.clientWidth], body: [body.scrollWidth, body.clientWidth] };
    });
    expect(wide.side[0]).toBeLessThanOrEqual(wide.side[1]!);
    expect(wide.body[0]).toBeLessThanOrEqual(wide.body[1]!);

    // The long text starts collapsed; "show all" opens it.
    const text = panel.locator('.turn[data-turn="3"] .turn-text');
    expect(await text.evaluate((el) => el.classList.contains("collapsed") && el.scrollHeight > el.clientHeight)).toBe(true);
    await panel.locator('.turn[data-turn="3"] .turn-more').click();
    expect(await text.evaluate((el) => el.classList.contains("collapsed") || el.scrollHeight > el.clientHeight + 1)).toBe(false);
    expect(await panel.locator('.turn[data-turn="10"] .turn-text').evaluate((el) => el.classList.contains("collapsed"))).toBe(false);
    await page.screenshot({ path: join(SHOTS, "agent-panel-10x5.png"), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });
});
