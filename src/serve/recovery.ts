/**
 * What keeps runs moving in a `baton serve` process without an operator (embedded mode; the
 * workers of a cluster do the same in their own sweep):
 *
 * - A run left `running` by a process that died (its lease expired, or its holder on this host
 *   no longer exists) is resumed here: its interrupted attempts are recorded and run again,
 *   nothing that completed runs again.
 * - A paused run (`approval:`, `wait:`, `sleep:`) whose deadline passed is resumed here so its
 *   `on_timeout` (or the end of its sleep) is recorded and the run goes on: the process that
 *   paused it may be long gone, and a paused run holds no timer anywhere else.
 *
 * One `sweep()` looks at the store once; `baton serve` calls it at start and every second or so.
 * Child runs (`pipeline:` stages) are driven by their parent and are left to it.
 */
import { fold, nextWakeAt, type RunStarted } from "../engine/index.js";
import type { Plan } from "../plan/types.js";
import { holderDead, type Runtime } from "../runtime/runtime.js";
import type { Store } from "../store/port.js";

/** Options of a {@link Recovery}. */
export interface RecoveryOptions {
  readonly store: Store;
  readonly runtime: Runtime;
  /** Compile a run's plan from what `run_started` recorded. */
  readonly loadPlan: (source: RunStarted["source"]) => Plan | Promise<Plan>;
  /** Clock (ms since epoch). @default Date.now */
  readonly now?: () => number;
  /** One line per run resumed or refused. */
  readonly log?: (line: string) => void;
  /** Runs looked at per status and sweep. @default 10000 */
  readonly limit?: number;
}

/** When a paused run next wakes, as of the log length it was computed at. */
interface Wake {
  readonly seq: number;
  readonly at: number | undefined;
}

/** Resumes runs that nobody drives (see the module comment). */
export class Recovery {
  private readonly wakes = new Map<string, Wake>();
  /** Runs that could not be resumed, by log length: not tried again until their log changes. */
  private readonly refused = new Map<string, number>();
  private running: Promise<string[]> | undefined;

  constructor(private readonly o: RecoveryOptions) {}

  /** Look once; resolves to the ids resumed. Concurrent calls share one sweep. */
  sweep(): Promise<string[]> {
    return (this.running ??= this.once().finally(() => (this.running = undefined)));
  }

  private async once(): Promise<string[]> {
    const { store, runtime } = this.o;
    const now = (this.o.now ?? Date.now)();
    const limit = this.o.limit ?? 10_000;
    const active = new Set(runtime.active);
    const resumed: string[] = [];

    for (const run of await store.list({ status: "running", limit })) {
      if (run.parentId !== undefined || active.has(run.id) || this.refused.get(run.id) === run.seq) continue;
      // A live lease: another process drives it (a terminal's `baton run`, another server).
      // A holder on this host that no longer exists is taken over by resume itself.
      const holder = await store.leaseHolder(run.id);
      if (holder !== undefined && !holderDead(holder)) continue;
      if (await this.resume(run.id, run.seq, "it was left running by a process that stopped")) resumed.push(run.id);
    }

    const waiting = await store.list({ status: "waiting", limit });
    const seen = new Set<string>();
    for (const run of waiting) {
      seen.add(run.id);
      if (run.parentId !== undefined || active.has(run.id) || this.refused.get(run.id) === run.seq) continue;
      let wake = this.wakes.get(run.id);
      if (wake === undefined || wake.seq !== run.seq) {
        wake = { seq: run.seq, at: await this.wakeOf(run.id) };
        this.wakes.set(run.id, wake);
      }
      if (wake.at === undefined || wake.at > now) continue;
      if ((await store.leaseHolder(run.id)) !== undefined) continue; // being continued right now
      this.wakes.delete(run.id);
      if (await this.resume(run.id, run.seq, "its deadline passed")) resumed.push(run.id);
    }
    for (const id of this.wakes.keys()) if (!seen.has(id)) this.wakes.delete(id);
    return resumed;
  }

  /** When a paused run wakes by itself (its earliest wait deadline), from its log. */
  private async wakeOf(id: string): Promise<number | undefined> {
    try {
      const { events } = await this.o.store.load(id);
      const first = events[0];
      if (first?.type !== "run_started") return undefined;
      return nextWakeAt(fold(await this.o.loadPlan(first.source), events));
    } catch (err) {
      this.o.log?.(`run ${id}: cannot tell when it wakes: ${(err as Error).message.split("\n")[0]}`);
      return undefined;
    }
  }

  private async resume(id: string, seq: number, why: string): Promise<boolean> {
    try {
      const handle = await this.o.runtime.resume(id);
      handle.done.catch((err: Error) => this.o.log?.(`run ${id}: ${err.message.split("\n")[0]}`));
      this.o.log?.(`resumed run ${id}: ${why}`);
      return true;
    } catch (err) {
      // Changed code, a template that no longer compiles, another process took it: say so once.
      this.refused.set(id, seq);
      this.o.log?.(`run ${id} not resumed: ${(err as Error).message.split("\n")[0]}`);
      return false;
    }
  }
}

