/**
 * Starting and answering runs on the workers of a cluster (`baton serve --queue`): the same
 * calls the API makes on an embedded {@link Runtime}, made by recording in the shared store and
 * handing the run to the workers — never executing it in the serving process, where the
 * workers' recovery sweep would pick it up too.
 */
import type { RunStarted } from "../engine/index.js";
import type { Plan } from "../plan/types.js";
import type { HumanAnswer, RunHandle } from "../runtime/runtime.js";
import type { Store } from "../store/port.js";
import { answerOnWorkers, cancelOnWorkers, signalOnWorkers, submitRun, type QueueTarget } from "../distributed/submit.js";

/** A run handed to the workers: its outcome is in the store's log; nothing here awaits it. */
const handedOff = (id: string): RunHandle => ({ id, done: new Promise(() => undefined) });

export class WorkersRunner {
  constructor(
    private readonly store: Store,
    private readonly target: QueueTarget,
    private readonly loadPlan: (source: RunStarted["source"]) => Plan | Promise<Plan>,
  ) {}

  async start(plan: Plan, inputs: Record<string, unknown>, o: { runId?: string } = {}): Promise<RunHandle> {
    const { id } = await submitRun(this.store, this.target, plan, inputs, o.runId ? { runId: o.runId } : {});
    return handedOff(id);
  }

  async answer(runId: string, stage: string, answer: HumanAnswer): Promise<{ recorded: number; handle?: RunHandle; signalled?: boolean }> {
    const recorded = await answerOnWorkers(this.store, this.target, runId, stage, answer, this.loadPlan);
    return { recorded, signalled: true };
  }

  async signal(runId: string, name: string, o: { data?: unknown; by?: string } = {}): Promise<{ handle?: RunHandle; signalled?: boolean }> {
    await signalOnWorkers(this.store, this.target, runId, name, o, this.loadPlan);
    return { signalled: true };
  }

  async cancel(runId: string, reason = "cancelled by user"): Promise<"cancelled" | "signalled" | "finished"> {
    return (await cancelOnWorkers(this.store, this.target, runId, reason)) ? "signalled" : "finished";
  }
}
