/**
 * The cron side of `baton serve`: on every tick, each registered pipeline's latest version is
 * checked for `cron:` triggers whose fires fell due since the last tick (or, after downtime,
 * since the server last looked — under the trigger's catch-up policy, see ./cron.ts). Each
 * fire starts one run under the idempotency key of that fire, so servers sharing a store (or a
 * tick repeated after a crash) start it once. The time each trigger was last looked at is a
 * store record (kind `cron-state`), so a restart knows what it missed.
 */
import type { CronTriggerPlan } from "../plan/types.js";
import type { Store } from "../store/port.js";
import type { RunStarter } from "../ui/runs.js";
import { dueFires, fireKey } from "./cron.js";
import { Deployments } from "./deployments.js";

/** Record kind of the per-trigger cron state (key `PIPELINE:INDEX`, value `{ last }`, epoch ms). */
export const CRON_STATE_KIND = "cron-state";

/** Options of a {@link Scheduler}. */
export interface SchedulerOptions {
  readonly store: Store;
  readonly starter: RunStarter;
  /** Clock (ms since epoch). @default Date.now */
  readonly now?: () => number;
  readonly log?: (line: string) => void;
  /** The registered pipelines (shared with the webhook handler). @default its own */
  readonly deployments?: Deployments;
}

/** A run a tick started (or found started by another server under the fire's key). */
export interface Fired {
  readonly pipeline: string;
  readonly trigger: number;
  readonly fire: string;
  readonly id: string;
  readonly deduplicated: boolean;
}

export class Scheduler {
  private readonly deployments: Deployments;
  private running: Promise<Fired[]> | undefined;

  constructor(private readonly o: SchedulerOptions) {
    this.deployments = o.deployments ?? new Deployments(o.store, o.log);
  }

  /** Start the runs whose fires are due now. Concurrent calls share one tick. */
  tick(): Promise<Fired[]> {
    return (this.running ??= this.once().finally(() => (this.running = undefined)));
  }

  private async once(): Promise<Fired[]> {
    const now = (this.o.now ?? Date.now)();
    const fired: Fired[] = [];
    for (const d of await this.deployments.latest()) {
      for (const t of d.plan.triggers ?? []) {
        if (t.kind !== "cron") continue;
        const name = d.name;
        try {
          fired.push(...(await this.fire(name, d.version, t, d.deployedAt, now)));
        } catch (err) {
          this.o.log?.(`trigger ${t.index} of pipeline '${name}' (cron ${t.cron}): ${(err as Error).message.split("\n")[0]}`);
        }
      }
    }
    return fired;
  }

  private async fire(pipeline: string, version: string, t: CronTriggerPlan, deployedAt: number, now: number): Promise<Fired[]> {
    const key = `${pipeline}:${t.index}`;
    const state = (await this.o.store.getRecord(CRON_STATE_KIND, key))?.value as { last?: number } | undefined;
    // Never looked at: fires since the deploy were missed (a server that was down since then).
    const last = typeof state?.last === "number" ? state.last : Number.isFinite(deployedAt) ? deployedAt : now;
    const out: Fired[] = [];
    for (const at of dueFires(t, { lastMs: last, nowMs: now })) {
      const s = await this.o.starter.start({ pipeline, version, inputs: { ...t.inputs }, idempotencyKey: fireKey(pipeline, t, at) });
      const fire = new Date(at).toISOString();
      if (!s.deduplicated) this.o.log?.(`cron: started run ${s.id} of '${pipeline}' for ${fire} (trigger ${t.name ?? t.index})`);
      out.push({ pipeline, trigger: t.index, fire, id: s.id, deduplicated: s.deduplicated });
    }
    // Recorded after the fires: a crash in between repeats them, and their keys dedupe the repeat.
    if (now > last) await this.o.store.putRecord(CRON_STATE_KIND, key, { last: now });
    return out;
  }
}
