/**
 * The template schema's validator is precompiled at build time (scripts/build-schema.mjs, ajv
 * standalone code: issue 14). It must report exactly what the validator ajv compiles at run
 * time reports (from src/, or after a schema edit): the same errors, with the same data and
 * parent schemas that src/template/schema.ts turns into messages, on every fixture template.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import type { ErrorObject, ValidateFunction } from "ajv/dist/2020.js";
import { newAjv, templateSchema } from "../../src/template/schema.js";
// @ts-expect-error: a plain .mjs build script without types
import { templateValidatorSource } from "../../scripts/build-schema.mjs";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const dirs = ["test/fixtures/templates", "test/fixtures/cli", "examples"].map((d) => join(ROOT, d));
// Inside the repository, so the generated module's require("ajv/dist/runtime/…") resolves.
mkdirSync(join(ROOT, "node_modules/.cache"), { recursive: true });
const dir = mkdtempSync(join(ROOT, "node_modules/.cache/baton-schema-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function precompiled(): ValidateFunction & { schemaHash: string } {
  const file = join(dir, "template-validator.cjs");
  const text = readFileSync(join(ROOT, "schema/template.schema.json"), "utf8");
  writeFileSync(file, (templateValidatorSource as (t: string) => string)(text));
  return createRequire(import.meta.url)(file) as ValidateFunction & { schemaHash: string };
}

const shape = (errors: ErrorObject[] | null | undefined) =>
  (errors ?? []).map((e) => ({ path: e.instancePath, schemaPath: e.schemaPath, keyword: e.keyword, params: e.params, data: e.data, parent: e.parentSchema, message: e.message }));

describe("the precompiled template validator", () => {
  const standalone = precompiled();
  const compiled = newAjv().compile(templateSchema());
  const docs: [string, unknown][] = [];
  for (const d of dirs) {
    for (const f of readdirSync(d)) {
      if (!/\.(ya?ml|json)$/.test(f)) continue;
      try {
        docs.push([f, parseYaml(readFileSync(join(d, f), "utf8"))]);
      } catch {
        // a fixture of YAML syntax errors
      }
    }
  }
  // And some broken variants: wrong types, unknown fields, missing fields.
  docs.push(["empty", {}], ["wrong types", { baton: "one", name: 3, stages: { a: { value: 1, retry: { attempts: "x" }, timeout: "5 parsecs" } } }]);
  docs.push(["unknown fields", { baton: 1, name: "x", stagez: {}, stages: { a: { value: "1", neeeds: ["b"] } } }]);

  it("covers the fixtures", () => expect(docs.length).toBeGreaterThan(15));
  for (const [name, doc] of docs) {
    it(`reports what ajv's run-time compile reports: ${name}`, () => {
      const a = standalone(structuredClone(doc));
      const b = compiled(structuredClone(doc));
      expect(a).toBe(b);
      expect(shape(standalone.errors)).toEqual(shape(compiled.errors));
    });
  }
});
