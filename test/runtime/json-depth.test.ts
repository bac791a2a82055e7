/**
 * Issue 13.12: a 10,000-level-deep stage output was blamed on "cycles or BigInts" (it was
 * JSON.stringify's stack overflow). Depth and cycles are measured without recursion and named.
 */
import { describe, expect, it } from "vitest";
import { definePipeline, execute } from "../../src/index.js";
import { MAX_JSON_DEPTH, shapeOf, toJsonValue } from "../../src/runtime/json.js";

/** Arrays nested `n` levels deep (`[]` is 1). */
function nested(n: number): unknown[] {
  let v: unknown[] = [];
  for (let i = 1; i < n; i++) v = [v];
  return v;
}

describe("deep and cyclic values", () => {
  it("shapeOf measures 100,000 levels without a stack overflow, and finds cycles", () => {
    expect(shapeOf(nested(100_000))).toEqual({ depth: 100_000, cycle: false });
    expect(shapeOf({ a: [1, { b: {} }], c: "x" })).toEqual({ depth: 4, cycle: false });
    const shared = { x: 1 };
    expect(shapeOf({ a: shared, b: shared }).cycle).toBe(false); // shared, not cyclic
    const loop: Record<string, unknown> = { a: { b: {} } };
    (loop.a as Record<string, Record<string, unknown>>).b!.c = loop;
    expect(shapeOf(loop).cycle).toBe(true);
  });

  it("a stage output nested 10,000 levels deep fails the stage saying so, with the stage and the limit", async () => {
    const p = definePipeline({ name: "deep" }).stage("x", { run: () => nested(10_000) }).returns("x");
    const r = await execute(p, {}, { telemetry: false });
    expect(r.status).toBe("failed");
    expect(r.error?.message).toBe(`output of stage 'x' is nested 10,000 levels deep; at most ${MAX_JSON_DEPTH.toLocaleString("en-US")} are stored: flatten it (a list of records, or a string of its JSON)`);
    expect(r.error?.message).not.toMatch(/cycles|BigInt/);
  });

  it("an output exactly at the limit is stored", async () => {
    const p = definePipeline({ name: "deep-ok" }).stage("x", { run: () => nested(MAX_JSON_DEPTH) }).returns("x");
    const r = await execute(p, {}, { telemetry: false });
    expect(r.status, r.error?.message).toBe("succeeded");
    expect(shapeOf(r.output as object).depth).toBe(MAX_JSON_DEPTH);
  });

  it("a cycle is called a cycle; a BigInt inside is named by JSON's own message, not blamed on cycles", () => {
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    expect(() => toJsonValue(loop, "output of stage 'c'")).toThrow("output of stage 'c' contains a cycle (an object that contains itself), which JSON cannot carry: return plain data");
    expect(() => toJsonValue({ n: 1n }, "output of stage 'b'")).toThrow(/^output of stage 'b' is not JSON-serialisable \(Do not know how to serialize a BigInt\): return plain data/);
  });
});
