/**
 * Secrets never reach the log (SPEC §5): values of environment variables named like
 * *KEY*, *TOKEN*, *SECRET*, *PASSWORD*, and strings that look like API keys or bearer tokens,
 * are replaced by `[redacted]` in every stored snapshot — stage inputs and outputs, logs,
 * error messages, decisions, run inputs and outputs. The redacted value is also what later
 * stages read (live and on replay alike): pass secrets through the environment, not as data.
 */
import type { BatonEvent } from "../engine/events.js";

export const REDACTED = "[redacted]";
const SECRET_NAME = /KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL/i;
/** Shapes of well-known credentials. */
const SECRET_SHAPES = /\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,})|(?<=\bBearer\s+)[A-Za-z0-9._~+/=-]{16,}/g;

let cached: { key: string; values: string[] } | undefined;

/** Values of secret-looking environment variables (6+ characters), longest first. */
export function secretValues(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env === process.env) {
    // Scanning the environment costs tens of µs: redo it only when the set of names changed.
    const names = Object.keys(env);
    const key = `${names.length}:${names.join(",")}`;
    if (cached?.key === key) return cached.values;
    cached = { key, values: scan(env) };
    return cached.values;
  }
  return scan(env);
}

function scan(env: NodeJS.ProcessEnv): string[] {
  const out = new Set<string>();
  for (const [k, v] of Object.entries(env)) if (v && v.length >= 6 && SECRET_NAME.test(k)) out.add(v);
  return [...out].sort((a, b) => b.length - a.length);
}

/** A redactor for the given secret values. */
export class Redactor {
  constructor(private readonly secrets: readonly string[] = secretValues()) {}

  /** Redact a string. */
  text(s: string): string {
    let out = s;
    for (const v of this.secrets) if (out.includes(v)) out = out.split(v).join(REDACTED);
    SECRET_SHAPES.lastIndex = 0;
    return SECRET_SHAPES.test(out) ? out.replace(SECRET_SHAPES, REDACTED) : out;
  }

  /** Redact any JSON value; returns the same object when nothing changed. */
  value<T>(v: T, depth = 0): T {
    if (typeof v === "string") return this.text(v) as T;
    if (v === null || typeof v !== "object" || depth > 200) return v;
    if (Array.isArray(v)) {
      let copy: unknown[] | undefined;
      for (let i = 0; i < v.length; i++) {
        const r = this.value(v[i], depth + 1);
        if (r !== v[i]) (copy ??= v.slice())[i] = r;
      }
      return (copy ?? v) as T;
    }
    let copy: Record<string, unknown> | undefined;
    for (const k in v as Record<string, unknown>) {
      const x = (v as Record<string, unknown>)[k];
      const r = this.value(x, depth + 1);
      if (r !== x) (copy ??= { ...(v as Record<string, unknown>) })[k] = r;
    }
    return (copy ?? v) as T;
  }

  /** Redact an event's payload fields in place (events are fresh objects the runtime built). */
  event(e: BatonEvent): void {
    const m = e as unknown as Record<string, unknown>;
    for (const f of FIELDS) if (m[f] !== undefined) m[f] = this.value(m[f]);
  }
}

/** Event fields that carry data or free text. */
const FIELDS = ["input", "output", "logs", "error", "inputs", "read", "with", "items", "result", "message", "reason", "data", "comment", "messages", "calls"] as const;
