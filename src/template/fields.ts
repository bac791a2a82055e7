/** Small field helpers shared by the template checks: records, durations, retry, JSON Schemas. */
import type { ErrorObject } from "ajv/dist/2020.js";
import { parseDuration } from "../expr/index.js";
import type { RetryPolicy } from "../plan/types.js";
import { sharedAjv } from "./schema.js";
import type { DocPath, Reporter } from "./source.js";
import { didYouMean } from "./suggest.js";

/** A mapping read from template data. */
export type Rec = Record<string, unknown>;

/** A plain mapping (not null, not an array). */
export function isRec(v: unknown): v is Rec {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Milliseconds of a duration, or undefined when it is not one (the schema check reports that). */
export function durationOf(v: unknown): number | undefined {
  try {
    return parseDuration(v);
  } catch {
    return undefined;
  }
}

/** Built-in retry policy: one attempt, exponential backoff from 1s capped at 30s, full jitter. */
export const BUILTIN_RETRY: RetryPolicy = Object.freeze({
  attempts: 1,
  backoff: "exponential",
  delayMs: 1000,
  maxDelayMs: 30_000,
  jitter: "full",
});

/**
 * Merge a `retry:` mapping over a base policy, field by field, and check the result once
 * (Temporal style: max_delay cannot be less than delay).
 */
export function retryOf(raw: Rec, base: RetryPolicy, path: DocPath, owner: string, report: Reporter): RetryPolicy {
  const delayMs = raw.delay === undefined ? base.delayMs : (durationOf(raw.delay) ?? base.delayMs);
  const maxDelayMs = raw.max_delay === undefined ? base.maxDelayMs : (durationOf(raw.max_delay) ?? base.maxDelayMs);
  const policy: RetryPolicy = {
    attempts: typeof raw.attempts === "number" && Number.isInteger(raw.attempts) && raw.attempts >= 1 ? raw.attempts : base.attempts,
    backoff: raw.backoff === "fixed" || raw.backoff === "exponential" ? raw.backoff : base.backoff,
    delayMs,
    maxDelayMs,
    jitter: raw.jitter === "full" || raw.jitter === "none" ? raw.jitter : base.jitter,
  };
  if (maxDelayMs < delayMs) {
    const where = raw.max_delay !== undefined ? [...path, "max_delay"] : [...path, "delay"];
    const show = (ms: number, v: unknown): string => (typeof v === "string" ? v : `${ms}ms`);
    report.value(
      where,
      `${owner}: retry.max_delay (${show(maxDelayMs, raw.max_delay)}) is less than retry.delay (${show(delayMs, raw.delay)}): raise max_delay or lower delay`,
    );
  }
  return policy;
}

const TYPES = ["array", "boolean", "integer", "null", "number", "object", "string"];

function pointerPath(pointer: string): (string | number)[] {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** Report when `schema` is not a valid JSON Schema (draft 2020-12), at the offending keyword. */
export function checkJsonSchema(schema: unknown, path: DocPath, what: string, report: Reporter): void {
  if (typeof schema === "boolean") return;
  if (!isRec(schema)) return; // the template schema reported it
  const metaAjv = sharedAjv();
  try {
    if (metaAjv.validateSchema(schema) === true) return;
  } catch (err) {
    // e.g. a `$schema` of another draft
    const why = typeof schema.$schema === "string" ? `$schema '${schema.$schema}' is not supported: write JSON Schema draft 2020-12` : (err as Error).message;
    report.value(typeof schema.$schema === "string" ? [...path, "$schema"] : path, `${what} is not a valid JSON Schema: ${why}`);
    return;
  }
  const errors: ErrorObject[] = metaAjv.errors ?? [];
  const first = errors[0];
  if (first === undefined) return;
  const sub = pointerPath(first.instancePath);
  const last = sub[sub.length - 1];
  const value = first.data ?? sub.reduce<unknown>((v, k) => (isRec(v) || Array.isArray(v) ? (v as Rec)[k as string] : undefined), schema);
  let detail: string;
  if (last === "type" && typeof value === "string") {
    detail = `type must be one of ${TYPES.join(", ")}, got "${value}"${didYouMean(value, TYPES)}`;
  } else {
    detail = `${sub.length === 0 ? "" : `${sub.join(".")} `}${first.message ?? "is invalid"}`;
  }
  report.value([...path, ...sub], `${what} is not a valid JSON Schema: ${detail}`);
}
