/**
 * An exit of the process must never read as success for a run that did not finish (issue
 * 13.10). While `baton run` / `resume` / `approve` follow a run, a `process.exit()` from a
 * stage handler (or the event loop running dry while a handler awaits a promise that never
 * settles) would end the process with code 0, no message, and the run still `running`. The
 * guard prints one line naming the run and how to continue it, and makes the exit code
 * {@link UNFINISHED_EXIT}. Ctrl-C's own exit (130) and the CLI's exit after the run stopped
 * are left alone.
 */
import { writeSync } from "node:fs";

/** Exit code of a process that ended while the run it followed was unfinished (resumable). */
export const UNFINISHED_EXIT = 4;

interface Guard {
  id: string | undefined;
  /** The code process.exit was called with, once it was. */
  called: { code: unknown } | undefined;
  /** The process may exit now (the run stopped, or the user pressed Ctrl-C twice). */
  allowed: boolean;
}

let current: Guard | undefined;

/** The run the guard speaks of: the first run id seen while it is armed (a child run comes later). */
export function noteRun(id: string): void {
  if (current && current.id === undefined) current.id = id;
}

/** Let the process exit without a message (Ctrl-C's deliberate exit). */
export function allowExit(): void {
  if (current) current.allowed = true;
}

/** The line printed when the process exits while `g`'s run is unfinished. */
export function unfinishedMessage(id: string | undefined, called: { code: unknown } | undefined): string {
  const run = id ?? "RUN";
  const why = called
    ? `a stage handler called process.exit(${called.code === undefined ? "" : String(called.code)}) while it was running`
    : "the process ran out of work while a stage was still running (a handler awaits a promise that never settles)";
  return `baton: run ${run} did not finish: ${why}; it is still resumable: resume it with \`baton resume ${run}\``;
}

/**
 * Arm the guard while a run is followed; returns the function that disarms it. Nested calls
 * keep the outer guard.
 *
 * @example
 * const disarm = guardExit();
 * try { await handle.done } finally { disarm() }
 */
export function guardExit(): () => void {
  if (current) return () => undefined;
  const g: Guard = { id: undefined, called: undefined, allowed: false };
  current = g;
  const exit = process.exit;
  process.exit = ((code?: number | string | null) => {
    g.called ??= { code: code ?? undefined };
    return exit.call(process, code as number | undefined);
  }) as typeof process.exit;
  const onExit = (): void => {
    if (g.allowed) return;
    try {
      writeSync(2, unfinishedMessage(g.id, g.called) + "\n");
    } catch {
      // stderr closed: the exit code still tells
    }
    process.exitCode = UNFINISHED_EXIT;
  };
  process.on("exit", onExit);
  return () => {
    if (current !== g) return;
    current = undefined;
    process.exit = exit;
    process.off("exit", onExit);
  };
}
