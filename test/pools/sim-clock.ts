/** A simulated clock for pool tests: timers fire only when the test advances time. */
import type { PoolClock } from "../../src/runtime/pools.js";

export class SimClock implements PoolClock {
  private t = 1_000_000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): { clear(): void } {
    const id = ++this.ids;
    this.timers.push({ at: this.t + ms, fn, id });
    return { clear: () => void (this.timers = this.timers.filter((x) => x.id !== id)) };
  }

  /** Advance time, firing due timers in order (and letting promise callbacks run between them). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flush();
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await flush();
  }
}

export async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}
