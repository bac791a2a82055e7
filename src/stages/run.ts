/**
 * `run:` stages: a TypeScript or JavaScript function. Modules are loaded without a build step
 * (TypeScript through tsx) relative to the template's directory, once per process.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, relative, resolve } from "node:path";
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

/**
 * Make `baton` and `baton/testing` importable from stage modules that are not in a project with
 * Baton installed (a template next to a few `.ts` files): the running Baton's own package
 * answers them — an ESM resolve hook (`module.register`, Node ≥ 20.6) for `import`, a require
 * hook for `require` (CommonJS, and TypeScript that tsx compiles to CommonJS). Only a
 * specifier that would otherwise not be found is answered: a project with its own `baton`
 * installed gets that one (Node's resolution is never changed for what it can resolve). Once per
 * process, before the first `run:` module loads.
 */
let packageHooks: Promise<void> | undefined;
/** The hooks answer `baton` here (they are not installed when running from src/, in tests). */
let packageHooksActive = false;
function installPackageHooks(): Promise<void> {
  return (packageHooks ??= (async () => {
    const { batonTargets, installRequireHook } = await import("./package-hooks.js");
    const targets = batonTargets(import.meta.url);
    if (targets === undefined) return; // not running from a built package (tests from src/)
    installRequireHook(targets.require);
    packageHooksActive = true;
    const mod = await import("node:module");
    if (typeof mod.register === "function") {
      mod.register(new URL("./package-resolve.js", import.meta.url).href, { parentURL: import.meta.url, data: targets.import });
    }
  })());
}

/** Import a `run:` module file (TypeScript through tsx), with `baton` importable from it. */
export async function importModule(file: string): Promise<Record<string, unknown>> {
  await installPackageHooks();
  const url = pathToFileURL(file).href;
  if (/\.(c|m)?tsx?$/.test(file)) {
    const { tsImport } = await import("tsx/esm/api");
    return (await tsImport(url, import.meta.url)) as Record<string, unknown>;
  }
  return (await import(url)) as Record<string, unknown>;
}

/**
 * Why a module could not be loaded, in one line with what to do: Node's messages for a missing
 * package carry a multi-line require stack, tsx's start with "Transform failed with N errors".
 */
export function loadFailure(err: unknown, module: string): string {
  const e = err as NodeJS.ErrnoException;
  const lines = String(e?.message ?? err).split("\n").map((l) => l.trim()).filter((l) => l !== "" && !/^Require stack:?$/.test(l) && !l.startsWith("- "));
  const first = (/^Transform failed with/.test(lines[0] ?? "") && lines[1] ? lines[1] : lines[0]) ?? String(err);
  const missing = /^Cannot find (?:package|module) '([^']+)'/.exec(first);
  if ((e?.code === "ERR_MODULE_NOT_FOUND" || e?.code === "MODULE_NOT_FOUND") && missing) {
    const name = missing[1]!;
    if (/^(\.|\/|file:)/.test(name)) return `${first.replace(/ imported from .*$/, "")} (imported by ${module}): check the path in the import`;
    const pkg = name.startsWith("@") ? name.split("/").slice(0, 2).join("/") : name.split("/")[0]!;
    // 'baton' and 'baton/testing' are answered by the running Baton: this is another subpath.
    if (pkg === "baton" && packageHooksActive) return `it imports a part of 'baton' that is not one of its entry points: import from 'baton' or 'baton/testing'`;
    return `it imports '${name}', which is not installed: install it in the project (npm install ${pkg})`;
  }
  if (e?.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") return `${first}: import one of the package's exported entry points`;
  return `${first}${e instanceof SyntaxError ? ` (a syntax error in ${module} or a module it imports)` : ""}: fix it and check with baton validate`;
}

/** The function `exportName` of a loaded module, or a one-line reason (with the module's exported functions). */
export function exportedFunction(mod: Record<string, unknown>, exportName: string, module: string): ((ctx: unknown) => unknown) | string {
  let fn = mod[exportName];
  // tsx may wrap a CommonJS-style default export.
  if (fn === undefined && exportName === "default" && typeof mod["module.exports"] === "function") fn = mod["module.exports"];
  if (typeof fn === "function") return fn as (ctx: unknown) => unknown;
  const names = Object.keys(mod).filter((k) => typeof mod[k] === "function" && k !== "module.exports");
  return `${module} has no exported function '${exportName}'` + (names.length ? ` (it exports: ${names.join(", ")})` : "") + `; write run: ${module}#<name>`;
}

/** The module of `file`, once per process (concurrent callers share the load; a failed load is tried again next time). */
export function loadModuleFile(file: string): Promise<Record<string, unknown>> {
  let loading = modules.get(file);
  if (!loading) {
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
  return loading;
}

/** The loader template/preflight.ts checks `run:` modules with (the one stages load them with). */
export const runModules = { load: loadModuleFile, failure: loadFailure, exported: exportedFunction } as const;

/** Load `module#export` relative to `baseDir`; clear errors for a missing file or export. */
export async function loadHandler(module: string, exportName: string, baseDir: string, stageId: string): Promise<(ctx: unknown) => unknown> {
  const file = isAbsolute(module) ? module : resolve(baseDir, module);
  if (!modules.has(file) && !existsSync(file)) {
    throw new NonRetryableError(`stage '${stageId}': run module ${module} not found (looked for ${file}); paths are relative to the template's directory`, { kind: "template" });
  }
  let mod: Record<string, unknown>;
  try {
    mod = await loadModuleFile(file);
  } catch (err) {
    throw new NonRetryableError(`stage '${stageId}': could not load run module ${module}: ${loadFailure(err, module)}`, { kind: "template", cause: err });
  }
  const fn = exportedFunction(mod, exportName, module);
  if (typeof fn === "string") throw new NonRetryableError(`stage '${stageId}': ${fn}`, { kind: "template" });
  return fn;
}

const loaded = new Map<string, (ctx: unknown) => unknown>();

/** Execute a `run:` stage. A function (TS API, or a module already loaded) is called directly. */
export function executeRun({ plan, stage, ctx }: ExecuteArgs): unknown {
  const spec = stage.spec;
  if (spec.kind !== "run") throw new Error("executeRun on a non-run stage");
  if ("fn" in spec) return spec.fn(ctx);
  const key = `${spec.baseDir}\0${spec.module}\0${spec.export}`;
  const fn = loaded.get(key);
  if (fn) return fn(ctx);
  return loadHandler(spec.module, spec.export, spec.baseDir, stage.id).then(
    (f) => {
      loaded.set(key, f);
      return f(ctx);
    },
    async (err: unknown) => {
      throw await withPosition(err, plan, stage.id);
    },
  );
}

/**
 * A loading error with the `FILE:LINE:COL` of the stage's `run:` field (`baton run` reports
 * these before the run starts; this is for what loads later: resume, approve, workers).
 */
async function withPosition(err: unknown, plan: ExecuteArgs["plan"], stageId: string): Promise<unknown> {
  const { file, text, format } = plan.source;
  if (!(err instanceof NonRetryableError) || file === undefined || text === undefined || format === "ts") return err;
  let where: string;
  try {
    // Loaded only here: the template parser is not needed to run stages.
    const { parseText } = await import("../template/source.js");
    const { line, col } = parseText(text, format, file).locator.at(["stages", stageId, "run"], "value");
    const rel = relative(process.cwd(), file);
    where = `${rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : file}:${line}:${col}`;
  } catch {
    return err;
  }
  const prefix = `stage '${stageId}': `;
  const message = err.message.startsWith(prefix) ? `${prefix}${where}: ${err.message.slice(prefix.length)}` : `${where}: ${err.message}`;
  return new NonRetryableError(message, { kind: err.kind, cause: err.cause ?? err });
}
