/** Registered pipelines (src/registry/pipelines.ts) on a real SQLite store: deploy, versions, latest, planOf. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { planFromSource } from "../../src/api/run.js";
import { Runtime } from "../../src/runtime/runtime.js";
import { deploy, getPipeline, listPipelines, listVersions, planOf, versionOf } from "../../src/registry/pipelines.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { TemplateError } from "../../src/template/index.js";

const V1 = `baton: 1
name: doubler
inputs:
  n: { type: integer, default: 2 }
stages:
  twice: { run: ./double.mjs#double, input: { n: "{{ inputs.n }}" } }
output: twice
`;
const V2 = V1.replace("default: 2", "default: 3");

let dir: string;
let store: SqliteStore;
let clock = Date.parse("2026-12-01T10:00:00Z");
const now = (): number => (clock += 1000);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "baton-registry-"));
  writeFileSync(join(dir, "double.mjs"), "export const double = (ctx) => ctx.input.n * 2;\n");
  writeFileSync(join(dir, "p.yaml"), V1);
  store = SqliteStore.open(join(dir, "r.db"));
});
afterEach(async () => store.close());

describe("deploy", () => {
  it("registers a version per content hash; the same content again is unchanged but the latest again", async () => {
    const file = join(dir, "p.yaml");
    const a = await deploy(store, file, { by: "ana", now });
    expect(a).toEqual({ name: "doubler", version: versionOf(V1), created: true });
    expect(a.version).toMatch(/^[0-9a-f]{12}$/);
    writeFileSync(file, V2);
    const b = await deploy(store, file, { now });
    expect(b).toEqual({ name: "doubler", version: versionOf(V2), created: true });
    expect((await getPipeline(store, "doubler"))!.version).toBe(b.version);

    writeFileSync(file, V1);
    const again = await deploy(store, file, { now });
    expect(again).toEqual({ ...a, created: false });
    expect((await getPipeline(store, "doubler"))!.version).toBe(a.version); // latest switched back
    const entry = (await getPipeline(store, "doubler", a.version))!;
    expect(entry).toMatchObject({ name: "doubler", version: a.version, format: "yaml", file, text: V1, by: "ana" });

    const list = await listPipelines(store);
    expect(list).toEqual([{ name: "doubler", version: a.version, versions: 2, deployed_at: new Date(clock).toISOString() }]);
    expect((await listVersions(store, "doubler")).map((e) => e.version)).toEqual([b.version, a.version]);
  });

  it("refuses a template that does not compile, with the diagnostics `baton validate` prints, and files it cannot read", async () => {
    writeFileSync(join(dir, "bad.yaml"), "baton: 1\nname: bad\nstages:\n  a: { needs: [b], value: '1' }\n  b: { needs: [a], value: '2' }\n");
    const err = await deploy(store, join(dir, "bad.yaml")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TemplateError);
    expect((err as Error).message).toMatch(/bad\.yaml:\d+:\d+: dependency cycle/);
    await expect(deploy(store, join(dir, "missing.yaml"))).rejects.toThrow(/missing\.yaml:1:1: cannot read the template: no such file/);
    await expect(deploy(store, "/dev/zero")).rejects.toThrow(/cannot read the template: not a regular file/);
    await expect(deploy(store, dir)).rejects.toThrow(/not a regular file/);
    writeFileSync(join(dir, "big.yaml"), "x".repeat(1024 * 1024 + 1));
    await expect(deploy(store, join(dir, "big.yaml"))).rejects.toThrow(/templates are at most 1048576 bytes/);
    expect(await listPipelines(store)).toEqual([]);
  });

  it("keeps names apart that share a prefix", async () => {
    writeFileSync(join(dir, "a.yaml"), "baton: 1\nname: a\nstages:\n  x: { value: '1' }\n");
    writeFileSync(join(dir, "ab.yaml"), "baton: 1\nname: a@b\nstages:\n  x: { value: '2' }\n");
    await deploy(store, join(dir, "a.yaml"));
    await deploy(store, join(dir, "ab.yaml"));
    expect((await listVersions(store, "a")).map((e) => e.name)).toEqual(["a"]);
    expect((await listPipelines(store)).map((p) => [p.name, p.versions])).toEqual([["a", 1], ["a@b", 1]]);
    expect(await getPipeline(store, "nope")).toBeUndefined();
    expect(await getPipeline(store, "a", "000000000000")).toBeUndefined();
    expect(await getPipeline(store, "../../etc/passwd")).toBeUndefined();
  });
});

describe("webhook paths", () => {
  it("a path another registered pipeline listens on is refused; the same pipeline may keep it in a new version", async () => {
    const hook = (name: string, extra = ""): string => `baton: 1\nname: ${name}\ntriggers:\n  - webhook: { path: /hooks/gh, secret_env: GH_SECRET }\nstages:\n  x: { value: "'${name}${extra}'" }\n`;
    writeFileSync(join(dir, "one.yaml"), hook("one"));
    writeFileSync(join(dir, "one2.yaml"), hook("one", "-v2"));
    writeFileSync(join(dir, "two.yaml"), hook("two"));
    await deploy(store, join(dir, "one.yaml"));
    expect((await deploy(store, join(dir, "one2.yaml"))).created).toBe(true);
    await expect(deploy(store, join(dir, "two.yaml"))).rejects.toThrow(/webhook path \/hooks\/gh is already taken by pipeline 'one'/);
    expect(await getPipeline(store, "two")).toBeUndefined();
  });
});

describe("planOf", () => {
  it("compiles the stored text (not the file) next to the stored file; a run of it resumes from its recorded source", async () => {
    const file = join(dir, "p.yaml");
    const { version } = await deploy(store, file);
    writeFileSync(file, "this is no longer a template: the stored text is what runs\n");
    const plan = planOf((await getPipeline(store, "doubler", version))!);
    expect(plan.name).toBe("doubler");
    const runtime = new Runtime({ store, loadPlan: planFromSource });
    try {
      const h = await runtime.start(plan, { n: 5 });
      expect((await h.done).output).toBe(10); // ./double.mjs resolved next to the deployed file
      const first = (await store.load(h.id)).events[0]!;
      if (first.type !== "run_started") throw new Error("no run_started");
      expect(planFromSource(first.source).hash).toBe(plan.hash);
    } finally {
      await runtime.close();
    }
  });
});
