/**
 * `run:` handlers of the distributed benchmark (bench/distributed.mjs). Trivial on purpose: the
 * benchmark measures what it costs to get a stage to its function and its result back, not the
 * function. Each output records `t`, the wall-clock time in ms (sub-millisecond: the process's
 * performance.timeOrigin + performance.now()) when the function was called, so the harness can
 * measure hops function-to-function (every process runs on this one machine, so the clocks agree).
 */
const now = () => performance.timeOrigin + performance.now();

/** A link of the chain or an item of the fan-out: {v: input.v + 1, t}. */
export function step(ctx) {
  const t = now();
  const x = ctx.input;
  const v = x && typeof x === "object" && typeof x.v === "number" ? x.v : -1;
  return { v: v + 1, t };
}

/** The fan-out's root: {items: [0, …, n-1], t}. */
export function items(ctx) {
  const t = now();
  return { items: Array.from({ length: ctx.input.n }, (_, i) => i), t };
}
