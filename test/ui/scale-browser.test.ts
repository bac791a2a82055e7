/**
 * The web UI at scale (issue 15.5), in headless Chromium (Debian's, via playwright-core): a
 * 200-stage chain whose stages s010–s012 a route sends back twice, a 50-item for_each with
 * failing items, and the runs list with a failed and waiting runs — all made by the real
 * runtime against a temp SQLite store. Waits for conditions, never for time.
 */
import { copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIN_TEXT_PX } from "../../src/ui/client/graph-view.js";
import { startUi } from "../../src/ui/server.js";
import { ensureBuilt, launch, SHOTS } from "./browser.js";
import { APPROVE, req, setup, startFile, until, type Env } from "./helpers.js";
import { writeScaleTemplates } from "./scale-fixture.js";

const SIGNAL = "test/fixtures/cli/signal.yaml";

let env: Env;
let ctx: BrowserContext;
const runs: Record<"chain" | "chain5" | "forEach" | "fails" | "approve" | "signal" | "sleeps", string> = { chain: "", chain5: "", forEach: "", fails: "", approve: "", signal: "", sleeps: "" };

beforeAll(async () => {
  ensureBuilt();
  ctx = await launch();
  env = await setup();
  const t = writeScaleTemplates();
  const files = { chain: t.chain, chain5: t.chain5, forEach: t.forEach, fails: t.fails, approve: APPROVE, signal: SIGNAL };
  for (const [k, file] of Object.entries(files) as [keyof typeof runs, string][]) {
    const h = await startFile(env.runtime, file);
    await h.done;
    runs[k] = h.id;
  }
  // A run that sleeps an hour stays running (it does not pause): wait until its stage sleeps.
  const nap = await startFile(env.runtime, t.sleeps);
  runs.sleeps = nap.id;
  nap.done.catch(() => undefined);
  await until(async () => ((await req(env.ui, `/api/runs/${nap.id}`)).json?.trace?.stages ?? []).some((x: { stage: string; status: string }) => x.stage === "nap" && x.status === "waiting"), 10_000, "the sleep to start");
}, 120_000);

afterAll(async () => {
  await ctx?.close();
  await env?.close();
});

async function open(path: string): Promise<{ page: Page; problems: string[] }> {
  const page = await ctx.newPage();
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  await page.goto(new URL(path, env.ui.url).href);
  return { page, problems };
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) });
const transform = (page: Page) => page.locator(".dag-world").getAttribute("transform");
const zoom = async (page: Page) => Number(await page.locator(".dag-viewport").getAttribute("data-zoom"));

/** The on-screen box of a node's title, and whether it lies inside the graph's viewport. */
async function titleBox(page: Page, stage: string): Promise<{ height: number; inView: boolean }> {
  return page.evaluate((stage) => {
    const t = document.querySelector(`.node[data-stage="${stage}"] .node-title`)!.getBoundingClientRect();
    const v = document.querySelector(".dag-viewport")!.getBoundingClientRect();
    return { height: t.height, inView: t.top >= v.top && t.bottom <= v.bottom && t.left >= v.left && t.right <= v.right };
  }, stage);
}

describe("the web UI at scale in Chromium", () => {
  it("a 200-stage chain: drawn at a legible size, starting at the first stage; zoom and pan change the view; revisited stages show their visits", async () => {
    const { page, problems } = await open(`/runs/${runs.chain}`);
    await until(async () => (await page.locator(".node").count()) === 200, 30_000, "200 nodes");
    await until(async () => (await transform(page)) !== null, 10_000, "the view to be set");

    // Legible at the default zoom, and the run's first stage is in view.
    expect(await zoom(page)).toBeGreaterThanOrEqual(0.85);
    const first = await titleBox(page, "s000");
    expect(first.inView).toBe(true);
    expect(first.height).toBeGreaterThanOrEqual(MIN_TEXT_PX);
    const vp = (await page.locator(".dag-viewport").boundingBox())!;
    expect(vp.height).toBeGreaterThanOrEqual(300);
    // Wrapped into rows: the chain is not one strip (s199 lies below s000, not only to its right).
    const ys = await page.$$eval(".node", (els) => new Set(els.map((e) => e.getBoundingClientRect().top.toFixed(0))).size);
    expect(ys).toBeGreaterThan(10);
    await shot(page, "scale-chain-200");

    // Zoom: the + button, Ctrl + wheel; the transform changes each time.
    const t0 = await transform(page);
    const k0 = await zoom(page);
    await page.locator('[data-zoom-action="in"]').click();
    expect(await zoom(page)).toBeGreaterThan(k0);
    const t1 = await transform(page);
    expect(t1).not.toBe(t0);
    await page.mouse.move(vp.x + vp.width / 2, vp.y + vp.height / 2);
    await page.keyboard.down("Control");
    await page.mouse.wheel(0, 300);
    await page.keyboard.up("Control");
    await until(async () => (await zoom(page)) < k0, 5000, "Ctrl + wheel to zoom out");
    // Fit: the whole graph in view.
    await page.locator('[data-zoom-action="fit"]').click();
    const kFit = await zoom(page);
    expect(kFit).toBeLessThan(0.5);
    // Zoomed that far out the nodes show their ids alone, enlarged: bigger than the title would be there.
    expect(await page.locator(".dag-viewport").getAttribute("class")).toContain("far");
    expect(await page.locator('.node[data-stage="s000"] .node-title').isVisible()).toBe(false);
    const far = (await page.locator('.node[data-stage="s000"] .node-far').boundingBox())!;
    expect(far.height).toBeGreaterThan(2 * 14 * kFit);
    expect(await page.locator('.node[data-stage="s000"] .node-far').textContent()).toBe("s000");
    await shot(page, "scale-chain-fit");
    await page.locator('[data-zoom-action="reset"]').click();
    expect(await transform(page)).toBe(t0);

    // Pan: drag (here starting and ending on a node, which it does not select), the wheel, the arrow keys.
    const s001 = (await page.locator('.node[data-stage="s001"] .node-box').boundingBox())!;
    await page.mouse.move(s001.x + s001.width / 2, s001.y + s001.height / 2);
    await page.mouse.down();
    await page.mouse.move(s001.x + s001.width / 2 - 60, s001.y + s001.height / 2 - 40, { steps: 5 });
    await page.mouse.up();
    const dragged = await transform(page);
    expect(dragged).not.toBe(t0);
    expect(await zoom(page)).toBe(k0);
    expect(await page.locator(".panel-body[data-entry]").count()).toBe(0);
    expect(page.url()).not.toContain("sel=");
    // The drag gave the graph the focus: the wheel pans it (before, it scrolled the page).
    expect(await page.evaluate(() => document.querySelector(".dag-viewport")!.contains(document.activeElement))).toBe(true);
    await page.mouse.wheel(0, 400);
    await until(async () => (await transform(page)) !== dragged, 5000, "the wheel to pan");
    const wheeled = await transform(page);
    await page.locator(".dag-viewport").focus();
    await page.keyboard.press("ArrowDown");
    expect(await transform(page)).not.toBe(wheeled);
    await page.keyboard.press("Home");
    expect(await transform(page)).toBe(t0);
    // Without the focus the wheel scrolls the page, not the graph.
    await page.locator("h1").click();
    await page.mouse.move(vp.x + 300, vp.y + 200);
    await page.mouse.wheel(0, 300);
    await until(() => page.evaluate(() => window.scrollY > 0), 5000, "the page to scroll");
    expect(await transform(page)).toBe(t0);
    await page.evaluate(() => window.scrollTo(0, 0));

    // A click on a node selects its latest visit.
    await page.locator('.node[data-stage="s011"] .node-title').click();
    const panel = page.locator('.panel-body[data-entry="s011#3"]');
    await panel.waitFor();

    // s010–s012 ran three times: the badge, one segment per visit, the visits in the panel.
    for (const st of ["s010", "s011", "s012"]) {
      const node = page.locator(`.node[data-stage="${st}"]`);
      expect(await node.getAttribute("data-visits")).toBe("3");
      expect(await node.locator(".visit-badge text").textContent()).toBe("×3");
      expect(await node.locator(".visit-seg").evaluateAll((els) => els.map((e) => `${e.getAttribute("data-visit")}:${e.getAttribute("class")}`))).toEqual(["1:visit-seg st-succeeded", "2:visit-seg st-succeeded", "3:visit-seg st-succeeded"]);
    }
    expect(await page.locator('.node[data-stage="s013"]').getAttribute("data-visits")).toBe("1");
    expect(await page.locator('.node[data-stage="s013"] .visit-seg').count()).toBe(0);
    const rows = panel.locator(".visits .visit-row");
    expect(await rows.evaluateAll((els) => els.map((e) => e.getAttribute("data-entry")))).toEqual(["s011#1", "s011#2", "s011#3"]);
    expect(await rows.nth(1).locator(".visit-cause").textContent()).toBe("after the route s012 #1 → s010");
    expect(await rows.nth(2).locator(".visit-cause").textContent()).toBe("after the route s012 #2 → s010");
    await rows.first().click();
    await page.locator('.panel-body[data-entry="s011#1"]').waitFor();
    await shot(page, "scale-chain-visits");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("the layout runs in a worker served beside the app; without it the graph card says so in one line", async () => {
    expect((await fetch(new URL("/elk-worker.js", env.ui.url))).headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    // A build without the worker file.
    const assets = mkdtempSync(join(tmpdir(), "baton-ui-assets-"));
    for (const f of ["index.html", "app.js", "app.css", "favicon.svg"]) copyFileSync(resolve("dist/ui", f), join(assets, f));
    const ui = await startUi({ store: env.store, port: 0, auth: "none", assets });
    try {
      const page = await ctx.newPage();
      await page.goto(new URL(`/runs/${runs.chain5}`, ui.url).href);
      const error = page.locator(".graph-card .form-error");
      await error.waitFor({ timeout: 15_000 });
      expect(await error.textContent()).toMatch(/^graph layout failed: the layout worker \/elk-worker\.js failed: /);
      await page.close();
    } finally {
      await ui.close();
    }
  });

  it("a 5-stage chain: the whole graph at a legible size", async () => {
    const { page, problems } = await open(`/runs/${runs.chain5}`);
    await page.locator(".node").nth(4).waitFor();
    await until(async () => (await transform(page)) !== null, 10_000, "the view to be set");
    expect(await zoom(page)).toBeGreaterThanOrEqual(0.85);
    for (const st of ["s000", "s004"]) expect((await titleBox(page, st)).height).toBeGreaterThanOrEqual(MIN_TEXT_PX);
    expect((await titleBox(page, "s000")).inView).toBe(true);
    expect(problems).toEqual([]);
    await page.close();
  });

  it("a 50-item for_each: one group node with its items counted per status, expanded on demand; an item opens in the panel", async () => {
    const { page, problems } = await open(`/runs/${runs.forEach}`);
    const group = page.locator('.node[data-stage="check"]');
    await group.waitFor();
    expect(await page.locator(".node").count()).toBe(3);
    expect(await group.locator(".items-count").textContent()).toBe("50/50 items");
    // Items 3, 13, …, 43 failed (on_error: continue): 45 done, 5 continued.
    const counts = await group.locator(".item-counts .count").evaluateAll((els) => els.map((e) => [e.getAttribute("data-status"), e.getAttribute("data-count")]));
    expect(counts).toEqual([["succeeded", "45"], ["continued", "5"]]);
    expect(await group.locator(".item-seg").count()).toBe(2);
    expect(await group.locator(".grid-item").count()).toBe(0);
    const before = (await group.boundingBox())!.height;

    await group.locator(".expand").click();
    await until(async () => (await page.locator('.node[data-stage="check"] .grid-item').count()) === 50, 10_000, "the 50 item cells");
    expect((await page.locator('.node[data-stage="check"]').boundingBox())!.height).toBeGreaterThan(before);
    // The viewport grew with the group: its last item is in view.
    const last = (await page.locator('.node[data-stage="check"] .grid-item[data-item="49"]').boundingBox())!;
    const box = (await page.locator(".dag-viewport").boundingBox())!;
    expect(last.y + last.height).toBeLessThanOrEqual(box.y + box.height);
    expect(await page.locator('.node[data-stage="check"] .grid-item.st-continued').evaluateAll((els) => els.map((e) => e.getAttribute("data-item")))).toEqual(["3", "13", "23", "33", "43"]);
    await shot(page, "scale-for-each-expanded");
    await page.locator('.node[data-stage="check"] .grid-item[data-item="13"]').click();
    const panel = page.locator('.panel-body[data-entry="check#1[13]"]');
    await panel.waitFor();
    expect(await panel.locator(".attempt-error").textContent()).toContain("item 13 is odd");

    await page.locator('.node[data-stage="check"] .expand').click();
    await until(async () => (await page.locator('.node[data-stage="check"] .grid-item').count()) === 0, 10_000, "the group to collapse");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("the runs list shows a failed run's error (first line) and what waiting runs wait for; the API has them in full", async () => {
    const { page, problems } = await open("/");
    const failed = page.locator(`tr[data-run="${runs.fails}"] .run-reason.error`);
    await failed.waitFor();
    expect(await failed.textContent()).toBe("handler write: disk full: /var/tmp/report.json");
    expect(await failed.getAttribute("title")).toContain("at write (report.mjs:12)");
    const approval = page.locator(`tr[data-run="${runs.approve}"] .run-reason.waits`);
    expect(await approval.getAttribute("data-wait")).toBe("approval");
    expect(await approval.textContent()).toBe("waits for approval at review: Publish v1?");
    const signal = page.locator(`tr[data-run="${runs.signal}"] .run-reason.waits`);
    expect(await signal.getAttribute("data-wait")).toBe("signal");
    expect(await signal.textContent()).toMatch(/^waits for signal review_done at review \(deadline [^)]+\)$/);
    expect(await signal.getAttribute("title")).toContain("send it with baton signal");
    const nap = page.locator(`tr[data-run="${runs.sleeps}"] .run-reason.waits`);
    expect(await nap.getAttribute("data-wait")).toBe("sleep");
    expect(await nap.textContent()).toMatch(/^sleeps at nap until \d+ \w+ \d\d:\d\d/);
    expect(await page.locator(`tr[data-run="${runs.sleeps}"]`).getAttribute("data-status")).toBe("running");
    expect(await page.locator(`tr[data-run="${runs.chain}"] .run-reason`).count()).toBe(0);
    await shot(page, "scale-runs-list");
    expect(problems).toEqual([]);
    await page.close();

    const list = (await req(env.ui, "/api/runs")).json as { id: string; error?: { message: string }; waiting_for?: { kind: string; stage: string; signal?: string; due_at?: string }[] }[];
    const byId = new Map(list.map((r) => [r.id, r]));
    expect(byId.get(runs.fails)!.error).toEqual({ stage: "write", kind: "handler", message: "disk full: /var/tmp/report.json\nat write (report.mjs:12)\nat main (report.mjs:40)" });
    expect(byId.get(runs.approve)!.waiting_for).toEqual([{ kind: "approval", stage: "review", visit: 1, message: "Publish v1?" }]);
    const sig = byId.get(runs.signal)!.waiting_for!;
    expect(sig).toHaveLength(1);
    expect(sig[0]).toMatchObject({ kind: "signal", stage: "review", signal: "review_done" });
    expect(Date.parse(sig[0]!.due_at!)).toBeGreaterThan(Date.now() + 23 * 3600_000);
    expect(byId.get(runs.sleeps)!.waiting_for).toMatchObject([{ kind: "sleep", stage: "nap", visit: 1 }]);
    expect(byId.get(runs.chain)!.error).toBeUndefined();
    expect(byId.get(runs.chain)!.waiting_for).toBeUndefined();
  });
});
