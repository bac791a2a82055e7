/**
 * `baton diff RUN_A RUN_B [--json] [--all]` (SPEC §4): compare two runs — plan hash equal or
 * not, changed inputs and output, per stage execution what changed (JSON changes, attempts,
 * durations), decisions that went differently, error counts. Exit 0 whatever the runs did.
 */
import type { Command } from "commander";
import { recordedPlan } from "../../api/run.js";
import type { Plan } from "../../plan/types.js";
import { openStore } from "../../store/open.js";
import type { Store } from "../../store/port.js";
import { buildTrace } from "../../trace/build.js";
import { diffTraces } from "../../trace/diff.js";
import { renderDiff } from "../../trace/diff-render.js";
import type { Trace } from "../../trace/types.js";

/** A run's trace, with its plan when the log's template source can be recompiled (YAML/JSON), as `baton trace` does. */
export async function loadTrace(store: Store, runId: string, o: { messages?: boolean } = {}): Promise<Trace> {
  const { events } = await store.load(runId);
  return buildTrace(events, recordedPlan(events[0]), o.messages ? { messages: true } : undefined);
}

/** Register `diff <runA> <runB>` on the program. */
export function registerDiff(program: Command, globals: () => { db?: string; debug?: boolean }): void {
  program
    .command("diff <runA> <runB>")
    .description("compare two runs: plan, inputs, output, stages, decisions, errors")
    .option("--json", "print the diff as JSON")
    .option("--all", "list unchanged stage executions too")
    .action(async (runA: string, runB: string, o: { json?: boolean; all?: boolean }) => {
      const store = openStore(globals().db);
      try {
        const idA = await store.resolveId(runA);
        const idB = await store.resolveId(runB);
        const [a, b] = [await loadTrace(store, idA), await loadTrace(store, idB)];
        const d = diffTraces(a, b, { all: o.all === true });
        if (o.json) {
          process.stdout.write(JSON.stringify(d, null, 2) + "\n");
          return;
        }
        const tty = process.stdout.isTTY === true;
        const color = tty && !process.env["NO_COLOR"];
        process.stdout.write(renderDiff(d, { color, width: tty ? (process.stdout.columns ?? 100) : 160 }) + "\n");
      } finally {
        await store.close();
      }
    });
}
