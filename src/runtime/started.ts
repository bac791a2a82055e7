/**
 * The first event of every run, built in one place (embedded `Runtime.start` and distributed
 * `submitRun`), and the check that a recompiled plan is still the one the run started with.
 */
import { existsSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { ENGINE_VERSION } from "../engine/version.js";
import type { RunStarted } from "../engine/events.js";
import { compiledPlanHash } from "../plan/hash.js";
import type { Plan } from "../plan/types.js";
import { UserError } from "./errors.js";
import { recordCode } from "./code.js";

/** What a new run records besides its plan. */
export interface RunStart {
  readonly runId: string;
  readonly at: number;
  /** Validated inputs. */
  readonly inputs: Record<string, unknown>;
  /** Seed of the run's jitter source. */
  readonly seed: number;
  readonly parentId?: string;
  /** `baton rerun`: the run forked and the stage re-executed from. */
  readonly rerun?: { readonly of: string; readonly from: string };
}

/**
 * The template source as recorded: a template under the working directory (the project root) is
 * recorded relative to it, with the root beside it, so workers on machines where the code lives
 * at another path resolve `run:` modules and sub-pipelines from their own working directory.
 */
export function recordedSource(plan: Plan): RunStarted["source"] {
  const { format, file, text } = plan.source;
  const out: { format: typeof format; file?: string; root?: string; text?: string } = { format };
  if (file) {
    const root = process.cwd();
    const rel = relative(root, file);
    if (rel && !rel.startsWith("..") && !isAbsolute(rel)) {
      out.file = rel.split(sep).join("/");
      out.root = root;
    } else out.file = file;
  }
  if (text !== undefined) out.text = text;
  return out;
}

/** Where a recorded template file is on this machine: under its recorded root if that exists here, else under the working directory. */
export function templatePath(source: RunStarted["source"]): string | undefined {
  const file = source.file;
  if (file === undefined || isAbsolute(file)) return file;
  if (source.root !== undefined && existsSync(source.root)) {
    const there = resolve(source.root, file);
    if (existsSync(dirname(there))) return there;
  }
  return resolve(process.cwd(), file);
}

/** The `run_started` event of a new run of `plan`: template hash, compiled-plan hash, engine version, source, `run:` module hashes. */
export function runStartedEvent(plan: Plan, o: RunStart): RunStarted {
  const source = recordedSource(plan);
  // Code pinning: the `run:` modules as they are now (a fork pins the code it starts with).
  const code = recordCode(plan, source.root);
  return {
    type: "run_started", at: o.at, run_id: o.runId, pipeline: plan.name, plan_hash: plan.hash,
    engine: ENGINE_VERSION, compiled_hash: compiledPlanHash(plan),
    source,
    inputs: o.inputs, seed: o.seed,
    ...(o.parentId ? { parent_id: o.parentId } : {}),
    ...(o.rerun ? { rerun_of: o.rerun.of, rerun_from: o.rerun.from } : {}),
    ...(code ? { code } : {}),
  };
}

/**
 * Refuse to continue a recorded run under a plan this version of Baton compiles differently
 * (a changed compiler default or engine rule), or one started by a newer engine. Logs recorded
 * before `engine`/`compiled_hash` were kept pass. Call it after the `plan_hash` check.
 */
export function checkCompiledPlan(first: RunStarted, plan: Plan): void {
  const recorded = first.engine === undefined ? "not recorded" : String(first.engine);
  if (first.engine !== undefined && first.engine > ENGINE_VERSION) {
    throw new UserError(
      `run ${first.run_id} was started by a newer Baton (engine version ${recorded}, this one is ${ENGINE_VERSION}): finish it with the Baton version that started it, or fork it under this version with \`baton rerun ${first.run_id} --from STAGE\``,
    );
  }
  if (first.compiled_hash === undefined) return;
  const now = compiledPlanHash(plan);
  if (now === first.compiled_hash) return;
  throw new UserError(
    `run ${first.run_id} cannot be continued by this version of Baton: its engine or compiler changed how '${first.pipeline}' compiles (compiled plan ${first.compiled_hash.slice(0, 12)}, now ${now.slice(0, 12)}; recorded engine version ${recorded}, this one ${ENGINE_VERSION}): finish it with the Baton version that started it, or fork it under this version with \`baton rerun ${first.run_id} --from STAGE\` (stages before STAGE keep their recorded outputs)`,
  );
}
