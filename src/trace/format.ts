/**
 * Text helpers for the human trace view: durations, counts, compact values, and lines built
 * from styled segments that are cut to the terminal width before colour codes are added
 * (so truncation never splits an escape sequence and `color: false` emits none).
 * @internal
 */

/** A colour or weight of a segment. */
export type Style = "green" | "red" | "yellow" | "cyan" | "magenta" | "blue" | "dim" | "bold";

/** A piece of a line: text and an optional style. */
export type Seg = readonly [text: string, style?: Style | undefined];

const CODES: Record<Style, string> = {
  green: "\u001b[32m", red: "\u001b[31m", yellow: "\u001b[33m", cyan: "\u001b[36m",
  magenta: "\u001b[35m", blue: "\u001b[34m", dim: "\u001b[2m", bold: "\u001b[1m",
};
const RESET = "\u001b[0m";

/** Join segments into one line of at most `width` visible characters (an ellipsis marks a cut). */
export function paint(segs: readonly Seg[], width: number, color: boolean): string {
  let out = "";
  let left = width;
  for (let i = 0; i < segs.length; i++) {
    const [text, style] = segs[i]!;
    const chars = [...text];
    let shown = text;
    let cut = false;
    if (chars.length > left || (chars.length === left && hasMore(segs, i))) {
      shown = chars.slice(0, Math.max(0, left - 1)).join("") + "…";
      cut = true;
    }
    out += color && style ? `${CODES[style]}${shown}${RESET}` : shown;
    left -= [...shown].length;
    if (cut) break;
  }
  return out.trimEnd();
}

function hasMore(segs: readonly Seg[], i: number): boolean {
  for (let j = i + 1; j < segs.length; j++) if (segs[j]![0].length > 0) return true;
  return false;
}

/** `1,234` */
export const count = (n: number): string => n.toLocaleString("en-US");

/** A duration in ms as `850ms`, `1.25s`, `2m 03s`, `1h 02m`. */
export function duration(ms: number | null): string {
  if (ms === null) return "";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/**
 * One-line JSON of `v`, built only up to `budget` characters (a huge value costs no more than
 * the budget, except for a single huge string). `ok` is false when it did not fit.
 */
export function flatJson(v: unknown, budget: number, tight = false): { readonly text: string; readonly ok: boolean } {
  const sep = tight ? "," : ", ";
  const colon = tight ? ":" : ": ";
  let text = "";
  const put = (t: string): boolean => {
    text += t;
    return text.length <= budget;
  };
  const walk = (x: unknown): boolean => {
    if (x === null || typeof x !== "object") return put(JSON.stringify(x) ?? "null");
    if (Array.isArray(x)) {
      if (!put("[")) return false;
      for (let i = 0; i < x.length; i++) if ((i > 0 && !put(sep)) || !walk(x[i])) return false;
      return put("]");
    }
    const keys = Object.keys(x);
    if (keys.length === 0) return put("{}");
    if (!put(tight ? "{" : "{ ")) return false;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      if ((i > 0 && !put(sep)) || !put(JSON.stringify(k) + colon) || !walk((x as Record<string, unknown>)[k])) return false;
    }
    return put(tight ? "}" : " }");
  };
  const ok = walk(v);
  return { text: ok ? text : text.slice(0, budget), ok };
}

/** A value as compact one-line JSON, cut to `max` characters. */
export function compact(v: unknown, max = 40): string {
  const r = flatJson(v, max, true);
  return r.ok ? r.text : `${r.text.slice(0, Math.max(1, max - 1))}…`;
}

/** Text cut to `max` characters with an ellipsis. */
export function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, Math.max(1, max - 1))}…` : s;
}

/** The values an expression read, as `a=1, b=[…]`. */
export function reads(read: Readonly<Record<string, unknown>>, max = 30): string {
  const keys = Object.keys(read);
  if (keys.length === 0) return "";
  return keys.map((k) => `${k}=${compact(read[k], max)}`).join(", ");
}

/**
 * Indented JSON for a terminal: a value whose one-line form fits in `width` stays on one line,
 * others open one line per member. Stops after `maxLines` lines with a note.
 */
export function jsonLines(v: unknown, width: number, maxLines: number): string[] {
  const out: string[] = [];
  let cut = false;
  const emit = (x: unknown, indent: number, prefix: string, suffix: string): void => {
    if (out.length >= maxLines) {
      cut = true;
      return;
    }
    const pad = " ".repeat(indent);
    const flat = flatJson(x, width - indent - prefix.length - suffix.length);
    if (flat.ok || x === null || typeof x !== "object") {
      out.push(`${pad}${prefix}${flat.ok ? flat.text : compact(x, Math.max(10, width - indent - prefix.length - suffix.length))}${suffix}`);
      return;
    }
    const arr = Array.isArray(x);
    const keys = arr ? [] : Object.keys(x);
    const n = arr ? x.length : keys.length;
    out.push(`${pad}${prefix}${arr ? "[" : "{"}`);
    if (arr && x.every((e) => e === null || typeof e !== "object")) {
      // Scalars are packed into lines that fill the width.
      let line = "";
      for (let i = 0; i < n && !cut; i++) {
        const part = (JSON.stringify(x[i]) ?? "null") + (i < n - 1 ? "," : "");
        if (line && pad.length + 2 + line.length + 1 + part.length > width) {
          if (out.length >= maxLines) cut = true;
          else out.push(`${pad}  ${line}`);
          line = "";
        }
        line = line ? `${line} ${part}` : part;
      }
      if (line && !cut) out.push(`${pad}  ${clip(line, width - pad.length - 2)}`);
      if (!cut && out.length < maxLines) out.push(`${pad}]${suffix}`);
      else cut = true;
      return;
    }
    for (let i = 0; i < n && !cut; i++) {
      const comma = i < n - 1 ? "," : "";
      if (arr) emit(x[i], indent + 2, "", comma);
      else emit((x as Record<string, unknown>)[keys[i]!], indent + 2, `${JSON.stringify(keys[i])}: `, comma);
    }
    if (!cut && out.length < maxLines) out.push(`${pad}${arr ? "]" : "}"}${suffix}`);
    else cut = true;
  };
  emit(v, 0, "", "");
  if (cut) out.push("… (cut; baton trace RUN --json shows all of it)");
  return out;
}
