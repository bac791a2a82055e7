/**
 * Runs in flight survive upgrades: `run_started` records the engine version and the hash of the
 * compiled plan, and resume refuses to continue a run whose plan this Baton compiles differently
 * (a changed compiler default or engine rule) with one clear line. Logs recorded before these
 * fields were kept resume as before.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { planFromSource } from "../../src/api/run.js";
import { ENGINE_VERSION } from "../../src/engine/index.js";
import type { RunStarted } from "../../src/engine/events.js";
import { compiledPlanHash } from "../../src/plan/hash.js";
import { Runtime, SqliteStore } from "../../src/index.js";
import { compileObject, compileSource } from "../../src/template/index.js";

const WAITS = `
baton: 1
name: upgrade
stages:
  draft: { value: "'v1'", retry: { attempts: 2 } }
  review:
    needs: [draft]
    approval: { message: "Publish {{ draft }}?" }
output: review
`;

const plan = (text: string, baseDir = process.cwd()) => compileSource(text, { format: "yaml", baseDir });

/** Start a run that pauses at its approval stage; return the db file and run id. */
async function pausedRun(): Promise<{ db: string; id: string }> {
  const db = join(mkdtempSync(join(tmpdir(), "baton-upgrade-")), "u.db");
  const store = SqliteStore.open(db);
  const rt = new Runtime({ store, loadPlan: planFromSource });
  const r = await (await rt.start(plan(WAITS), {})).done;
  expect(r.status).toBe("waiting");
  await rt.close();
  await store.close();
  return { db, id: r.id };
}

/** Rewrite the stored run_started event of a run (as an older or newer Baton would have written it). */
function rewriteStarted(db: string, id: string, edit: (e: Record<string, unknown>) => void): void {
  const sql = new Database(db);
  try {
    const row = sql.prepare("SELECT data FROM events WHERE run_id = ? AND seq = 1").get(id) as { data: string };
    const e = JSON.parse(row.data) as Record<string, unknown>;
    expect(e.type).toBe("run_started");
    edit(e);
    sql.prepare("UPDATE events SET data = ? WHERE run_id = ? AND seq = 1").run(JSON.stringify(e), id);
  } finally {
    sql.close();
  }
}

async function resume(db: string, id: string) {
  const store = SqliteStore.open(db);
  const rt = new Runtime({ store, loadPlan: planFromSource });
  try {
    const h = await rt.resume(id);
    return await h.done;
  } finally {
    await rt.close();
    await store.close();
  }
}

describe("run_started records the engine version and the compiled plan", () => {
  it("records ENGINE_VERSION and compiledPlanHash(plan)", async () => {
    const { db, id } = await pausedRun();
    const store = SqliteStore.open(db);
    const first = (await store.load(id)).events[0] as RunStarted;
    await store.close();
    expect(first.engine).toBe(ENGINE_VERSION);
    expect(first.compiled_hash).toBe(compiledPlanHash(plan(WAITS)));
    expect(first.compiled_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("resume refuses a run whose compiled plan differs, naming the run, both engine versions and the way out", async () => {
    const { db, id } = await pausedRun();
    rewriteStarted(db, id, (e) => void (e.compiled_hash = "0".repeat(64)));
    const err = await resume(db, id).then(() => undefined, (x: unknown) => x as Error);
    expect(err?.name).toBe("UserError");
    expect(err?.message.split("\n")).toHaveLength(1);
    expect(err?.message).toContain(`run ${id} cannot be continued by this version of Baton`);
    expect(err?.message).toContain("engine or compiler changed how 'upgrade' compiles");
    expect(err?.message).toContain(`recorded engine version ${ENGINE_VERSION}, this one ${ENGINE_VERSION}`);
    expect(err?.message).toContain("finish it with the Baton version that started it");
    expect(err?.message).toContain(`\`baton rerun ${id} --from STAGE\``);
    // Nothing was appended: the run is still waiting where it was.
    const store = SqliteStore.open(db);
    const { run, events } = await store.load(id);
    await store.close();
    expect(run.status).toBe("waiting");
    expect(events.some((e) => e.type === "run_resumed")).toBe(false);
  });

  it("resume refuses a run started by a newer engine", async () => {
    const { db, id } = await pausedRun();
    rewriteStarted(db, id, (e) => void (e.engine = ENGINE_VERSION + 1));
    await expect(resume(db, id)).rejects.toThrow(`run ${id} was started by a newer Baton (engine version ${ENGINE_VERSION + 1}, this one is ${ENGINE_VERSION})`);
  });

  it("a log recorded without engine/compiled_hash still resumes", async () => {
    const { db, id } = await pausedRun();
    rewriteStarted(db, id, (e) => {
      delete e.engine;
      delete e.compiled_hash;
    });
    const r = await resume(db, id);
    expect(r.status).toBe("waiting");
  });

  it("answering a run refuses the same way (it continues the run)", async () => {
    const { db, id } = await pausedRun();
    rewriteStarted(db, id, (e) => void (e.compiled_hash = "f".repeat(64)));
    const store = SqliteStore.open(db);
    const rt = new Runtime({ store, loadPlan: planFromSource });
    await expect(rt.answer(id, "review", { approved: true })).rejects.toThrow(`run ${id} cannot be continued by this version of Baton`);
    await rt.close();
    await store.close();
  });
});

describe("compiledPlanHash", () => {
  it("is the same for the same template compiled in different directories (run: modules stay relative)", () => {
    const text = `
baton: 1
name: h
stages:
  a: { run: ./handlers.mjs#go }
  b: { run: ./handlers.mjs#go, needs: [a] }
`;
    const one = plan(text, "/srv/one/templates");
    const two = plan(text, "/home/ci/checkout/templates");
    expect(compiledPlanHash(one)).toBe(compiledPlanHash(two));
    expect(compiledPlanHash(one)).toBe(compiledPlanHash(one)); // cached, stable
  });

  it("changes with what the compiler made of the template, not only with its text", () => {
    const a = plan(WAITS);
    const spelledOut = plan(WAITS.replace("retry: { attempts: 2 }", "retry: { attempts: 2, backoff: exponential }"));
    // Same compiled plan (the default spelled out), different template data.
    expect(spelledOut.hash).not.toBe(a.hash);
    expect(compiledPlanHash(spelledOut)).toBe(compiledPlanHash(a));
    // A different compiled value changes it.
    const other = plan(WAITS.replace("retry: { attempts: 2 }", "retry: { attempts: 3 }"));
    expect(compiledPlanHash(other)).not.toBe(compiledPlanHash(a));
    // A compiler default changing under the same text (simulated by editing the compiled plan).
    const changed = { ...a, stages: a.stages.map((s) => (s.id === "draft" ? { ...s, retry: { ...s.retry, delayMs: s.retry.delayMs + 1 } } : s)) };
    expect(changed.hash).toBe(a.hash);
    expect(compiledPlanHash(changed)).not.toBe(compiledPlanHash(a));
  });

  it("hashes TypeScript plans (functions as a marker) without a required Plan field", () => {
    const p = compileObject({ baton: 1, name: "ts", stages: { a: { run: () => 1 } } }, { format: "ts", baseDir: process.cwd() });
    const q = compileObject({ baton: 1, name: "ts", stages: { a: { run: () => 2 } } }, { format: "ts", baseDir: "/elsewhere" });
    expect(compiledPlanHash(p)).toMatch(/^[0-9a-f]{64}$/);
    expect(compiledPlanHash(q)).toBe(compiledPlanHash(p));
  });
});
