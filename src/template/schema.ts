/**
 * Structural validation against `schema/template.schema.json` (draft 2020-12) with ajv,
 * and the translation of ajv's errors into one clear message per problem.
 *
 * The template validator is precompiled at build time (scripts/build-schema.mjs writes ajv
 * standalone code to dist/template/template-validator.cjs), so a command that compiles a
 * template loads no ajv compiler; ajv itself is loaded only for the templates' own JSON Schemas
 * (inputs, agent outputs) — issue 14.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Ajv2020, ErrorObject, ValidateFunction } from "ajv/dist/2020.js";
import { parseDuration } from "../expr/index.js";
import type { DocPath, Reporter } from "./source.js";
import { didYouMean } from "./suggest.js";

type Schema = Record<string, unknown>;

const require = createRequire(import.meta.url);

/** A fresh ajv for draft 2020-12 that knows Baton's `x-expect` annotation (ajv is loaded on first use). @internal */
export function newAjv(opts: { useDefaults?: boolean; validateSchema?: boolean } = {}): Ajv2020 {
  const { Ajv2020: Ajv } = require("ajv/dist/2020.js") as typeof import("ajv/dist/2020.js");
  // Keep these options in step with TEMPLATE_AJV_OPTIONS in scripts/build-schema.mjs.
  return new Ajv({
    allErrors: true,
    verbose: true,
    strict: false,
    allowUnionTypes: true,
    validateFormats: false,
    logger: false,
    keywords: ["x-expect"],
    ...opts,
  });
}

let shared: Ajv2020 | undefined;
let templateValidator: ValidateFunction | undefined;

/**
 * The process-wide ajv used while compiling templates (template schema, JSON Schema checks,
 * input defaults). One instance: each new one compiles the draft 2020-12 meta-schema again.
 * @internal
 */
export function sharedAjv(): Ajv2020 {
  shared ??= newAjv();
  return shared;
}

function templateSchemaText(): string {
  return readFileSync(new URL("../../schema/template.schema.json", import.meta.url), "utf8");
}

/** The template JSON Schema, as shipped in `schema/template.schema.json`. */
export function templateSchema(): Schema {
  return JSON.parse(templateSchemaText()) as Schema;
}

/**
 * The build's precompiled validator, if there is one and it was built from this schema text
 * (from src/ there is none; a schema edited after the build has another hash).
 */
function precompiledValidator(text: string): ValidateFunction | undefined {
  let mod: ValidateFunction & { schemaHash?: string };
  try {
    mod = require("./template-validator.cjs") as ValidateFunction & { schemaHash?: string };
  } catch {
    return undefined;
  }
  return mod.schemaHash === createHash("sha256").update(text).digest("hex") ? mod : undefined;
}

function validator(): ValidateFunction {
  if (templateValidator === undefined) {
    const text = templateSchemaText();
    templateValidator = precompiledValidator(text) ?? sharedAjv().compile(JSON.parse(text) as Schema);
  }
  return templateValidator;
}

/** `/stages/a~1b/0` → ["stages", "a/b", 0] (numbers for sequence indexes). */
function splitPointer(pointer: string, data: unknown): (string | number)[] {
  if (pointer === "") return [];
  const out: (string | number)[] = [];
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split("/")) {
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(cur)) {
      out.push(Number(seg));
      cur = cur[Number(seg)];
    } else {
      out.push(seg);
      cur = cur !== null && typeof cur === "object" ? (cur as Record<string, unknown>)[seg] : undefined;
    }
  }
  return out;
}

const OWNERS: Readonly<Record<string, string>> = { stages: "stage", agents: "agent", limits: "limit", inputs: "input", tools: "tool", mcp: "mcp server" };

/** Who a path belongs to (`stage 'x'`) and the field inside it (`retry.attempts`). */
export function describePath(path: DocPath): { owner?: string; field: string } {
  const [head, id, ...rest] = path;
  const kind = typeof head === "string" ? OWNERS[head] : undefined;
  const fieldOf = (ps: DocPath): string => ps.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
  if (kind !== undefined && id !== undefined) return { owner: `${kind} '${String(id)}'`, field: fieldOf(rest) };
  return { field: fieldOf(path) };
}

/** How a value is shown after "got". */
export function showValue(v: unknown): string {
  if (Array.isArray(v)) return v.length === 0 ? "an empty list" : "a list";
  if (v !== null && typeof v === "object") return Object.keys(v).length === 0 ? "an empty mapping" : "a mapping";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 39) + "…" : v);
  return String(v);
}

function listOr(items: readonly unknown[]): string {
  const s = items.map((i) => String(i));
  return s.length <= 1 ? (s[0] ?? "") : `${s.slice(0, -1).join(", ")} or ${s[s.length - 1] as string}`;
}

/** What a schema expects, in words. */
function expectation(schema: Schema): string {
  if (typeof schema["x-expect"] === "string") return schema["x-expect"];
  if (Array.isArray(schema.enum)) return `one of ${listOr(schema.enum)}`;
  if ("const" in schema) return JSON.stringify(schema.const);
  const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type];
  const words = types.map((t) => {
    switch (t) {
      case "integer":
        return schema.minimum === 1 ? "a positive integer" : schema.minimum === 0 ? "a non-negative integer" : "an integer";
      case "number":
        return schema.exclusiveMinimum === 0 ? "a positive number" : schema.minimum === 0 ? "a non-negative number" : "a number";
      case "string":
        return schema.minLength === 1 ? "a non-empty string" : "a string";
      case "boolean":
        return "true or false";
      case "object":
        return "a mapping";
      case "array":
        return "a list";
      default:
        return "valid";
    }
  });
  return listOr(words);
}

const REQUIRED_HINTS: Readonly<Record<string, string>> = {
  baton: " (add `baton: 1`, the format version)",
  name: " (add `name: my-pipeline`)",
};

function translate(e: ErrorObject, data: unknown, report: Reporter): void {
  const path = splitPointer(e.instancePath, data);
  const { owner, field } = describePath(path);
  const parent = (e.parentSchema ?? {}) as Schema;
  const container = owner === undefined ? (field === "" ? "the template" : `'${field}'`) : field === "" ? owner : `${owner} ${field}`;
  switch (e.keyword) {
    case "additionalProperties": {
      const name = String((e.params as { additionalProperty: string }).additionalProperty);
      const allowed = Object.keys((parent.properties ?? {}) as Schema);
      const where = path.length === 0 ? "unknown top-level field" : `unknown field`;
      const inWhat = path.length === 0 ? "" : ` in ${container}`;
      report.key([...path, name], `${where} '${name}'${inWhat}${didYouMean(name, allowed)}`);
      return;
    }
    case "required": {
      const name = String((e.params as { missingProperty: string }).missingProperty);
      const hint = path.length === 0 ? (REQUIRED_HINTS[name] ?? "") : "";
      report.key(path, `${container} is missing '${name}'${hint}`);
      return;
    }
  }
  const got = showValue(e.data);
  if (parent["x-expect"] !== undefined && parent.pattern !== undefined && String(parent.pattern).includes("ms|s|m|h|d")) {
    let msg: string;
    try {
      parseDuration(e.data);
      msg = `bad duration ${got}`;
    } catch (err) {
      msg = (err as Error).message;
    }
    const lead = owner === undefined ? "" : `${owner}: `;
    report.value(path, `${lead}${msg.replace(/^bad duration ('[^']*')/, `bad duration $1 for '${field}'`)}`);
    return;
  }
  if (path[0] === "stages" && path.length === 3 && path[2] === "for_each") {
    report.value(path, `${owner ?? "stage"}: for_each must be an expression string such as research.sources`);
    return;
  }
  const expect = expectation(parent);
  const subject = owner === undefined ? (field === "" ? "the template" : `'${field}'`) : field === "" ? owner : `${owner}: '${field}'`;
  report.value(path, `${subject} must be ${expect}, got ${got}`);
}

/**
 * Validate template data against the template schema and report each problem once, at the
 * offending key or value. Stage ids, kinds and references are checked elsewhere.
 */
export function checkSchema(data: unknown, report: Reporter): void {
  const validate = validator();
  if (validate(data)) return;
  const errors = validate.errors ?? [];
  // Branch errors of a failing oneOf/anyOf are noise: its own error says what was expected.
  const unions = errors.filter((e) => e.keyword === "oneOf" || e.keyword === "anyOf").map((e) => e.instancePath);
  const seen = new Set<string>();
  for (const e of errors) {
    const isUnion = e.keyword === "oneOf" || e.keyword === "anyOf";
    if (!isUnion && unions.some((u) => e.instancePath === u || e.instancePath.startsWith(u + "/"))) continue;
    if (e.keyword === "propertyNames" || e.schemaPath.includes("/propertyNames/")) continue; // ids are checked with the stages
    const extra = e.keyword === "additionalProperties" || e.keyword === "required" ? JSON.stringify(e.params) : "";
    const key = `${e.instancePath}|${extra}`;
    if (seen.has(key)) continue;
    seen.add(key);
    translate(e, data, report);
  }
}
