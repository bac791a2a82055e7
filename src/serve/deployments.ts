/**
 * The latest registered version of every pipeline, compiled: what the scheduler (cron
 * triggers) and the webhook handler look at. The list of latest versions is read from the
 * store on every call (a deploy takes effect at once, on every server sharing the store); each
 * version is read and compiled once.
 */
import type { Plan } from "../plan/types.js";
import type { Store } from "../store/port.js";
import { LATEST_KIND, getPipeline, planOf } from "../registry/pipelines.js";

/** One pipeline's latest version. */
export interface Deployment {
  readonly name: string;
  readonly version: string;
  /** When it was (re)deployed, epoch ms. */
  readonly deployedAt: number;
  readonly plan: Plan;
}

export class Deployments {
  /**
   * Each version's plan, or null when it does not compile (said once): a version's text never
   * changes, so the record (up to 1 MiB of text) is read once, not on every tick and delivery.
   */
  private readonly plans = new Map<string, Plan | null>();

  constructor(private readonly store: Store, private readonly log?: (line: string) => void) {}

  /** The latest version of each registered pipeline that compiles, by name. */
  async latest(): Promise<Deployment[]> {
    const out: Deployment[] = [];
    for (const r of await this.store.listRecords(LATEST_KIND)) {
      const v = r.value as { version: string; deployed_at: string };
      const plan = await this.planOf(r.key, v.version);
      if (plan) out.push({ name: r.key, version: v.version, deployedAt: Date.parse(v.deployed_at), plan });
    }
    return out;
  }

  private async planOf(name: string, version: string): Promise<Plan | undefined> {
    const k = `${name}@${version}`;
    if (this.plans.has(k)) return this.plans.get(k) ?? undefined;
    const entry = await getPipeline(this.store, name, version);
    if (entry === undefined) return undefined; // not stored (yet): look again next time
    let plan: Plan | null;
    try {
      plan = planOf(entry);
    } catch (err) {
      this.log?.(`pipeline '${k}' no longer compiles: ${(err as Error).message.split("\n")[0]}`);
      plan = null;
    }
    this.plans.set(k, plan);
    return plan ?? undefined;
  }
}
