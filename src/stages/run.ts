/**
 * `run:` stages: a TypeScript or JavaScript function. Modules are loaded without a build step
 * (TypeScript through tsx) relative to the template's directory, once per process.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { NonRetryableError } from "../base/errors.js";
import type { ExecuteArgs } from "./types.js";

const modules = new Map<string, Promise<Record<string, unknown>>>();
/** sha256 of each module file's content as this process loaded it (code pinning: what runs here). */
const loadedHashes = new Map<string, string>();

/** sha256 (hex) of the content of `file` this process loaded, if it loaded it (see runtime/code.ts). */
export function loadedModuleHash(file: string): string | undefined {
  return loadedHashes.get(file);
}

async function importModule(file: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(file).href;
  if (/\.(c|m)?tsx?$/.test(file)) {
    const { tsImport } = await import("tsx/esm/api");
    return (await tsImport(url, import.meta.url)) as Record<string, unknown>;
  }
  return (await import(url)) as Record<string, unknown>;
}

/** Load `module#export` relative to `baseDir`; clear errors for a missing file or export. */
export async function loadHandler(module: string, exportName: string, baseDir: string, stageId: string): Promise<(ctx: unknown) => unknown> {
  const file = isAbsolute(module) ? module : resolve(baseDir, module);
  let loading = modules.get(file);
  if (!loading) {
    if (!existsSync(file)) {
      throw new NonRetryableError(`stage '${stageId}': run module ${module} not found (looked for ${file}); paths are relative to the template's directory`, { kind: "template" });
    }
    try {
      loadedHashes.set(file, createHash("sha256").update(readFileSync(file)).digest("hex"));
    } catch {
      // unreadable: the import below reports it
    }
    loading = importModule(file);
    modules.set(file, loading);
    loading.catch(() => {
      modules.delete(file);
      loadedHashes.delete(file);
    });
  }
  let mod: Record<string, unknown>;
  try {
    mod = await loading;
  } catch (err) {
    throw new NonRetryableError(`stage '${stageId}': could not load ${module}: ${(err as Error).message}`, { kind: "template", cause: err });
  }
  let fn = mod[exportName];
  // tsx may wrap a CommonJS-style default export.
  if (fn === undefined && exportName === "default" && typeof mod["module.exports"] === "function") fn = mod["module.exports"];
  if (typeof fn !== "function") {
    const names = Object.keys(mod).filter((k) => typeof mod[k] === "function");
    throw new NonRetryableError(
      `stage '${stageId}': ${module} has no exported function '${exportName}'` + (names.length ? ` (it exports: ${names.join(", ")})` : "") +
        `; write run: ${module}#<name>`,
      { kind: "template" },
    );
  }
  return fn as (ctx: unknown) => unknown;
}

const loaded = new Map<string, (ctx: unknown) => unknown>();

/** Execute a `run:` stage. A function (TS API, or a module already loaded) is called directly. */
export function executeRun({ stage, ctx }: ExecuteArgs): unknown {
  const spec = stage.spec;
  if (spec.kind !== "run") throw new Error("executeRun on a non-run stage");
  if ("fn" in spec) return spec.fn(ctx);
  const key = `${spec.baseDir}\0${spec.module}\0${spec.export}`;
  const fn = loaded.get(key);
  if (fn) return fn(ctx);
  return loadHandler(spec.module, spec.export, spec.baseDir, stage.id).then((f) => {
    loaded.set(key, f);
    return f(ctx);
  });
}
