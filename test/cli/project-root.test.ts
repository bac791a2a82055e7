/**
 * The store and baton.config are found from the project root (issue 15.8): the nearest `.baton/`
 * (and `baton.config.*`) from the working directory upward, as git finds `.git`; --db and
 * $BATON_DB / $BATON_STORE still win. Through the built CLI, from a subdirectory.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { findConfig } from "../../src/agents/config.js";
import { defaultStorePath } from "../../src/store/open.js";
import { SqliteStore } from "../../src/store/sqlite.js";

const CLI = resolve("dist/cli/main.js");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

/** A project: ROOT/.baton/, ROOT/t.yaml, ROOT/src/deep/ (realpath: tmpdir may be a symlink). */
function project(): { root: string; deep: string } {
  const root = realpathSync(mkdtempSync(join(tmpdir(), "baton-root-")));
  mkdirSync(join(root, ".baton"));
  const deep = join(root, "src", "deep");
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(root, "t.yaml"), "baton: 1\nname: rooted\nstages:\n  a:\n    value: \"'hi'\"\n");
  return { root, deep };
}

function baton(args: string[], cwd: string, extra: NodeJS.ProcessEnv = {}) {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", ...extra };
  for (const k of ["BATON_DB", "BATON_STORE", "BATON_CONFIG"]) if (!(k in extra)) delete env[k];
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", cwd, env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function runsIn(db: string): Promise<string[]> {
  const store = SqliteStore.open(db);
  try {
    return (await store.list({})).map((r) => r.pipeline);
  } finally {
    await store.close();
  }
}

describe("the project root", () => {
  it("defaultStorePath is the nearest .baton/ upward, else .baton/ under the directory itself", () => {
    const { root, deep } = project();
    expect(defaultStorePath(deep)).toBe(join(root, ".baton", "baton.db"));
    expect(defaultStorePath(root)).toBe(join(root, ".baton", "baton.db"));
    const lone = realpathSync(mkdtempSync(join(tmpdir(), "baton-lone-")));
    expect(defaultStorePath(lone)).toBe(join(lone, ".baton", "baton.db"));
    // A file named .baton is not a store directory.
    const fileNamed = realpathSync(mkdtempSync(join(tmpdir(), "baton-file-")));
    writeFileSync(join(fileNamed, ".baton"), "");
    mkdirSync(join(fileNamed, "sub"));
    expect(defaultStorePath(join(fileNamed, "sub"))).toBe(join(fileNamed, "sub", ".baton", "baton.db"));
  });

  it("baton run and baton runs from a subdirectory use the root's .baton/baton.db", async () => {
    const { root, deep } = project();
    const r = baton(["run", "../../t.yaml"], deep);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(deep, ".baton"))).toBe(false);
    expect(await runsIn(join(root, ".baton", "baton.db"))).toEqual(["rooted"]);
    const list = baton(["runs", "--json"], join(root, "src"));
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { pipeline: string }[]).map((x) => x.pipeline)).toEqual(["rooted"]);
  });

  it("--db and $BATON_DB still win over the project's store", async () => {
    const { root, deep } = project();
    const other = join(deep, "other.db");
    expect(baton(["--db", other, "run", "../../t.yaml"], deep).code).toBe(0);
    const viaEnv = join(deep, "env.db");
    expect(baton(["run", "../../t.yaml"], deep, { BATON_DB: viaEnv }).code).toBe(0);
    expect(await runsIn(other)).toEqual(["rooted"]);
    expect(await runsIn(viaEnv)).toEqual(["rooted"]);
    expect(existsSync(join(root, ".baton", "baton.db"))).toBe(false);
  });

  it("baton.config.* is found upward too (the nearest one wins)", () => {
    const { root, deep } = project();
    writeFileSync(join(root, "baton.config.yaml"), "limits: { shared: { concurrency: 1 } }\n");
    expect(findConfig(deep)).toBe(join(root, "baton.config.yaml"));
    writeFileSync(join(root, "src", "baton.config.json"), "{}");
    expect(findConfig(deep)).toBe(join(root, "src", "baton.config.json"));
    expect(findConfig(realpathSync(mkdtempSync(join(tmpdir(), "baton-noconf-"))))).toBeUndefined();
  });

  it("the CLI reads the root's baton.config from a subdirectory (a broken one says which file)", () => {
    const { root, deep } = project();
    writeFileSync(join(root, "baton.config.yaml"), "bogus: 1\n");
    const r = baton(["run", "../../t.yaml"], deep);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${join(root, "baton.config.yaml")}: unknown field 'bogus'`);
  });
});
