/**
 * `approval:` stages: a human decision. The attempt does not complete: the stage waits
 * (`stage_waiting`), and once nothing else can progress the run pauses with status `waiting`
 * (exit code 3). `baton approve RUN STAGE [--data JSON]` / `baton reject RUN STAGE` record the
 * answer; the approval data is the stage's output.
 */
import { NonRetryableError } from "../base/errors.js";
import type { ExecuteArgs } from "./types.js";

/** How a wait ends besides a human's answer (recorded on its `stage_waiting`). */
export interface WaitOptions {
  /** The deadline, ms from when the stage waits (the host's clock). */
  readonly inMs?: number;
  /** The deadline, ms since epoch. */
  readonly at?: number;
  /** A `wait:` stage: the signal it waits for. */
  readonly signal?: string;
  /** A sleep: it succeeds at its deadline and never pauses the run. */
  readonly sleep?: boolean;
}

/** Thrown by an executor to make its attempt wait for a human (or a signal, or a timer). */
export class AwaitHuman extends Error {
  override readonly name = "AwaitHuman";
  constructor(
    readonly prompt: string,
    /** Tool calls of an agent that wait for approval (the attempt stopped before them). */
    readonly calls?: readonly { readonly id: string; readonly tool: string; readonly args: unknown; readonly message: string }[],
    readonly wait?: WaitOptions,
  ) {
    super(prompt);
  }
}

/**
 * Thrown by an executor whose attempt goes on elsewhere (a sub-pipeline's child run handed to
 * distributed workers): the attempt reports no outcome here; it is completed when it runs again
 * (the same attempt, once the child has stopped).
 */
export class Detached extends Error {
  override readonly name = "Detached";
}

/** Execute an approval stage: evaluate its message and wait. */
export async function executeApproval({ stage, scope }: ExecuteArgs): Promise<never> {
  const spec = stage.spec;
  if (spec.kind !== "approval") throw new Error("executeApproval on a non-approval stage");
  let message: unknown = spec.message ? spec.message.evaluate(scope) : undefined;
  if (message instanceof Promise) message = await message;
  const text = message === undefined || message === null ? `stage '${stage.id}' needs approval` : typeof message === "string" ? message : JSON.stringify(message);
  throw new AwaitHuman(text, undefined, spec.timeoutMs !== undefined ? { inMs: spec.timeoutMs } : undefined);
}

/** Execute a `wait:` stage: wait for its signal (the engine hands it over, or its deadline ends the wait). */
export function executeWait({ stage, ctx }: ExecuteArgs): never {
  const spec = stage.spec;
  if (spec.kind !== "wait") throw new Error("executeWait on a non-wait stage");
  throw new AwaitHuman(`stage '${stage.id}' waits for signal '${spec.signal}': send it with baton signal ${ctx.runId} ${spec.signal} [--data JSON]`, undefined, {
    signal: spec.signal, ...(spec.timeoutMs !== undefined ? { inMs: spec.timeoutMs } : {}),
  });
}

/** Execute a `sleep:`/`until:` stage: a durable timer (the engine's), which ends the wait when it falls due. */
export async function executeSleep({ stage, scope }: ExecuteArgs): Promise<never> {
  const spec = stage.spec;
  if (spec.kind !== "sleep") throw new Error("executeSleep on a non-sleep stage");
  if (spec.until === undefined) throw new AwaitHuman(`stage '${stage.id}' sleeps for ${durationText(spec.ms ?? 0)}`, undefined, { inMs: spec.ms ?? 0, sleep: true });
  let v: unknown = spec.until.evaluate(scope);
  if (v instanceof Promise) v = await v;
  const at = typeof v === "number" ? v : typeof v === "string" ? Date.parse(v) : NaN;
  if (!Number.isFinite(at)) {
    throw new NonRetryableError(`stage '${stage.id}': until must give an ISO time or epoch ms, got ${JSON.stringify(v) ?? "undefined"}`, { kind: "expression" });
  }
  throw new AwaitHuman(`stage '${stage.id}' sleeps until ${new Date(at).toISOString()}`, undefined, { at, sleep: true });
}

/** 600000 → "10m", 1500 → "1.5s". */
function durationText(ms: number): string {
  for (const [u, n] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) if (ms >= n && ms % (n / 10) === 0) return `${ms / n}${u}`;
  return `${ms}ms`;
}
