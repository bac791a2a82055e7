/**
 * `baton serve`: one long-running process with the web UI, the JSON API, the trigger scheduler
 * and a pool of local executors. Embedded (SQLite, the default) it drives runs itself and
 * resumes, without an operator, every run a dead process left behind and every paused run whose
 * deadline passed (see ./recovery.ts). With `queue` it joins a cluster: it runs a
 * `baton worker` inside, and the API hands runs to the workers (see ./workers-runner.ts).
 */
import type { BatonConfig } from "../agents/config.js";
import type { RunStarted } from "../engine/index.js";
import type { Plan } from "../plan/types.js";
import { Runtime } from "../runtime/runtime.js";
import type { Store } from "../store/port.js";
import { startUi, type UiServer } from "../ui/server.js";
import type { QueueTarget } from "../distributed/submit.js";
import { RunStarter, type Runner } from "../ui/runs.js";
import { Deployments } from "./deployments.js";
import { Hooks } from "./hooks.js";
import { Recovery } from "./recovery.js";
import { Scheduler, type Fired } from "./scheduler.js";

/** Options of {@link startServe}. */
export interface ServeOptions {
  readonly store: Store;
  /** Compile a run's plan from what `run_started` recorded (the CLI's `planFromSource`). */
  readonly loadPlan: (source: RunStarted["source"]) => Plan | Promise<Plan>;
  readonly config?: BatonConfig;
  /** Join a cluster: hand runs to `baton worker`s through this Redis, and run one here. */
  readonly queue?: QueueTarget;
  /** TCP port; 0 picks a free one. @default 4500 */
  readonly port?: number;
  /** Interface to bind. @default "127.0.0.1" */
  readonly host?: string;
  /** A static admin token (as `baton ui --token`), besides the tokens of `baton token create`. */
  readonly token?: string;
  /** The per-user UI token (`loadLocalToken()`), an admin named "local" (see `UiOptions.localToken`). */
  readonly localToken?: string;
  /** `"none"`: tokenless use on loopback (`baton serve --no-auth`, see `UiOptions.auth`). @default "token" */
  readonly auth?: "token" | "none";
  /** Stage executions at once in this process. @default 8 */
  readonly concurrency?: number;
  /** How often to look for runs nobody drives, deadlines that passed and cron fires due, in ms. @default 1000 */
  readonly sweepMs?: number;
  /** Clock (ms since epoch) of the scheduler and the recovery. @default Date.now */
  readonly now?: () => number;
  /** Operational log lines (stderr in the CLI). */
  readonly log?: (line: string) => void;
}

/** A running `baton serve`. */
export interface Serving {
  readonly url: string;
  readonly port: number;
  /** Runs resumed by the first sweep at start. */
  readonly recovered: readonly string[];
  /** Look for runs to resume now (tests; the server does it every `sweepMs`). */
  sweep(): Promise<string[]>;
  /** Start the cron fires due now (tests; the server does it every `sweepMs`). */
  tick(): Promise<Fired[]>;
  /** Stop: no new requests, the scheduler stops, stages in flight are aborted (their runs stay resumable). */
  close(): Promise<void>;
}

/** Start `baton serve` (see the module comment). */
export async function startServe(o: ServeOptions): Promise<Serving> {
  const log = o.log ?? (() => undefined);
  const concurrency = o.concurrency ?? 8;
  const runtime = new Runtime({ store: o.store, loadPlan: o.loadPlan, config: o.config ?? {}, concurrency, log });
  let worker: { close(): Promise<void> } | undefined;
  let runner: Runner = runtime;
  let recovery: Recovery | undefined;
  if (o.queue) {
    const { BatonWorker } = await import("../distributed/worker.js");
    const { WorkersRunner } = await import("./workers-runner.js");
    const w = new BatonWorker({
      store: o.store, connection: o.queue.connection, ...(o.queue.prefix ? { prefix: o.queue.prefix } : {}),
      concurrency, loadPlan: o.loadPlan, ...(o.config ? { config: o.config } : {}), log,
    });
    w.start();
    worker = w;
    runner = new WorkersRunner(o.store, o.queue, o.loadPlan);
  } else {
    recovery = new Recovery({ store: o.store, runtime, loadPlan: o.loadPlan, log, ...(o.now ? { now: o.now } : {}) });
  }

  const recovered = recovery ? await recovery.sweep() : [];
  const deployments = new Deployments(o.store, log);
  const starter = new RunStarter(o.store, () => runner);
  const scheduler = new Scheduler({ store: o.store, starter, deployments, log, ...(o.now ? { now: o.now } : {}) });
  const hooks = new Hooks({ deployments, starter, log });
  let ui: UiServer;
  try {
    ui = await startUi({
      store: o.store, runtime: runner, hooks,
      ...(o.port !== undefined ? { port: o.port } : {}), ...(o.host !== undefined ? { host: o.host } : {}),
      ...(o.token !== undefined ? { token: o.token } : {}), ...(o.localToken !== undefined ? { localToken: o.localToken } : {}),
      ...(o.auth !== undefined ? { auth: o.auth } : {}), storeTokens: true,
    });
  } catch (err) {
    await runtime.close();
    await worker?.close();
    throw err;
  }
  // One loop: resume what nobody drives, then start the cron fires that fell due.
  let ticking: Promise<unknown> = Promise.resolve();
  const tick = async (): Promise<void> => {
    if (recovery) await recovery.sweep().catch((err: Error) => log(`recovery: ${err.message.split("\n")[0]}`));
    await scheduler.tick().catch((err: Error) => log(`scheduler: ${err.message.split("\n")[0]}`));
  };
  ticking = scheduler.tick().catch((err: Error) => log(`scheduler: ${err.message.split("\n")[0]}`));
  const timer = setInterval(() => {
    ticking = ticking.then(tick);
  }, Math.max(50, o.sweepMs ?? 1000));

  return {
    url: ui.url,
    port: ui.port,
    recovered,
    sweep: () => (recovery ? recovery.sweep() : Promise.resolve([])),
    tick: () => scheduler.tick(),
    close: async () => {
      clearInterval(timer);
      await ui.close();
      await ticking;
      await runtime.close();
      await worker?.close();
    },
  };
}
