import { LineCounter, parseDocument } from "yaml";
import { describe, expect, it } from "vitest";
import { parseText } from "../../src/template/source.js";

/** What parsing with yaml's own `uniqueKeys` reports: the behaviour parseText keeps. */
function yamlDuplicates(text: string): { line: number; col: number }[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  return doc.errors.filter((e) => e.code === "DUPLICATE_KEY").map((e) => lines.linePos(e.pos[0]));
}

const CASES = [
  "a: 1\nb: 2\n",
  "a: 1\na: 2\n",
  "stages:\n  x: { value: '1', value: '2' }\n",
  "stages:\n  x:\n    run: a\n  y:\n    run: b\n  x:\n    run: c\n",
  "list:\n  - a: 1\n    a: 2\n  - b: 1\n",
  "flow: [a: 1, a: 2]\n",
  "flow: [{ a: 1 }, { a: 1 }]\n",
  "? { k: 1, k: 2 }\n: v\n",
  "1: a\n'1': b\n",
  "~: a\nnull: b\n",
  "deep: { a: { b: { c: 1, c: 2 } } }\n",
  "x: &anchor { a: 1 }\ny: *anchor\nz: *anchor\n",
  '{"a": 1, "b": {"c": 2, "c": 3}}',
];

describe("duplicate keys (found in one linear pass)", () => {
  it.each(CASES)("reports what yaml's uniqueKeys reports in %j", (text) => {
    const got = parseText(text, text.startsWith("{") ? "json" : "yaml", "t.yaml").diagnostics.filter((d) => d.message.startsWith("duplicate key"));
    expect(got.map((d) => ({ line: d.line, col: d.col }))).toEqual(yamlDuplicates(text));
  });
});
