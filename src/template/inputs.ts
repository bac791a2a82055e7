/** Run inputs: coerce CLI strings, apply defaults and validate against the plan's `inputs:`. */
import type { ErrorObject, ValidateFunction } from "ajv/dist/2020.js";
import type { Plan } from "../plan/types.js";
import { InputError } from "./errors.js";
import { isRec } from "./fields.js";
import { newAjv, showValue } from "./schema.js";
import { didYouMean } from "./suggest.js";

type Schema = Record<string, unknown>;

const validators = new WeakMap<Pick<Plan, "inputsSchema">, ValidateFunction>();
/**
 * The one ajv of input validation (it applies defaults), built on the first plan that declares
 * inputs. It skips checking the schemas against the meta-schema (a second compile of it, ~70 ms):
 * compiling the template checked each input's schema already.
 */
let ajv: ReturnType<typeof newAjv> | undefined;

function validatorOf(plan: Pick<Plan, "inputsSchema">): ValidateFunction {
  let v = validators.get(plan);
  if (v === undefined) {
    ajv ??= newAjv({ useDefaults: true, validateSchema: false });
    const { properties, required } = plan.inputsSchema;
    const schema = { type: "object", properties, required: [...(required ?? [])], additionalProperties: false };
    v = ajv.compile(structuredClone(schema));
    validators.set(plan, v);
  }
  return v;
}

function typesOf(schema: unknown): string[] {
  if (!isRec(schema)) return [];
  if (typeof schema.type === "string") return [schema.type];
  if (Array.isArray(schema.type)) return schema.type.filter((t): t is string => typeof t === "string");
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return [...new Set(schema.enum.map((e) => (e === null ? "null" : typeof e)))];
  return [];
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** Coerce a string from the command line to the type the input's schema asks for. */
function coerce(value: unknown, schema: unknown): unknown {
  if (typeof value !== "string") return value;
  const types = typesOf(schema);
  if (types.length === 0 || types.includes("string")) return value;
  const text = value.trim();
  for (const t of types) {
    if ((t === "integer" || t === "number") && NUMBER.test(text)) return Number(text);
    if (t === "boolean" && (text === "true" || text === "false")) return text === "true";
    if (t === "null" && text === "null") return null;
    if ((t === "object" || t === "array") && /^[[{]/.test(text)) {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        // left as a string: validation says what was expected
      }
    }
  }
  return value;
}

/** A value to show in "pass --input name=VALUE". */
function example(schema: unknown): string {
  const s: Schema = isRec(schema) ? schema : {};
  const sample = "default" in s ? s.default : Array.isArray(s.enum) ? s.enum[0] : undefined;
  if (sample !== undefined) return typeof sample === "string" ? sample : JSON.stringify(sample);
  const samples: Record<string, string> = { integer: "5", number: "1.5", boolean: "true", object: `'{"key":"value"}'`, array: `'["a","b"]'`, null: "null" };
  return samples[typesOf(schema)[0] ?? "string"] ?? "text";
}

function problemOf(e: ErrorObject, raw: Record<string, unknown>, props: Schema): string | undefined {
  const [name = "", ...rest] = e.instancePath.slice(1).split("/");
  if (name === "") return undefined; // top-level required/unknown are checked before ajv
  const where = rest.length > 0 ? `input '${name}' (at /${rest.join("/")})` : `input '${name}'`;
  const got = showValue(rest.length > 0 ? e.data : (raw[name] ?? e.data));
  if (e.keyword === "type" && rest.length === 0) {
    const expected = String((e.params as { type: unknown }).type).replace(/,/g, " or ");
    return `${where}: expected ${expected}, got ${got} — pass --input ${name}=${example(props[name])}`;
  }
  return `${where}: ${e.message ?? "is invalid"}, got ${got}`;
}

/**
 * Check run inputs against the plan's `inputs:`: apply defaults, coerce command-line strings
 * (`"5"` → 5 for integer/number, `"true"` → true, JSON text for object/array), reject unknown
 * and missing inputs (an input without a default is required). Returns a new object.
 *
 * @throws {@link InputError} with a one-line message, e.g.
 *   `input 'depth': expected integer, got "five" — pass --input depth=5`.
 * @example
 * validateInputs(plan, { topic: "tides", depth: "3" }); // { topic: "tides", depth: 3 }
 */
export function validateInputs(plan: Pick<Plan, "inputsSchema">, raw: Record<string, unknown>): Record<string, unknown> {
  const props = plan.inputsSchema.properties as Schema;
  const names = Object.keys(props);
  const problems: string[] = [];
  const data: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    if (!Object.hasOwn(props, k)) {
      problems.push(`unknown input '${k}'${names.length === 0 ? ": this pipeline takes no inputs" : didYouMean(k, names)}`);
      continue;
    }
    data[k] = structuredClone(coerce(v, props[k]));
  }
  for (const name of plan.inputsSchema.required ?? []) {
    if (!Object.hasOwn(data, name)) problems.push(`missing input '${name}' — pass --input ${name}=${example(props[name])}`);
  }
  if (problems.length > 0) throw new InputError(problems);
  if (names.length === 0) return data; // no inputs declared (and none given): nothing for ajv to check
  const validate = validatorOf(plan);
  if (!validate(data)) {
    const seen = new Set<string>();
    for (const e of validate.errors ?? []) {
      const p = problemOf(e, raw, props);
      if (p === undefined || seen.has(e.instancePath)) continue;
      seen.add(e.instancePath);
      problems.push(p);
    }
    throw new InputError(problems.length > 0 ? problems : ["inputs do not match the pipeline's inputs schema"]);
  }
  return data;
}
