import { describe, expect, it } from "vitest";
import { compileValueTemplate, ExprError, parseDuration } from "../../src/expr/index.js";

const scope = { inputs: { topic: "tides", depth: 5 }, research: { sources: [{ url: "u1" }, { url: "u2" }] }, empty: null };

describe("value templates", () => {
  it("interpolates into strings and keeps raw values for a lone {{ }}", () => {
    const t = compileValueTemplate({
      prompt: "Find {{ inputs.depth }} sources about {{inputs.topic}}.",
      depth: "{{ inputs.depth }}",
      spaced: "  {{ research.sources }}  ",
      inline: "sources: {{ research.sources }}",
      nothing: "[{{ empty }}][{{ missing }}]",
      list: [1, true, null, "{{ inputs.topic }}"],
    });
    expect(t.roots).toEqual(["empty", "inputs", "missing", "research"]);
    expect(t.inputNames).toEqual(["depth", "topic"]);
    expect(t.exprs.map((e) => e.source)).toEqual([
      "inputs.depth",
      "inputs.topic",
      "inputs.depth",
      "research.sources",
      "research.sources",
      "empty",
      "missing",
      "inputs.topic",
    ]);
    expect(t.evaluate(scope)).toEqual({
      prompt: "Find 5 sources about tides.",
      depth: 5,
      spaced: [{ url: "u1" }, { url: "u2" }],
      inline: 'sources: [{"url":"u1"},{"url":"u2"}]',
      nothing: "[][]",
      list: [1, true, null, "tides"],
    });
  });

  it("is synchronous when every expression is a simple path, a Promise otherwise", async () => {
    expect(compileValueTemplate("{{ inputs.topic }}").evaluate(scope)).toBe("tides");
    const t = compileValueTemplate({ n: "{{ $count(research.sources) }}", s: "{{ research.sources.url }}" });
    const v = t.evaluate(scope);
    expect(v).toBeInstanceOf(Promise);
    expect(await v).toEqual({ n: 2, s: ["u1", "u2"] });
  });

  it("handles braces and strings inside {{ }}", async () => {
    const t = compileValueTemplate("{{ {'a': {'b': '}}'}} }}!");
    expect(await t.evaluate({})).toBe('{"a":{"b":"}}"}}!');
  });

  it("builds fresh values on every evaluation", () => {
    const t = compileValueTemplate({ a: [1], b: "{{ inputs.topic }}" });
    const x = t.evaluate(scope) as { a: number[] };
    x.a.push(2);
    expect(t.evaluate(scope)).toEqual({ a: [1], b: "tides" });
  });

  it("gives the offset of a bad expression inside its string", () => {
    const bad = (value: unknown): ExprError => {
      try {
        compileValueTemplate(value);
      } catch (e) {
        return e as ExprError;
      }
      throw new Error("expected an error");
    };
    const e = bad({ a: ["ok", "bad {{ $count(x }}"] });
    expect(e).toBeInstanceOf(ExprError);
    expect(e.path).toEqual(["a", 1]);
    expect(e.offset).toBe(15);
    expect(bad("x {{ a").detail).toBe("unterminated `{{`: close it with `}}`");
    expect(bad("x {{ a").offset).toBe(2);
    expect(bad("{{ }}").detail).toMatch(/^empty `\{\{ \}\}`/);
  });
});

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["1.5s", 1500],
    ["30s", 30_000],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1d", 86_400_000],
    ["1m30s", 90_000],
    ["1h0m5s", 3_605_000],
  ])("%s → %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([["5"], [5], ["5 s"], ["s"], [""], ["1w"], [null], ["-1s"]])("rejects %j", (text) => {
    expect(() => parseDuration(text)).toThrow(/^bad duration '.*': write it like 500ms, 30s, 2m or 1h$/);
  });

  it("words the error as documented", () => {
    expect(() => parseDuration("5")).toThrow("bad duration '5': write it like 500ms, 30s, 2m or 1h");
  });
});
