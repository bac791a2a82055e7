/**
 * A Redis server owned by the benchmark (a .mjs copy of test/helpers/redis.ts): its own process
 * on a free port, nothing kept on disk. The benchmark never uses, stops or flushes a Redis it
 * did not start (the machine's Redis on 6379 belongs to whoever else uses it).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function redisServerBinary() {
  const found = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  const bin = found.stdout.trim();
  if (found.status !== 0 || !bin) throw new Error("redis-server is not installed: the distributed benchmark starts its own Redis (apt-get install redis-server)");
  return bin;
}

async function waitReady(port, proc, log) {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`redis-server on port ${port} exited at start: ${log().slice(0, 500)}`);
    const r = spawnSync("redis-cli", ["-p", String(port), "ping"], { encoding: "utf8" });
    if (r.stdout.trim() === "PONG") return;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`redis-server on port ${port} did not answer PING within 5 s: ${log().slice(0, 500)}`);
}

/**
 * Start a private Redis on a free port. `onSpawn(proc)` is called as soon as the process exists
 * (so the caller can register it for cleanup before anything can fail).
 * @returns {Promise<{ port: number, url: string, proc: import("node:child_process").ChildProcess, stop: () => Promise<void> }>}
 */
export async function startRedis(onSpawn = () => {}) {
  const bin = redisServerBinary();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "baton-bench-redis-"));
  let out = "";
  const proc = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: ["ignore", "pipe", "pipe"] });
  onSpawn(proc);
  proc.stdout.on("data", (d) => (out = (out + d).slice(-20_000)));
  proc.stderr.on("data", (d) => (out = (out + d).slice(-20_000)));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(port, proc, () => out);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, url: `redis://127.0.0.1:${port}`, proc, stop, log: () => out };
}
