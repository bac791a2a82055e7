/**
 * A Redis server owned by the test that starts it: its own process on a free port, nothing kept
 * on disk. Tests never stop, flush or share a server they did not start (the machine's Redis on
 * 6379 belongs to whoever else uses it). Fails — never skips — when `redis-server` is missing.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A free TCP port on 127.0.0.1 (bound, then released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface OwnRedis {
  readonly port: number;
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  /** Stop the server for good (SIGKILL: everything queued is lost) and remove its directory. */
  stop(): Promise<void>;
  /** Stop, then start it again on the same port: every job it held is gone. */
  restart(): Promise<void>;
}

function redisServerBinary(): string {
  const found = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  const bin = found.stdout.trim();
  if (found.status !== 0 || !bin) throw new Error("redis-server is not installed: the distributed tests start their own Redis (apt-get install redis-server; .ci/run expects it)");
  return bin;
}

/** The pid of the Redis answering on `port` (INFO server over TCP), or undefined if none answers. */
function serverPid(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const sock = connect({ port, host: "127.0.0.1" });
    let got = "";
    const done = (pid: number | undefined): void => {
      sock.destroy();
      resolve(pid);
    };
    sock.setTimeout(1_000, () => done(undefined));
    sock.on("error", () => done(undefined));
    sock.on("connect", () => sock.write("INFO server\r\n"));
    sock.on("data", (d) => {
      got += String(d);
      if (got.startsWith("-")) return done(undefined); // e.g. -LOADING
      const m = /process_id:(\d+)\r\n/.exec(got);
      if (m) done(Number(m[1]));
    });
    sock.on("end", () => done(undefined));
  });
}

async function waitReady(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`redis-server on port ${port} exited at start: ${log().slice(0, 500)}`);
    // Ready when *this* process answers (not another server that took the port first).
    if ((await serverPid(port)) === proc.pid) return;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`redis-server on port ${port} did not answer within 10 s: ${log().slice(0, 500)}`);
}

/** Servers started by this process and not yet stopped: killed if the process exits first. */
const live = new Set<ChildProcess>();
let exitHook = false;

/**
 * Start a private Redis on a free port. Call `stop()` when done (an `afterAll`); a server still
 * running when the test process exits is killed then.
 */
export async function startRedis(): Promise<OwnRedis> {
  const bin = redisServerBinary();
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const p of live) p.kill("SIGKILL");
    });
  }
  const dir = mkdtempSync(join(tmpdir(), "baton-redis-"));
  let port = 0;
  let proc: ChildProcess | undefined;
  let out = "";
  const launch = async (): Promise<void> => {
    out = "";
    const p = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: ["ignore", "pipe", "pipe"] });
    proc = p;
    live.add(p);
    p.once("exit", () => live.delete(p));
    p.stdout!.on("data", (d) => (out += d));
    p.stderr!.on("data", (d) => (out += d));
    await waitReady(port, p, () => out);
  };
  const kill = async (): Promise<void> => {
    const p = proc;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await exited;
  };
  // The free port can be taken between finding it and the server binding it: try a few.
  for (let tries = 1; ; tries++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      await kill();
      if (tries >= 3) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
    restart: async () => {
      await kill();
      await launch();
    },
  };
}
