/// <reference lib="dom" />
/** Formatting of durations, times, token counts and costs for people. */

/** `263 ms`, `1.24 s`, `2 m 05 s`, `1 h 02 m`; `—` for null. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} m`;
}

/** Short axis label: `0`, `250 ms`, `1.5 s`, `2 m`. */
export function tick(ms: number): string {
  if (ms === 0) return "0";
  if (ms < 10) return `${+ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(2)} s`;
  return `${+(ms / 60_000).toFixed(1)} m`;
}

const two = (n: number): string => String(n).padStart(2, "0");

/** Local date and time: `21 Nov 08:19:33`. */
export function dateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  const month = d.toLocaleString("en", { month: "short" });
  return `${d.getDate()} ${month} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** Local time with milliseconds: `08:19:33.923`. */
export function clock(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/** `3 min ago`. */
export function ago(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

/** `12,345`. */
export function count(n: number): string {
  return n.toLocaleString("en");
}

/** Tokens as `in / out`, `—` when none. */
export function tokens(t: { input: number; output: number } | undefined): string {
  if (!t || (t.input === 0 && t.output === 0)) return "—";
  return `${count(t.input)} / ${count(t.output)}`;
}

/** `$1.23`, `$0.0123`, `$0.000024` (a model turn can cost less than a hundredth of a cent), `—` when zero. */
export function cost(usd: number | undefined): string {
  if (!usd) return "—";
  if (usd >= 1) return `$${usd.toFixed(2)}`;
  if (usd >= 0.0001) return `$${usd.toFixed(4)}`;
  return `$${usd.toFixed(Math.min(10, 1 - Math.floor(Math.log10(usd))))}`;
}

/** Milliseconds between two ISO timestamps. */
export function between(a: string, b: string): number {
  return Date.parse(b) - Date.parse(a);
}
