/**
 * Fencing (issue 13.8), in one process: a runtime whose lease another owner took stops driving
 * the run at once — on a failed renewal, and on a lost append race — aborting its attempts
 * (their AbortSignals fire), appending nothing more and rejecting with LeaseLostError. (The
 * real-process case, a blocked event loop and `baton resume`, is test/durability/takeover.test.ts.)
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { definePipeline, Runtime, SqliteStore } from "../../src/index.js";
import { LeaseLostError } from "../../src/runtime/errors.js";

/** A pipeline whose two stages hold until aborted, recording the abort reasons. */
function holding() {
  const aborted: string[] = [];
  const started: string[] = [];
  const hold = (id: string) => (ctx: { signal: AbortSignal }) => new Promise((_res, rej) => {
    started.push(id);
    ctx.signal.addEventListener("abort", () => {
      aborted.push(`${id}: ${(ctx.signal.reason as Error).message}`);
      rej(ctx.signal.reason);
    }, { once: true });
  });
  const p = definePipeline({ name: "fenced" }).stage("a", { run: hold("a") }).stage("b", { run: hold("b") }).returns("a");
  return { plan: p.plan, aborted, started };
}

const freshStore = () => SqliteStore.open(join(mkdtempSync(join(tmpdir(), "baton-fence-")), "f.db"));

describe("a runtime that lost its run's lease", () => {
  it("a renewal that finds another owner holding the lease stops the run: attempts aborted, nothing appended", async () => {
    const store = freshStore();
    const rt = new Runtime({ store, leaseMs: 300 });
    const { plan, aborted, started } = holding();
    const h = await rt.start(plan, {});
    const rejected = h.done.then(() => undefined, (e: unknown) => e);
    await vi.waitFor(() => expect(started).toHaveLength(2), { timeout: 10_000, interval: 2 });
    // Another process takes the lease (as `baton resume` does once a lease lapsed).
    const mine = (await store.leaseHolder(h.id))!;
    await store.release(h.id, mine);
    expect(await store.claim(h.id, "elsewhere:1:abc", 60_000)).toBe(true);
    const seq = (await store.get(h.id))!.seq;

    const err = await rejected;
    expect(err).toBeInstanceOf(LeaseLostError);
    expect((err as Error).message).toMatch(new RegExp(`^run ${h.id} was taken over by another process \\(elsewhere:1:abc\\) while this one did not renew its lease in time .*300 ms lease`));
    expect(aborted.sort()).toEqual([`a: run ${h.id} was taken over by another process`, `b: run ${h.id} was taken over by another process`]);
    expect(rt.active).toEqual([]);
    // The aborted attempts' outcomes were not appended, and the new owner's lease is untouched.
    await new Promise((r) => setTimeout(r, 50));
    expect((await store.get(h.id))!.seq).toBe(seq);
    expect(await store.leaseHolder(h.id)).toBe("elsewhere:1:abc");
    await rt.close();
    await store.close();
  });

  it("a lost append race (another process wrote to the run) stops the run instead of failing it with a conflict", async () => {
    const store = freshStore();
    const log: string[] = [];
    const rt = new Runtime({ store, leaseMs: 60_000, log: (l) => log.push(l) });
    const { plan, aborted, started } = holding();
    const h = await rt.start(plan, {});
    const rejected = h.done.then(() => undefined, (e: unknown) => e);
    await vi.waitFor(() => expect(started).toHaveLength(2), { timeout: 10_000, interval: 2 });
    const mine = (await store.leaseHolder(h.id))!;
    await store.release(h.id, mine);
    expect(await store.claim(h.id, "elsewhere:2:def", 60_000)).toBe(true);
    const { run } = await store.load(h.id);
    await store.append(h.id, [{ type: "run_resumed", at: Date.now() }], run.seq); // the new owner writes
    // This runtime's next step (a cancel here) loses the append race.
    await rt.cancel(h.id);
    const err = await rejected;
    expect(err).toBeInstanceOf(LeaseLostError);
    expect(log).toEqual([(err as Error).message]);
    expect(aborted).toHaveLength(2);
    const { events } = await store.load(h.id);
    expect(events.at(-1)).toMatchObject({ type: "run_resumed" });
    expect(events.filter((e) => e.type === "run_cancel_requested")).toEqual([]);
    await rt.close();
    await store.close();
  });
});
