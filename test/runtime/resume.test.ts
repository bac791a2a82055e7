/** Cancel and resume through the library, with a durable store; a resumed TS pipeline needs its plan. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { definePipeline, Runtime, SqliteStore } from "../../src/index.js";

describe("cancel and resume in one process", () => {
  it("a cancelled run resumes where it stopped: completed stages do not run again", async () => {
    const calls: Record<string, number> = {};
    const count = (id: string) => (calls[id] = (calls[id] ?? 0) + 1);
    const p = definePipeline({ name: "resumable" })
      .stage("a", { run: () => { count("a"); return 1; } })
      // The first b holds until it is cancelled (no timing to race); after resume b answers at once.
      .stage("b", { needs: ["a"], run: (ctx) => new Promise((res, rej) => {
        if (count("b") > 1) return res(2);
        ctx.signal.addEventListener("abort", () => rej(ctx.signal.reason), { once: true });
      }) })
      .stage("c", { needs: ["b"], run: () => { count("c"); return 3; } })
      .returns("c");
    const store = SqliteStore.open(join(mkdtempSync(join(tmpdir(), "baton-res-")), "r.db"));
    const rt = new Runtime({ store });
    const h = await rt.start(p.plan, {});
    await vi.waitFor(() => expect(calls.b).toBe(1), { timeout: 10_000, interval: 2 });
    await rt.cancel(h.id);
    expect((await h.done).status).toBe("cancelled");
    expect(calls).toEqual({ a: 1, b: 1 });
    await expect(rt.resume(h.id)).rejects.toThrow(/TypeScript pipeline: pass the same pipeline/);
    const other = definePipeline({ name: "resumable" }).stage("a", { run: () => 9 });
    await expect(rt.resume(h.id, { plan: other.plan })).rejects.toThrow(/different version of 'resumable'/);
    const again = await rt.resume(h.id, { plan: p.plan });
    const result = await again.done;
    expect(result).toMatchObject({ status: "succeeded", output: 3 });
    expect(calls).toEqual({ a: 1, b: 2, c: 1 });
    const { events } = await store.load(h.id);
    const b = events.filter((e) => e.type === "stage_started" && e.stage === "b");
    expect(b.map((e) => (e as { attempt: number }).attempt)).toEqual([1, 2]);
    await rt.close();
    await store.close();
  });

  it("on_error escalate pauses the run (waiting) with the failure as the reason", async () => {
    const p = definePipeline({ name: "esc" }).stage("a", { on_error: "escalate", run: () => { throw new Error("needs a human"); } });
    const store = SqliteStore.open(":memory:");
    const rt = new Runtime({ store });
    const result = await (await rt.start(p.plan, {})).done;
    expect(result.status).toBe("waiting");
    expect(result.error?.message).toMatch(/stage 'a' failed \(handler: needs a human\)/);
    expect((await store.get(result.id))?.status).toBe("waiting");
    await rt.close();
  });
});
