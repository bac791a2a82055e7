/**
 * Code pinning on the workers (issue 12 item 6): a worker refuses a run whose pinned `run:`
 * modules differ from its code — a clear log line, no stage executed — and `baton worker
 * --allow-code-change` continues it, recorded as `code_changed`. Real PostgreSQL (own schema) and
 * a private Redis. Fails (never skips) when either is unavailable.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type OwnRedis } from "../helpers/redis.js";

const CLI = resolve("dist/cli/main.js");
const PG = process.env.BATON_TEST_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `codepin_${process.pid}_${Date.now() % 100000}`;
const STORE = `${PG}?schema=${schema}`;
const dir = mkdtempSync(join(tmpdir(), "baton-codepin-"));
const effects = join(dir, "effects.log");
const children: ChildProcess[] = [];
let redis: OwnRedis;

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  delete e.BATON_QUEUE;
  delete e.BATON_STORE;
  return e;
}

/** The CLI from the project directory (the run's root). */
function baton(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, "--store", STORE, ...args], { cwd: dir, encoding: "utf8", env: env(), timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A worker started from the repository (another working directory: modules resolve under the run's recorded root). */
function worker(extra: string[] = []): ChildProcess & { log: () => string } {
  const c = spawn(process.execPath, [CLI, "--store", STORE, "worker", "--queue", redis.url, "--lock-ms", "1500", "--sweep-ms", "300", ...extra], { env: env(), stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  c.stderr!.on("data", (d) => (log += d));
  children.push(c);
  return Object.assign(c, { log: () => log });
}

async function until<T>(f: () => T | undefined, what: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const sha = (text: string): string => createHash("sha256").update(text).digest("hex");
const step = (v: string): string => `import { appendFileSync } from "node:fs";\nexport const step = () => { appendFileSync(${JSON.stringify(effects)}, "${v}\\n"); return "${v}"; };\n`;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  const ping = spawnSync("psql", [PG, "-Atc", "select 1"], { encoding: "utf8" });
  if (ping.stdout.trim() !== "1") throw new Error(`PostgreSQL is not reachable at ${PG}: start it (see .ci/run) — distributed tests need it (${ping.stderr.trim()})`);
  redis = await startRedis();
  mkdirSync(join(dir, "stages"));
  writeFileSync(effects, "");
}, 30_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await redis?.stop();
  spawnSync("psql", [PG, "-c", `drop schema if exists ${schema} cascade`]);
});

describe("code pinning on the workers (PostgreSQL + Redis)", () => {
  it("a worker refuses a run whose run: module changed (log line, nothing executed); baton worker --allow-code-change continues it with the new code", async () => {
    writeFileSync(join(dir, "pipe.yaml"), `baton: 1
name: pinned-workers
stages:
  first: { run: ./stages/step.mjs#step }
output: first
`);
    writeFileSync(join(dir, "stages", "step.mjs"), step("v1"));
    // Submitted while no worker runs: it is pinned to v1, then the code changes before any worker loads it.
    const r = baton(["run", "pipe.yaml", "--queue", redis.url, "--detach", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const id = JSON.parse(r.stdout).id as string;
    writeFileSync(join(dir, "stages", "step.mjs"), step("v2"));

    const strict = worker();
    const line = await until(() => strict.log().split("\n").find((l) => l.startsWith(`refusing to continue run ${id}:`)), "the worker to refuse the run");
    expect(line).toContain(`run: module stages/step.mjs changed since the run started (recorded sha256 ${sha(step("v1")).slice(0, 12)}, now ${sha(step("v2")).slice(0, 12)})`);
    expect(line).toContain("`baton worker --allow-code-change`");
    // Give it a few sweeps: still nothing ran.
    await new Promise((res) => setTimeout(res, 1500));
    expect(readFileSync(effects, "utf8")).toBe("");
    const before = JSON.parse(baton(["trace", id, "--json"]).stdout);
    expect(before.run.status).toBe("running");
    expect(before.stages).toEqual([]);
    strict.kill("SIGTERM");
    await new Promise((res) => strict.once("exit", res));

    const lenient = worker(["--allow-code-change"]);
    await until(() => (JSON.parse(baton(["trace", id, "--json"]).stdout).run.status === "succeeded" ? true : undefined), "the run to finish");
    const t = JSON.parse(baton(["trace", id, "--json"]).stdout);
    expect(t.run.output).toBe("v2");
    expect(t.run.code_changed).toEqual([expect.objectContaining({ files: { "stages/step.mjs": { from: sha(step("v1")), to: sha(step("v2")) } }, by: expect.stringMatching(/^worker /) })]);
    expect(readFileSync(effects, "utf8")).toBe("v2\n");
    await until(() => (lenient.log().includes(`run ${id}: continuing with changed run: modules (stages/step.mjs), recorded as code_changed`) ? true : undefined), "the worker's log line");
    lenient.kill("SIGTERM");
    await new Promise((res) => lenient.once("exit", res));
  }, 90_000);

  it("`baton approve` of a run on the workers refuses changed code before it hands anything over", async () => {
    writeFileSync(join(dir, "review.yaml"), `baton: 1
name: pinned-review
stages:
  review: { approval: { message: "go?" } }
  after: { needs: [review], run: ./stages/after.mjs#step }
output: after
`);
    writeFileSync(join(dir, "stages", "after.mjs"), step("a1"));
    worker();
    const r = baton(["run", "review.yaml", "--queue", redis.url, "--json"]);
    expect(r.code, r.stderr).toBe(3);
    const id = JSON.parse(r.stdout).id as string;
    writeFileSync(join(dir, "stages", "after.mjs"), step("a2"));
    const no = baton(["approve", id, "review", "--queue", redis.url]);
    expect(no.code).toBe(1);
    expect(no.stderr.trim()).toContain(`run ${id}: run: module stages/after.mjs changed since the run started`);
    expect(JSON.parse(baton(["trace", id, "--json"]).stdout).run.status).toBe("waiting");
    const yes = baton(["approve", id, "review", "--queue", redis.url, "--allow-code-change", "--json"]);
    expect(yes.code, yes.stderr).toBe(0);
    const t = await until(() => {
      const x = JSON.parse(baton(["trace", id, "--json"]).stdout);
      return x.run.status === "succeeded" ? x : undefined;
    }, "the run to finish");
    expect(t.run.output).toBe("a2");
    expect(t.run.code_changed).toHaveLength(1);
  }, 90_000);
});
