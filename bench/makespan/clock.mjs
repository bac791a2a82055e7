/**
 * The benchmark's virtual clock, shared by the Baton process and the provider process.
 *
 * Time is compressed by `timescale` S: virtual time runs S× faster than real time from a real
 * epoch both processes are given, so they agree on "now". `warpTimers()` divides this process's
 * setTimeout/setInterval delays by S, so the provider's 60 s windows, its latencies and
 * Retry-After, the pools' 61 s windows, Baton's retry backoff and stage/run timeouts all run on
 * the one virtual clock. Date.now stays real (JSONata's 1 s evaluation bound, measured with it,
 * stays a real second). The cost: real CPU time counts S× in virtual time.
 */
export function virtualClock(S, epoch) {
  const realNow = () => performance.timeOrigin + performance.now();
  /** Virtual time, ms since the Unix epoch (whole ms). */
  const now = () => epoch + Math.floor((realNow() - epoch) * S);
  return {
    now,
    /** For Pools: virtual now, warped timers (call warpTimers first). */
    poolClock: {
      now,
      defer: (fn) => void setImmediate(fn),
      setTimeout: (fn, ms) => {
        const t = setTimeout(fn, ms);
        return { clear: () => clearTimeout(t) };
      },
    },
  };
}

/** Divide setTimeout/setInterval delays by S in this process. */
export function warpTimers(S) {
  if (S === 1) return;
  const scale = (orig) => {
    const f = (fn, ms, ...args) => orig(fn, Math.max(0, (Number(ms) || 0) / S), ...args);
    for (const k of Reflect.ownKeys(orig)) if (!(k in f)) try { f[k] = orig[k]; } catch { /* read-only */ }
    return f;
  };
  globalThis.setTimeout = scale(globalThis.setTimeout);
  globalThis.setInterval = scale(globalThis.setInterval);
}
