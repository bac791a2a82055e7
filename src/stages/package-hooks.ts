/**
 * Where the running Baton's own package is, for stage modules that import `baton` without
 * having it installed (see `installPackageHooks` in run.ts), and the require hook that answers
 * `require("baton")` with it. The ESM side is package-resolve.ts (a module.register hook).
 */
import { existsSync } from "node:fs";
import Module from "node:module";
import { fileURLToPath } from "node:url";

/** Specifier → what answers it: file URLs for `import`, file paths for `require`. */
export interface BatonTargets {
  readonly import: Readonly<Record<string, string>>;
  readonly require: Readonly<Record<string, string>>;
}

/**
 * The entry points of the package `fromUrl` (a module of its `dist/`, one level down) belongs
 * to, or undefined when it is not running from a build (the entry files are missing).
 */
export function batonTargets(fromUrl: string): BatonTargets | undefined {
  const dist = new URL("../", fromUrl);
  const esm = { baton: new URL("index.js", dist), "baton/testing": new URL("testing/index.js", dist) };
  if (!existsSync(esm.baton)) return undefined;
  const cjs = { baton: new URL("cjs/index.js", dist), "baton/testing": new URL("cjs/testing/index.js", dist) };
  return {
    import: { baton: esm.baton.href, "baton/testing": esm["baton/testing"].href },
    require: existsSync(cjs.baton) ? { baton: fileURLToPath(cjs.baton), "baton/testing": fileURLToPath(cjs["baton/testing"]) } : {},
  };
}

type ResolveFilename = (request: string, parent: unknown, isMain: boolean, options?: unknown) => string;

let hooked = false;

/** Answer `require(SPECIFIER)` for the specifiers in `targets` when Node's own resolution does not find them. Once per process. */
export function installRequireHook(targets: Readonly<Record<string, string>>): void {
  if (hooked || Object.keys(targets).length === 0) return;
  hooked = true;
  const M = Module as unknown as { _resolveFilename: ResolveFilename };
  const original = M._resolveFilename;
  M._resolveFilename = function (this: unknown, request, parent, isMain, options) {
    try {
      return original.call(this, request, parent, isMain, options);
    } catch (err) {
      const target = Object.hasOwn(targets, request) ? targets[request] : undefined;
      if (target !== undefined && (err as NodeJS.ErrnoException).code === "MODULE_NOT_FOUND") return target;
      throw err;
    }
  };
}
