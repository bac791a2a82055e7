/** Time travel: `rerun --from` reuses recorded outputs upstream and executes from the stage on. */
import { describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { definePipeline, MemoryStore, Runtime } from "../../src/index.js";
import { buildTrace } from "../../src/trace/index.js";

describe("rerun --from", () => {
  it("reuses every stage not downstream of --from, executes the rest, and the trace says what was reused", async () => {
    const calls: string[] = [];
    const p = definePipeline({ name: "fork" })
      .stage("fetch", { run: () => { calls.push("fetch"); return [1, 2, 3]; } })
      .stage("side", { run: () => { calls.push("side"); return "side"; } })
      .stage("each", { for_each: "fetch", run: (ctx) => { calls.push(`each${ctx.index}`); return (ctx.item as number) * 10; } })
      .stage("sum", { needs: ["each"], value: "$sum(each)" })
      .stage("report", { needs: ["sum", "side"], run: (ctx) => { calls.push("report"); return `${ctx.outputs.sum} ${ctx.outputs.side}`; } })
      .returns("report");
    const store = new MemoryStore();
    const rt = new Runtime({ store });
    const first = await (await rt.start(p.plan, {})).done;
    expect(first.output).toBe("60 side");
    calls.length = 0;
    const log: BatonEvent[] = [];
    const rt2 = new Runtime({ store, onEvents: (_id, es) => log.push(...es) });
    const h = await rt2.rerun(first.id, "sum", { plan: p.plan });
    expect(h.reused.sort()).toEqual(["each", "fetch", "side"]);
    const r = await h.done;
    expect(r).toMatchObject({ status: "succeeded", output: "60 side" });
    expect(calls).toEqual(["report"]); // sum is a value stage; nothing upstream ran again
    const trace = buildTrace((await store.load(h.id)).events);
    expect(trace.run).toMatchObject({ rerun_of: first.id, rerun_from: "sum" });
    expect(trace.stages.find((s) => s.stage === "fetch")).toMatchObject({ status: "succeeded", reused_from: first.id, output: [1, 2, 3] });
    expect(trace.stages.find((s) => s.stage === "report")?.reused_from).toBeUndefined();
    await expect(rt2.rerun(first.id, "nope", { plan: p.plan })).rejects.toThrow("no stage 'nope' in 'fork': rerun --from one of fetch, side, each, sum, report");
  });
});
