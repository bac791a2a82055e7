/** Code pinning in the runtime: what a run pins, how the pin is compared, and `code_changed` in the engine's fold. */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { apply, createState, fold, type BatonEvent, type RunStarted } from "../../src/engine/index.js";
import { MemoryStore, Runtime } from "../../src/index.js";
import { checkCode, codeDrift, pinnedCode, planModules } from "../../src/runtime/code.js";
import { runStartedEvent } from "../../src/runtime/started.js";
import { compileSource } from "../../src/template/index.js";

const sha = (text: string): string => createHash("sha256").update(text).digest("hex");

function project(): { dir: string; text: string } {
  const dir = mkdtempSync(join(tmpdir(), "baton-pin-rt-"));
  writeFileSync(join(dir, "stage.mjs"), "export const go = () => 1;\n");
  writeFileSync(join(dir, "tools.mjs"), "export const search = () => [];\n");
  const text = `baton: 1
name: pinned
tools:
  search:
    description: Search.
    input: { type: object, properties: { q: { type: string } } }
    run: ./tools.mjs#search
agents:
  bot: { model: openai:gpt-4o-mini, tools: [search] }
stages:
  a: { run: ./stage.mjs#go }
  b: { needs: [a], run: ./stage.mjs#go }
  c: { needs: [b], agent: bot, prompt: "go" }
output: b
`;
  writeFileSync(join(dir, "pipe.yaml"), text);
  return { dir, text };
}

describe("code pinning", () => {
  it("run_started pins every run: module of the plan once, stage and tool modules alike (absolute keys outside the working directory)", () => {
    const { dir, text } = project();
    const plan = compileSource(text, { format: "yaml", baseDir: dir, file: join(dir, "pipe.yaml") });
    expect(planModules(plan).sort()).toEqual([join(dir, "stage.mjs"), join(dir, "tools.mjs")]);
    const started = runStartedEvent(plan, { runId: "r1", at: 1, inputs: {}, seed: 1 });
    expect(started.code).toEqual({ [join(dir, "stage.mjs")]: sha("export const go = () => 1;\n"), [join(dir, "tools.mjs")]: sha("export const search = () => [];\n") });
    const plain = compileSource("baton: 1\nname: plain\nstages:\n  a: { value: \"1\" }\noutput: a\n", { format: "yaml", baseDir: dir });
    expect("code" in runStartedEvent(plain, { runId: "r2", at: 1, inputs: {}, seed: 1 })).toBe(false);
  });

  it("the pin is run_started.code updated by code_changed; drift names changed and missing files; allowed, the event to record", () => {
    const { dir, text } = project();
    const plan = compileSource(text, { format: "yaml", baseDir: dir, file: join(dir, "pipe.yaml") });
    const started = runStartedEvent(plan, { runId: "r1", at: 1, inputs: {}, seed: 1 });
    const log: BatonEvent[] = [started];
    expect(codeDrift(log, plan)).toEqual([]);
    expect(checkCode("r1", log, plan, { flag: "--allow-code-change", at: 2 })).toBeUndefined();
    const tool = join(dir, "tools.mjs");
    writeFileSync(tool, "export const search = () => ['new'];\n");
    expect(() => checkCode("r1", log, plan, { flag: "--allow-code-change", at: 2 })).toThrow(
      `run r1: run: module ${tool} changed since the run started (recorded sha256 ${sha("export const search = () => [];\n").slice(0, 12)}, now ${sha(readFileSync(tool, "utf8")).slice(0, 12)}): restore it, or continue with the code as it is now with --allow-code-change`,
    );
    const changed = checkCode("r1", log, plan, { allow: true, flag: "--allow-code-change", at: 2, by: "ann" })!;
    expect(changed).toEqual({ type: "code_changed", at: 2, by: "ann", files: { [tool]: { from: sha("export const search = () => [];\n"), to: sha(readFileSync(tool, "utf8")) } } });
    log.push(changed);
    expect(pinnedCode(log)![tool]).toBe(sha(readFileSync(tool, "utf8")));
    expect(codeDrift(log, plan)).toEqual([]); // the new hashes are the pin from here on
    // Logs recorded before pinning have nothing to compare.
    const { code: _code, ...old } = started as RunStarted & { code?: unknown };
    expect(codeDrift([old as RunStarted], plan)).toEqual([]);
  });

  it("the engine places code_changed without a change of state or of the run's active time", () => {
    const { dir, text } = project();
    const plan = compileSource(text, { format: "yaml", baseDir: dir, file: join(dir, "pipe.yaml") });
    const started = runStartedEvent(plan, { runId: "r1", at: 1000, inputs: {}, seed: 1 });
    const base: BatonEvent[] = [started, { type: "run_cancel_requested", at: 1100, reason: "x" }, { type: "run_finished", at: 1200, status: "cancelled" }];
    const change: BatonEvent = { type: "code_changed", at: 9000, files: { "stage.mjs": { from: "a", to: "b" } } };
    const without = fold(plan, [...base, { type: "run_resumed", at: 9000 }]);
    const withIt = fold(plan, [...base, change, { type: "run_resumed", at: 9000 }]);
    expect(withIt.activeBefore).toBe(without.activeBefore);
    expect(withIt.status).toBe(without.status);
    const s = createState(plan);
    apply(s, started);
    expect(apply(s, change)).toBe(true);
  });

  it("Runtime.resume refuses an edited module and, allowed, records code_changed before run_resumed", async () => {
    const { dir, text } = project();
    const plan = compileSource(text.replace("  c: { needs: [b], agent: bot, prompt: \"go\" }\n", "  c: { needs: [b], approval: { message: ok } }\n"), { format: "yaml", baseDir: dir, file: join(dir, "pipe.yaml") });
    const store = new MemoryStore();
    const rt = new Runtime({ store, loadPlan: () => plan });
    const h = await rt.start(plan, {});
    expect((await h.done).status).toBe("waiting");
    await rt.close();
    writeFileSync(join(dir, "tools.mjs"), "export const search = () => ['v2'];\n");
    const again = new Runtime({ store, loadPlan: () => plan });
    await expect(again.answer(h.id, "c", { approved: true })).rejects.toThrow(/tools\.mjs changed since the run started/);
    const r = await again.answer(h.id, "c", { approved: true }, { allowCodeChange: true, by: "ann" });
    expect((await r.handle!.done).status).toBe("succeeded");
    const types = (await store.load(h.id)).events.map((e) => e.type);
    expect(types.slice(types.indexOf("code_changed"), types.indexOf("code_changed") + 3)).toEqual(["code_changed", "approval", "run_resumed"]);
    await again.close();
  });
});
