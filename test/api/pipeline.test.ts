import { describe, expect, it } from "vitest";
import { z } from "zod";
import { definePipeline, execute, NonRetryableError, run, RunFailedError } from "../../src/index.js";

describe("TypeScript API", () => {
  it("runs typed stages in dependency order and returns the typed output", async () => {
    const order: string[] = [];
    const p = definePipeline({ name: "typed", inputs: z.object({ topic: z.string(), depth: z.number().default(2) }) })
      .stage("research", { run: async (ctx) => { order.push("research"); return { sources: Array.from({ length: ctx.inputs.depth }, (_, i) => `${ctx.inputs.topic}-${i}`) }; } })
      .stage("count", { needs: ["research"], run: (ctx) => { order.push("count"); return ctx.outputs.research.sources.length; } })
      .stage("draft", { needs: ["research", "count"], run: (ctx) => `${ctx.outputs.count}: ${ctx.outputs.research.sources.join(", ")}` })
      .stage("typed", {
        needs: ["count"],
        run: (ctx) => {
          const n: number = ctx.outputs.count;
          // @ts-expect-error research is not among this stage's needs, so its output is not in ctx.outputs
          void ctx.outputs.research;
          // @ts-expect-error count is a number, not a string
          const s: string = ctx.outputs.count;
          void s;
          return n;
        },
      })
      .returns("draft");
    const out: string = await run(p, { topic: "tides" } as { topic: string; depth: number });
    expect(out).toBe("2: tides-0, tides-1");
    expect(order).toEqual(["research", "count"]);
  });

  it("a handler output that is not JSON fails the stage with a clear, non-retryable error", async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const [bad, why] of [[10n, /is a bigint, which is not JSON/], [cyclic, /contains a cycle \(an object that contains itself\)/], [NaN, /is NaN, which JSON cannot carry/]] as const) {
      let calls = 0;
      const p = definePipeline({ name: "bad-output" }).stage("a", { retry: { attempts: 3, delay: "1ms" }, run: () => { calls++; return bad; } });
      const r = await execute(p, {});
      expect(r.status).toBe("failed");
      expect(r.error?.message).toMatch(why);
      expect(calls).toBe(1);
    }
  });

  it("retries a transient failure and fails fast on NonRetryableError", async () => {
    let calls = 0;
    const flaky = definePipeline({ name: "flaky" })
      .stage("a", { retry: { attempts: 3, delay: "1ms" }, run: () => { calls++; if (calls < 3) throw new Error("transient"); return "ok"; } })
      .returns("a");
    expect(await run(flaky, {})).toBe("ok");
    expect(calls).toBe(3);

    let hard = 0;
    const fatal = definePipeline({ name: "fatal" })
      .stage("a", { retry: { attempts: 5, delay: "1ms" }, run: () => { hard++; throw new NonRetryableError("bad input"); } });
    const r = await execute(fatal, {});
    expect(r.status).toBe("failed");
    expect(r.error?.message).toBe("bad input");
    expect(hard).toBe(1);
    await expect(run(fatal, {})).rejects.toBeInstanceOf(RunFailedError);
  });

  it("for_each runs one execution per item with outputs in item order", async () => {
    const p = definePipeline({ name: "fan" })
      .stage("list", { run: () => [3, 1, 2] })
      .stage("each", { for_each: "list", concurrency: 2, run: async (ctx) => { await new Promise((r) => setTimeout(r, (ctx.item as number) * 3)); return (ctx.item as number) * 10; } })
      .returns("each");
    expect(await run(p, {})).toEqual([30, 10, 20]);
  });
});
