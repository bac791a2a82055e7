/**
 * Issue 13 items 5–7: expressions that killed or stalled the process. Each case reproduces the
 * report first (before the fix: a V8 fatal error, a 369 s blocked event loop, a cheap
 * expression failing under load), then checks the clear error or the right value.
 * No wall-clock limits here: the figures live in bench/expr.mjs.
 */
import { afterEach, describe, expect, it } from "vitest";
import { compileExpr, EXPR_LIMITS, ExprError } from "../../src/expr/index.js";
import { setGuardClock } from "../../src/expr/guard.js";

const evalIt = async (src: string, scope: Record<string, unknown> = {}): Promise<unknown> => await compileExpr(src).evaluate(scope);
const failure = async (src: string, scope: Record<string, unknown> = {}): Promise<ExprError> => {
  const err = await evalIt(src, scope).then(
    (v) => new Error(`expected ${src} to fail, got ${JSON.stringify(v)?.slice(0, 80)}`),
    (e: unknown) => e,
  );
  if (!(err instanceof ExprError)) throw err;
  return err;
};
const compileFailure = (src: string): ExprError => {
  try {
    compileExpr(src);
  } catch (e) {
    if (e instanceof ExprError) return e;
    throw e;
  }
  throw new Error(`expected ${src} not to compile`);
};

describe("item 5: memory bounds on what an expression builds", () => {
  it("$pad to 140,000,000 characters is a clear, non-retryable error (was: V8 fatal error, exit 133)", async () => {
    const e = await failure("$length($pad('', 140000000, 'a'))");
    expect(e.message).toBe(
      "expression `$length($pad('', 140000000, 'a'))` built a string of 140,000,000 characters; expressions are limited to " +
        "strings of 10,000,000 characters (about 10 MB): pass large data by a simple path (`stage.field`), or build it in a `run:` stage",
    );
    expect(e.retryable).toBe(false);
    expect(e.code).toBe("BATON_STRING");
    expect(e.offset).toBeGreaterThanOrEqual(8); // inside the `$pad(` call
    expect(e.offset).toBeLessThanOrEqual(13);
    expect(await failure("$pad('x', -140000000)")).toMatchObject({ code: "BATON_STRING" });
  });

  it("the other string and array builders are bounded the same way", async () => {
    const s = "y".repeat(4_000_000);
    for (const [src, code] of [
      ["$join([s, s, s])", "BATON_STRING"],
      ["$string([s, s, s])", "BATON_STRING"],
      ["$replace(s, 'y', 'yyy')", "BATON_STRING"],
      ["s & s & s", "BATON_STRING"],
      ["{ 'big': [s & s & s] }", "BATON_STRING"],
      ["$split(s, '')", "BATON_ARRAY"],
      ["$split($join([s, s, s]), '')", "BATON_STRING"],
    ] as const) {
      const e = await failure(src, { s });
      expect(e.code, src).toBe(code);
      expect(e.message, src).toMatch(/; expressions are limited to (strings of 10,000,000 characters|1,000,000 items)/);
    }
    // Doubling past V8's own string limit is a RangeError inside JSONata: the same clear error.
    const doubling = await failure("($s := 'y'; $d := function($x, $n) { $n = 0 ? $x : $d($x & $x, $n - 1) }; $length($d($s, 31)))");
    expect(doubling.message).toMatch(/built a string (of [\d,]+ characters|longer than JavaScript allows); expressions are limited/);
    // Ranges were bounded already (JSONata's sequence option).
    expect((await failure("$count([1..20000000])")).message).toMatch(/sequence longer than|D2014|1e7|10000000/);
  });

  it("results within the bounds are unchanged, and big data still passes through simple paths", async () => {
    expect(await evalIt("$length($pad('', 100000, 'ab'))")).toBe(100000);
    expect(await evalIt("$pad('7', -3, '0')")).toBe("007");
    expect(await evalIt("$join(['a', 'b'], ', ')")).toBe("a, b");
    expect(await evalIt("$split('a,b,,c', ',', 2)")).toEqual(["a", "b"]);
    expect(await evalIt("$map(['a', 'b'], $string)")).toEqual(["a", "b"]);
    expect(await evalIt("$replace('abc', 'b', 'x')")).toBe("axc");
    const big = "z".repeat(EXPR_LIMITS.string + 1);
    expect(compileExpr("a.text").evaluate({ a: { text: big } })).toBe(big); // the fast path builds nothing
    expect(await evalIt("$length(a.text)", { a: { text: big } })).toBe(big.length);
  });
});

describe("item 6: regexes run in linear time (RE2)", () => {
  it("$match(s, /(a+)+$/) on 37 characters returns at once (was: event loop blocked 369 s)", async () => {
    const s = "a".repeat(36) + "!";
    expect(await evalIt("$match(s, /(a+)+$/)", { s })).toBeUndefined();
    expect(await evalIt("$contains(s, /(a|aa)+$/)", { s })).toBe(false);
    expect(await evalIt("$replace(s, /(a+)+$/, 'x')", { s })).toBe(s);
    expect(await evalIt("$split(s, /(a*)*!/)", { s })).toEqual(["", ""]);
  });

  it("keeps JSONata's regex semantics: flags, groups, indexes, $replace with $1", async () => {
    expect(await evalIt("$match('Ab ab', /a(b)/i)")).toEqual([
      { match: "Ab", index: 0, groups: ["b"] },
      { match: "ab", index: 3, groups: ["b"] },
    ]);
    expect(await evalIt("$replace('John Smith', /(\\w+)\\s(\\w+)/, '$2, $1')")).toBe("Smith, John");
    expect(await evalIt("$split('a1b22c', /\\d+/)")).toEqual(["a", "b", "c"]);
    expect(await evalIt("$contains('line1\\nline2', /^line2$/m)")).toBe(true);
    expect(await evalIt("'x-ß-y' ~> $match(/ß/)")).toEqual({ match: "ß", index: 2, groups: [] });
    expect(await evalIt("$match('aaa', /a/, 2)")).toHaveLength(2);
  });

  it("a pattern RE2 cannot run is a compile error at the regex, never a backtracking fallback", () => {
    const back = compileFailure("$match(s, /(a)\\1/)");
    expect(back.message).toContain("regex /(a)\\1/ uses a backreference: expressions match with RE2, which runs in linear time");
    expect(back.offset).toBe(10);
    expect(back.code).toBe("BATON_REGEX");
    const look = compileFailure("$contains(s, /foo(?=bar)/i) and true");
    expect(look.detail).toMatch(/^regex \/foo\(\?=bar\)\/ uses lookahead or lookbehind/);
    expect(look.offset).toBe(13);
    expect(compileFailure("$replace(s, /(?<!x)y/, 'z')").detail).toContain("lookahead or lookbehind");
  });
});

describe("item 7: the time bound measures the expression's own work", () => {
  afterEach(() => {
    setGuardClock(() => performance.now());
  });

  it("30,000 concurrent evaluations of `item * 2` all succeed (was: every one 'ran for more than 1000 ms')", async () => {
    const e = compileExpr("item * 2");
    const rs = await Promise.allSettled(Array.from({ length: 30_000 }, (_, i) => e.evaluate({ item: i })));
    const failed = rs.filter((r) => r.status === "rejected");
    expect(failed.length, failed.length > 0 ? String((failed[0] as PromiseRejectedResult).reason) : "").toBe(0);
    expect((rs[29_999] as PromiseFulfilledResult<unknown>).value).toBe(59_998);
  }, 120_000);

  it("on a simulated clock: interleaved evaluations are charged their own steps, not each other's", async () => {
    // Every read of the clock advances it 1 ms: the bound (1000 ms) is then ~1000 of an
    // evaluation's own guard checks. Wall time across 2,000 interleaved evaluations is far more.
    let t = 0;
    setGuardClock(() => t++);
    const e = compileExpr("$sum([1, 2, 3].($ * item))");
    const rs = await Promise.allSettled(Array.from({ length: 2_000 }, (_, i) => e.evaluate({ item: i })));
    expect(rs.every((r) => r.status === "fulfilled")).toBe(true);
    expect(t).toBeGreaterThan(10 * EXPR_LIMITS.timeoutMs);
  });

  it("a runaway expression is still stopped, alone and beside other runaways and cheap work", async () => {
    let t = 0;
    setGuardClock(() => t++);
    const runaway = compileExpr("($loop := function($n) { $loop($n + 1) }; $loop(0))");
    const cheap = compileExpr("item + 1");
    const all = await Promise.allSettled([
      runaway.evaluate({}),
      runaway.evaluate({ other: 1 }),
      ...Array.from({ length: 500 }, (_, i) => cheap.evaluate({ item: i })),
    ]);
    for (const r of all.slice(0, 2)) {
      expect(r.status).toBe("rejected");
      expect(String((r as PromiseRejectedResult).reason.message)).toBe(
        "expression `($loop := function($n) { $loop($n + 1) }; $loop(0))` ran for more than 1000 ms of its own work",
      );
    }
    expect(all.slice(2).every((r) => r.status === "fulfilled")).toBe(true);
    // And on the real clock.
    setGuardClock(() => performance.now());
    await expect(runaway.evaluate({})).rejects.toThrow(/ran for more than 1000 ms of its own work/);
  }, 120_000); // the real-clock case is 1 s of own CPU: more wall time on a loaded machine

  it("time the process spends elsewhere between evaluations is not charged", async () => {
    let t = 0;
    setGuardClock(() => t);
    const e = compileExpr("$sum([1, 2, 3])");
    await e.evaluate({});
    t += 60_000; // a minute of other work (I/O, a store write) before the next evaluation
    expect(await e.evaluate({})).toBe(6);
  });

  it("depth is still bounded", async () => {
    expect((await failure("($f := function($n) { 1 + $f($n + 1) }; $f(0))")).message).toMatch(/recursed more than 500 levels deep/);
  });
});
