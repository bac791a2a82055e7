/**
 * A for_each without `concurrency:` runs FOR_EACH_CONCURRENCY items at once in runs of engine ≥ 3
 * (issue 14: 10,000 items used to start in one step); runs recorded by engine 1–2 keep starting
 * every item at once, so their logs replay as recorded. And one step of the loop starts at most
 * MAX_STARTS_PER_STEP executions, the rest in the steps after it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { apply, decide, fold, FOR_EACH_CONCURRENCY, type BatonEvent } from "../../src/engine/index.js";
import { RunLoop, MAX_STARTS_PER_STEP, type HostPort } from "../../src/runtime/loop.js";
import { compileSource } from "../../src/template/index.js";

const planFor = (concurrency?: number) => compileSource(`
baton: 1
name: fan
stages:
  list: { value: "[1]" }
  each:
    for_each: list
    value: item${concurrency !== undefined ? `\n    concurrency: ${concurrency}` : ""}
`, { format: "yaml", baseDir: process.cwd() });

/** The log of a run whose for_each just expanded into `n` items. */
function expanded(engine: number | undefined, n: number, concurrency?: number) {
  const plan = planFor(concurrency);
  const items = Array.from({ length: n }, (_, i) => i);
  const log: BatonEvent[] = [
    { type: "run_started", at: 0, run_id: "r", pipeline: "fan", plan_hash: plan.hash, source: { format: "yaml" }, inputs: {}, seed: 1, ...(engine !== undefined ? { engine } : {}) },
    { type: "stage_started", at: 1, stage: "list", visit: 1, attempt: 1, queued_ms: 0 },
    { type: "stage_succeeded", at: 2, stage: "list", visit: 1, attempt: 1, output: items },
    { type: "decision", at: 2, stage: "each", visit: 1, kind: "for_each", expression: "list", read: { list: items }, result: n, items },
  ];
  return { plan, state: fold(plan, log) };
}

const starts = (events: readonly BatonEvent[]) => events.filter((e) => e.type === "stage_started").map((e) => (e as { item?: number }).item);

describe("for_each default concurrency (engine 3)", () => {
  it("starts FOR_EACH_CONCURRENCY items, then one more per item that settles", () => {
    const { state } = expanded(3, 250);
    const first = decide(state, 3);
    expect(starts(first.events)).toEqual(Array.from({ length: FOR_EACH_CONCURRENCY }, (_, i) => i));
    expect(state.inflight).toBe(FOR_EACH_CONCURRENCY);
    expect(starts(decide(state, 4).events)).toEqual([]);
    apply(state, { type: "stage_succeeded", at: 5, stage: "each", visit: 1, item: 7, attempt: 1, output: 7 });
    expect(starts(decide(state, 6).events)).toEqual([FOR_EACH_CONCURRENCY]);
  });

  it("a run recorded by engine 2 (or before engine was recorded) starts every item at once, as it did", () => {
    for (const engine of [2, undefined]) {
      const { state } = expanded(engine, 250);
      expect(starts(decide(state, 3).events)).toHaveLength(250);
    }
  });

  it("an explicit concurrency is kept, above or below the default", () => {
    expect(starts(decide(expanded(3, 250, 220).state, 3).events)).toHaveLength(220);
    expect(starts(decide(expanded(3, 250, 3).state, 3).events)).toHaveLength(3);
  });

  it("property: never more than min(concurrency ?? default, items) in flight, and every item runs once", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 260 }), fc.option(fc.integer({ min: 1, max: 300 }), { nil: undefined }), fc.integer({ min: 0, max: 1000 }), (n, c, seed) => {
      const { state } = expanded(3, n, c);
      const cap = Math.min(c ?? FOR_EACH_CONCURRENCY, Math.max(n, 0));
      const running: number[] = [];
      const ran = new Set<number>();
      let now = 3;
      let r = seed;
      for (let guard = 0; guard < 4 * n + 10; guard++) {
        for (const i of starts(decide(state, now++).events)) {
          expect(ran.has(i!)).toBe(false);
          ran.add(i!);
          running.push(i!);
        }
        expect(running.length).toBeLessThanOrEqual(cap);
        if (running.length === 0) break;
        r = (r * 1103515245 + 12345) & 0x7fffffff;
        const i = running.splice(r % running.length, 1)[0]!;
        apply(state, { type: "stage_succeeded", at: now++, stage: "each", visit: 1, item: i, attempt: 1, output: i });
      }
      expect(ran.size).toBe(n);
    }), { numRuns: 60 });
  });
});

describe("starts per step", () => {
  it(`one step starts at most ${MAX_STARTS_PER_STEP} executions and asks for another (more), which starts the rest`, () => {
    const n = MAX_STARTS_PER_STEP + 44;
    const { plan, state } = expanded(3, n, n);
    const started: number[] = [];
    let seq = 4;
    const host: HostPort = {
      now: () => 10,
      slots: () => Infinity,
      append: (_id, events, expected) => {
        expect(expected).toBe(seq);
        seq += events.length;
        return seq;
      },
      start: (_loop, cmd) => void started.push(cmd.item!),
      abort: () => undefined,
      evaluate: () => [],
    };
    const loop = new RunLoop(host, plan, state, "r", seq);
    const first = loop.advance();
    if (first instanceof Promise) throw new Error("the loop went asynchronous");
    expect(started).toHaveLength(MAX_STARTS_PER_STEP);
    expect(first.more).toBe(true);
    const second = loop.advance();
    if (second instanceof Promise) throw new Error("the loop went asynchronous");
    expect(started).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(second.more).toBe(false);
  });
});
