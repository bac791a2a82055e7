/**
 * Stage outputs must be JSON: they are stored, read by expressions and shown in traces.
 * `toJsonValue` returns the value as JSON would carry it, or throws a clear error.
 */
import { NonRetryableError } from "./errors.js";

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
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new NonRetryableError(`${what} is not JSON-serialisable (${(err as Error).message}): return plain data without cycles or BigInts`);
  }
  return JSON.parse(text);
}
