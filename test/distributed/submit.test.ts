/**
 * What a host truly cannot do is refused at submit, with a clear error, before anything is
 * created: workers compile a run's plan from its recorded template, so a pipeline built in
 * TypeScript cannot run on them.
 */
import { describe, expect, it } from "vitest";
import { definePipeline } from "../../src/index.js";
import { submitRun } from "../../src/distributed/submit.js";
import { MemoryStore } from "../../src/store/memory.js";
import { UserError } from "../../src/runtime/errors.js";

describe("submitRun", () => {
  it("refuses a TypeScript pipeline with one clear line and creates no run", async () => {
    const store = new MemoryStore();
    const plan = definePipeline({ name: "ts-only" }).stage("a", { run: async () => 1 } as never).plan;
    // The connection is never used: the refusal comes first.
    const err = await submitRun(store, { connection: { host: "127.0.0.1", port: 1 } }, plan, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe("pipeline 'ts-only' is defined in TypeScript: workers can only run templates (YAML/JSON files); run it in this process, or write it as a template to run it on the workers");
    expect(await store.list()).toEqual([]);
  });
});
