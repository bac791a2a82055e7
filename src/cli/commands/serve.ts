/**
 * `baton serve [--port 4500] [--host 127.0.0.1] [--queue redis://…]` (see the README, "Running
 * Baton as a service"): the UI, the JSON API, the trigger scheduler and local executors in one
 * process. Runs until SIGINT/SIGTERM; runs in flight then stay resumable, and the next
 * `baton serve` on the same store resumes them by itself.
 */
import type { Command } from "commander";
import { loadConfig } from "../../agents/config.js";
import { planFromSource } from "../../api/run.js";
import { UserError } from "../../base/errors.js";
import { openStoreAsync } from "../../store/open.js";
import { startServe } from "../../serve/serve.js";
import { uiAuth } from "../ui-auth.js";

/** Register `serve` on the program. */
export function registerServe(program: Command, globals: () => { db?: string; prefix: string }): void {
  program
    .command("serve")
    .description("run Baton as a service: web UI, JSON API, triggers and executors in one process; resumes runs a stopped process left behind")
    .option("--port <n>", "TCP port (0 picks a free one)", "4500")
    .option("--host <host>", "interface to bind; anything but loopback requires a token", "127.0.0.1")
    .option("--token <token>", "a static admin token besides those of `baton token create` (default: $BATON_UI_TOKEN; without either, the per-user token in ~/.config/baton/ui-token)")
    .option("--no-auth", "ask no token on loopback (every local user and process can then drive runs); refused with any other --host")
    .option("--queue <url>", "join a cluster: hand runs to `baton worker`s through this Redis and run one here (default: $BATON_QUEUE when --store is postgres://)")
    .option("--concurrency <n>", "stage executions at once in this process", "8")
    .option("--sweep-ms <ms>", "how often to look for runs to resume and deadlines that passed", "1000")
    .action(async (o: { port: string; host: string; token?: string; auth: boolean; queue?: string; concurrency: string; sweepMs: string }) => {
      const port = Number(o.port);
      if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new UserError(`--port must be a port number from 0 to 65535, got '${o.port}'`, 2);
      const concurrency = Number(o.concurrency);
      if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new UserError(`--concurrency must be a whole number from 1 up, got '${o.concurrency}'`, 2);
      const sweepMs = Number(o.sweepMs);
      if (!(Number.isFinite(sweepMs) && sweepMs >= 50)) throw new UserError(`--sweep-ms must be a number of milliseconds from 50 up, got '${o.sweepMs}'`, 2);
      const a = uiAuth("baton serve", o);
      const token = a.token;
      const g = globals();
      const store = await openStoreAsync(g.db);
      const queueUrl = o.queue ?? (store.shared && (g.db ?? process.env.BATON_STORE ?? "").startsWith("postgres") ? process.env.BATON_QUEUE : undefined);
      if (queueUrl && !(g.db ?? process.env.BATON_STORE ?? "").startsWith("postgres")) {
        await store.close();
        throw new UserError("--queue needs a store the workers share: add --store postgres://… (or set BATON_STORE)", 2);
      }
      const log = (line: string): void => void process.stderr.write(`${line}\n`);
      let serving;
      try {
        const queue = queueUrl ? { connection: (await import("../../distributed/worker.js")).redisConnection(queueUrl), prefix: g.prefix } : undefined;
        serving = await startServe({
          store, loadPlan: planFromSource, config: await loadConfig(), port, host: o.host, concurrency, sweepMs, log,
          ...(token !== undefined ? { token } : {}), ...(queue ? { queue } : {}),
          ...(a.localToken !== undefined ? { localToken: a.localToken } : {}), ...(a.auth ? { auth: a.auth } : {}),
        });
      } catch (err) {
        await store.close();
        throw err;
      }
      if (a.note) log(a.note);
      // A service's stdout often goes to a shared journal: the token itself only to a terminal.
      const shown = a.localToken === undefined ? serving.url
        : process.stdout.isTTY ? `${serving.url}?token=${encodeURIComponent(a.localToken)}` : `${serving.url} (open it with ?token= and the token in ${a.file})`;
      process.stdout.write(`baton serve: ${shown}\n`);
      if (serving.recovered.length > 0) log(`resumed ${serving.recovered.length} run(s) a stopped process left behind`);
      log(queueUrl ? "joined the cluster: runs go to the workers; press Ctrl-C to stop" : "press Ctrl-C to stop");
      const s = serving;
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          resolve((async () => {
            await s.close();
            await store.close();
          })());
        };
        process.prependListener("SIGINT", stop);
        process.prependListener("SIGTERM", stop);
      });
    });
}
