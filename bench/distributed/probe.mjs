/**
 * Preloaded into the `baton worker` processes (and the submitting `baton run`) of the
 * distributed benchmark (`node --import ./bench/distributed/probe.mjs dist/cli/main.js …`):
 * counts, client-side, this process's PostgreSQL transactions (an autocommit statement is one;
 * BEGIN … COMMIT is one), new connections (each costs the server a startup transaction) and
 * statements by kind, and BullMQ Lua scripts by name. Writes one
 * `PROBE {json}` line on stderr at every SIGUSR2 and, with BATON_PROBE_EXIT=1, at exit (the
 * harness diffs two of them around a workload). Diagnostics only: it patches pg's
 * Client.prototype.query and BullMQ's script runner in this process; it changes no behaviour.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(join(root, "package.json"));
const counts = { txn: 0, commit: 0, rollback: 0, connect: 0, pg: {}, script: {} };
const bump = (o, k) => void (o[k] = (o[k] ?? 0) + 1);

/** A short, stable name for a statement of the PostgreSQL store. */
const pgKey = (text) => {
  const t = String(text).replace(/\s+/g, " ").trim();
  if (/^WITH bump/i.test(t)) return "append (WITH bump … UPDATE runs + INSERT events)";
  if (/^SELECT e\.data FROM runs r/i.test(t)) return "eventsAfter";
  if (/^SELECT r\.id, r\.pipeline/i.test(t)) return "load";
  if (/^SELECT hash/i.test(t)) return "blobs select";
  if (/^INSERT INTO blobs/i.test(t)) return "blobs insert";
  if (/^INSERT INTO runs/i.test(t)) return "create (INSERT runs)";
  if (/^SELECT .* FROM runs/i.test(t)) return `SELECT … FROM runs${/status/i.test(t) ? " (list)" : ""}`;
  return t.split(" ").slice(0, 3).join(" ");
};

const keys = new Map(); // statement text → its name (the store's statements repeat)
try {
  const pg = require("pg");
  // A new connection costs the server one transaction too (the backend's startup).
  const origConnect = pg.Client.prototype.connect;
  pg.Client.prototype.connect = function (...args) {
    counts.connect++;
    return origConnect.apply(this, args);
  };
  const origQuery = pg.Client.prototype.query;
  pg.Client.prototype.query = function (config, ...rest) {
    const text = String(typeof config === "string" ? config : config?.text ?? "");
    let key = keys.get(text);
    if (key === undefined) {
      key = pgKey(text);
      if (keys.size < 1000) keys.set(text, key);
    }
    bump(counts.pg, key);
    if (/^\s*(BEGIN|START TRANSACTION)\b/i.test(text)) this.__probeInTx = true;
    else if (/^\s*(COMMIT|END)\b/i.test(text)) {
      if (this.__probeInTx) counts.txn++;
      counts.commit++;
      this.__probeInTx = false;
    } else if (/^\s*ROLLBACK\b/i.test(text)) {
      if (this.__probeInTx) counts.txn++;
      counts.rollback++;
      this.__probeInTx = false;
    } else if (!this.__probeInTx) counts.txn++;
    return origQuery.call(this, config, ...rest);
  };
} catch (err) {
  process.stderr.write(`probe: pg not patched (${err.message})\n`);
}

try {
  // BullMQ requires its own modules: patch its script runner to count scripts by name.
  const bullRequire = createRequire(require.resolve("bullmq"));
  const backend = bullRequire("./classes/redis-queue-backend.js");
  const Backend = backend.RedisQueueBackend ?? Object.values(backend).find((v) => typeof v === "function" && v.prototype?.execCommand);
  if (Backend?.prototype?.execCommand) {
    const origExec = Backend.prototype.execCommand;
    Backend.prototype.execCommand = function (client, name, args) {
      bump(counts.script, String(name).replace(/-\d+$/, ""));
      return origExec.call(this, client, name, args);
    };
  }
} catch {
  /* another BullMQ layout: no script names */
}

const dump = () => process.stderr.write(`PROBE ${JSON.stringify(counts)}\n`);
process.on("SIGUSR2", dump);
if (process.env.BATON_PROBE_EXIT === "1") process.on("exit", dump);
