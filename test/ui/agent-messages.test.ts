/**
 * The messages each agent turn sent to the model, in the UI: `GET /api/runs/:id/messages/:ref`
 * over real HTTP (a turn's `messages_ref` from the trace; unknown ref 404, malformed ref 400,
 * the token like every other route), and the stage panel's "messages" toggle in headless
 * Chromium on a real finished run (the fake OpenAI server of baton/testing: two turns, one
 * tool call): user prompt, the assistant's tool call, the tool's result; a big answer scrolls
 * inside its box; a failed fetch shows its error and opening again retries.
 * Screenshots go to test-results/ui/.
 */
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FakeOpenAI } from "../../src/testing/index.js";
import { buildTrace } from "../../src/trace/index.js";
import type { Trace, TraceTurn } from "../../src/trace/types.js";
import { FINAL, LOOKUP_FINAL, LOOKUP_PROMPT, startLookupFake, startPublishFake, writeLookupTemplate, writePublishTemplate } from "./agent-fixture.js";
import { ensureBuilt, launch, SHOTS } from "./browser.js";
import { APPROVE, req, setup, startFile, type Env } from "./helpers.js";

let env: Env;
let fake: FakeOpenAI;
let template: string;

beforeAll(async () => {
  fake = await startLookupFake();
  template = writeLookupTemplate(fake.url);
  env = await setup();
});
afterAll(async () => {
  await env?.close();
  await fake?.close();
});

/** A finished run of the lookup agent: its id, its turns and the trace's messages (as `baton trace --messages` has them). */
async function finishedRun(e: Env = env): Promise<{ id: string; turns: readonly TraceTurn[]; messages: Record<string, unknown> }> {
  const h = await startFile(e.runtime, template);
  expect((await h.done).status).toBe("succeeded");
  const trace: Trace = buildTrace((await e.store.load(h.id)).events, undefined, { messages: true });
  const turns = trace.stages.find((s) => s.stage === "ask")!.turns!;
  expect(turns.map((t) => [t.n, t.tool_calls.length, typeof t.messages_ref])).toEqual([[1, 1, "string"], [2, 0, "string"]]);
  return { id: h.id, turns, messages: { ...trace.messages } };
}

const TURN_2_MESSAGES = [
  { role: "user", content: LOOKUP_PROMPT },
  { role: "assistant", content: [{ type: "tool-call", toolCallId: "l1", toolName: "lookup", input: { place: "Brest" } }] },
  { role: "tool", content: [{ type: "tool-result", toolCallId: "l1", toolName: "lookup", output: { type: "json", value: { place: "Brest", high: "06:12" } } }] },
];

describe("GET /api/runs/:id/messages/:ref", () => {
  it("answers the messages of a turn's messages_ref, as the trace has them", async () => {
    const { id, turns, messages } = await finishedRun();
    const [t1, t2] = turns as readonly [TraceTurn, TraceTurn];
    const first = await req(env.ui, `/api/runs/${id}/messages/${t1.messages_ref}`);
    expect(first.status).toBe(200);
    expect(first.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(first.json).toEqual([{ role: "user", content: LOOKUP_PROMPT }]);
    const second = await req(env.ui, `/api/runs/${id}/messages/${t2.messages_ref}`);
    expect(second.status).toBe(200);
    expect(second.json).toEqual(TURN_2_MESSAGES);
    expect(second.json).toEqual(messages[t2.messages_ref!]);
    // The ref in capitals, and the run by a unique prefix of its id, as other routes take it.
    expect((await req(env.ui, `/api/runs/${id}/messages/${t2.messages_ref!.toUpperCase()}`)).json).toEqual(TURN_2_MESSAGES);
    expect((await req(env.ui, `/api/runs/${id.slice(0, 12)}/messages/${t2.messages_ref}`)).json).toEqual(TURN_2_MESSAGES);
    // HEAD like every GET route.
    expect((await req(env.ui, `/api/runs/${id}/messages/${t2.messages_ref}`, { method: "HEAD" })).status).toBe(200);
  });

  it("a ref the run does not have is a 404 saying where refs come from; so is an unknown run", async () => {
    const { id, turns } = await finishedRun();
    const other = "0".repeat(64);
    const r = await req(env.ui, `/api/runs/${id}/messages/${other}`);
    expect(r.status).toBe(404);
    expect(r.json).toEqual({ error: `run ${id} has no turn whose messages_ref is ${other} (see the turns' messages_ref in GET /api/runs/${id}/trace)` });
    // A ref of another run is not this one's: a run without agent turns has none.
    const plain = await startFile(env.runtime, APPROVE);
    await plain.done;
    const elsewhere = await req(env.ui, `/api/runs/${plain.id}/messages/${turns[0]!.messages_ref}`);
    expect(elsewhere.status).toBe(404);
    expect(elsewhere.json.error).toBe(`run ${plain.id} has no turn whose messages_ref is ${turns[0]!.messages_ref} (see the turns' messages_ref in GET /api/runs/${plain.id}/trace)`);
    const noRun = await req(env.ui, `/api/runs/no-such-run/messages/${turns[0]!.messages_ref}`);
    expect(noRun.status).toBe(404);
    expect(noRun.json.error).toBe("no run no-such-run in this store");
  });

  it("a ref that is not 64 hex characters is a 400; so is a broken %-escape; POST is a 405", async () => {
    const { id, turns } = await finishedRun();
    const ref = turns[0]!.messages_ref!;
    for (const bad of ["abc", ref.slice(1), `${ref}0`, "g".repeat(64), `${ref.slice(0, 63)}%20`, ""]) {
      const r = await req(env.ui, `/api/runs/${id}/messages/${bad}`);
      expect(r.status, bad).toBe(400);
      expect(r.json.error, bad).toMatch(/^a messages ref is the 64 hex characters of a turn's messages_ref in the trace, got '/);
    }
    const escape = await req(env.ui, `/api/runs/${id}/messages/%zz`);
    expect(escape.status).toBe(400);
    expect(escape.json.error).toBe("bad %-escape in the path segment '%zz'");
    const post = await req(env.ui, `/api/runs/${id}/messages/${ref}`, { method: "POST", body: {} });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET");
  });

  it("with a token the route requires it, like every /api route", async () => {
    const secured = await setup({ token: "s3cret" });
    try {
      const { id, turns } = await finishedRun(secured);
      const path = `/api/runs/${id}/messages/${turns[1]!.messages_ref}`;
      const denied = await req(secured.ui, path);
      expect(denied.status).toBe(401);
      expect(denied.headers.get("www-authenticate")).toBe('Bearer realm="baton"');
      expect((await req(secured.ui, `${path}?token=s3cret`)).status).toBe(401); // only the event stream takes ?token=
      const ok = await req(secured.ui, path, { token: "s3cret" });
      expect(ok.status).toBe(200);
      expect(ok.json).toEqual(TURN_2_MESSAGES);
    } finally {
      await secured.close();
    }
  });
});

describe("a turn's messages in the stage panel", () => {
  let ctx: BrowserContext;
  beforeAll(async () => {
    ensureBuilt();
    ctx = await launch();
  }, 60_000);
  afterAll(async () => {
    await ctx?.close();
  });

  /** A page that records script errors, console errors and the messages requests; `before` runs before it navigates (routes). */
  async function open(path: string, before?: (page: Page) => Promise<unknown>): Promise<{ page: Page; problems: string[]; fetches: string[] }> {
    const page = await ctx.newPage();
    const problems: string[] = [];
    const fetches: string[] = [];
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    page.on("request", (r) => {
      const m = /\/api\/runs\/[^/]+\/messages\/([^/?]+)/.exec(r.url());
      if (m) fetches.push(m[1]!);
    });
    await before?.(page);
    await page.goto(new URL(path, env.ui.url).href);
    return { page, problems, fetches };
  }

  const noSidewaysOverflow = (page: Page) => page.evaluate(() => {
    const side = document.querySelector(".side-col")!;
    const body = document.querySelector(".panel-body")!;
    return side.scrollWidth <= side.clientWidth && body.scrollWidth <= body.clientWidth;
  });

  it("a finished run with one tool call: turn 2's messages show the user prompt, the assistant's tool call and the tool's result, fetched once", async () => {
    const { id, turns } = await finishedRun();
    const { page, problems, fetches } = await open(`/runs/${id}?sel=${encodeURIComponent("ask#1")}`);
    const panel = page.locator('.panel-body[data-entry="ask#1"]');
    await panel.waitFor();
    const t2 = panel.locator('.turns-section .turn[data-turn="2"]');
    expect(await t2.locator(".turn-reply").textContent()).toBe(LOOKUP_FINAL);
    const toggle = t2.locator(".turn-messages-toggle");
    expect(await toggle.textContent()).toBe("messages");
    expect(await toggle.getAttribute("aria-expanded")).toBe("false");
    expect(await t2.locator(".turn-messages").isHidden()).toBe(true);
    expect(fetches).toEqual([]); // nothing is fetched before a toggle opens

    await toggle.click();
    const box = t2.locator('.turn-messages[data-state="loaded"]');
    await box.waitFor();
    expect(await toggle.getAttribute("aria-expanded")).toBe("true");
    expect(await toggle.textContent()).toBe("hide messages");
    expect(await box.getAttribute("data-ref")).toBe(turns[1]!.messages_ref);
    expect(await box.locator(".messages-summary").textContent()).toBe("3 messages sent to the model in turn 2");
    const rows = box.locator(".message");
    expect(await rows.evaluateAll((els) => els.map((e) => e.getAttribute("data-role")))).toEqual(["user", "assistant", "tool"]);
    expect(await rows.locator(".msg-role").allTextContents()).toEqual(["user", "assistant", "tool"]);

    const user = box.locator('.message[data-role="user"]');
    expect(await user.locator(".msg-text").textContent()).toBe(LOOKUP_PROMPT);
    const call = box.locator('.message[data-role="assistant"] .msg-call');
    expect(await call.getAttribute("data-tool")).toBe("lookup");
    expect(await call.getAttribute("data-call")).toBe("l1");
    expect(await call.locator(".call-label").textContent()).toBe("tool call");
    expect(await call.locator(".call-tool").textContent()).toBe("lookup");
    expect(await call.locator('.json[data-label="message call input"]').textContent()).toContain('"Brest"');
    const result = box.locator('.message[data-role="tool"] .msg-result');
    expect(await result.getAttribute("data-tool")).toBe("lookup");
    expect(await result.getAttribute("data-call")).toBe("l1");
    expect(await result.locator(".call-label").textContent()).toBe("tool result");
    const out = (await result.locator('.json[data-label="message tool result"]').textContent()) ?? "";
    expect(out).toContain('"Brest"');
    expect(out).toContain('"06:12"');
    expect(fetches).toEqual([turns[1]!.messages_ref]);
    expect(await noSidewaysOverflow(page)).toBe(true);
    await page.screenshot({ path: join(SHOTS, "agent-turn-messages.png"), fullPage: true });

    // Closing and opening again does not fetch again; turn 1 fetches its own.
    await toggle.click();
    expect(await t2.locator(".turn-messages").isHidden()).toBe(true);
    expect(await toggle.getAttribute("aria-expanded")).toBe("false");
    await toggle.click();
    expect(await box.isVisible()).toBe(true);
    const t1 = panel.locator('.turns-section .turn[data-turn="1"]');
    await t1.locator(".turn-messages-toggle").click();
    await t1.locator('.turn-messages[data-state="loaded"]').waitFor();
    expect(await t1.locator(".message").evaluateAll((els) => els.map((e) => e.getAttribute("data-role")))).toEqual(["user"]);
    expect(await t1.locator(".msg-text").textContent()).toBe(LOOKUP_PROMPT);
    expect(fetches).toEqual([turns[1]!.messages_ref, turns[0]!.messages_ref]);
    expect(problems).toEqual([]);
    await page.close();
  });

  it("a toggle left open stays open (not fetched again) when the panel re-renders as the run goes on", async () => {
    const publish = await startPublishFake();
    try {
      const h = await startFile(env.runtime, writePublishTemplate(publish.url));
      expect((await h.done).status).toBe("waiting"); // turn 1 asked for two calls that need approval
      const { page, problems, fetches } = await open(`/runs/${h.id}?sel=${encodeURIComponent("report#1")}`);
      const panel = page.locator('.panel-body[data-entry="report#1"]');
      const t1 = panel.locator('.turn[data-turn="1"]');
      await t1.locator(".turn-messages-toggle").click();
      await t1.locator('.turn-messages[data-state="loaded"]').waitFor();
      expect(await t1.locator(".message .msg-text").allTextContents()).toEqual(["Publish the reports"]);
      const before = await t1.elementHandle();

      expect((await req(env.ui, `/api/runs/${h.id}/approve`, { method: "POST", body: { stage: "report", call: "p1" } })).status).toBe(200);
      expect((await req(env.ui, `/api/runs/${h.id}/approve`, { method: "POST", body: { stage: "report", call: "p2" } })).status).toBe(200);
      await page.locator('[data-run-status="succeeded"]').waitFor({ timeout: 10_000 });
      await panel.locator('.turn[data-turn="2"]').waitFor();
      expect(await panel.locator('.turn[data-turn="2"] .turn-reply').textContent()).toBe(FINAL);
      expect(await before!.evaluate((el) => el.isConnected)).toBe(false); // the panel was rendered anew
      expect(await t1.locator(".turn-messages-toggle").getAttribute("aria-expanded")).toBe("true");
      await t1.locator('.turn-messages[data-state="loaded"]').waitFor();
      expect(await t1.locator(".message .msg-text").allTextContents()).toEqual(["Publish the reports"]);
      expect(await panel.locator('.turn[data-turn="2"] .turn-messages-toggle').getAttribute("aria-expanded")).toBe("false");
      expect(fetches.length).toBe(1);
      expect(problems).toEqual([]);
      await page.close();
    } finally {
      await publish.close();
    }
  });

  it("many long messages scroll inside the turn's box (long text collapsed, nothing wider than the panel); a failed fetch shows its error and opening again retries", async () => {
    const { id, turns } = await finishedRun();
    const long = Array.from({ length: 40 }, (_, i) => `Line ${i + 1} of a long system prompt about tides, moons and harbours.`).join("\n");
    const wide = "x".repeat(3000);
    const big = [
      { role: "system", content: long },
      ...Array.from({ length: 12 }, (_, i) => [
        { role: "user", content: [{ type: "text", text: `question ${i} ${wide}` }] },
        { role: "assistant", content: [{ type: "text", text: `calling ${i}` }, { type: "tool-call", toolCallId: `call_${i}_${"y".repeat(80)}`, toolName: `mcp.files.${"z".repeat(90)}`, input: { path: `/${"deep/".repeat(60)}${i}` } }] },
        { role: "tool", content: [{ type: "tool-result", toolCallId: `call_${i}`, toolName: "read", output: i === 0 ? { type: "error-text", value: "ENOENT: no such file" } : { type: "json", value: { text: wide } } }] },
      ]).flat(),
    ];
    let failFirst = true;
    const { page, problems } = await open(`/runs/${id}?sel=${encodeURIComponent("ask#1")}`, (p) => p.route("**/api/runs/*/messages/*", async (route) => {
      if (route.request().url().endsWith(turns[0]!.messages_ref!)) {
        if (failFirst) {
          failFirst = false;
          return route.fulfill({ status: 404, contentType: "application/json", body: JSON.stringify({ error: "no such messages (test)" }) });
        }
        return route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(big) });
      }
      return route.continue();
    }));
    const t1 = page.locator('.panel-body[data-entry="ask#1"] .turn[data-turn="1"]');
    await t1.waitFor();
    const toggle = t1.locator(".turn-messages-toggle");
    await toggle.click();
    await t1.locator('.turn-messages[data-state="error"]').waitFor();
    expect(await t1.locator(".turn-messages .form-error").textContent()).toBe("could not load the messages: no such messages (test)");
    await toggle.click(); // close
    await toggle.click(); // open again: fetched again
    const box = t1.locator('.turn-messages[data-state="loaded"]');
    await box.waitFor();
    expect(await box.locator(".message").count()).toBe(37);
    expect(await box.locator(".messages-summary").textContent()).toBe("37 messages sent to the model in turn 1");
    const system = box.locator('.message[data-role="system"] .msg-text');
    expect(await system.evaluate((el) => el.classList.contains("collapsed") && el.scrollHeight > el.clientHeight)).toBe(true);
    expect(await box.locator(".msg-result.msg-error .msg-text").first().textContent()).toBe("ENOENT: no such file");
    expect(await box.locator(".msg-call").count()).toBe(12);

    const size = await box.evaluate((el) => ({ client: el.clientHeight, scroll: el.scrollHeight, width: [el.scrollWidth, el.clientWidth] }));
    expect(size.client).toBeLessThanOrEqual(360);
    expect(size.scroll).toBeGreaterThan(size.client * 3);
    expect(size.width[0]).toBeLessThanOrEqual(size.width[1]!);
    expect(await noSidewaysOverflow(page)).toBe(true);
    await page.screenshot({ path: join(SHOTS, "agent-turn-messages-long.png"), fullPage: true });
    // Long strings in JSON wrap too: no part scrolls sideways either.
    expect(await box.locator(".msg-part .json").evaluateAll((els) => els.filter((e) => e.scrollWidth > e.clientWidth).length)).toBe(0);
    await box.locator(".msg-call").nth(1).scrollIntoViewIfNeeded();
    await box.screenshot({ path: join(SHOTS, "agent-turn-messages-long-calls.png") });
    expect(problems).toEqual(["console: Failed to load resource: the server responded with a status of 404 (Not Found)"]);
    await page.close();
  });
});
