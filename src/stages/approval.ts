/**
 * `approval:` stages: a human decision. The attempt does not complete: the stage waits
 * (`stage_waiting`), and once nothing else can progress the run pauses with status `waiting`
 * (exit code 3). `baton approve RUN STAGE [--data JSON]` / `baton reject RUN STAGE` record the
 * answer; the approval data is the stage's output.
 */
import type { ExecuteArgs } from "./types.js";

/** Thrown by an executor to make its attempt wait for a human. */
export class AwaitHuman extends Error {
  override readonly name = "AwaitHuman";
  constructor(
    readonly prompt: string,
    /** Tool calls of an agent that wait for approval (the attempt stopped before them). */
    readonly calls?: readonly { readonly id: string; readonly tool: string; readonly args: unknown; readonly message: string }[],
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
  throw new AwaitHuman(text);
}
