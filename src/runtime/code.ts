/**
 * Code pinning: a run records the sha256 of every `run:` module its plan references (stages and
 * tools) in `run_started.code`; whatever continues the run later (`resume`, `approve`/`reject`, a
 * worker loading it) compares first and refuses changed or missing files unless told to go on,
 * which it records as a `code_changed` event (the new hashes are the run's pin from then on).
 *
 * The hash is of the module file itself (not of what it imports). A module this process has
 * already loaded counts as the content it loaded — that is the code that runs here, whatever the
 * file says now — so a long-lived worker that loaded an older version refuses too.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, relative, resolve, sep } from "node:path";
import type { BatonEvent, CodeChanged, RunStarted } from "../engine/events.js";
import type { Plan, StageSpec } from "../plan/types.js";
import { loadedModuleHash } from "../stages/run.js";
import { UserError } from "./errors.js";

/** Absolute paths of the `run:` module files a plan's stages and tools reference (each once). */
export function planModules(plan: Plan): string[] {
  const files = new Set<string>();
  const add = (spec: StageSpec): void => {
    if (spec.kind === "run" && "module" in spec) files.add(isAbsolute(spec.module) ? spec.module : resolve(spec.baseDir, spec.module));
  };
  for (const s of plan.stages) add(s.spec);
  for (const t of Object.values(plan.tools)) add(t.spec);
  return [...files];
}

/** A module's key in `code`: relative to the run's root (with `/`) when under it, else absolute. */
function codeKey(file: string, root: string | undefined): string {
  if (root === undefined) return file;
  const rel = relative(root, file);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel.split(sep).join("/") : file;
}

/** sha256 of the code of `file` this process runs: as loaded, else as on disk; undefined when it is missing. */
function hashNow(file: string): { hash?: string; loaded: boolean } {
  const loaded = loadedModuleHash(file);
  if (loaded !== undefined) return { hash: loaded, loaded: true };
  try {
    return { hash: createHash("sha256").update(readFileSync(file)).digest("hex"), loaded: false };
  } catch {
    return { loaded: false };
  }
}

/** What a new run records (`run_started.code`): each module hashed once; undefined without `run:` modules. */
export function recordCode(plan: Plan, root: string | undefined): Record<string, string> | undefined {
  const files = planModules(plan);
  if (files.length === 0) return undefined;
  const code: Record<string, string> = {};
  for (const f of files) {
    const h = hashNow(f).hash;
    if (h !== undefined) code[codeKey(f, root)] = h; // a missing module: `baton run` refuses it first (template/preflight.ts); else it fails its stage
  }
  return Object.keys(code).length > 0 ? code : undefined;
}

/** The run's pin as of its log: `run_started.code`, updated by every `code_changed`. Undefined for runs recorded without it. */
export function pinnedCode(events: readonly BatonEvent[]): Record<string, string> | undefined {
  const first = events[0];
  if (!first || first.type !== "run_started" || first.code === undefined) return undefined;
  const pin: Record<string, string> = { ...first.code };
  for (const e of events) {
    if (e.type !== "code_changed") continue;
    for (const [k, v] of Object.entries(e.files)) {
      if (v.to === null) delete pin[k];
      else pin[k] = v.to;
    }
  }
  return pin;
}

/** One pinned module whose code here differs from the pin. */
export interface CodeDrift {
  readonly file: string;
  readonly recorded: string;
  /** undefined: the file is missing. */
  readonly now: string | undefined;
  /** `now` is what this process loaded earlier (the file on disk may differ again). */
  readonly loaded: boolean;
}

/** The pinned modules whose code here differs from the run's pin (empty for runs without a pin). */
export function codeDrift(events: readonly BatonEvent[], plan: Plan): CodeDrift[] {
  const pin = pinnedCode(events);
  if (!pin) return [];
  const source = (events[0] as RunStarted).source;
  const root = source.root === undefined ? undefined : existsSync(source.root) ? source.root : process.cwd();
  const here = new Map<string, string>();
  for (const f of planModules(plan)) here.set(codeKey(f, root), f);
  const out: CodeDrift[] = [];
  for (const [key, recorded] of Object.entries(pin)) {
    const file = here.get(key) ?? (isAbsolute(key) || root === undefined ? key : resolve(root, key));
    const now = hashNow(file);
    if (now.hash !== recorded) out.push({ file: key, recorded, now: now.hash, loaded: now.loaded });
  }
  return out;
}

/**
 * Before continuing a recorded run: refuse (a UserError naming the file, both hashes and `flag`)
 * when a pinned `run:` module changed or is missing here; with `allow`, the `code_changed`
 * event to record before anything executes. Undefined: nothing changed (or the run has no pin).
 */
export function checkCode(
  runId: string, events: readonly BatonEvent[], plan: Plan,
  o: { allow?: boolean; flag: string; by?: string; at: number },
): CodeChanged | undefined {
  const drift = codeDrift(events, plan);
  if (drift.length === 0) return undefined;
  if (!o.allow) {
    const d = drift[0]!;
    const now = d.now === undefined ? "now missing" : `now ${d.now.slice(0, 12)}${d.loaded ? " as this process loaded it earlier; restart it to load the file as it is" : ""}`;
    const more = drift.length > 1 ? ` (and ${drift.length - 1} more: ${drift.slice(1).map((x) => x.file).join(", ")})` : "";
    throw new UserError(
      `run ${runId}: run: module ${d.file} ${d.now === undefined ? "is missing" : "changed"} since the run started (recorded sha256 ${d.recorded.slice(0, 12)}, ${now})${more}: restore it, or continue with the code as it is now with ${o.flag}`,
    );
  }
  const files: Record<string, { from: string; to: string | null }> = {};
  for (const d of drift) files[d.file] = { from: d.recorded, to: d.now ?? null };
  return { type: "code_changed", at: o.at, files, ...(o.by ? { by: o.by } : {}) };
}
