/**
 * Timers for durations of any length. Node's `setTimeout` takes at most 2^31-1 ms (~24.9
 * days): a longer delay is replaced by 1 ms (with a TimeoutOverflowWarning), so `timeout: 25d`
 * would fire at once and a 30-day retry would wake its driver every millisecond. Every timer
 * armed on a duration that comes from a template, a provider or a stored event goes through
 * here: a long delay is a chain of timers of at most {@link MAX_TIMER_MS} each.
 */

/** The longest delay one Node timer holds: 2^31-1 ms (~24.9 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer armed by {@link setLongTimeout}. */
export interface LongTimer {
  /** Cancel it (idempotent). */
  clear(): void;
}

/**
 * `setTimeout` for any delay: runs `fn` once after `ms` (NaN and negatives are 0; Infinity
 * never fires), chaining timers of at most {@link MAX_TIMER_MS}.
 *
 * @param opts.unref - do not keep the process alive for this timer. @default false
 * @example
 * const t = setLongTimeout(() => console.log("25 days later"), 25 * 86_400_000);
 * t.clear();
 */
export function setLongTimeout(fn: () => void, ms: number, opts: { unref?: boolean } = {}): LongTimer {
  let handle: ReturnType<typeof setTimeout> | undefined;
  let cleared = false;
  const arm = (left: number): void => {
    if (cleared || left === Infinity) return;
    const step = Math.min(left, MAX_TIMER_MS);
    handle = setTimeout(() => {
      handle = undefined;
      if (left > step) arm(left - step);
      else fn();
    }, step);
    if (opts.unref) handle.unref?.();
  };
  arm(Number.isNaN(ms) ? 0 : Math.max(0, ms));
  return {
    clear: () => {
      cleared = true;
      if (handle !== undefined) clearTimeout(handle);
      handle = undefined;
    },
  };
}

/**
 * `AbortSignal.timeout` for any delay: a signal that aborts with a `TimeoutError` DOMException
 * after `ms`. The timer does not keep the process alive (as with `AbortSignal.timeout`).
 *
 * @example
 * const res = await fetch(url, { signal: timeoutSignal(30 * 86_400_000) });
 */
export function timeoutSignal(ms: number): AbortSignal {
  if (ms <= MAX_TIMER_MS) return AbortSignal.timeout(Math.max(0, ms));
  const ctrl = new AbortController();
  setLongTimeout(() => ctrl.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")), ms, { unref: true });
  return ctrl.signal;
}
