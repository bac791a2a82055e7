/**
 * The floor of the distributed benchmark: bare BullMQ job round trips, no Baton. A child
 * process of bench/distributed.mjs (one process per BullMQ Worker, as Baton's workers are
 * separate processes):
 *
 *   node floor.mjs chain REDIS_URL QUEUE CONCURRENCY N
 *       one Worker; job k's processor adds job k+1 (N jobs); per hop: the enqueue of job k+1
 *       (just before queue.add) → its processor starts
 *   node floor.mjs fan REDIS_URL QUEUE CONCURRENCY
 *       one Worker with a no-op processor; the harness adds the jobs
 *
 * Protocol (lines): the child prints `ready` once its Worker is connected; `chain` waits for
 * `go` on stdin; both print `P <processed> <last processor end ms>` at most every 50 ms while
 * jobs are processed, and `chain` prints `RESULT {json}` at the end. The child exits when its
 * stdin closes (the harness went away) or on SIGTERM, so it never outlives the harness.
 * Job options are those of Baton's own jobs (removeOnComplete/removeOnFail, 5 attempts).
 * Times are wall-clock ms with sub-millisecond resolution (performance.timeOrigin + now()).
 */
import { createInterface } from "node:readline";
import { Queue, Worker } from "bullmq";

const now = () => performance.timeOrigin + performance.now();

const [mode, url, queueName, conc, nArg] = process.argv.slice(2);
const u = new URL(url);
const connection = { host: u.hostname, port: Number(u.port), maxRetriesPerRequest: null, enableOfflineQueue: true };
const JOB_OPTS = { removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: "exponential", delay: 200 } };
const concurrency = Number(conc) || 8;
const n = Number(nArg) || 0;

let processed = 0;
let lastEnd = 0;
let reported = 0;
const progress = setInterval(() => {
  if (processed !== reported) {
    reported = processed;
    process.stdout.write(`P ${processed} ${lastEnd}\n`);
  }
}, 50);

let closing = false;
let worker;
let queue;
async function shutdown(code = 0) {
  if (closing) return;
  closing = true;
  clearInterval(progress);
  setTimeout(() => process.exit(code), 2000).unref();
  await Promise.allSettled([worker?.close(true), queue?.close()]);
  process.exit(code);
}
process.on("SIGTERM", () => void shutdown(0));
process.on("SIGINT", () => void shutdown(130));

let go;
const started = new Promise((r) => (go = r));
const rl = createInterface({ input: process.stdin });
rl.on("line", (l) => l.trim() === "go" && go());
rl.on("close", () => void shutdown(0)); // the harness closed our stdin, or died

if (mode === "chain") {
  queue = new Queue(queueName, { connection });
  const hops = []; // enqueue of job k → its processor starts (k ≥ 1)
  const starts = []; // processor start of job k
  let finish;
  const finished = new Promise((r) => (finish = r));
  worker = new Worker(queueName, async (job) => {
    const t = now();
    const { k, at } = job.data;
    starts.push(t);
    if (k > 0) hops.push(t - at);
    if (k + 1 < n) {
      const at2 = now(); // just before the add
      await queue.add("hop", { k: k + 1, at: at2 }, JOB_OPTS);
    } else finish();
    processed++;
    lastEnd = now();
  }, { connection, concurrency });
  worker.on("error", (err) => process.stderr.write(`floor worker error: ${err.message}\n`));
  await Promise.all([worker.waitUntilReady(), queue.waitUntilReady()]);
  process.stdout.write("ready\n");
  await started;
  const t0 = now();
  await queue.add("hop", { k: 0, at: t0 }, JOB_OPTS);
  await finished;
  const t1 = now();
  await new Promise((r) => setTimeout(r, 60)); // let the last moveToFinished land before the harness reads Redis counters
  process.stdout.write(`P ${processed} ${lastEnd}\n`);
  process.stdout.write(`RESULT ${JSON.stringify({ t0, t1, hops, starts })}\n`);
} else if (mode === "fan") {
  worker = new Worker(queueName, async () => {
    processed++;
    lastEnd = now();
  }, { connection, concurrency });
  worker.on("error", (err) => process.stderr.write(`floor worker error: ${err.message}\n`));
  await worker.waitUntilReady();
  process.stdout.write("ready\n");
} else {
  process.stderr.write(`floor.mjs: unknown mode '${mode}'\n`);
  process.exit(2);
}
