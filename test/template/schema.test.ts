import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv2020 } from "ajv/dist/2020.js";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { compileSource, templateSchema } from "../../src/template/index.js";

const dir = fileURLToPath(new URL("../fixtures/templates/", import.meta.url));

describe("schema/template.schema.json", () => {
  const strict = new Ajv2020({ strict: true, allowUnionTypes: true, keywords: ["x-expect"] });

  it("is a valid draft 2020-12 schema under ajv's strict mode", () => {
    expect(strict.validateSchema(templateSchema())).toBe(true);
  });

  it("accepts the SPEC example on its own (for editors and other tools)", () => {
    const validate = strict.compile(templateSchema());
    for (const name of ["research-report.yaml", "all-features.yaml"]) {
      expect(validate(parse(readFileSync(dir + name, "utf8"))), JSON.stringify(validate.errors)).toBe(true);
    }
  });

  it("allows a $schema key for editors", () => {
    const plan = compileSource(JSON.stringify({ $schema: "./schema/template.schema.json", baton: 1, name: "j", stages: { a: { value: "1" } } }), {
      format: "json",
      baseDir: "/",
    });
    expect(plan.stages).toHaveLength(1);
  });
});
