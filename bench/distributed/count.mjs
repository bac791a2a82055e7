/**
 * Preloaded into the workers with DIST_COUNT=1 (`node --import ./bench/distributed/count.mjs`):
 * counts PostgreSQL statements (by their first words), BullMQ Lua scripts (by name) and other
 * Redis commands of this process, and writes them as one `COUNTS {json}` line on stderr at
 * every SIGUSR2 (the harness diffs two of them around a workload). Diagnostics only: it patches
 * prototypes of pg, ioredis and BullMQ in this process.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(join(root, "package.json"));
const counts = { pg: {}, script: {}, redis: {} };
const bump = (o, k) => void (o[k] = (o[k] ?? 0) + 1);

const pgKey = (text) => {
  const t = String(text).replace(/\s+/g, " ").trim();
  if (/^WITH bump/i.test(t)) return "append (WITH bump … INSERT)";
  if (/^SELECT e\.data FROM runs r/i.test(t)) return "eventsAfter";
  if (/^SELECT r\.id, r\.pipeline/i.test(t)) return "load";
  if (/^SELECT hash/i.test(t)) return "blobs select";
  if (/^INSERT INTO blobs/i.test(t)) return "blobs insert";
  return t.split(" ").slice(0, 3).join(" ");
};

const pg = require("pg");
const origQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (config, ...rest) {
  bump(counts.pg, pgKey(typeof config === "string" ? config : config?.text));
  return origQuery.call(this, config, ...rest);
};

// BullMQ requires ioredis from its own location: patch that instance.
const bullRequire = createRequire(require.resolve("bullmq"));
const { Redis } = bullRequire("ioredis");
const origSend = Redis.prototype.sendCommand;
Redis.prototype.sendCommand = function (command, ...rest) {
  const name = command?.name ?? "?";
  if (name !== "evalsha" && name !== "eval") bump(counts.redis, name);
  else bump(counts.redis, "(lua scripts)");
  return origSend.call(this, command, ...rest);
};
const backend = bullRequire("./classes/redis-queue-backend.js");
const Backend = backend.RedisQueueBackend ?? Object.values(backend).find((v) => typeof v === "function" && v.prototype?.execCommand);
if (Backend?.prototype?.execCommand) {
  const origExec = Backend.prototype.execCommand;
  Backend.prototype.execCommand = function (client, name, args) {
    bump(counts.script, name);
    return origExec.call(this, client, name, args);
  };
}

process.on("SIGUSR2", () => process.stderr.write(`COUNTS ${JSON.stringify(counts)}\n`));
