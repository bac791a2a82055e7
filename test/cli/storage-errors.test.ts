/**
 * Issue 13.11 end to end: the built CLI on a really full disk and a really read-only
 * filesystem. Each case runs in its own mount namespace (`unshare -m`, or `-rm` when not root)
 * on a tiny tmpfs, so it works as root, where chmod would not stop anything. Where mount
 * namespaces are not allowed, the suite fails (never skips) saying so; test/store/sqlite-errors.test.ts
 * covers the same messages through SQLite's own switches.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "baton-storage-"));

/** `unshare` flags that give this process a mount namespace it may mount tmpfs in, if any. */
function probe(): string[] | undefined {
  for (const flags of [["-m"], ["-rm"]]) {
    const r = spawnSync("unshare", [...flags, "sh", "-c", `mkdir -p ${dir}/probe && mount -t tmpfs -o size=64k tmpfs ${dir}/probe`], { encoding: "utf8" });
    if (r.status === 0) return flags;
  }
  return undefined;
}
const flags = probe();

beforeAll(() => {
  if (flags === undefined) throw new Error("`unshare -m` (or `-rm`) with a tmpfs mount is not allowed here: these tests need a mount namespace (run as root, or allow user namespaces)");
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  writeFileSync(join(dir, "big.mjs"), 'export function big() { return "x".repeat(400000); }\n');
  writeFileSync(join(dir, "big.yaml"), "baton: 1\nname: big\nstages:\n  a: { value: \"1\" }\n  b: { run: ./big.mjs#big, needs: [a] }\noutput: b\n");
  copyFileSync(resolve("test/fixtures/cli/approve.yaml"), join(dir, "approve.yaml"));
});

/** Run `script` (sh) in a fresh mount namespace with a tmpfs of `size` at $M. */
function inNamespace(size: string, script: string) {
  const m = join(dir, `m${Math.random().toString(36).slice(2, 8)}`);
  const r = spawnSync("unshare", [...flags!, "sh", "-c", `set -e; mkdir -p "$M"; mount -t tmpfs -o size=${size} tmpfs "$M"; cd "$DIR"; b() { "$NODE" "$CLI" --db "$M/baton.db" "$@"; }; ${script}`], {
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1", M: m, DIR: dir, NODE: process.execPath, CLI },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, db: `${m}/baton.db` };
}

describe("storage failures through the CLI", () => {
  it("a full disk mid-run: one line with the file, what failed and `baton resume RUN` (not 'internal error')", () => {
    const r = inNamespace("300k", "b run big.yaml || echo \"rc=$?\"");
    expect(r.stdout).toMatch(/rc=1/);
    const id = /run (\S+) of 'big' started/.exec(r.stderr)?.[1];
    expect(id, r.stderr).toBeDefined();
    expect(r.stderr).toContain(`baton: cannot write the run database ${r.db} while appending events for run ${id}: the disk is full (SQLITE_FULL`);
    expect(r.stderr).toContain(`then continue it with \`baton resume ${id}\``);
    expect(r.stderr).not.toMatch(/internal error|--debug/);
  });

  it("a read-only filesystem: names the file and says it is read-only (not 'internal error')", () => {
    const r = inNamespace("4m", 'b run approve.yaml || true; mount -o remount,ro "$M"; b runs || echo "rc=$?"');
    expect(r.stdout).toMatch(/rc=1/);
    expect(r.stderr).toContain(`baton: cannot open the run database ${r.db}: its directory is on a read-only filesystem`);
    expect(r.stderr).not.toMatch(/internal error|--debug/);
  });
});
