/**
 * Every shell command block of README.md runs, in order, as a user would run it (issue 15.6).
 *
 * The blocks run in a temporary copy of this repository (its tracked files, its built `dist/`
 * and a link to its `node_modules`), one bash per block, with the shell variables a block sets
 * carried to the next ones (a later block's `$RUN` or `$B` comes from an earlier one), `HOME`
 * a fresh directory (so the per-user UI token is new) and these on PATH (test/readme/shims):
 *
 * - `baton`: `node dist/cli/main.js` of the copy; `baton ui`, `baton serve` and `baton worker`
 *   start in the background, wait until they listen (or say ready) and stay up for the next
 *   blocks — a later `ui`/`serve` replaces the one before; all are stopped at the end;
 * - `npm`: `npm run SCRIPT` runs the script without its leading `npm run build &&` (the suite
 *   runs on a fresh build); anything else (installs, `npm test`) is refused: mark the block;
 * - `curl`: the real one with `--fail-with-body`, so an HTTP error answer fails the block.
 *
 * Each command must exit 0, or the code a trailing `# exit code N` comment names. A block
 * marked `<!-- not-run: REASON -->` is not run; it must still parse (`bash -n`), every `baton`
 * command in it must use only flags its subcommand's `--help` lists, every `npm run` a script
 * package.json has, and every repository path it names must exist.
 *
 * PostgreSQL and Redis: a block that names a `postgres://…?schema=NAME` store gets that schema
 * dropped before and after the test (the README's is `reports` in the `test` database); the
 * queue key prefix is this test's own (`BATON_QUEUE_PREFIX`), and only its keys are deleted at
 * the end. Nothing else on the servers is touched; neither is ever flushed or stopped.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { batonCommands, blockScript, shellBlocks, type ReadmeBlock } from "./readme.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const SHIMS = join(ROOT, "test/readme/shims");
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const blocks = shellBlocks(README);
const QUEUE_PREFIX = `baton-readme-${process.pid}`;
/** The PostgreSQL stores the blocks use, as `{ url, schema }` (their schemas are this test's). */
const pgStores = [...new Set([...README.matchAll(/BATON_STORE="?(postgres:\/\/[^"\s]+)/g)].map((m) => m[1]!))].map((u) => {
  const url = new URL(u);
  const schema = url.searchParams.get("schema");
  if (!schema) throw new Error(`README.md: the store ${u} names no ?schema=: the README test needs one of its own to drop`);
  url.search = "";
  return { url: url.toString(), schema };
});

async function dropSchemas(): Promise<void> {
  const { default: pg } = await import("pg");
  for (const { url, schema } of pgStores) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`drop schema if exists "${schema}" cascade`);
    } finally {
      await client.end();
    }
  }
}

let base: string;
let work: string;
let services: string;
let state: string;
let env: Record<string, string>;

function realCurl(): string {
  const r = spawnSync("sh", ["-c", "command -v curl"], { encoding: "utf8" });
  const bin = r.stdout.trim();
  if (r.status !== 0 || !bin) throw new Error("curl is not installed: the README's API examples use it (apt-get install curl)");
  return bin;
}

beforeAll(async () => {
  await dropSchemas();
  if (!existsSync(join(ROOT, "dist/cli/main.js"))) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  base = mkdtempSync(join(tmpdir(), "baton-readme-"));
  work = join(base, "repo");
  services = join(base, "services");
  state = join(base, "state.sh");
  mkdirSync(services);
  mkdirSync(join(base, "home"));
  // The repository as a checkout has it: tracked and untracked (not ignored) files, the build, the dependencies.
  const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, encoding: "utf8" }).split("\0").filter(Boolean);
  for (const f of files) {
    if (!existsSync(join(ROOT, f))) continue; // deleted in the working tree
    mkdirSync(dirname(join(work, f)), { recursive: true });
    cpSync(join(ROOT, f), join(work, f));
  }
  cpSync(join(ROOT, "dist"), join(work, "dist"), { recursive: true });
  symlinkSync(join(ROOT, "node_modules"), join(work, "node_modules"));
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !/^(BATON_|OTEL_|REPORT_|AGENT_|OPENAI_|ANTHROPIC_|XDG_CONFIG_HOME$|npm_|VITEST|NODE_OPTIONS$)/.test(e[0])),
  );
  env = {
    ...inherited,
    HOME: join(base, "home"),
    PATH: `${SHIMS}:${process.env.PATH ?? ""}`,
    README_WORK: work,
    README_SHIMS: SHIMS,
    README_SERVICES: services,
    README_CURL: realCurl(),
    BATON_QUEUE_PREFIX: QUEUE_PREFIX,
  };
}, 120_000);

afterAll(async () => {
  // Stop every background server the blocks started (the pids the baton shim recorded).
  const pids = readdirSync(services)
    .filter((f) => f.endsWith(".json"))
    .map((f) => (JSON.parse(readFileSync(join(services, f), "utf8")) as { pid: number }).pid);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      /* already gone */
    }
  }
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 100 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids.filter(alive)) process.kill(pid, "SIGKILL");
  rmSync(base, { recursive: true, force: true });
  await dropSchemas();
  // The queue's keys under this test's prefix only (never a flush).
  if (/BATON_QUEUE=redis:/.test(README)) {
    const { Redis } = await import("ioredis");
    for (const m of new Set([...README.matchAll(/BATON_QUEUE=(redis:\/\/\S+)/g)].map((x) => x[1]!))) {
      const redis = new Redis(m, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await redis.connect();
      try {
        let cursor = "0";
        do {
          const [next, keys] = await redis.scan(cursor, "MATCH", `${QUEUE_PREFIX}:*`, "COUNT", 500);
          if (keys.length > 0) await redis.del(...keys);
          cursor = next;
        } while (cursor !== "0");
      } finally {
        redis.disconnect();
      }
    }
  }
}, 60_000);

/** Run one block: bash with the variables earlier blocks set; returns its exit code and output. */
function runBlock(block: ReadmeBlock): Promise<{ code: number | null; out: string }> {
  const script = join(base, `block-${block.line}.sh`);
  // Variables set by the block are saved for the next blocks (all but bash's own).
  const save = `__save() { for __v in $(compgen -v); do case " $__base " in *" $__v "*) ;; *) declare -p "$__v" 2>/dev/null | sed -e 's/^declare -- /declare -g /' -e 's/^declare -\\([a-zA-Z]*\\) /declare -g\\1 /' ;; esac; done > '${state}.new'; mv '${state}.new' '${state}'; }`;
  const head = [`__base="$(compgen -v | tr '\\n' ' ') __v __rc __base"`, `[ -f '${state}' ] && . '${state}'`, save, "trap __save EXIT", `cd '${work}'`];
  const lines = blockScript(block).split("\n");
  // Keep line numbers: the head goes on the prelude's line.
  writeFileSync(script, [head.join("; ") + "; " + lines[0], ...lines.slice(1)].join("\n"));
  return new Promise((res) => {
    // Its own process group: whatever the block left running in the background (`cmd &`) is
    // stopped with it. (Servers the baton shim starts have their own groups and stay up.)
    const child = spawn("bash", [script], { cwd: work, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("exit", (code) => {
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        /* nothing left */
      }
      res({ code, out });
    });
  });
}

function helpOf(words: string[]): string {
  const r = spawnSync(process.execPath, [join(work, "dist/cli/main.js"), ...words, "--help"], { encoding: "utf8", env });
  return r.stdout + r.stderr;
}

describe("README.md shell blocks", () => {
  it("has blocks, and only a few are not run, each with its reason", () => {
    expect(blocks.length).toBeGreaterThan(10);
    const notRun = blocks.filter((b) => b.notRun !== undefined);
    expect(notRun.length).toBeLessThanOrEqual(8);
    for (const b of notRun) expect(b.notRun!.length, `README.md:${b.line}`).toBeGreaterThan(10);
  });

  it("tags every transcript of commands: an untagged fence whose first line is a `$ ` prompt must be ```console", () => {
    const lines = README.split("\n");
    const untagged: number[] = [];
    let inside = false;
    for (let i = 0; i < lines.length; i++) {
      if (!/^```/.test(lines[i]!)) continue;
      if (!inside && lines[i] === "```" && lines[i + 1]?.startsWith("$ ")) untagged.push(i + 1);
      inside = !inside;
    }
    expect(untagged, "README.md lines of untagged transcripts").toEqual([]);
  });

  it("shows the fake server's script example as shipped (examples/fake-openai-script.json)", () => {
    const shipped = readFileSync(join(ROOT, "examples/fake-openai-script.json"), "utf8").trim();
    const m = /#### The fake server from the command line[\s\S]*?```json\n([\s\S]*?)\n```/.exec(README);
    expect(m?.[1]).toBe(shipped);
  });

  for (const block of blocks) {
    if (block.notRun !== undefined) {
      it(`README.md:${block.line} (not run: ${block.notRun}) parses, and its commands take the flags it gives them`, () => {
        const syntax = spawnSync("bash", ["-n"], { input: block.text, encoding: "utf8" });
        expect(syntax.status, syntax.stderr).toBe(0);
        for (const cmd of batonCommands(block.text)) {
          expect(cmd.words.length, `README.md:${block.line}: ${cmd.line}`).toBeGreaterThan(0);
          let words = cmd.words.slice(0, 1);
          const top = helpOf(words);
          if (cmd.words[1] !== undefined && new RegExp(`^\\s+${cmd.words[1]}\\b`, "m").test(top.split(/^Commands:/m)[1] ?? "")) words = cmd.words;
          const help = words.length === 1 ? top : helpOf(words);
          expect(help, `README.md:${block.line}: baton ${words.join(" ")} --help`).toMatch(/^Usage: /m);
          for (const flag of cmd.flags) expect(help, `README.md:${block.line}: ${cmd.line}: baton ${words.join(" ")} has no ${flag}`).toContain(flag);
        }
        const scripts = (JSON.parse(readFileSync(join(work, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
        for (const m of block.text.matchAll(/\bnpm run ([\w:-]+)/g)) expect(Object.keys(scripts), `README.md:${block.line}: npm run ${m[1]}`).toContain(m[1]);
        if (/\bnpm ci\b/.test(block.text)) expect(existsSync(join(work, "package-lock.json")), "npm ci needs package-lock.json").toBe(true);
        for (const m of block.text.matchAll(/(?:^|\s)((?:examples|dist|schema|scripts|bench)\/[\w./-]+)/g)) {
          const p = m[1]!.replace(/[.,;:]$/, "");
          expect(existsSync(join(work, p)), `README.md:${block.line}: ${p}`).toBe(true);
        }
      });
    } else {
      it(`README.md:${block.line} runs`, async () => {
        const r = await runBlock(block);
        expect(r.code, `README.md:${block.line}:\n${block.text}\n--- output ---\n${r.out}`).toBe(0);
      }, 120_000);
    }
  }
});
