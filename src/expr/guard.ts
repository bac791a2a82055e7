/**
 * The time and depth bound of JSONata evaluations, measuring each evaluation's own work.
 *
 * JSONata's own `timeout` option measures wall time from the start of `evaluate()`; its
 * evaluation awaits at every node, so 30,000 concurrent cheap evaluations interleave and each
 * one "runs" as long as all of them together (issue 13 item 7). This guard replaces JSONata's
 * per-node check (`guardrails`, called synchronously on entry to every AST node) with one that
 * charges each evaluation for the time since the previous check made by any evaluation, up to
 * {@link GAP_CHARGE_MAX_MS}. Between two checks the process ran one JSONata step (of this
 * evaluation, or the end of another's slice before this one resumed), which takes
 * microseconds; a longer gap is other work — I/O, a store write, thousands of for_each items
 * being scheduled, the OS running another process — or an idle process between evaluations,
 * and is charged at most the cap. So under load an expression is charged about its own work,
 * and a runaway one is still stopped: its steps are short and charged in full, and even a
 * step as long as the cap is charged the cap. (A first version charged only the gaps between
 * two checks of the same evaluation: a `$match` evaluated while a 30,000-item for_each was
 * being scheduled was charged those 7 s.)
 *
 * The hooks, both synchronous and inside one `evaluate()` call (so evaluations cannot mix them
 * up): JSONata calls `jsonata.__createFrame_push(parent, frame)` for every frame it creates,
 * the evaluation's root frame first (its parent, the compiled expression's environment, has
 * no `base`); then it sets `frame.guardrails` to its own check and reads `options.RegexEngine`.
 * The first hook remembers the root frame, and the options' `RegexEngine` getter replaces its
 * `guardrails` with this guard. (A getter, not an accessor on the frame: an accessor on a
 * frame made evaluations 3× slower.)
 * @internal
 */
import type jsonata from "jsonata";
import { EXPR_LIMITS } from "./limits.js";

/** The JSONata debug hook called with `(parent, frame)` whenever a frame is created. */
const FRAME_PUSH = Symbol.for("jsonata.__createFrame_push");

/** The parts of a JSONata frame the guard reads. */
interface Frame {
  readonly base?: Frame;
  readonly depth?: number;
}

/** A monotonic clock in ms. */
export type Clock = () => number;

let clock: Clock = () => performance.now();

/**
 * Replace the guard's clock (tests drive a simulated one); returns the previous clock.
 * @internal
 */
export function setGuardClock(next: Clock): Clock {
  const prev = clock;
  clock = next;
  lastAt = next();
  return prev;
}

/**
 * Most charged to an evaluation for one gap between two checks (see the module doc): far
 * more than a JSONata step takes, far less than the bound, so a runaway expression is stopped
 * after at most `timeoutMs / GAP_CHARGE_MAX_MS` steps whatever the load.
 */
export const GAP_CHARGE_MAX_MS = 1;

/** When the last check was made, by any evaluation (one thread: one clock for all). */
let lastAt = 0;

/** Thrown like JSONata's own D1011/D1012, so `evaluationError` words them the same way. */
function failure(code: "D1011" | "D1012", value: number): never {
  throw { code, value, stack: new Error().stack };
}

function makeGuard(frame: Frame): () => void {
  let used = 0;
  const { stack, timeoutMs } = EXPR_LIMITS;
  return () => {
    if ((frame.depth ?? 0) > stack) failure("D1011", stack);
    const now = clock();
    const gap = now - lastAt;
    lastAt = now;
    if (gap > 0) used += gap < GAP_CHARGE_MAX_MS ? gap : GAP_CHARGE_MAX_MS;
    if (used > timeoutMs) failure("D1012", timeoutMs);
  };
}

/** The root frame of the evaluation being started, between the two hooks. */
let pending: (Frame & { guardrails?: () => void }) | undefined;

function onFramePush(parent: Frame, frame: Frame): void {
  // Only the evaluation's root frame: every frame inside an evaluation has a `base`.
  if (parent.base === undefined) pending = frame;
}

/**
 * JSONata options that install the guard: `base` plus a `RegexEngine` getter.
 * Pass no `timeout` in `base` (the guard replaces JSONata's check).
 */
export function guardedOptions<T extends object>(base: T, engine: RegExpConstructor): T & { readonly RegexEngine: RegExpConstructor } {
  const options = { ...base } as T & { readonly RegexEngine: RegExpConstructor };
  Object.defineProperty(options, "RegexEngine", {
    enumerable: true,
    get(): RegExpConstructor {
      const frame = pending;
      if (frame !== undefined) {
        pending = undefined;
        frame.guardrails = makeGuard(frame);
      }
      return engine;
    },
  });
  return Object.freeze(options);
}

/**
 * Bound every evaluation of `compiled` by its own work and depth (see the module doc);
 * `compiled` must have been compiled with {@link guardedOptions}.
 */
export function installGuard(compiled: jsonata.Expression): void {
  compiled.assign(FRAME_PUSH as unknown as string, onFramePush);
}
