/** Control-flow semantics of SPEC §1 through the real runtime (in-memory store). */
import { describe, expect, it } from "vitest";
import { backoffDelay } from "../../src/engine/index.js";
import type { BatonEvent } from "../../src/engine/events.js";
import { definePipeline, execute, StageFailure } from "../../src/index.js";
import { compileSource } from "../../src/template/index.js";
import type { Pipeline } from "../../src/api/pipeline.js";

function yaml(text: string): Pipeline<Record<string, unknown>, unknown> {
  const plan = compileSource(text, { format: "yaml", baseDir: process.cwd() });
  return { name: plan.name, plan, parseInputs: (r) => r as Record<string, unknown> };
}

async function runLog(p: Pipeline<any, any>, inputs: Record<string, unknown> = {}) {
  const log: BatonEvent[] = [];
  const result = await execute(p, inputs, { onEvents: (_id, es) => log.push(...es), seed: 7 });
  return { result, log };
}

const skipped = (log: BatonEvent[]) => log.flatMap((e) => (e.type === "stage_skipped" ? [`${e.stage}: ${e.reason}`] : []));
const started = (log: BatonEvent[]) => log.flatMap((e) => (e.type === "stage_started" ? [`${e.stage}#${e.visit}${e.item !== undefined ? `[${e.item}]` : ""}.${e.attempt}`] : []));

describe("if and skip propagation", () => {
  it("a false if skips the stage; a stage that needs it is skipped too unless it has its own if", async () => {
    const { result, log } = await runLog(yaml(`
baton: 1
name: skips
stages:
  a: { value: "1" }
  b: { value: "a + 1", if: "a > 5" }
  c: { value: "b + 1" }
  d: { value: "b = null ? 'b read as null' : 'had b'", if: "true" }
output: "{ 'b': b, 'c': c, 'd': d }"
`));
    expect(result.status).toBe("succeeded");
    expect(result.output).toEqual({ b: null, c: null, d: "b read as null" });
    expect(skipped(log)).toEqual(["b: `if` was false", "c: needs 'b', which was skipped"]);
    const ifDecision = log.find((e) => e.type === "decision" && e.kind === "if" && e.stage === "b");
    expect(ifDecision).toMatchObject({ expression: "a > 5", read: { a: 1 }, result: false });
  });
});

describe("routes", () => {
  it("a backward goto re-runs the target and everything downstream as a new visit, bounded by max, with `with` and `prev`", async () => {
    const seen: unknown[] = [];
    const p = definePipeline({ name: "loop" })
      .stage("draft", { run: (ctx) => { seen.push({ visit: ctx.visit, route: ctx.route, prev: ctx.prev }); return { n: ctx.visit }; } })
      .stage("check", { needs: ["draft"], value: "draft.n", routes: [{ when: "check < 5", goto: "draft", with: { strict: true }, max: 2 }] })
      .returns("check");
    const { result, log } = await runLog(p);
    expect(result.output).toBe(3); // visits 1, 2, 3: the route is taken twice, then max is used up
    expect(seen).toEqual([
      { visit: 1, route: undefined, prev: undefined },
      { visit: 2, route: { strict: true }, prev: { n: 1 } },
      { visit: 3, route: { strict: true }, prev: { n: 2 } },
    ]);
    const routes = log.filter((e) => e.type === "decision" && e.kind === "route");
    expect(routes.map((e) => (e as { taken?: boolean }).taken)).toEqual([true, true]);
  });

  it("a forward goto skips every stage on the way and runs the target", async () => {
    const { result, log } = await runLog(yaml(`
baton: 1
name: jump
stages:
  a: { value: "'a'", routes: [{ when: "true", goto: d }] }
  b: { value: "a & 'b'" }
  c: { value: "b & 'c'" }
  side: { value: "'side'" }
  d: { value: "$string(c) & '|' & side" }
output: d
`));
    expect(result.output).toBe("null|side");
    expect(skipped(log)).toEqual(["b: skipped by route from 'a' to 'd'", "c: skipped by route from 'a' to 'd'"]);
  });

  it("a fail route fails the run with its message", async () => {
    const { result } = await runLog(yaml(`
baton: 1
name: guard
stages:
  score: { value: "0.3" }
  gate: { value: "score", routes: [{ when: "score < 0.5", fail: "score too low" }] }
`));
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({ kind: "route", message: "score too low" });
  });
});

describe("errors", () => {
  it("retries with exponential backoff and full jitter from the run's seed; delays are in the log", async () => {
    let n = 0;
    const p = definePipeline({ name: "retry" }).stage("a", { retry: { attempts: 4, delay: "10ms", max_delay: "25ms" }, run: () => { if (++n < 4) throw new Error(`try ${n}`); return n; } }).returns("a");
    const { result, log } = await runLog(p);
    expect(result.output).toBe(4);
    const delays = log.flatMap((e) => (e.type === "retry_scheduled" ? [e.delay_ms] : []));
    expect(delays).toHaveLength(3);
    [10, 20, 25].forEach((cap, i) => expect(delays[i]).toBeLessThanOrEqual(cap));
  });

  it("honours a Retry-After carried by the error", async () => {
    let n = 0;
    const p = definePipeline({ name: "ra" }).stage("a", { retry: { attempts: 2, delay: "1ms" }, run: () => { if (++n === 1) throw new StageFailure("429", { kind: "rate_limited", retryable: true, retryAfterMs: 120 }); return "ok"; } });
    const { log } = await runLog(p);
    const r = log.find((e) => e.type === "retry_scheduled") as { delay_ms: number };
    expect(r.delay_ms).toBe(120);
  });

  it("on_error continue makes a failed for_each item null; fallback stands in with the error in scope", async () => {
    const p = definePipeline({ name: "onerr" })
      .stage("items", { run: () => [1, 2, 3] })
      .stage("each", { for_each: "items", on_error: "continue", run: (ctx) => { if (ctx.item === 2) throw new Error("bad item"); return (ctx.item as number) * 10; } })
      .stage("main", { needs: ["each"], input: "{{ each }}", on_error: { fallback: "rescue" }, run: () => { throw new Error("main broke"); } })
      .stage("rescue", { value: "{ 'recovered_from': error.message, 'input': input }" })
      .output("{ 'each': each, 'main': main }");
    const { result, log } = await runLog(p);
    expect(result.status).toBe("succeeded");
    expect(result.output).toEqual({ each: [10, null, 30], main: { recovered_from: "main broke", input: [10, null, 30] } });
    expect(log.some((e) => e.type === "decision" && e.kind === "fallback")).toBe(true);
  });

  it("a per-attempt timeout aborts the handler's signal and the attempt is retried", async () => {
    const aborted: boolean[] = [];
    const p = definePipeline({ name: "to" }).stage("slow", {
      timeout: "30ms", retry: { attempts: 2, delay: "1ms" },
      run: (ctx) => new Promise((res, rej) => {
        if (ctx.attempt === 2) return res("fast");
        ctx.signal.addEventListener("abort", () => { aborted.push(true); rej(ctx.signal.reason); });
      }),
    }).returns("slow");
    const { result, log } = await runLog(p);
    expect(result.output).toBe("fast");
    expect(aborted).toEqual([true]);
    expect(log.find((e) => e.type === "stage_failed")).toMatchObject({ error: { kind: "timeout", retryable: true } });
  });

  it("the run timeout fails the run and aborts what is in flight", async () => {
    let signalled = false;
    const p = definePipeline({ name: "rt", timeout: "50ms" }).stage("forever", { run: (ctx) => new Promise((_, rej) => ctx.signal.addEventListener("abort", () => { signalled = true; rej(ctx.signal.reason); })) });
    const { result } = await runLog(p);
    expect(result.status).toBe("failed");
    expect(result.error?.kind).toBe("timeout");
    expect(signalled).toBe(true);
  });
});

describe("parallelism", () => {
  it("respects run concurrency and for_each concurrency", async () => {
    let now = 0;
    let peak = 0;
    let peakItems = 0;
    let items = 0;
    const work = async (isItem: boolean) => {
      now++; peak = Math.max(peak, now);
      if (isItem) { items++; peakItems = Math.max(peakItems, items); }
      await new Promise((r) => setTimeout(r, 5));
      now--; if (isItem) items--;
    };
    const p = definePipeline({ name: "par", concurrency: 4 })
      .stage("list", { run: () => Array.from({ length: 12 }, (_, i) => i) })
      .stage("each", { for_each: "list", concurrency: 3, run: () => work(true) })
      .stage("x", { needs: ["list"], run: () => work(false) })
      .stage("y", { needs: ["list"], run: () => work(false) });
    const { result } = await runLog(p);
    expect(result.status).toBe("succeeded");
    expect(peak).toBeLessThanOrEqual(4);
    expect(peakItems).toBeLessThanOrEqual(3);
    expect(peak).toBeGreaterThan(1);
  });

  it("independent branches run in parallel: all three are in flight at once", async () => {
    // Each branch holds until all three have started, so only a runtime that starts them
    // together gets all three in flight (one running them in turn gets 1, after the cap).
    const order: string[] = [];
    let inFlight = 0;
    let peak = 0;
    let release!: () => void;
    const allStarted = new Promise<void>((r) => (release = r));
    const cap = setTimeout(release, 5_000);
    const mk = (id: string) => async () => {
      order.push(`start ${id}`);
      peak = Math.max(peak, ++inFlight);
      if (inFlight === 3) release();
      await allStarted;
      inFlight--;
      order.push(`end ${id}`);
      return id;
    };
    const p = definePipeline({ name: "branches" }).stage("a", { run: mk("a") }).stage("b", { run: mk("b") }).stage("c", { run: mk("c") });
    const { result } = await runLog(p);
    clearTimeout(cap);
    expect(result.status).toBe("succeeded");
    expect(peak).toBe(3);
    expect(order.slice(0, 3).sort()).toEqual(["start a", "start b", "start c"]);
  });
});

describe("backoff policy", () => {
  it("exponential doubles from delay up to max_delay; fixed stays; full jitter scales by r", () => {
    const exp = { attempts: 9, backoff: "exponential" as const, delayMs: 100, maxDelayMs: 1000, jitter: "none" as const };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(exp, n, 0.5))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay({ ...exp, backoff: "fixed" }, 5, 0.5)).toBe(100);
    expect(backoffDelay({ ...exp, jitter: "full" }, 3, 0.5)).toBe(200);
    expect(backoffDelay({ ...exp, jitter: "full" }, 3, 0)).toBe(0);
  });
});
