/**
 * `limit:` references (issue 12 item 7): a pool name (`limit: llm`), or `{ pool, key }` — a pool
 * instance per key, the key a value template evaluated per execution (`"{{ inputs.tenant }}"`),
 * so one tenant cannot starve the others. Each instance has the pool's limits.
 */
import { NonRetryableError } from "../base/errors.js";
import type { ValueTemplate } from "../expr/types.js";

/** A `limit:` as written: `NAME` or `{ pool: NAME, key: TEMPLATE }` (the key as written). */
export function poolRefOf(raw: unknown): { readonly pool: string; readonly key?: unknown } | undefined {
  if (typeof raw === "string") return { pool: raw };
  if (raw !== null && typeof raw === "object" && !Array.isArray(raw) && typeof (raw as { pool?: unknown }).pool === "string") {
    const r = raw as { pool: string; key?: unknown };
    return r.key === undefined ? { pool: r.pool } : { pool: r.pool, key: r.key };
  }
  return undefined;
}

/** Longest key kept as written (longer keys still work: they are compared in full). */
export const MAX_POOL_KEY_SHOWN = 80;

/**
 * Evaluate a limit's key template in `scope`. Strings, numbers and booleans are keys (as text);
 * anything else fails the attempt without a retry (the template is wrong for these inputs).
 */
export async function evaluatePoolKey(key: ValueTemplate, scope: Record<string, unknown>, where: string): Promise<string> {
  const v = await key.evaluate(scope);
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new NonRetryableError(`${where}: the limit key evaluated to ${v === undefined ? "nothing" : JSON.stringify(v)?.slice(0, 80) ?? String(v)}: it must give a string (such as "{{ inputs.tenant }}")`, { kind: "template" });
}

/** How a key shows in messages: as written, cut when long. */
export function showPoolKey(key: string): string {
  return key.length <= MAX_POOL_KEY_SHOWN ? key : `${key.slice(0, MAX_POOL_KEY_SHOWN)}…`;
}
