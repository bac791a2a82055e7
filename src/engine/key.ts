/**
 * `ExecKey`: the identity of an execution — (stage, visit, item, fallback_for) — and the one
 * codec that turns it into every string a host needs: the canonical id, `ctx.idempotencyKey`,
 * the jitter key of a retry, BullMQ job ids, the key of a waiting entry. Commands carry the key
 * as a value; no host builds these strings by hand.
 */
import type { ExecKey } from "./events.js";

export type { ExecKey } from "./events.js";

/** An execution's key plus the attempt number (1, 2, …). */
export interface AttemptKey extends ExecKey {
  readonly attempt: number;
}

/** The key as a value (drops absent fields, so it compares and serialises canonically). */
export function execKey(stage: string, visit: number, item: number | undefined, fallbackFor: string | undefined): ExecKey {
  const k: { stage: string; visit: number; item?: number; fallback_for?: string } = { stage, visit };
  if (item !== undefined) k.item = item;
  if (fallbackFor !== undefined) k.fallback_for = fallbackFor;
  return k;
}

/** Canonical id: `stage:visit:item:fallback_for` (empty parts stay empty). Stable across versions. */
export function keyId(k: ExecKey): string {
  return `${k.stage}:${k.visit}:${k.item ?? ""}:${k.fallback_for ?? ""}`;
}

/** Key of one attempt: `keyId:attempt`. The jitter of a retry is drawn from it. */
export function attemptId(k: ExecKey, attempt: number): string {
  return `${keyId(k)}:${attempt}`;
}

/** `ctx.idempotencyKey`: stable across attempts of the same stage, item and visit (SPEC §1). */
export function idempotencyKey(runId: string, k: ExecKey): string {
  return `${runId}:${k.stage}:${k.visit}:${k.item ?? ""}${k.fallback_for !== undefined ? `:${k.fallback_for}` : ""}`;
}

/** Key of a stage (visit, item) waiting for a human. */
export function waitKey(stage: string, visit: number, item: number | undefined): string {
  return `${stage}#${visit}${item === undefined ? "" : `[${item}]`}`;
}

/** A queue-safe id from parts (BullMQ reserves ':' in custom ids). */
export function jobId(...parts: (string | number | undefined)[]): string {
  return parts.map((p) => String(p ?? "").replace(/[:|]/g, "_")).join("|");
}

/** Job id of one attempt of one execution of a run: duplicates of the same attempt collapse. */
export function attemptJobId(runId: string, k: ExecKey, attempt: number): string {
  return jobId("exec", runId, k.stage, k.visit, k.item, k.fallback_for, attempt);
}
