import { describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/store/memory.js";
import { ev, newRun, storeConformance } from "./conformance.js";

storeConformance("memory", () => new MemoryStore());

describe("MemoryStore", () => {
  it("stores events as given (no cloning) but never exposes its arrays", async () => {
    const store = new MemoryStore();
    await newRun(store, "r1");
    const e = ev.stageStarted("a");
    await store.append("r1", [e], 1);
    const { events } = await store.load("r1");
    expect(events[1]).toBe(e);
    events.length = 0;
    expect(await store.eventsAfter("r1", 0)).toHaveLength(2);
  });

  // How fast is measured by bench/micro.mjs (`npm run bench:micro`), not asserted here.
  it("takes 100,000 appends in sequence, each at the next seq, and loads them all", async () => {
    const store = new MemoryStore();
    await newRun(store, "r1");
    const e = ev.stageStarted("a");
    const n = 100_000;
    for (let seq = 1; seq <= n; seq++) await store.append("r1", [e], seq);
    expect((await store.get("r1"))?.seq).toBe(n + 1);
    const { events } = await store.load("r1");
    expect(events).toHaveLength(n + 1);
    expect(events[n]).toEqual(e);
  });
});
