/**
 * The web app in headless Chromium (Debian's /usr/bin/chromium via playwright-core): a
 * finished run's graph, timeline and stage panel; a live run updating without reload; an
 * approval answered with the button. Screenshots go to test-results/ui/.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, launch, SHOTS } from "./browser.js";
import { APPROVE, EXAMPLE, GATE, req, setup, startFile, until, type Env } from "./helpers.js";

let env: Env;
let ctx: BrowserContext;

beforeAll(async () => {
  ensureBuilt();
  ctx = await launch();
  env = await setup();
}, 60_000);

afterAll(async () => {
  await ctx?.close();
  await env?.close();
});

/** A page that records script errors and console errors (CSP violations show up there). */
async function open(path: string, base = env.ui.url): Promise<{ page: Page; problems: string[] }> {
  const page = await ctx.newPage();
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  await page.goto(new URL(path, base).href);
  return { page, problems };
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

describe("the web UI in Chromium", () => {
  it("a finished run: runs list → graph with 5 stages, statuses and visits; timeline with every attempt; stage output on click", async () => {
    const h = await startFile(env.runtime, EXAMPLE, { topic: "tides" });
    expect((await h.done).status).toBe("succeeded");
    const { page, problems } = await open("/");

    const row = page.locator(`tr[data-run="${h.id}"]`);
    await row.waitFor();
    expect(await row.getAttribute("data-status")).toBe("succeeded");
    await shot(page, "runs-list");
    // Filters: by status (kept in the address), back to all.
    await page.locator('select[name="status"]').selectOption("failed");
    await page.locator(".runs-body .empty").waitFor();
    expect(page.url()).toContain("status=failed");
    await page.locator('select[name="status"]').selectOption("");
    await row.waitFor();
    await row.click();
    await page.waitForURL(`**/runs/${h.id}`);
    await page.locator(".node").nth(4).waitFor();

    // Graph: five stages, all succeeded; every stage ran twice (verify routed back to research once).
    const nodes = await page.$$eval(".node", (els) => els.map((e) => [e.getAttribute("data-stage"), e.getAttribute("data-status"), e.querySelector(".visit-badge text")?.textContent ?? ""]));
    expect(nodes.map((n) => n[0]).sort()).toEqual(["analyze", "draft", "fact_check", "research", "verify"]);
    expect(nodes.every((n) => n[1] === "succeeded")).toBe(true);
    expect(nodes.find((n) => n[0] === "research")?.[2]).toBe("×2");
    expect(await page.locator('.node[data-stage="fact_check"] .items-count').textContent()).toBe("5/5 items");
    expect(await page.locator('.node[data-stage="fact_check"] .item.st-succeeded').count()).toBe(5);
    const route = page.locator('.edge.route.taken[data-from="verify"][data-to="research"]');
    expect(await route.count()).toBe(1);
    expect(await page.locator(".edge-label.route.taken text").textContent()).toBe("route taken ×1");
    expect(await page.locator(".edge.dep").count()).toBe(6); // verify also reads fact_check

    // Timeline: analyze's first attempt failed (simulated 503), the retry succeeded, with the backoff gap between.
    const analyze = page.locator('.trow[data-entry="analyze#1"] .bar');
    expect(await analyze.count()).toBe(2);
    expect(await analyze.evaluateAll((els) => els.map((e) => e.getAttribute("data-status")))).toEqual(["failed", "succeeded"]);
    expect(await page.locator('.trow[data-entry="analyze#1"] .retry-gap').count()).toBe(1);
    expect(await page.locator('.trow[data-entry="research#2"] .bar').count()).toBe(1);
    expect(await page.locator(".trow.item-row").count()).toBe(10);
    await shot(page, "run-finished");

    // Click a node: the panel shows the latest visit's output JSON.
    await page.locator('.node[data-stage="research"]').click();
    const panel = page.locator('.panel-body[data-entry="research#2"]');
    await panel.waitFor();
    expect(await panel.locator('.json[data-label="output"]').textContent()).toContain("https://journals.example/tides/1");
    expect(await panel.locator(".logs").textContent()).toBe("5 sources (primary only) on visit 2");
    expect(await panel.locator(".tab").count()).toBe(2);

    // Click a bar: the failed attempt with its error.
    await page.locator('.trow[data-entry="analyze#1"] .bar').first().click();
    const att = page.locator('.panel-body[data-entry="analyze#1"] .attempt[data-attempt="1"]');
    await att.waitFor();
    expect(await att.textContent()).toContain("overloaded provider answered 503 Service Unavailable (simulated)");
    expect(page.url()).toContain("sel=analyze%231");
    await shot(page, "run-stage-panel");

    // Final output and where it came from; decisions with the values they read.
    expect(await page.locator(".provenance .chip-link").allTextContents()).toEqual(["draft", "verify"]);
    await page.locator('.provenance .chip-link[data-stage="draft"]').click();
    await page.locator('.panel-body[data-entry="draft#2"]').waitFor();
    expect(await page.locator(".output-card .json").first().textContent()).toContain("score");
    expect(await page.locator('.decision[data-kind="route"]').count()).toBe(2);
    expect(await page.locator('.decision[data-kind="route"] .route-taken').textContent()).toBe("taken → research");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("a live run updates to succeeded without a reload", async () => {
    // The run's `wait` stage runs until the test creates `gate`: the page sees it running, however slow the machine.
    const gate = join(env.dir, "gate-open");
    const started = await req(env.ui, "/api/runs", { method: "POST", body: { template: GATE, inputs: { file: gate } } });
    expect(started.status).toBe(201);
    const id = started.json.id as string;
    const { page, problems } = await open(`/runs/${id}`);
    const status = page.locator("[data-run-status]");
    await status.waitFor();
    expect(await status.getAttribute("data-run-status")).toBe("running");
    await page.locator('.node[data-stage="wait"][data-status="running"]').waitFor({ timeout: 5000 });
    expect(await page.locator(".live-dot").count()).toBe(1);
    await shot(page, "run-live");
    writeFileSync(gate, "");
    await page.locator('[data-run-status="succeeded"]').waitFor({ timeout: 8000 });
    await page.locator('.node[data-stage="last"][data-status="succeeded"]').waitFor({ timeout: 3000 });
    expect(await page.locator('.trow[data-entry="wait#1"] .bar').getAttribute("data-status")).toBe("succeeded");
    expect(await page.locator(".output-card .json").textContent()).toContain("20");
    expect(await page.locator(".live-dot").count()).toBe(0);
    await shot(page, "run-live-done");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("approves a waiting stage with the button (and JSON data); the run finishes", async () => {
    const h = await startFile(env.runtime, APPROVE);
    expect((await h.done).status).toBe("waiting");
    const { page, problems } = await open(`/runs/${h.id}`);
    const form = page.locator('.banners .approval[data-stage="review"]');
    await form.waitFor();
    expect(await form.locator(".approval-message").textContent()).toBe("Publish v1?");
    expect(await page.locator('.node[data-stage="review"]').getAttribute("data-status")).toBe("waiting");
    await form.locator("textarea").fill("{ not json");
    await form.locator('[data-action="approve"]').click();
    expect(await form.locator(".form-error").textContent()).toMatch(/^data must be JSON/);
    await form.locator("textarea").fill('{ "ok": true, "by": "ana" }');
    await form.locator("input").fill("ship it");
    await shot(page, "run-waiting");
    await form.locator('[data-action="approve"]').click();
    await page.locator('[data-run-status="succeeded"]').waitFor({ timeout: 8000 });
    await until(async () => (await page.locator(".banners .approval").count()) === 0, 3000, "the banner to go");
    expect(await page.locator(".output-card .json").textContent()).toContain('"ana"');
    expect(await page.locator('.decision[data-kind="approval"]').textContent()).toContain("ship it");
    await shot(page, "run-approved");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("with a token: the page takes ?token=, drops it from the address and uses it for the API and the stream", async () => {
    const secured = await setup({ token: "browser-token" });
    try {
      const h = await startFile(secured.runtime, APPROVE);
      await h.done;
      const { page, problems } = await open(`/runs/${h.id}?token=browser-token`, secured.ui.url);
      await page.locator('[data-run-status="waiting"]').waitFor();
      expect(page.url()).not.toContain("token");
      await page.locator(".live-dot").waitFor();
      await page.locator('.banners [data-action="reject"]').click();
      await page.locator('[data-run-status="failed"]').waitFor({ timeout: 8000 });
      expect(problems).toEqual([]);
      await page.close();

      // Without the token (a new tab has its own sessionStorage) the app asks for it.
      const fresh = await ctx.newPage();
      await fresh.goto(secured.ui.url);
      await fresh.locator("#token-form").waitFor();
      await fresh.locator('#token-form input[name="token"]').fill("browser-token");
      await fresh.locator("#token-form button").click();
      await fresh.locator(`tr[data-run="${h.id}"]`).waitFor();
      await fresh.close();
    } finally {
      await secured.close();
    }
  });
});
