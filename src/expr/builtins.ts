/**
 * Size bounds on the JSONata functions that build strings or arrays in one step.
 *
 * `$pad('', 140000000, 'a')` asks V8 for a 140M-element array and kills the process with a
 * fatal error no `catch` sees (issue 13 item 5). Each function here is the built-in with a
 * check first (when the result size is known from the arguments) or after (when it is not,
 * and building it cannot be fatal: V8 throws a RangeError past its own string limit). The
 * result of every evaluation is checked too (`compile.ts`), which covers `&`.
 * @internal
 */
import { createRequire } from "node:module";
import type jsonata from "jsonata";
import { EXPR_LIMITS, LIMIT_CODES } from "./limits.js";

/** A JSONata function value: what `$pad` evaluates to. */
interface JsonataFunction {
  readonly _jsonata_function: true;
  readonly implementation: (this: unknown, ...args: unknown[]) => unknown;
  readonly signature?: unknown;
}

/** Thrown like a JSONata failure; `evaluationError` words it. */
export function tooLong(kind: "string" | "array", length: number): never {
  throw { code: kind === "string" ? LIMIT_CODES.string : LIMIT_CODES.array, value: length, stack: new Error().stack };
}

function checkString(s: unknown): unknown {
  if (typeof s === "string" && s.length > EXPR_LIMITS.string) tooLong("string", s.length);
  return s;
}

function checkArray(a: unknown): unknown {
  if (Array.isArray(a) && a.length > EXPR_LIMITS.sequence) tooLong("array", a.length);
  return a;
}

/** How many pieces `str.split(sep)` makes, counting no further than `stop`. */
function countPieces(str: string, sep: string, stop: number): number {
  if (sep === "") return str.length;
  let n = 1;
  for (let i = str.indexOf(sep); i !== -1 && n <= stop; i = str.indexOf(sep, i + sep.length)) n++;
  return n;
}

type Check = (original: JsonataFunction["implementation"]) => JsonataFunction["implementation"];

/** Per built-in: the implementation with its bound. */
const CHECKS: Readonly<Record<string, Check>> = {
  pad: (orig) =>
    function (this: unknown, str, width, char) {
      if (typeof str === "string" && typeof width === "number") {
        const w = Math.abs(Math.trunc(width));
        if (w > EXPR_LIMITS.string) tooLong("string", w);
      }
      return orig.call(this, str, width, char);
    },
  join: (orig) =>
    function (this: unknown, strs, sep) {
      if (Array.isArray(strs)) {
        const gap = typeof sep === "string" ? sep.length : 0;
        let n = Math.max(0, strs.length - 1) * gap;
        for (const s of strs) n += typeof s === "string" ? s.length : 0;
        if (n > EXPR_LIMITS.string) tooLong("string", n);
      }
      return orig.call(this, strs, sep);
    },
  split: (orig) =>
    function (this: unknown, str, sep, limit) {
      if (typeof str === "string" && typeof sep === "string") {
        const cap = EXPR_LIMITS.sequence;
        const n = Math.min(countPieces(str, sep, cap), typeof limit === "number" ? limit : Infinity);
        if (n > cap) tooLong("array", n);
      }
      return Promise.resolve(orig.call(this, str, sep, limit)).then(checkArray);
    },
  string: (orig) =>
    function (this: unknown, arg) {
      // eslint-disable-next-line prefer-rest-params -- the arity JSONata sees must stay 1, like the built-in's
      return checkString(orig.apply(this, arguments as unknown as unknown[]));
    },
  replace: (orig) =>
    function (this: unknown, str, pattern, replacement, limit) {
      return Promise.resolve(orig.call(this, str, pattern, replacement, limit)).then(checkString);
    },
};

/**
 * The built-in function values, read synchronously through JSONata's frame hook: its first
 * frame's parent is the compiled expression's environment, where every built-in is in scope.
 */
function readBuiltins(names: readonly string[]): Map<string, JsonataFunction> {
  const out = new Map<string, JsonataFunction>();
  const probe = (createRequire(import.meta.url)("jsonata") as typeof jsonata)("0");
  probe.assign(Symbol.for("jsonata.__createFrame_push") as unknown as string, (parent: { lookup(n: string): unknown }) => {
    if (out.size > 0) return;
    for (const n of names) out.set(n, parent.lookup(n) as JsonataFunction);
  });
  void probe.evaluate({});
  for (const n of names) {
    const f = out.get(n);
    if (typeof f?.implementation !== "function") throw new Error(`internal error: JSONata built-in $${n} not found (jsonata changed?)`);
  }
  return out;
}

let bounded: readonly (readonly [string, JsonataFunction])[] | undefined;
/** The bounded replacements, built once, on first use (it loads JSONata): `[name, function value]`. */
function boundedBuiltins(): readonly (readonly [string, JsonataFunction])[] {
  bounded ??= buildBounded();
  return bounded;
}

function buildBounded(): readonly (readonly [string, JsonataFunction])[] {
  const names = Object.keys(CHECKS);
  const builtins = readBuiltins(names);
  return names.map((n) => {
    const orig = builtins.get(n) as JsonataFunction;
    const check = CHECKS[n] as Check;
    return [n, { ...orig, implementation: check(orig.implementation) }] as const;
  });
}

/** Bind the bounded built-ins `source` calls into `compiled` (by name: `$pad` must appear to be called). */
export function installBoundedBuiltins(compiled: jsonata.Expression, source: string): void {
  if (!source.includes("$")) return;
  for (const [name, fn] of boundedBuiltins()) if (source.includes("$" + name)) compiled.assign(name, fn);
}
