/**
 * `run(pipeline, inputs, opts)`: run a pipeline to the end in this process and return its
 * typed output.
 */
import { dirname } from "node:path";
import type { BatonEvent } from "../engine/events.js";
import type { Plan } from "../plan/types.js";
import { Runtime, type RunResult } from "../runtime/runtime.js";
import { MemoryStore } from "../store/memory.js";
import { openStore } from "../store/open.js";
import type { Store } from "../store/port.js";
import { compileSource } from "../template/index.js";
import { templatePath } from "../runtime/started.js";
import type { Pipeline } from "./pipeline.js";
import { loadConfig, type BatonConfig } from "../agents/config.js";
import { createTelemetry, type Telemetry } from "../telemetry/index.js";

let envTelemetry: Telemetry | undefined | null = null;
const defaultTelemetry = (): Telemetry | undefined => (envTelemetry === null ? (envTelemetry = createTelemetry()) : envTelemetry);

const hasAgents = (plan: Plan): boolean => plan.stages.some((s) => s.spec.kind === "agent" || s.spec.kind === "pipeline");

/** Options of {@link run} and {@link execute}. */
export interface RunOptions {
  /**
   * Where the event log goes: a {@link Store}, a SQLite path, or "memory:".
   * @default an in-memory store (pass `.baton/baton.db` to make runs durable and resumable)
   */
  store?: Store | string;
  /** Stage executions in flight at once in this process. @default Infinity */
  concurrency?: number;
  /** Called with each batch of events as the run appends them. */
  onEvents?: (runId: string, events: readonly BatonEvent[]) => void;
  /** Called with the text so far of an agent turn as it streams (`key`: stage#visit[item]:turn:N). Turns stream while this is set. */
  onDelta?: (runId: string, key: string, text: string) => void;
  /** Seed of the run's retry jitter (for reproducible tests). */
  seed?: number;
  /** Abort the run (it is cancelled and stays resumable). */
  signal?: AbortSignal;
  /** Providers and model facts for agent stages. @default loaded from baton.config.* in the working directory */
  config?: BatonConfig;
  /** OpenTelemetry export. @default one per process from the OTEL_* environment (off without an endpoint), flushed after each run; false = off */
  telemetry?: Telemetry | false;
}

/** A run that did not succeed. */
export class RunFailedError extends Error {
  override readonly name = "RunFailedError";
  constructor(readonly result: RunResult) {
    super(`run ${result.id} of '${result.pipeline}' ${result.status}` + (result.error ? `: ${result.error.stage ? `stage '${result.error.stage}': ` : ""}${result.error.message}` : ""));
  }
}

/** Compile a stored template source back to a plan (resume). */
export function planFromSource(source: { format: "yaml" | "json" | "ts"; file?: string; root?: string; text?: string }): Plan {
  if (source.format === "ts" || source.text === undefined) throw new Error("a TypeScript pipeline cannot be recompiled from the log: pass the pipeline");
  const file = templatePath(source);
  return compileSource(source.text, { format: source.format, ...(file ? { file } : {}), baseDir: file ? dirname(file) : process.cwd() });
}

/**
 * The plan a run recorded (its template text recompiled), or undefined when it cannot be had:
 * a TypeScript pipeline, a template that no longer compiles, or a different plan hash. Views
 * (trace, diff, UI) use it for route targets and the assembly expression.
 */
export function recordedPlan(first: BatonEvent | undefined): Plan | undefined {
  if (first?.type !== "run_started" || first.source.format === "ts") return undefined;
  // Views ask for it on every request (the UI polls): compile each recorded template once.
  // The plan hash covers the template's data, so runs with the same hash share one plan.
  const key = `${first.plan_hash}\u0000${first.source.format}\u0000${templatePath(first.source) ?? ""}`;
  if (recorded.has(key)) return recorded.get(key) ?? undefined;
  let plan: Plan | null;
  try {
    const p = planFromSource(first.source);
    plan = p.hash === first.plan_hash ? p : null;
  } catch {
    plan = null;
  }
  if (recorded.size >= RECORDED_MAX) recorded.clear();
  recorded.set(key, plan);
  return plan ?? undefined;
}

const recorded = new Map<string, Plan | null>();
const RECORDED_MAX = 256;

/** Run a pipeline and return its full result (status, output, error, duration) without throwing on failure. */
export async function execute<In, Out>(pipeline: Pipeline<In, Out>, inputs: In, opts: RunOptions = {}): Promise<RunResult & { output?: Out }> {
  const ownStore = typeof opts.store !== "object";
  const store: Store = typeof opts.store === "object" ? opts.store : opts.store === undefined ? new MemoryStore() : openStore(opts.store);
  const telemetry = opts.telemetry === false ? undefined : (opts.telemetry ?? defaultTelemetry());
  const runtime = new Runtime({
    store, ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
    ...(opts.onEvents || telemetry ? { onEvents: (id: string, es: readonly BatonEvent[], plan: Plan) => { opts.onEvents?.(id, es); telemetry?.onEvents(id, es, plan); } } : {}),
    ...(opts.onDelta ? { onDelta: opts.onDelta } : {}),
    loadPlan: planFromSource,
    config: opts.config ?? (hasAgents(pipeline.plan) ? await loadConfig() : {}),
  });
  try {
    const parsed = pipeline.parseInputs(inputs) as Record<string, unknown>;
    const handle = await runtime.start(pipeline.plan, parsed, opts.seed !== undefined ? { seed: opts.seed } : {});
    const onAbort = (): void => void runtime.cancel(handle.id, "aborted by signal");
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return (await handle.done) as RunResult & { output?: Out };
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
    }
  } finally {
    await runtime.close();
    await telemetry?.flush();
    if (ownStore) await store.close();
  }
}

/**
 * Run a pipeline and return its output; throws {@link RunFailedError} unless it succeeds.
 *
 * @example
 * const report = await run(pipeline, { topic: "tides" });
 */
export async function run<In, Out>(pipeline: Pipeline<In, Out>, inputs: In, opts: RunOptions = {}): Promise<Out> {
  const result = await execute(pipeline, inputs, opts);
  if (result.status !== "succeeded") throw new RunFailedError(result);
  return result.output as Out;
}
