/**
 * Expressions cannot reach the host, runaway expressions stop, and bad data never pollutes
 * prototypes or crashes the process.
 */
import { describe, expect, it } from "vitest";
import { compileExpr, ExprError } from "../../src/expr/index.js";
import { definePipeline, execute, MemoryStore, SqliteStore } from "../../src/index.js";
import { compileSource } from "../../src/template/index.js";

const evalIt = async (src: string, scope: Record<string, unknown> = {}) => {
  const v = compileExpr(src).evaluate(scope);
  return v instanceof Promise ? await v : v;
};

describe("expression sandbox", () => {
  it("JSONata cannot reach process, env, globals, the file system or the network", async () => {
    for (const src of ["process", "$process", "globalThis", "require('fs')", "$eval('1')", "constructor", "$string($)"]) {
      let out: unknown;
      try {
        out = await evalIt(src, { inputs: {} });
      } catch (err) {
        expect(err).toBeInstanceOf(ExprError);
        continue;
      }
      expect(JSON.stringify(out ?? null)).not.toMatch(/env|PATH|HOME|function/i);
    }
    // Validation rejects $eval outright (it would hide what an expression reads).
    expect(() => compileSource("baton: 1\nname: e\nstages:\n  a: { value: \"$eval('1')\" }\n", { format: "yaml", baseDir: "." })).toThrow(/\$eval/);
  });

  it("runaway expressions are stopped by time, depth and size bounds with a clear error", async () => {
    await expect(evalIt("($f := function($n) { $f($n + 1) }; $f(0))")).rejects.toThrow(ExprError);
    await expect(evalIt("[1..20000000]")).rejects.toThrow(ExprError);
    // (the message names the bound that stopped it; how long that takes is not asserted: CI machines are loaded)
    await expect(evalIt("($loop := function($i) { $i < 100000000 ? $loop($i + 1) : $i }; $loop(0))")).rejects.toThrow(/ran for more than|recursed more than|deep/);
  }, 120_000); // the bound is 1 s of the expression's own CPU: on a machine shared with other work, more wall time

  it("a runaway `value:` stage fails the stage with the expression error; the process lives on", async () => {
    const plan = compileSource("baton: 1\nname: boom\nstages:\n  a: { value: \"($f := function($n) { $f($n + 1) }; $f(0))\", retry: { attempts: 3, delay: 1ms } }\n", { format: "yaml", baseDir: "." });
    const r = await execute({ name: plan.name, plan, parseInputs: (x) => x as Record<string, unknown> }, {});
    expect(r.status).toBe("failed");
    expect(r.error).toMatchObject({ stage: "a", kind: "expression" });
  });
});

describe("bad data", () => {
  it("__proto__ and constructor keys in outputs are stored as data, never as prototypes", async () => {
    const evil = JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}, "ok": 1}');
    const p = definePipeline({ name: "proto" })
      .stage("a", { run: () => evil })
      .stage("b", { needs: ["a"], value: "a" })
      .returns("b");
    const store = SqliteStore.open(":memory:");
    const r = await execute(p, {}, { store });
    expect(r.status).toBe("succeeded");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted")).toBe(false);
    const { events } = await store.load(r.id);
    const out = (events.find((e) => e.type === "stage_succeeded") as { output: Record<string, unknown> }).output;
    expect(Object.keys(out)).toContain("ok");
    await store.close();
  });

  it("a 50 MB string output is stored and read back; NaN, Infinity, cycles and BigInt are clear errors", async () => {
    const big = "y".repeat(50 * 1024 * 1024);
    const store = SqliteStore.open(":memory:");
    const r = await execute(definePipeline({ name: "big" }).stage("a", { run: () => big }).stage("n", { needs: ["a"], value: "$length(a)" }).returns("n"), {}, { store });
    expect(r.output).toBe(big.length);
    await store.close();
    for (const [bad, msg] of [[Infinity, /Infinity, which JSON cannot carry/], [{ n: NaN }, /NaN|not JSON|null/], [1n, /bigint/]] as const) {
      const res = await execute(definePipeline({ name: "bad" }).stage("a", { run: () => bad }), {}, { store: new MemoryStore() });
      if (res.status === "failed") expect(res.error?.message).toMatch(msg);
      else expect(res.output).toEqual({ a: { n: null } }); // a NaN nested in an object is JSON null, like JSON.stringify
    }
  });
});
