/**
 * Cron triggers as pure functions of an injected clock: when a schedule fires next, which
 * fires are due after a pause (the catch-up policy), and the idempotency key of one fire.
 * No timers, no `Date.now()`: `baton serve` passes the times in and carries the answers out.
 *
 * Schedules are read with croner in the trigger's IANA time zone, so they are DST-correct:
 * a fixed-time schedule (`30 2 * * *`) whose time falls into a spring-forward gap fires at the
 * first valid time after the gap, and once when an autumn time occurs twice; an interval
 * schedule (`*\/30 * * * *`) skips times in a gap and fires on both occurrences of a repeated
 * time.
 *
 * Catch-up policy (`catch_up:`), for the fires in `(lastMs, nowMs]`:
 * - `latest` (default): only the most recent fire — one run however long the server was down.
 * - `all`: every fire, oldest first, at most {@link MAX_CATCH_UP} (the oldest are dropped).
 * - `none`: only a fire at most {@link GRACE_MS} old (a tick that ran late); older ones are dropped.
 */
import type { CatchUpPolicy, CronTriggerPlan } from "../plan/types.js";
import { cronSchedule } from "../template/triggers.js";

/** At most this many missed fires start runs under `catch_up: all`; the oldest beyond it are dropped. */
export const MAX_CATCH_UP = 100;

/** Under `catch_up: none`, a fire this recent (ms) still starts a run: a late tick, not downtime. */
export const GRACE_MS = 60_000;

/** What the cron functions read of a trigger. */
export type CronTrigger = Pick<CronTriggerPlan, "cron" | "timezone"> & { readonly catchUp?: CatchUpPolicy };

type Schedule = ReturnType<typeof cronSchedule>;
const schedules = new Map<string, Schedule>();
const SCHEDULES_MAX = 1000;

/** One croner schedule per expression and zone (a schedule without a callback never starts a timer). */
function scheduleOf(t: CronTrigger): Schedule {
  const key = `${t.timezone}\u0000${t.cron}`;
  let s = schedules.get(key);
  if (s === undefined) {
    s = cronSchedule(t.cron, t.timezone);
    if (schedules.size >= SCHEDULES_MAX) schedules.clear();
    schedules.set(key, s);
  }
  return s;
}

/**
 * The first fire strictly after `afterMs` (epoch ms), or undefined when the schedule never
 * fires again. Fires are whole seconds.
 *
 * @example
 * nextFire({ cron: "0 * * * *", timezone: "UTC" }, Date.parse("2026-01-01T00:10:00Z")); // Date.parse("2026-01-01T01:00:00Z")
 */
export function nextFire(trigger: CronTrigger, afterMs: number): number | undefined {
  return scheduleOf(trigger).nextRun(new Date(afterMs))?.getTime();
}

/** Every fire in `(lastMs, nowMs]`, oldest first, the newest `limit` of them at most. */
function firesIn(trigger: CronTrigger, lastMs: number, nowMs: number, limit: number): number[] {
  // croner lists runs before a reference, most recent first; a reference one second later
  // includes a fire exactly at nowMs (fires are whole seconds), filtered below like any other.
  const runs = scheduleOf(trigger).previousRuns(limit + 1, new Date(nowMs + 1000));
  const fires = runs.map((d) => d.getTime()).filter((ms) => ms > lastMs && ms <= nowMs);
  return fires.slice(0, limit).reverse();
}

/**
 * The fire times (epoch ms, ascending) in `(lastMs, nowMs]` that should start a run under the
 * trigger's catch-up policy (see the module doc): `latest` gives at most one, `all` at most
 * {@link MAX_CATCH_UP}, `none` at most one no older than {@link GRACE_MS}.
 *
 * `lastMs` is the time up to which the trigger's fires were already handled: the previous
 * tick, or when the server first saw the trigger. Empty when `nowMs <= lastMs`.
 *
 * @example
 * // An hourly trigger, server down from 00:30 to 03:10 UTC:
 * dueFires({ cron: "0 * * * *", timezone: "UTC", catchUp: "all" }, { lastMs: Date.parse("2026-01-01T00:30:00Z"), nowMs: Date.parse("2026-01-01T03:10:00Z") });
 * // → the fires at 01:00, 02:00 and 03:00; with "latest" only 03:00; with "none" nothing
 */
export function dueFires(trigger: CronTrigger, window: { readonly lastMs: number; readonly nowMs: number }): number[] {
  const { lastMs, nowMs } = window;
  if (!(nowMs > lastMs)) return [];
  const policy = trigger.catchUp ?? "latest";
  if (policy === "all") return firesIn(trigger, lastMs, nowMs, MAX_CATCH_UP);
  const latest = firesIn(trigger, lastMs, nowMs, 1);
  if (policy === "none") return latest.filter((ms) => nowMs - ms <= GRACE_MS);
  return latest;
}

/**
 * The idempotency key of one fire: `cron:PIPELINE:TRIGGER:ISO`, where TRIGGER is the trigger's
 * name, or `#INDEX` for an unnamed one (names are unique in a template and survive reordering;
 * pipeline and name are URI-encoded so `:` cannot make two keys equal). Two servers sharing a
 * store that both put-if-absent this key start each fire once.
 *
 * @example
 * fireKey("nightly", { kind: "cron", index: 0, ... }, Date.parse("2026-01-01T03:00:00Z")); // "cron:nightly:#0:2026-01-01T03:00:00.000Z"
 */
export function fireKey(pipeline: string, trigger: Pick<CronTriggerPlan, "index" | "name">, fireMs: number): string {
  const who = trigger.name !== undefined ? encodeURIComponent(trigger.name) : `#${trigger.index}`;
  return `cron:${encodeURIComponent(pipeline)}:${who}:${new Date(fireMs).toISOString()}`;
}
