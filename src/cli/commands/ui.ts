/**
 * `baton ui [--port 4500] [--host 127.0.0.1] [--token T] [--no-auth]` (SPEC §4): the web trace
 * viewer. Every API request needs a token: `--token`/`BATON_UI_TOKEN`, a store token, or by
 * default the per-user UI token (../ui-auth.ts), which the printed URL carries. Runs until SIGINT/SIGTERM. Runs started or answered from the UI are driven by this
 * process; when it stops they stay resumable (`baton resume RUN`).
 */
import type { Command } from "commander";
import { loadConfig } from "../../agents/config.js";
import { planFromSource } from "../../api/run.js";
import { anyToken } from "../../auth/tokens.js";
import { UserError } from "../../base/errors.js";
import { Runtime } from "../../runtime/runtime.js";
import { openStoreAsync } from "../../store/open.js";
import { startUi } from "../../ui/server.js";
import { uiAuth } from "../ui-auth.js";

/** Register `ui` on the program. */
export function registerUi(program: Command, globals: () => { db?: string; debug?: boolean }): void {
  program
    .command("ui")
    .description("web trace viewer: runs, graphs, timelines, approvals (on 127.0.0.1 unless --host and --token say otherwise)")
    .option("--port <n>", "TCP port (0 picks a free one)", "4500")
    .option("--host <host>", "interface to bind; anything but loopback requires --token or a `baton token create` token", "127.0.0.1")
    .option("--token <token>", "a static admin token, besides those of `baton token create` (default: $BATON_UI_TOKEN; without either, the per-user token in ~/.config/baton/ui-token)")
    .option("--no-auth", "ask no token on loopback (every local user and process can then drive runs); refused with any other --host")
    .action(async (o: { port: string; host: string; token?: string; auth: boolean }) => {
      const port = Number(o.port);
      if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new UserError(`--port must be a port number from 0 to 65535, got '${o.port}'`, 2);
      const a = uiAuth("baton ui", o);
      const { token, fromEnv } = a;
      const store = await openStoreAsync(globals().db); // a SQLite path, or postgres://… (--store)
      const runtime = new Runtime({ store, loadPlan: planFromSource, config: await loadConfig(), log: (line) => void process.stderr.write(`baton ui: ${line}\n`) });
      let ui;
      try {
        ui = await startUi({
          store, runtime, port, host: o.host, templates: { root: process.cwd() }, storeTokens: true, ...(token !== undefined ? { token } : {}),
          ...(a.localToken !== undefined ? { localToken: a.localToken } : {}), ...(a.auth ? { auth: a.auth } : {}),
        });
      } catch (err) {
        await store.close();
        throw err;
      }
      const stored = a.auth === "none" && (await anyToken(store)); // the API then needs one of them
      const open = a.localToken !== undefined ? `${ui.url}?token=${encodeURIComponent(a.localToken)}`
        : token === undefined ? (stored ? `${ui.url}?token=TOKEN (a token of \`baton token create\`: this store has tokens)` : ui.url)
        : fromEnv ? `${ui.url}?token=… (the value of BATON_UI_TOKEN)` : `${ui.url}?token=${encodeURIComponent(token)}`;
      if (a.note) process.stderr.write(`${a.note}\n`);
      process.stdout.write(`baton ui: ${open}\n`);
      process.stderr.write("press Ctrl-C to stop\n");
      const server = ui;
      await new Promise<void>((resolve) => {
        // Runs before the CLI's own handlers, which may exit at once: start closing synchronously
        // (stop listening, end streams, abort in-flight stages). Runs stay resumable either way.
        const stop = (): void => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          resolve((async () => {
            await server.close();
            await runtime.close();
            await store.close();
          })());
        };
        process.prependListener("SIGINT", stop);
        process.prependListener("SIGTERM", stop);
      });
    });
}
