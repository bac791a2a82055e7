#!/usr/bin/env node
// `baton` on the README test's PATH: the CLI of the repository copy under test ($README_WORK).
// Commands that keep running (`baton ui`, `baton serve`, `baton worker`) are started in the
// background instead: the shim waits until the server prints its URL (a worker: "ready"), records
// its pid in $README_SERVICES and returns 0, so the README's next commands can use it. Starting
// a `ui` or `serve` first stops the `ui`/`serve` started before (they share port 4500). The test
// stops every recorded service at the end.
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const work = process.env.README_WORK;
const services = process.env.README_SERVICES;
if (!work || !services) {
  process.stderr.write("baton shim: README_WORK and README_SERVICES must be set (test/readme/readme-commands.test.ts sets them)\n");
  process.exit(2);
}
const cli = join(work, "dist/cli/main.js");
const args = process.argv.slice(2);

/** The subcommand: the first argument that is not a global option (or its value). */
function subcommand(argv) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--db" || a === "--store" || a === "--queue-prefix") i++;
    else if (!a.startsWith("-")) return a;
  }
  return undefined;
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function stop(file) {
  const { pid } = JSON.parse(readFileSync(file, "utf8"));
  if (alive(pid)) process.kill(pid, "SIGTERM");
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(100);
  if (alive(pid)) process.kill(pid, "SIGKILL");
  rmSync(file, { force: true });
}

const sub = subcommand(args);
if (sub !== "ui" && sub !== "serve" && sub !== "worker") {
  const child = spawn(process.execPath, [cli, ...args], { stdio: "inherit" });
  const forward = (sig) => child.kill(sig);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  child.on("exit", (code, signal) => process.exit(code ?? (signal === "SIGINT" ? 130 : 1)));
} else if (args.includes("--help") || args.includes("-h")) {
  const child = spawn(process.execPath, [cli, ...args], { stdio: "inherit" });
  child.on("exit", (code) => process.exit(code ?? 1));
} else {
  if (sub !== "worker") {
    for (const f of readdirSync(services)) if (/^(ui|serve)-.*\.json$/.test(f)) await stop(join(services, f));
  }
  const n = readdirSync(services).length + Date.now();
  const log = join(services, `${sub}-${n}.log`);
  const fd = openSync(log, "w");
  const child = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", fd, fd], detached: true });
  closeSync(fd);
  child.unref();
  writeFileSync(join(services, `${sub}-${n}.json`), JSON.stringify({ pid: child.pid, args, log }));
  let exited;
  child.on("exit", (code) => (exited = code ?? 1));
  const ready = sub === "worker" ? /\bready\b/ : /https?:\/\/\S+/;
  for (;;) {
    const text = existsSync(log) ? readFileSync(log, "utf8") : "";
    if (ready.test(text)) {
      process.stderr.write(`(README test: baton ${args.join(" ")} runs in the background, pid ${child.pid})\n${text}`);
      process.exit(0);
    }
    if (exited !== undefined) {
      process.stderr.write(text);
      rmSync(join(services, `${sub}-${n}.json`), { force: true });
      process.exit(exited === 0 ? 1 : exited);
    }
    await sleep(100);
  }
}
