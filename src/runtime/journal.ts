/**
 * Durable steps inside an execution (SPEC §9). An attempt gets the steps earlier attempts of
 * its execution recorded (from its command: plain data) and records each step as it completes,
 * through its host, into the run's log. `run` of a recorded step returns its recorded result
 * without running it; agent turns and tool calls are steps too (stages/agent.ts).
 */
import { NonRetryableError } from "../base/errors.js";
import type { JournalPort, StepMeta } from "../stages/types.js";
import { toJsonValue } from "./json.js";

export type { StepMeta };

/** Where a journal writes: resolves once the step is in the log. */
export type StepWriter = (name: string, output: unknown, startedAt: number, meta: StepMeta) => Promise<void>;

export class Journal implements JournalPort {
  private readonly used = new Set<string>();
  /** Names of recorded steps this attempt reused (for the trace's `replayed`). */
  replayed: string[] | undefined;

  constructor(
    private readonly recorded: ReadonlyMap<string, unknown> | undefined,
    private readonly write: StepWriter,
    private readonly now: () => number,
    private readonly where: string,
  ) {}

  /** The recorded result of `name`, if an earlier attempt completed it (marks it replayed). */
  lookup(name: string): { found: true; value: unknown } | { found: false } {
    if (this.recorded?.has(name)) {
      (this.replayed ??= []).push(name);
      return { found: true, value: this.recorded.get(name) };
    }
    return { found: false };
  }

  /** Whether a step of this name was recorded (without marking it replayed). */
  has(name: string): boolean {
    return this.recorded?.has(name) ?? false;
  }

  /** Claim a name for this attempt; a name used twice is an error (steps are found by name). */
  claim(name: string): void {
    if (this.used.has(name)) {
      throw new NonRetryableError(`${this.where}: step name '${name}' is used twice in one execution; give every ctx.step a unique name`, { kind: "handler" });
    }
    this.used.add(name);
  }

  /** Record a completed step; resolves once it is in the run's log. */
  record(name: string, output: unknown, startedAt: number, meta: StepMeta): Promise<void> {
    return this.write(name, output, startedAt, meta);
  }

  step<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    return runStep(this, name, fn, this.now, this.where);
  }
}

/**
 * `ctx.step(name, fn)` on any journal: run `fn` once per execution; its JSON result is recorded
 * before it is returned, and a recorded one is returned without running `fn`.
 */
export async function runStep<T>(j: JournalPort, name: string, fn: () => T | Promise<T>, now: () => number, where: string): Promise<T> {
  if (typeof name !== "string" || name === "") throw new NonRetryableError(`${where}: ctx.step needs a name (a non-empty string)`, { kind: "handler" });
  if (typeof fn !== "function") throw new NonRetryableError(`${where}: ctx.step('${name}', fn) needs a function`, { kind: "handler" });
  j.claim(name);
  const r = j.lookup(name);
  if (r.found) return r.value as T;
  const startedAt = now();
  const json = toJsonValue(await fn(), `result of step '${name}'`);
  await j.record(name, json, startedAt, { kind: "step" });
  return json as T;
}
