#!/usr/bin/env node
/**
 * `baton`: the command line (SPEC §4). Thin: it maps argv onto the library and prints.
 * Exit codes: 0 succeeded/ok, 1 failed/invalid, 2 usage error, 3 waiting, 4 the process exited
 * before the run finished (a handler called process.exit; resumable), 130 cancelled.
 */
import { Command, CommanderError, Option } from "commander";
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
// Only what `validate` and `plan` use is imported here; everything else (the runtime, the store
// adapters, the trace, telemetry, the subcommands' modules, the distributed layer) is loaded by
// the command that needs it (issue 14: every command loads only what it uses).
// test/architecture/startup-imports.test.ts checks the import graph.
import { UserError } from "../base/errors.js";
import type { RunHandle, RunResult, Runtime } from "../runtime/runtime.js";
import type { Store } from "../store/port.js";
import { describePlan, loadPlanFile, TemplateError, validateInputs, formatDiagnostic } from "../template/index.js";
import { renderPlan } from "../template/describe.js";
import { yamlLib } from "../base/yaml.js";
import type { Trace } from "../trace/index.js";
import { Progress } from "./progress.js";
import { answerHint, outcomeTail } from "./hints.js";
import type { Telemetry } from "../telemetry/index.js";
import type { Plan } from "../plan/types.js";
import { reportError } from "./errors.js";
import { allowExit, guardExit, noteRun } from "./exit-guard.js";
import { MAX_JSON_DEPTH, shapeOf } from "../base/json.js";
import { isRunStatus, RUN_STATUSES } from "../base/result.js";

const EXIT: Record<RunResult["status"], number> = { succeeded: 0, failed: 1, waiting: 3, cancelled: 130 };

interface GlobalOpts {
  db?: string;
  store?: string;
  debug?: boolean;
  queuePrefix?: string;
}

/** The Redis key prefix of the deployment (--queue-prefix, $BATON_QUEUE_PREFIX, default "baton"). */
function prefixOf(g: GlobalOpts): string {
  const p = g.queuePrefix ?? process.env.BATON_QUEUE_PREFIX ?? "baton";
  if (!/^[A-Za-z0-9_.-]+$/.test(p)) throw new UserError(`--queue-prefix must be letters, digits, '.', '_' or '-', got '${p}'`, 2);
  return p;
}

/** The run store: --store URL (PostgreSQL) or --db PATH (SQLite), else $BATON_STORE / $BATON_DB / .baton/baton.db. */
async function storeOf(g: GlobalOpts, durability?: string): Promise<Store> {
  const { openStoreAsync } = await import("../store/open.js");
  return openStoreAsync(g.store ?? g.db, durability === "full" ? { durability: "full" } : {});
}

function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

/** `--input k=v` pairs and `--input-file` into one raw object. */
function rawInputs(pairs: string[], file: string | undefined): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  if (file) {
    const data = parseInputFile(file);
    if (typeof data !== "object" || data === null || Array.isArray(data)) throw new UserError(`--input-file ${file}: expected a JSON or YAML object of inputs`, 2);
    Object.assign(raw, data);
  }
  for (const p of pairs) {
    const eq = p.indexOf("=");
    if (eq <= 0) throw new UserError(`--input ${p}: write it as name=value`, 2);
    raw[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return raw;
}

/**
 * An `--input-file`'s data. JSON (a `.json` file, or text that starts with `{`) is read with
 * JSON.parse: the YAML parser takes minutes and gigabytes on a 100 MB JSON file and overflows
 * the stack past ~780 levels. Data nested deeper than the store keeps is refused here.
 */
function parseInputFile(file: string): unknown {
  let text: string;
  let data: unknown;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(`--input-file ${file}: ${(err as Error).message}`, 2);
  }
  const json = /\.json$/i.test(file) || /^\s*\{/.test(text.slice(0, 1024));
  try {
    data = json ? JSON.parse(text) : yamlLib().parse(text);
  } catch (err) {
    const jsonFile = /\.json$/i.test(file);
    if (json && !jsonFile) {
      try {
        data = yamlLib().parse(text); // not JSON after all (YAML flow mapping)
      } catch (yamlErr) {
        throw new UserError(`--input-file ${file}: ${inputFileError(yamlErr)}`, 2);
      }
    } else throw new UserError(`--input-file ${file}: ${jsonFile ? `invalid JSON: ${(err as Error).message}` : inputFileError(err)}`, 2);
  }
  if (typeof data === "object" && data !== null) {
    const { depth } = shapeOf(data);
    if (depth > MAX_JSON_DEPTH) {
      throw new UserError(`--input-file ${file}: the inputs are nested ${depth.toLocaleString("en-US")} levels deep; at most ${MAX_JSON_DEPTH.toLocaleString("en-US")} are stored: flatten them`, 2);
    }
  }
  return data;
}

/** A YAML parse error; a stack overflow is said as "nested too deeply". */
function inputFileError(err: unknown): string {
  const m = (err as Error).message;
  if (err instanceof RangeError || /Maximum call stack/.test(m)) return `nested too deeply for YAML (${m.split("\n")[0]}): write it as JSON in a .json file (at most ${MAX_JSON_DEPTH.toLocaleString("en-US")} levels)`;
  return m;
}

/** What Ctrl-C / SIGTERM do: cancel the run being followed, or (before one starts) exit 130. */
let onInterrupt: (() => void) | undefined;
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => (onInterrupt ? onInterrupt() : process.exit(130)));

/** Drive a run to its stop with progress and Ctrl-C handling; print and return the exit code. */
async function follow(runtime: Runtime, start: () => Promise<{ id: string; done: Promise<RunResult> }>, json: boolean, progress: Progress): Promise<number> {
  let interrupted = 0;
  let handleId: string | undefined;
  // Until the run stops, an exit (a handler's process.exit(0)) is reported and never exits 0.
  const disarm = guardExit();
  onInterrupt = (): void => {
    interrupted++;
    if (interrupted > 1) {
      allowExit();
      process.exit(130);
    }
    progress.message("interrupt: cancelling the run (it stays resumable); press Ctrl-C again to quit at once");
    // The followed run (wherever it is driven), then every other run this process drives (its
    // sub-pipelines): each run gets one cancel request.
    if (handleId) void runtime.cancel(handleId, "cancelled by user (interrupt)");
    runtime.cancelAll("cancelled by user (interrupt)", handleId);
  };
  try {
    const handle = await start();
    handleId = handle.id;
    if (interrupted > 0) void runtime.cancel(handle.id, "cancelled by user (interrupt)");
    const result = await handle.done;
    progress.end();
    if (json) {
      process.stdout.write(JSON.stringify(result) + "\n");
    } else {
      process.stderr.write(`run ${result.id} ${result.status} in ${result.duration_ms} ms${outcomeTail(result)}\n`);
      if (result.status === "succeeded") process.stdout.write(JSON.stringify(result.output, null, 2) + "\n");
    }
    if (result.status === "cancelled") process.stderr.write(`resume it with: baton resume ${result.id}\n`);
    const hint = answerHint(result);
    if (hint) process.stderr.write(hint + "\n");
    return EXIT[result.status];
  } finally {
    disarm();
    onInterrupt = undefined;
    await runtime.close();
  }
}

/** OpenTelemetry export of this process (off unless OTEL_EXPORTER_OTLP_ENDPOINT is set). */
let telemetry: Telemetry | undefined;
let telemetryChecked = false;
async function processTelemetry(): Promise<Telemetry | undefined> {
  if (!telemetryChecked) {
    telemetryChecked = true;
    telemetry = (await import("../telemetry/index.js")).createTelemetry();
  }
  return telemetry;
}

/** `planFromSource` (a stored run's plan from its recorded source), loaded with the runtime it brings in. */
async function planLoader(): Promise<typeof import("../api/run.js").planFromSource> {
  return (await import("../api/run.js")).planFromSource;
}

/** The agents' configuration (baton.config.* / providers), loaded by the commands that execute stages. */
async function config(): Promise<Awaited<ReturnType<typeof import("../agents/config.js").loadConfig>>> {
  return (await import("../agents/config.js")).loadConfig();
}

async function makeRuntime(store: Store, concurrency: string | undefined, progress: Progress): Promise<Runtime> {
  const n = concurrency === undefined ? undefined : Number(concurrency);
  if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new UserError(`--concurrency must be a whole number from 1 up, got '${concurrency}'`, 2);
  const tel = await processTelemetry();
  const [{ Runtime }, loadPlan] = await Promise.all([import("../runtime/runtime.js"), planLoader()]);
  return new Runtime({
    store, ...(n !== undefined ? { concurrency: n } : {}), loadPlan, config: await config(),
    onEvents: (id, events, plan) => {
      noteRun(id);
      progress.onEvents(id, events, plan);
      tel?.onEvents(id, events, plan);
    },
    ...(progress.showsDeltas ? { onDelta: (id: string, key: string, text: string) => progress.onDelta(id, key, text) } : {}),
    onPoolWait: (id, key, w) => progress.onPoolWait(id, key, w),
  });
}

/**
 * What a run of `plan` needs beyond its text (template/preflight.ts): run: modules and their
 * exports, sub-pipelines, URLs, providers. baton.config is read only when an agent may take its
 * base_url from it.
 */
async function preflightOf(plan: Plan, file: string): Promise<import("../template/index.js").Diagnostic[]> {
  const [{ preflight }, { runModules }] = await Promise.all([import("../template/preflight.js"), import("../stages/run.js")]);
  const fromConfig = Object.values(plan.agents).some((a) => typeof a.model === "string" && a.model.startsWith("openai-compatible:") && a.base_url === undefined);
  return preflight(plan, { file, modules: runModules, ...(fromConfig ? { config: await config() } : {}) });
}

/** Who runs this command, as decisions record it: $USER, $USERNAME, else the OS account's name. */
function whoAmI(): string | undefined {
  const env = process.env.USER || process.env.USERNAME;
  if (env) return env;
  try {
    return userInfo().username || undefined;
  } catch {
    return undefined; // no passwd entry for this uid (some containers)
  }
}

/** `--allow-code-change` (code pinning) and who continues the run. */
function codeChangeOf(o: { allowCodeChange?: boolean }): { allowCodeChange?: boolean; by?: string } {
  const by = whoAmI();
  return { ...(o.allowCodeChange ? { allowCodeChange: true } : {}), ...(by ? { by } : {}) };
}

/** Distributed `run`: submit to the workers, then (unless detached) follow the run in the store. */
async function submitAndFollow(store: Store, queue: string, prefix: string, plan: Plan, inputs: Record<string, unknown>, o: { json: boolean; detach: boolean; progress: Progress }): Promise<number> {
  const { submitRun } = await import("../distributed/submit.js");
  const { redisConnection } = await import("../distributed/worker.js");
  const connection = redisConnection(queue);
  const { id, events } = await submitRun(store, { connection, prefix }, plan, inputs);
  if (o.detach) {
    process.stdout.write(o.json ? JSON.stringify({ id, pipeline: plan.name, status: "running" }) + "\n" : `${id}\n`);
    return 0;
  }
  o.progress.onEvents(id, events, plan);
  return followOnWorkers(store, id, o.json, o.progress, plan);
}

/**
 * The workers a command hands a run to: with a shared store and a queue (--queue, or $BATON_QUEUE
 * when the store is PostgreSQL), commands never execute a run in their own process — the
 * workers' recovery sweep would pick it up too.
 */
async function workersOf(g: GlobalOpts, store: Store, queue: string | undefined): Promise<import("../distributed/submit.js").QueueTarget | undefined> {
  const url = queue ?? (store.shared && (g.store ?? process.env.BATON_STORE ?? "").startsWith("postgres") ? process.env.BATON_QUEUE : undefined);
  if (!url) return undefined;
  const { redisConnection } = await import("../distributed/worker.js");
  return { connection: redisConnection(url), prefix: prefixOf(g) };
}

/** Follow a run the workers drive until it stops; print like `follow`. */
async function followOnWorkers(store: Store, id: string, json: boolean, progress: Progress, known?: Plan): Promise<number> {
  const { followRun } = await import("../distributed/submit.js");
  const ctl = new AbortController();
  onInterrupt = () => ctl.abort();
  try {
    let plan = known;
    if (!plan) {
      const first = (await store.load(id)).events[0];
      plan = first?.type === "run_started" ? (await planLoader())(first.source) : undefined;
    }
    const result = await followRun(store, id, (es) => plan && progress.onEvents(id, es, plan), ctl.signal);
    progress.end();
    if (ctl.signal.aborted) {
      process.stderr.write(`stopped following run ${id}; it goes on in the workers (baton cancel ${id} to stop it)\n`);
      return 130;
    }
    if (json) process.stdout.write(JSON.stringify(result) + "\n");
    else {
      process.stderr.write(`run ${id} ${result.status} in ${result.duration_ms} ms\n`);
      if (result.status === "succeeded") process.stdout.write(JSON.stringify(result.output, null, 2) + "\n");
    }
    return EXIT[result.status];
  } finally {
    onInterrupt = undefined;
  }
}

/** Baton's version, from its package.json. */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

/** Build the program; `run(argv)` returns the exit code. */
export function program(): Command {
  const cmd = new Command("baton")
    .description("Pipeline orchestrator for agentic workflows")
    .option("--db <path>", "SQLite event log (default: $BATON_DB, else .baton/baton.db in the nearest directory upward that has a .baton/)")
    .option("--store <url>", "run store: postgres://… for distributed mode, or a SQLite path (default: $BATON_STORE)")
    .option("--queue-prefix <name>", "Redis key prefix of the deployment: workers and submitters with different prefixes share nothing (default: $BATON_QUEUE_PREFIX or baton)")
    .option("--debug", "show stack traces for errors")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const g = (): GlobalOpts => cmd.opts<GlobalOpts>();
  let code = 0;
  const set = (c: number): void => void (code = c);

  cmd.command("validate <files...>").description("check templates (and the run: modules, sub-pipelines, URLs and providers they name); errors as FILE:LINE:COL: message").action(async (files: string[]) => {
    let errors = 0;
    for (const file of files) {
      // One compile per file: the plan when it is valid, else every diagnostic (as validateFile).
      let plan: Plan;
      try {
        plan = loadPlanFile(file);
      } catch (err) {
        if (!(err instanceof TemplateError) || err.diagnostics.length === 0) throw err;
        for (const d of err.diagnostics) process.stderr.write(formatDiagnostic(d) + "\n");
        errors += err.diagnostics.length;
        continue;
      }
      const problems = await preflightOf(plan, file);
      for (const d of problems) process.stderr.write(formatDiagnostic(d) + "\n");
      errors += problems.length;
      if (problems.length > 0) continue;
      process.stdout.write(`${file}: ok (${plan.stages.length} stages, plan ${plan.hash.slice(0, 12)})\n`);
    }
    if (errors > 0) process.stderr.write(`${errors} error${errors === 1 ? "" : "s"}\n`);
    set(errors === 0 ? 0 : 1);
  });

  cmd.command("plan <file>").description("stages, dependencies, parallel levels, critical path").option("--json", "print JSON").action((file: string, o: { json?: boolean }) => {
    const d = describePlan(loadPlanFile(file));
    if (o.json) {
      process.stdout.write(JSON.stringify(d, null, 2) + "\n");
      return;
    }
    process.stdout.write(renderPlan(d) + "\n");
  });

  cmd
    .command("run <file>")
    .description("run a template; prints the run id and the output")
    .option("--input <k=v>", "an input (repeatable)", collect, [])
    .option("--input-file <file>", "inputs from a JSON or YAML object")
    .option("--json", "print one JSON result document on stdout")
    .option("--concurrency <n>", "stage executions in flight in this process")
    .addOption(new Option("--durability <mode>", "normal: WAL + synchronous=NORMAL; full: fsync every transition").choices(["normal", "full"]).default("normal"))
    .option("--queue <url>", "hand the run to `baton worker`s through this Redis (default: $BATON_QUEUE when --store is postgres://)")
    .option("--detach", "with --queue: print the run id and return at once")
    .action(async (file: string, o: { input: string[]; inputFile?: string; json?: boolean; concurrency?: string; durability: string; queue?: string; detach?: boolean }) => {
      const plan = loadPlanFile(file);
      const inputs = validateInputs(plan, rawInputs(o.input, o.inputFile));
      // A template that cannot run (a missing run: module or export, sub-pipeline, a bad URL…) is refused before a run is recorded.
      const problems = await preflightOf(plan, file);
      if (problems.length > 0) {
        for (const d of problems) process.stderr.write(formatDiagnostic(d) + "\n");
        throw new UserError(`${file} cannot run (${problems.length} problem${problems.length === 1 ? "" : "s"} above): fix ${problems.length === 1 ? "it" : "them"}; baton validate ${file} checks again`, 2);
      }
      const store = await storeOf(g(), o.durability);
      const progress = new Progress(process.stderr, process.stderr.isTTY === true && !o.json);
      const queue = o.queue ?? (store.shared && (g().store ?? process.env.BATON_STORE ?? "").startsWith("postgres") ? process.env.BATON_QUEUE : undefined);
      if (queue) {
        try {
          set(await submitAndFollow(store, queue, prefixOf(g()), plan, inputs, { json: o.json === true, detach: o.detach === true, progress }));
        } finally {
          await store.close();
        }
        return;
      }
      if (o.detach) throw new UserError("--detach needs --queue (a Redis URL with workers behind it)", 2);
      const runtime = await makeRuntime(store, o.concurrency, progress);
      try {
        set(await follow(runtime, () => runtime.start(plan, inputs), o.json === true, progress));
      } finally {
        await store.close();
      }
    });

  cmd
    .command("resume <run>")
    .description("continue a run after a crash, cancel or pause")
    .option("--json", "print one JSON result document on stdout")
    .option("--concurrency <n>", "stage executions in flight in this process")
    .option("--queue <url>", "hand the run to `baton worker`s through this Redis (default: $BATON_QUEUE when --store is postgres://)")
    .option("--allow-code-change", "continue although run: modules changed since the run started (recorded in its log as code_changed)")
    .action(async (run: string, o: { json?: boolean; concurrency?: string; queue?: string; allowCodeChange?: boolean }) => {
      const code = codeChangeOf(o);
      const store = await storeOf(g());
      const progress = new Progress(process.stderr, process.stderr.isTTY === true && !o.json);
      const workers = await workersOf(g(), store, o.queue);
      if (workers) {
        try {
          const id = await store.resolveId(run);
          const { resumeOnWorkers } = await import("../distributed/submit.js");
          await resumeOnWorkers(store, workers, id, await planLoader(), code);
          set(await followOnWorkers(store, id, o.json === true, progress));
        } finally {
          await store.close();
        }
        return;
      }
      const runtime = await makeRuntime(store, o.concurrency, progress);
      try {
        const id = await store.resolveId(run);
        progress.history(id, (await store.load(id)).events); // its finished stages show as finished
        set(await follow(runtime, () => runtime.resume(id, code), o.json === true, progress));
      } finally {
        await store.close();
      }
    });

  /** `--data JSON` of approve and signal. */
  const dataOf = (text: string | undefined): unknown => {
    if (text === undefined) return undefined;
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new UserError(`--data must be JSON (e.g. '{"ok": true}'): ${(err as Error).message}`, 2);
    }
    const depth = typeof data === "object" && data !== null ? shapeOf(data).depth : 0;
    if (depth > MAX_JSON_DEPTH) throw new UserError(`--data is nested ${depth.toLocaleString("en-US")} levels deep; at most ${MAX_JSON_DEPTH.toLocaleString("en-US")} are stored: flatten it`, 2);
    return data;
  };

  /**
   * A command that records something in a waiting run and continues it (approve, reject, signal):
   * handed to the workers when the run is theirs, else continued in this process — unless another
   * live process drives it (that process is signalled).
   */
  const continueRun = async (
    run: string,
    o: { json?: boolean; queue?: string },
    act: {
      onWorkers: (store: Store, workers: NonNullable<Awaited<ReturnType<typeof workersOf>>>, id: string) => Promise<string>;
      here: (runtime: Runtime, id: string) => Promise<{ line: string; signalled?: boolean; handle?: RunHandle }>;
      signalled: string;
    },
  ): Promise<void> => {
    const store = await storeOf(g());
    const progress = new Progress(process.stderr, process.stderr.isTTY === true && !o.json);
    const workers = await workersOf(g(), store, o.queue);
    if (workers) {
      try {
        const id = await store.resolveId(run);
        process.stderr.write(`${await act.onWorkers(store, workers, id)}; the workers continue it\n`);
        await followOnWorkers(store, id, o.json === true, progress);
        set(0);
      } finally {
        await store.close();
      }
      return;
    }
    const runtime = await makeRuntime(store, undefined, progress);
    try {
      const id = await store.resolveId(run);
      progress.history(id, (await store.load(id)).events); // its finished stages show as finished
      const r = await act.here(runtime, id);
      process.stderr.write(`${r.line}\n`);
      if (r.signalled) {
        process.stdout.write(`${act.signalled} ${id}\n`);
        return;
      }
      // The run continues here; what was recorded stays whatever the run does next (exit 0).
      await follow(runtime, async () => r.handle!, o.json === true, progress);
      set(0);
    } finally {
      await runtime.close();
      await store.close();
    }
  };

  const answer = (approved: boolean) => async (run: string, stage: string, o: { data?: string; comment?: string; item?: string; call?: string; json?: boolean; queue?: string; allowCodeChange?: boolean }) => {
    const code = codeChangeOf(o);
    const data = dataOf(o.data);
    const item = o.item === undefined ? undefined : Number(o.item);
    if (item !== undefined && !(Number.isInteger(item) && item >= 0)) throw new UserError(`--item must be a for_each item index (0, 1, …), got '${o.item}'`, 2);
    const by = whoAmI();
    const human = { approved, ...(data !== undefined ? { data } : {}), ...(item !== undefined ? { item } : {}), ...(by ? { by } : {}), ...(o.comment ? { comment: o.comment } : {}), ...(o.call ? { call: o.call } : {}) };
    const said = (id: string, n: number): string => `${approved ? "approved" : "rejected"} '${stage}' in run ${id}${n > 1 ? ` (${n} items)` : ""}`;
    await continueRun(run, o, {
      onWorkers: async (store, workers, id) => {
        const { answerOnWorkers } = await import("../distributed/submit.js");
        return said(id, await answerOnWorkers(store, workers, id, stage, human, await planLoader(), code));
      },
      here: async (runtime, id) => {
        const r = await runtime.answer(id, stage, human, code);
        return { ...r, line: said(id, r.recorded) };
      },
      signalled: "the answer was sent to the process running",
    });
  };
  cmd.command("approve <run> <stage>").description("approve a waiting stage (its output is --data, or { approved: true }) and continue the run")
    .option("--data <json>", "the stage's output, as JSON").option("--item <n>", "only this for_each item").option("--call <id>", "a tool call waiting for approval (needed when several wait)").option("--comment <text>", "recorded with the decision").option("--json", "print one JSON result document on stdout")
    .option("--queue <url>", "the run is on `baton worker`s behind this Redis (default: $BATON_QUEUE when --store is postgres://)")
    .option("--allow-code-change", "continue although run: modules changed since the run started (recorded in its log as code_changed)")
    .action(answer(true));
  cmd.command("reject <run> <stage>").description("reject a waiting stage (it fails) and continue the run")
    .option("--item <n>", "only this for_each item").option("--call <id>", "a tool call waiting for approval (needed when several wait)").option("--comment <text>", "the reason, recorded with the decision").option("--json", "print one JSON result document on stdout")
    .option("--queue <url>", "the run is on `baton worker`s behind this Redis (default: $BATON_QUEUE when --store is postgres://)")
    .option("--allow-code-change", "continue although run: modules changed since the run started (recorded in its log as code_changed)")
    .action(answer(false));
  cmd.command("signal <run> <name>").description("send a named signal to a run: a wait: stage for it takes it (its output is --data); sent early, it is kept until one waits")
    .option("--data <json>", "the signal's data, as JSON (the waiting stage's output)").option("--json", "print one JSON result document on stdout")
    .option("--queue <url>", "the run is on `baton worker`s behind this Redis (default: $BATON_QUEUE when --store is postgres://)")
    .option("--allow-code-change", "continue although run: modules changed since the run started (recorded in its log as code_changed)")
    .action(async (run: string, name: string, o: { data?: string; json?: boolean; queue?: string; allowCodeChange?: boolean }) => {
      const code = codeChangeOf(o);
      const data = dataOf(o.data);
      const by = whoAmI();
      const sig = { ...(data !== undefined ? { data } : {}), ...(by ? { by } : {}) };
      await continueRun(run, o, {
        onWorkers: async (store, workers, id) => {
          const { signalOnWorkers } = await import("../distributed/submit.js");
          await signalOnWorkers(store, workers, id, name, sig, await planLoader(), code);
          return `signal '${name}' sent to run ${id}`;
        },
        here: async (runtime, id) => ({ ...(await runtime.signal(id, name, sig, code)), line: `signal '${name}' sent to run ${id}` }),
        signalled: "the signal was sent to the process running",
      });
    });

  cmd
    .command("rerun <run>")
    .description("fork a run: reuse the recorded outputs upstream of --from STAGE and execute from there")
    .requiredOption("--from <stage>", "the first stage to execute again (with everything after it)")
    .option("--input <k=v>", "override an input (repeatable)", collect, [])
    .option("--template <file>", "run an edited template instead of the recorded one (stages are matched by id)")
    .option("--json", "print one JSON result document on stdout")
    .option("--concurrency <n>", "stage executions in flight in this process")
    .option("--queue <url>", "hand the fork to `baton worker`s through this Redis (default: $BATON_QUEUE when --store is postgres://)")
    .action(async (run: string, o: { from: string; input: string[]; template?: string; json?: boolean; concurrency?: string; queue?: string }) => {
      const store = await storeOf(g());
      const progress = new Progress(process.stderr, process.stderr.isTTY === true && !o.json);
      const runtime = await makeRuntime(store, o.concurrency, progress);
      const workers = await workersOf(g(), store, o.queue);
      try {
        const id = await store.resolveId(run);
        const plan = o.template ? loadPlanFile(o.template) : undefined;
        const overrides = o.input.length ? rawInputs(o.input, undefined) : {};
        const options = async () => {
          const { events } = await store.load(id);
          const first = events[0];
          const base = plan ?? (first?.type === "run_started" ? (await planLoader())(first.source) : undefined);
          const inputs = base && o.input.length ? validateInputs(base, { ...(first?.type === "run_started" ? first.inputs : {}), ...overrides }) : undefined;
          return { ...(plan ? { plan } : {}), ...(inputs ? { inputs } : {}) };
        };
        if (workers) {
          const f = await runtime.fork(id, o.from, await options());
          const { submitRun } = await import("../distributed/submit.js");
          const { id: forked } = await submitRun(store, workers, f.plan, f.inputs, { rerun: f.rerun });
          process.stderr.write(`rerun of ${id} from '${o.from}' as run ${forked} on the workers: reusing ${f.rerun.reused.length ? f.rerun.reused.map((e) => (e as { stage: string }).stage).join(", ") : "nothing"}\n`);
          set(await followOnWorkers(store, forked, o.json === true, progress));
          return;
        }
        set(await follow(runtime, async () => {
          const h = await runtime.rerun(id, o.from, await options());
          process.stderr.write(`rerun of ${id} from '${o.from}': reusing ${h.reused.length ? h.reused.join(", ") : "nothing"}\n`);
          return h;
        }, o.json === true, progress));
      } finally {
        await store.close();
      }
    });

  cmd
    .command("worker")
    .description("a distributed worker: executes stages and advances runs from a shared store and Redis")
    .option("--queue <url>", "Redis URL (default: $BATON_QUEUE)")
    .option("--concurrency <n>", "stage executions at once in this worker", "8")
    .option("--lock-ms <ms>", "how long a job's lock lasts: a dead worker's stages move to another worker after about this long", "10000")
    .option("--sweep-ms <ms>", "how often to re-enqueue steps of running runs (recovers jobs a restarted Redis lost)", "5000")
    .addOption(new Option("--durability <mode>", "normal: commits do not wait for the disk (a database crash may re-run the last transitions); full: every transition on disk first").choices(["normal", "full"]).default("normal"))
    .option("--allow-code-change", "continue runs whose run: modules differ from the code they started with (recorded as code_changed); without it such runs are refused")
    .action(async (o: { queue?: string; concurrency: string; lockMs: string; sweepMs: string; durability: string; allowCodeChange?: boolean }) => {
      const queue = o.queue ?? process.env.BATON_QUEUE;
      if (!queue) throw new UserError("baton worker needs --queue redis://HOST:6379 (or BATON_QUEUE)", 2);
      const n = Number(o.concurrency);
      if (!(Number.isInteger(n) && n >= 1)) throw new UserError(`--concurrency must be a whole number from 1 up, got '${o.concurrency}'`, 2);
      const store = await storeOf(g(), o.durability);
      const { BatonWorker, redisConnection } = await import("../distributed/worker.js");
      const worker = new BatonWorker({ store, connection: redisConnection(queue), prefix: prefixOf(g()), concurrency: n, lockMs: Math.max(500, Number(o.lockMs) || 10000), sweepMs: Math.max(100, Number(o.sweepMs) || 5000), loadPlan: await planLoader(), config: await config(), log: (l) => process.stderr.write(l + "\n"), ...(o.allowCodeChange ? { allowCodeChange: true } : {}) });
      worker.start();
      process.stderr.write(`baton worker ${worker.id} ready (concurrency ${n})\n`);
      await new Promise<void>((res) => {
        onInterrupt = () => res();
      });
      process.stderr.write("stopping: finishing the stages in progress\n");
      await worker.close();
      await store.close();
    });

  cmd.command("cancel <run>").description("cancel a run (it stays resumable)")
    .option("--queue <url>", "the run is on `baton worker`s behind this Redis (default: $BATON_QUEUE when --store is postgres://)")
    .action(async (run: string, o: { queue?: string }) => {
    const store = await storeOf(g());
    const workers = await workersOf(g(), store, o.queue);
    const worked = workers ? await store.resolveId(run) : undefined;
    if (workers && worked !== undefined && (await store.leaseHolder(worked)) === undefined) {
      try {
        const id = worked;
        const { cancelOnWorkers } = await import("../distributed/submit.js");
        if (!(await cancelOnWorkers(store, workers, id, "cancelled by user"))) {
          process.stdout.write(`run ${id} had already finished (${(await store.get(id))?.status})\n`);
          return;
        }
        // The workers record the cancellation at their next step (and abort its attempts where they run).
        const deadline = Date.now() + 15_000;
        while (Date.now() < deadline && (await store.get(id))?.status === "running") await new Promise((res) => setTimeout(res, 100));
        const status = (await store.get(id))?.status;
        process.stdout.write(status === "cancelled" ? `run ${id} cancelled\n` : `cancel recorded for run ${id}; the workers have not acted on it yet (status ${status})\n`);
      } finally {
        await store.close();
      }
      return;
    }
    const [{ Runtime }, loadPlan] = await Promise.all([import("../runtime/runtime.js"), planLoader()]);
    const runtime = new Runtime({ store, loadPlan });
    try {
      const id = await store.resolveId(run);
      const r = await runtime.cancel(id);
      if (r === "finished") process.stdout.write(`run ${id} had already finished (${(await store.get(id))?.status})\n`);
      else if (r === "signalled") {
        // The owner picks the signal up within its poll interval; wait for it to record the cancel.
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline && (await store.get(id))?.status === "running") await new Promise((res) => setTimeout(res, 100));
        const status = (await store.get(id))?.status;
        process.stdout.write(status === "cancelled" ? `run ${id} cancelled\n` : `cancel sent to run ${id}; its process has not answered yet (status ${status})\n`);
      } else process.stdout.write(`run ${id} cancelled\n`);
    } finally {
      await runtime.close();
      await store.close();
    }
  });

  cmd.command("runs").description("list runs, newest first").option("--json", "print JSON").option("--status <status>", "only runs with this status").option("--pipeline <name>", "only runs of this pipeline").option("--limit <n>", "at most this many", "50")
    .action(async (o: { json?: boolean; status?: string; pipeline?: string; limit: string }) => {
      if (o.status !== undefined && !isRunStatus(o.status)) throw new UserError(`--status must be one of ${RUN_STATUSES.join(", ")}, got '${o.status}'`, 2);
      const limit = Number(o.limit);
      if (!(Number.isInteger(limit) && limit >= 1)) throw new UserError(`--limit must be a whole number from 1 up, got '${o.limit}'`, 2);
      const store = await storeOf(g());
      try {
        const runs = await store.list({ ...(o.status ? { status: o.status } : {}), ...(o.pipeline ? { pipeline: o.pipeline } : {}), limit });
        if (o.json) {
          process.stdout.write(JSON.stringify(runs.map((r) => ({ id: r.id, pipeline: r.pipeline, status: r.status, started_at: r.startedAt, ended_at: r.endedAt ?? null }))) + "\n");
          return;
        }
        if (runs.length === 0) process.stdout.write("no runs yet: start one with `baton run FILE`\n");
        for (const r of runs) {
          const dur = r.endedAt ? `${Date.parse(r.endedAt) - Date.parse(r.startedAt)} ms` : "";
          process.stdout.write(`${r.id}  ${r.status.padEnd(9)}  ${r.pipeline.padEnd(20)}  ${r.startedAt}  ${dur}\n`);
        }
      } finally {
        await store.close();
      }
    });

  cmd.command("trace <run>").description("the execution trace (human view, or SPEC JSON)").option("--json", "print the trace JSON")
    .option("--messages", "add the messages each agent turn sent to the model").action(async (run: string, o: { json?: boolean; messages?: boolean }) => {
    const store = await storeOf(g());
    try {
      const [{ loadTrace }, { renderTrace }] = await Promise.all([import("./commands/diff.js"), import("../trace/render.js")]);
      const trace = await loadTrace(store, await store.resolveId(run), { messages: o.messages === true });
      process.stdout.write(o.json ? JSON.stringify(trace, null, 2) + "\n" : renderTrace(trace, { color: process.stdout.isTTY === true, width: process.stdout.isTTY ? (process.stdout.columns ?? 100) : 160 }) + "\n");
      if (o.messages && !o.json) process.stdout.write(renderMessages(trace));
    } finally {
      await store.close();
    }
  });

  return Object.assign(cmd, { exitCode: () => code });
}

/**
 * The commands defined in their own modules (src/cli/commands/), by the names they register.
 * Only the module of the command being run is loaded; all of them for help or an unknown name.
 */
const MODULE_COMMANDS: readonly { readonly names: readonly string[]; readonly register: (cmd: Command, g: () => GlobalOpts) => Promise<void> }[] = [
  { names: ["diff"], register: async (cmd, g) => (await import("./commands/diff.js")).registerDiff(cmd, storeGlobals(g)) },
  { names: ["ui"], register: async (cmd, g) => (await import("./commands/ui.js")).registerUi(cmd, storeGlobals(g)) },
  { names: ["deploy", "pipelines", "show"], register: async (cmd, g) => (await import("./commands/deploy.js")).registerDeploy(cmd, storeGlobals(g)) },
  { names: ["token"], register: async (cmd, g) => (await import("./commands/token.js")).registerToken(cmd, storeGlobals(g)) },
  { names: ["serve"], register: async (cmd, g) => (await import("./commands/serve.js")).registerServe(cmd, () => ({ ...storeGlobals(g)(), prefix: prefixOf(g()) })) },
  { names: ["migrate"], register: async (cmd) => (await import("./commands/migrate.js")).registerMigrate(cmd) },
];

function storeGlobals(g: () => GlobalOpts): () => GlobalOpts & { db?: string } {
  return () => ({ ...g(), ...(g().store ? { db: g().store } : {}) });
}

/** Global options that take a value (so the command name is not mistaken for one). */
const VALUE_OPTIONS = new Set(["--db", "--store", "--queue-prefix"]);

/** The command name in argv (the first word that is neither a global option nor its value). */
function commandName(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (VALUE_OPTIONS.has(a)) i++;
    else if (!a.startsWith("-")) return a;
  }
  return undefined;
}

/** Register the module-defined commands `argv` may run: the one it names, or all of them. */
async function registerModules(cmd: Command, argv: readonly string[]): Promise<void> {
  const name = commandName(argv);
  const builtIn = name !== undefined && name !== "help" && cmd.commands.some((c) => c.name() === name);
  if (builtIn) return;
  const only = MODULE_COMMANDS.filter((m) => name !== undefined && m.names.includes(name));
  const g = (): GlobalOpts => cmd.opts<GlobalOpts>();
  for (const m of only.length > 0 ? only : MODULE_COMMANDS) await m.register(cmd, g);
}

/** Run the CLI with argv; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  // `baton --version` before any command (not commander's .version(): a program option is also
  // read after the command name, and `baton pipelines show NAME --version N` has its own).
  if (commandName(argv) === undefined && argv.includes("--version")) {
    process.stdout.write(packageVersion() + "\n");
    return 0;
  }
  const cmd = program() as Command & { exitCode: () => number };
  try {
    await registerModules(cmd, argv);
    await cmd.parseAsync(argv, { from: "user" });
    await telemetry?.shutdown();
    return cmd.exitCode();
  } catch (err) {
    await telemetry?.shutdown();
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") return 0;
      return 2;
    }
    return reportError(err, cmd.opts<GlobalOpts>().debug === true);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // Exit once output is flushed: an aborted handler that ignores its signal must not keep us alive.
    process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
  },
  (err) => {
    process.stderr.write(`baton: ${String(err)}\n`);
    process.exitCode = 1;
  },
);

/** `trace --messages` as text: each turn's messages, once per distinct list. */
function renderMessages(trace: Trace): string {
  const all = (trace as Trace & { messages?: Record<string, unknown[]> }).messages ?? {};
  const out: string[] = [];
  for (const s of trace.stages as unknown as { id: string; turns?: { n: number; agent?: string; messages_ref?: string }[] }[]) {
    for (const t of s.turns ?? []) {
      const list = t.messages_ref ? all[t.messages_ref] : undefined;
      if (!list) continue;
      out.push(`\n── ${s.id}${t.agent ? ` ${t.agent}` : ""} turn ${t.n} (messages ${t.messages_ref!.slice(0, 12)})`);
      for (const m of list as { role?: string; content?: unknown }[]) {
        const text = typeof m.content === "string" ? m.content : JSON.stringify(m.content);
        out.push(`${(m.role ?? "?").padEnd(9)} ${text.length > 4000 ? `${text.slice(0, 4000)}… (${text.length} chars)` : text}`);
      }
    }
  }
  return out.length ? out.join("\n") + "\n" : "(no agent turns recorded messages)\n";
}
