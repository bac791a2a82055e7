/**
 * Stage outputs must be JSON: they are stored, read by expressions and shown in traces.
 * `toJsonValue` returns the value as JSON would carry it, or throws a clear error.
 */
import { NonRetryableError } from "./errors.js";
import { MAX_JSON_DEPTH, shapeOf } from "../base/json.js";

export { MAX_JSON_DEPTH, shapeOf };

/** Check (and normalise) a stage output. Primitives pass without serialising. */
export function toJsonValue(value: unknown, what: string): unknown {
  switch (typeof value) {
    case "undefined":
      return null;
    case "string":
    case "boolean":
      return value;
    case "number":
      if (!Number.isFinite(value)) throw new NonRetryableError(`${what} is ${value}, which JSON cannot carry: return a finite number or null`);
      return value;
    case "bigint":
    case "function":
    case "symbol":
      throw new NonRetryableError(`${what} is a ${typeof value}, which is not JSON: return plain data (objects, arrays, strings, numbers, booleans, null)`);
    default:
      break;
  }
  if (value === null) return null;
  // Plain data (what handlers and JSONata return) is taken as it is: no copy.
  if (isPlainJson(value, 0)) return value;
  // Deep or unusual: measure it without recursion first, so a cycle or a 10,000-level nest is
  // named as such instead of surfacing as JSON.stringify's stack overflow.
  const shape = shapeOf(value as object);
  if (shape.cycle) throw new NonRetryableError(`${what} contains a cycle (an object that contains itself), which JSON cannot carry: return plain data`);
  if (shape.depth > MAX_JSON_DEPTH) {
    throw new NonRetryableError(
      `${what} is nested ${shape.depth.toLocaleString("en-US")} levels deep; at most ${MAX_JSON_DEPTH.toLocaleString("en-US")} are stored: flatten it (a list of records, or a string of its JSON)`,
    );
  }
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new NonRetryableError(`${what} is not JSON-serialisable (${(err as Error).message}): return plain data (objects, arrays, strings, numbers, booleans, null)`);
  }
  return JSON.parse(text);
}

/**
 * True when `v` is JSON as it stands: plain objects and arrays of strings, finite numbers,
 * booleans and null, no `undefined` values, no `toJSON`, nested at most 256 deep (deeper, or a
 * cycle, goes through JSON.stringify, which reports it).
 */
function isPlainJson(v: unknown, depth: number): boolean {
  if (depth > 256) return false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (!plainValue(v[i], depth)) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const k in v as object) {
    if (!plainValue((v as Record<string, unknown>)[k], depth)) return false;
  }
  return true;
}

function plainValue(x: unknown, depth: number): boolean {
  switch (typeof x) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(x);
    case "object":
      return x === null || isPlainJson(x, depth + 1);
    default:
      return false;
  }
}
