/**
 * `pipeline:` stages: run another template as a child run with its own inputs; its final
 * output is this stage's output. The child is an ordinary run in the same store (its
 * `parent_id` links it; the parent's trace names it), so it has its own trace, and:
 * - cancel propagates: aborting the parent's attempt cancels the child;
 * - resume propagates: a re-run of the parent's attempt (after a crash or cancel) resumes the
 *   same child instead of starting another; a retry after the child failed starts a fresh one.
 * A child that pauses for a human makes this stage wait too: answer the child, then resume
 * the parent.
 */
import { NonRetryableError, StageFailure } from "../base/errors.js";
import { loadPlanFile, validateInputs } from "../template/index.js";
import { AwaitHuman } from "./approval.js";
import type { ExecuteArgs } from "./types.js";

/** How deep sub-pipelines may nest (a template that includes itself stops here). */
export const MAX_PIPELINE_DEPTH = 8;

/** Execute a pipeline stage. */
export async function executePipeline({ stage, ctx, scope, services, report }: ExecuteArgs): Promise<unknown> {
  const spec = stage.spec;
  if (spec.kind !== "pipeline") throw new Error("executePipeline on a non-pipeline stage");
  const depth = ctx.runId.split("~").length;
  if (depth > MAX_PIPELINE_DEPTH) {
    throw new NonRetryableError(`stage '${stage.id}': sub-pipelines nest more than ${MAX_PIPELINE_DEPTH} levels deep — does ${spec.path} include itself?`, { kind: "template" });
  }
  let plan;
  try {
    plan = loadPlanFile(spec.path);
  } catch (err) {
    throw new NonRetryableError(`stage '${stage.id}': sub-pipeline ${spec.path}: ${(err as Error).message}`, { kind: "template", cause: err });
  }
  let raw: unknown = spec.inputs ? spec.inputs.evaluate(scope) : {};
  if (raw instanceof Promise) raw = await raw;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new NonRetryableError(`stage '${stage.id}': inputs must evaluate to an object of the sub-pipeline's inputs`, { kind: "template" });
  let inputs: Record<string, unknown>;
  try {
    inputs = validateInputs(plan, raw as Record<string, unknown>);
  } catch (err) {
    throw new NonRetryableError(`stage '${stage.id}': sub-pipeline '${plan.name}': ${(err as Error).message}`, { kind: "template" });
  }
  const base = `${ctx.runId}~${stage.id}${ctx.visit > 1 ? `-v${ctx.visit}` : ""}${ctx.index !== undefined ? `-i${ctx.index}` : ""}`;
  const child = await services.children.run(plan, inputs, base, ctx.attempt, ctx.signal);
  report({ child_run: child.id });
  ctx.log(`sub-pipeline '${plan.name}' ran as run ${child.id}: ${child.status}`);
  if (child.status === "succeeded") return child.output;
  if (child.status === "waiting") {
    throw new AwaitHuman(`sub-pipeline run ${child.id} is waiting at '${child.error?.stage}': ${child.error?.message} — answer it (baton approve ${child.id} ${child.error?.stage}), then resume ${ctx.runId}`);
  }
  const e = child.error;
  throw new StageFailure(`sub-pipeline run ${child.id} ${child.status}${e ? `: ${e.stage ? `stage '${e.stage}': ` : ""}${e.message}` : ""}`, { kind: "handler", retryable: child.status === "failed" });
}
