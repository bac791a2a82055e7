/**
 * The template compiler's entry points: YAML/JSON text or files, and template objects built
 * in TypeScript, all through the same checks to one immutable {@link Plan}.
 */
import { readFileSync } from "node:fs";
import { dirname, extname, resolve } from "node:path";
import type { Plan, PlanSource } from "../plan/types.js";
import { analyze } from "./analyze.js";
import { TemplateError, type Diagnostic } from "./errors.js";
import { buildGraph } from "./graph.js";
import { buildPlan, templateHash } from "./plan.js";
import { checkSchema } from "./schema.js";
import { parseText, pathLocator, Reporter, type DocPath } from "./source.js";

/** Options of {@link compileSource}. */
export interface SourceOptions {
  /** The file the text came from: used in diagnostics and recorded (absolute) in the plan. */
  readonly file?: string;
  readonly format: "yaml" | "json";
  /** Directory `run:` modules and `pipeline:` paths are relative to. */
  readonly baseDir: string;
}

/** Options of {@link compileObject}. */
export interface ObjectOptions {
  readonly format: "ts";
  /** Shown in diagnostics in place of a file name. */
  readonly name?: string;
  /** Directory `run:` module strings and `pipeline:` paths are relative to. */
  readonly baseDir: string;
}

/** Checks shared by every entry point; returns the plan, or undefined with diagnostics reported. */
function compileData(data: unknown, schemaView: unknown, report: Reporter, source: PlanSource, opts: { baseDir: string; format: "yaml" | "json" | "ts"; name?: string }): Plan | undefined {
  checkSchema(schemaView, report);
  const analysis = analyze(data, report, opts);
  if (analysis === undefined) return undefined;
  const graph = buildGraph(analysis, report);
  if (report.diagnostics.length > 0) return undefined;
  return buildPlan(analysis, graph, source, templateHash(data));
}

function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return ds.sort((a, b) => a.line - b.line || a.col - b.col);
}

function compileText(text: string, opts: SourceOptions): { plan?: Plan; diagnostics: Diagnostic[] } {
  const file = opts.file ?? "<template>";
  const parsed = parseText(text, opts.format, file);
  if (parsed.fatal) return { diagnostics: parsed.diagnostics };
  const report = new Reporter(file, parsed.locator);
  report.diagnostics.push(...parsed.diagnostics);
  const source: PlanSource = { ...(opts.file !== undefined ? { file: resolve(opts.file) } : {}), format: opts.format, text };
  const plan = compileData(parsed.data, parsed.data, report, source, { baseDir: opts.baseDir, format: opts.format });
  return { ...(plan ? { plan } : {}), diagnostics: sortDiagnostics(report.diagnostics) };
}

/**
 * Compile template text (YAML or JSON) to a plan. Resume uses this to recompile the stored text.
 *
 * @throws {@link TemplateError} listing every problem as `FILE:LINE:COL: message`.
 * @example
 * const plan = compileSource(text, { file: "report.yaml", format: "yaml", baseDir: "." });
 */
export function compileSource(text: string, opts: SourceOptions): Plan {
  const { plan, diagnostics } = compileText(text, opts);
  if (plan === undefined) throw new TemplateError(diagnostics);
  return plan;
}

/** `.json` files are JSON; everything else is YAML. */
function formatOf(file: string): "yaml" | "json" {
  return extname(file).toLowerCase() === ".json" ? "json" : "yaml";
}

function readTemplate(file: string): { text?: string; diagnostics: Diagnostic[] } {
  try {
    return { text: readFileSync(file, "utf8"), diagnostics: [] };
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message;
    return { diagnostics: [{ file, line: 1, col: 1, message: `cannot read the template: ${why}` }] };
  }
}

/**
 * Read and compile a template file (`.json` as JSON, anything else as YAML). `run:` modules
 * and `pipeline:` paths resolve relative to the file's directory.
 *
 * @throws {@link TemplateError} listing every problem as `FILE:LINE:COL: message`.
 * @example
 * const plan = loadPlanFile("examples/research-report.yaml");
 */
export function loadPlanFile(file: string): Plan {
  const { text, diagnostics } = readTemplate(file);
  if (text === undefined) throw new TemplateError(diagnostics);
  return compileSource(text, { file, format: formatOf(file), baseDir: dirname(resolve(file)) });
}

/**
 * Check a template file and return every problem found (an empty list when it is valid).
 * Never throws for template problems.
 *
 * @example
 * for (const d of validateFile("p.yaml")) console.error(formatDiagnostic(d));
 */
export function validateFile(file: string): Diagnostic[] {
  const { text, diagnostics } = readTemplate(file);
  if (text === undefined) return diagnostics;
  return compileText(text, { file, format: formatOf(file), baseDir: dirname(resolve(file)) }).diagnostics;
}

/**
 * Copy a TypeScript template object as plain data: `undefined` fields dropped, functions kept
 * only as a stage's or a tool's `run`. Returns the data and a view for the schema check (functions as text).
 */
function plainData(doc: unknown, report: Reporter): { data: unknown; view: unknown } {
  const walk = (v: unknown, path: DocPath, forSchema: boolean): unknown => {
    if (typeof v === "function") {
      const isRun = path.length === 3 && (path[0] === "stages" || path[0] === "tools") && path[2] === "run";
      if (!isRun) {
        if (!forSchema) report.value(path, `a function is only allowed as a stage's or a tool's run`);
        return undefined;
      }
      return forSchema ? "./<function>#fn" : v;
    }
    if (Array.isArray(v)) return v.map((e, i) => walk(e, [...path, i], forSchema));
    if (v !== null && typeof v === "object" && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
      const out: Record<string, unknown> = {};
      for (const [k, e] of Object.entries(v)) {
        const w = e === undefined ? undefined : walk(e, [...path, k], forSchema);
        // An own `__proto__` stays a key (so validation can reject it by name), not the prototype.
        if (w !== undefined) Object.defineProperty(out, k, { value: w, enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    return v;
  };
  return { data: walk(doc, [], false), view: walk(doc, [], true) };
}

/**
 * Compile a template object built in TypeScript, where a stage's `run` may be a function.
 * Diagnostics carry the path of the offending field instead of a line and column.
 *
 * @throws {@link TemplateError} e.g. `report: stages.research.retry.attempts: stage 'research': 'retry.attempts' must be a positive integer, got 0`.
 * @example
 * const plan = compileObject({ baton: 1, name: "t", stages: { a: { run: async () => 1 } } }, { format: "ts", baseDir: process.cwd() });
 */
export function compileObject(doc: unknown, opts: ObjectOptions): Plan {
  const name = opts.name ?? (typeof (doc as { name?: unknown } | null)?.name === "string" ? (doc as { name: string }).name : "template");
  const report = new Reporter(name, pathLocator);
  const { data, view } = plainData(doc, report);
  const plan = compileData(data, view, report, { format: "ts" }, { baseDir: opts.baseDir, format: "ts", name });
  if (plan === undefined) throw new TemplateError(report.diagnostics);
  return plan;
}
