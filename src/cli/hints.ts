/** What `baton run`/`resume` print after a run stops: the outcome's tail and how to answer a wait. */
import type { RunResult } from "../base/result.js";

type Outcome = Pick<RunResult, "id" | "status" | "error">;

/** `: stage 'x': message` after "run ID failed in N ms" (a message that already names its stage is not prefixed again). */
export function outcomeTail(result: Outcome): string {
  if (result.status === "succeeded" || !result.error) return "";
  const { stage, message } = result.error;
  const named = stage !== undefined && message.startsWith(`stage '${stage}'`);
  return `: ${stage && !named ? `stage '${stage}': ` : ""}${message}`;
}

/** A waiting run: the command that answers it (a tool call waiting for approval is answered by its call id); none for signals. */
export function answerHint(result: Outcome): string | undefined {
  if (result.status !== "waiting") return undefined;
  const message = result.error?.message ?? "";
  if (/ waits for signal '/.test(message)) return undefined;
  const stage = result.error?.stage ?? "STAGE";
  const one = /\(tool call ([^\s:]+): /.exec(message)?.[1];
  const call = one !== undefined ? ` --call ${one}` : / tool calls wait for approval: /.test(message) ? " --call CALL_ID" : "";
  return `answer it with: baton approve ${result.id} ${stage}${call} [--data JSON]  or  baton reject ${result.id} ${stage}${call} [--comment TEXT]`;
}
