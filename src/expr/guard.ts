/**
 * The time and depth bound of JSONata evaluations, measuring each evaluation's own work.
 *
 * JSONata's own `timeout` option measures wall time from the start of `evaluate()`; its
 * evaluation awaits at every node, so 30,000 concurrent cheap evaluations interleave and each
 * one "runs" as long as all of them together (issue 13 item 7). This guard replaces JSONata's
 * per-node check (`guardrails`, called synchronously on entry to every AST node) with one that
 * charges an evaluation for the time since the previous check when that check was its own;
 * when another evaluation made the previous check (a switch: one suspended, this one resumed)
 * the gap holds the end of the other's slice and the start of this one's, and this one is
 * charged for it up to {@link SWITCH_CHARGE_MAX_MS}. So time in which the event loop ran other
 * work (I/O, timers, a store write) is not charged, while two runaway expressions that
 * interleave step by step are each charged about half the time and both stop.
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
  lastOwner = undefined;
  return prev;
}

/**
 * Most charged for the gap at a switch between evaluations: a switch between two JSONata
 * steps takes microseconds; a longer gap is other work, or an idle process between
 * evaluations, and is not this evaluation's.
 */
export const SWITCH_CHARGE_MAX_MS = 0.25;

/** Per-evaluation accounting. */
interface Account {
  /** Own work charged so far, ms. */
  used: number;
}

/** The evaluation that made the last check, and when: shared by all evaluations (one thread). */
let lastOwner: Account | undefined;
let lastAt = 0;

/** Thrown like JSONata's own D1011/D1012, so `evaluationError` words them the same way. */
function failure(code: "D1011" | "D1012", value: number): never {
  throw { code, value, stack: new Error().stack };
}

function makeGuard(frame: Frame): () => void {
  const account: Account = { used: 0 };
  const { stack, timeoutMs } = EXPR_LIMITS;
  return () => {
    if ((frame.depth ?? 0) > stack) failure("D1011", stack);
    const now = clock();
    const gap = Math.max(0, now - lastAt);
    if (lastOwner === account) {
      account.used += gap;
    } else {
      account.used += Math.min(gap, SWITCH_CHARGE_MAX_MS);
      lastOwner = account;
    }
    lastAt = now;
    if (account.used > timeoutMs) failure("D1012", timeoutMs);
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
