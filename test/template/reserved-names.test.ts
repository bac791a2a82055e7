/**
 * Issue 13.13: a stage id or `as:` name `__proto__` passed validation and read as null; an input
 * named `constructor` with a default failed with "expected string, got function Object()". Names
 * every JavaScript object already has are rejected at validate time, at FILE:LINE:COL.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { definePipeline } from "../../src/index.js";
import { formatDiagnostic, validateFile } from "../../src/template/index.js";
import { OBJECT_NAMES } from "../../src/template/refs.js";

const dir = mkdtempSync(join(tmpdir(), "baton-reserved-"));
let n = 0;

function diagnostics(text: string, ext = "yaml"): string[] {
  const file = join(dir, `t${++n}.${ext}`);
  writeFileSync(file, text);
  return validateFile(file).map((d) => formatDiagnostic(d).replace(dir + "/", ""));
}

describe("reserved names", () => {
  it("a stage id __proto__ (it read as null)", () => {
    expect(diagnostics('baton: 1\nname: r\nstages:\n  __proto__: { value: "1" }\n  b: { value: "__proto__ + 1" }\noutput: b\n')).toEqual([
      `t${n}.yaml:4:3: stage id '__proto__' is reserved: every JavaScript object has a '__proto__', so it would read as null instead of its value: rename the stage`,
    ]);
  });

  it("every Object.prototype name and 'prototype' as a stage id, at the id's position", () => {
    for (const name of OBJECT_NAMES) {
      const d = diagnostics(`baton: 1\nname: r\nstages:\n  a: { value: "1" }\n  ${name}: { value: "2" }\noutput: a\n`);
      expect(d, name).toEqual([`t${n}.yaml:5:3: stage id '${name}' is reserved: every JavaScript object has a '${name}', so it would read as ${name === "__proto__" ? "null" : "a built-in function"} instead of its value: rename the stage`]);
    }
    expect(OBJECT_NAMES.has("constructor") && OBJECT_NAMES.has("prototype") && OBJECT_NAMES.has("__proto__")).toBe(true);
  });

  it("an `as:` name __proto__ (every item read as null)", () => {
    expect(diagnostics('baton: 1\nname: r\nstages:\n  b: { for_each: "[1, 2]", as: __proto__, value: "__proto__ * 2" }\noutput: b\n')).toEqual([
      `t${n}.yaml:4:32: stage 'b': as name '__proto__' is reserved: every JavaScript object has a '__proto__', so it would read as null instead of its value: pick another name`,
    ]);
  });

  it("an input named constructor with a default (it failed with 'got function Object()')", () => {
    const d = diagnostics('baton: 1\nname: r\ninputs:\n  constructor: { type: string, default: hi }\nstages:\n  b: { value: "1" }\noutput: b\n');
    expect(d).toEqual([
      `t${n}.yaml:4:3: input name 'constructor' is reserved: every JavaScript object has a 'constructor', so it would read as a built-in function instead of its value: rename the input`,
    ]);
  });

  it("a JSON template is checked the same way", () => {
    const d = diagnostics(JSON.stringify({ baton: 1, name: "r", inputs: { __proto__x: { type: "string" } }, stages: { a: { value: "1" } }, output: "a" }).replace("__proto__x", "__proto__"), "json");
    expect(d).toHaveLength(1);
    expect(d[0]).toMatch(/^t\d+\.json:1:\d+: input name '__proto__' is reserved/);
  });

  it("the TypeScript builder rejects them too", () => {
    // (the builder compiles on first use of .plan)
    expect(() => definePipeline({ name: "r" }).stage("constructor", { value: "1" }).returns("constructor").plan).toThrow(/stage id 'constructor' is reserved/);
    expect(() => definePipeline({ name: "r" }).stage("a", { value: "1" }).stage("__proto__", { value: "2" }).returns("a").plan).toThrow(/stage id '__proto__' is reserved/);
  });

  it("ordinary names that merely contain them are fine", () => {
    expect(diagnostics('baton: 1\nname: r\ninputs:\n  my_constructor: { type: string, default: hi }\nstages:\n  proto: { value: "1" }\n  to_string: { value: "proto" }\noutput: to_string\n')).toEqual([]);
  });
});
