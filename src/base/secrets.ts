/**
 * What counts as a secret (SPEC §5), for every layer: values of environment variables named
 * like *KEY*, *TOKEN*, *SECRET*, *PASSWORD*, *CREDENTIAL* (6+ characters), and strings shaped
 * like well-known credentials (`sk-…`, `ghp_…`, `xox?-…`, `AKIA…`, `AIza…`, `Bearer …`).
 *
 * The string core only: runtime/redact.ts walks events and stores with it, and stages that cut
 * text (an HTTP error excerpt) redact with it before cutting, so no secret's prefix survives a cut.
 */

/** What a secret is replaced by. */
export const REDACTED = "[redacted]";

const SECRET_NAME = /KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL/i;
/** Shapes of well-known credentials. */
const SECRET_SHAPES = /\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,})|(?<=\bBearer\s+)[A-Za-z0-9._~+/=-]{16,}/g;
/** The shortest text {@link SECRET_SHAPES} can match (`xoxa-` + 10). */
const SHORTEST_SHAPE = 15;
/** The shortest environment value taken as a secret (a string shorter than this never holds one). */
export const SHORTEST_VALUE = 6;

let cached: { key: string; values: string[] } | undefined;

/**
 * Values of secret-looking environment variables (6+ characters), longest first.
 *
 * @example
 * secretValues({ DB_PASSWORD: "hunter2hunter2", HOME: "/root" }); // ["hunter2hunter2"]
 */
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
  for (const [k, v] of Object.entries(env)) if (v && v.length >= SHORTEST_VALUE && SECRET_NAME.test(k)) out.add(v);
  return [...out].sort((a, b) => b.length - a.length);
}

/**
 * `s` with every secret in `secrets` and every credential-shaped substring replaced by
 * {@link REDACTED}. Strings shorter than any secret return at once (most keys and labels).
 *
 * @example
 * redactText("pw=hunter2hunter2", ["hunter2hunter2"]); // "pw=[redacted]"
 */
export function redactText(s: string, secrets: readonly string[], shortest = shortestOf(secrets)): string {
  if (s.length < shortest) return s;
  let out = s;
  for (const v of secrets) if (out.includes(v)) out = out.split(v).join(REDACTED);
  if (out.length < SHORTEST_SHAPE) return out;
  SECRET_SHAPES.lastIndex = 0;
  return SECRET_SHAPES.test(out) ? out.replace(SECRET_SHAPES, REDACTED) : out;
}

/** The shortest string {@link redactText} may change for these secrets. */
export function shortestOf(secrets: readonly string[]): number {
  let n = SHORTEST_SHAPE;
  for (const v of secrets) if (v.length < n) n = v.length;
  return n;
}
