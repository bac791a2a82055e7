/**
 * `limit:` on stages, agents and tools: `NAME` or `{ pool: NAME, key: TEMPLATE }` (a pool
 * instance per key). Checks the pool is declared and the key is a string value template.
 */
import type { CompiledValueTemplate } from "../expr/value-template.js";
import { isRec } from "./fields.js";
import type { ExprChecker, Where } from "./refs.js";
import type { DocPath, Reporter } from "./source.js";
import { didYouMean } from "./suggest.js";

/** A checked `limit:`: the pool when it is declared, the key's template when it compiled. */
export interface LimitDraft {
  readonly pool?: string;
  readonly key?: CompiledValueTemplate;
}

/**
 * Check `raw` (a `limit:` at `path`). With `where`, the key is compiled in that scope; without,
 * only its type is checked (the caller compiles it).
 */
export function analyzeLimit(raw: unknown, path: DocPath, ctx: { report: Reporter; exprs: ExprChecker; limits: ReadonlySet<string> }, where?: Where): LimitDraft {
  if (raw === undefined) return {};
  const { report, limits } = ctx;
  const known = (name: unknown, p: DocPath): string | undefined => {
    if (typeof name !== "string") return undefined; // the schema check reported it
    if (limits.has(name)) return name;
    report.value(p, `unknown limit '${name}'${limits.size === 0 ? ": declare it under limits:" : didYouMean(name, limits)}`);
    return undefined;
  };
  if (!isRec(raw)) return { ...(known(raw, path) !== undefined ? { pool: raw as string } : {}) };
  const pool = known(raw.pool, [...path, "pool"]);
  let key: CompiledValueTemplate | undefined;
  if (typeof raw.key !== "string") {
    if (raw.key !== undefined) report.value([...path, "key"], `limit key must be a string template, such as "{{ inputs.tenant }}" (got ${Array.isArray(raw.key) ? "a list" : raw.key === null ? "null" : typeof raw.key})`);
  } else if (where) key = ctx.exprs.template([...path, "key"], raw.key, where);
  return { ...(pool !== undefined ? { pool } : {}), ...(key !== undefined ? { key } : {}) };
}
