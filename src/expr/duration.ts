/** Durations as templates write them: `500ms`, `1.5s`, `30s`, `2m`, `1h`, `1d`, `1m30s`. */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

function show(text: unknown): string {
  if (typeof text === "string") return text;
  if (text === undefined || typeof text === "number" || typeof text === "boolean" || text === null) return String(text);
  try {
    return JSON.stringify(text) ?? String(text);
  } catch {
    return String(text);
  }
}

/**
 * Parse a duration into milliseconds.
 *
 * Accepts a number followed by a unit (`ms`, `s`, `m`, `h`, `d`), or several of them in a row
 * (`1m30s`). Bare numbers are rejected: `5` could mean seconds or milliseconds.
 *
 * @throws Error `bad duration '5': write it like 500ms, 30s, 2m or 1h`
 * @example
 * parseDuration("1m30s"); // 90000
 * parseDuration("1.5s");  // 1500
 */
export function parseDuration(text: unknown): number {
  if (typeof text !== "string" || !WHOLE.test(text)) {
    throw new Error(`bad duration '${show(text)}': write it like 500ms, 30s, 2m or 1h`);
  }
  let ms = 0;
  for (const m of text.matchAll(PART)) ms += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  return Math.round(ms);
}
