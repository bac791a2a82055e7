/**
 * Preflight: what the compiler cannot see from the template text alone but a run would trip
 * over at its stage — files and modules next to the template, URLs, providers. `baton validate`
 * reports these with the compile diagnostics (same `FILE:LINE:COL: message` format, every
 * problem at once) and `baton run` refuses a template that has any before the run is recorded.
 *
 * Checked (stages, tools, agents and MCP servers alike):
 * - `run:` modules: the file exists, it loads, and it exports the named function. Checking the
 *   export means loading the module — it is imported as the run would import it (TypeScript
 *   through tsx; the loader is passed in, {@link PreflightOptions.modules}, as templates sit
 *   below stages), so its top-level code runs; parsing the source for exports would miss
 *   `export *`, CommonJS `module.exports` and what TypeScript compiles to. A run loads it
 *   anyway (once per process), so `baton run` pays nothing extra.
 * - `pipeline:` files: the file exists and compiles (its own diagnostics are listed, positioned
 *   in it), its preflight passes, and literal `inputs:` name its inputs (no unknown one, every
 *   required one given). Sub-pipelines that include each other are checked once.
 * - `http:` URLs written as plain strings (no `{{ }}`): a valid http:// or https:// URL, with
 *   each `${ENV}` standing for some text (its value is read when the request is made).
 * - Agents' `model:` (unless chosen at run time with `${VAR}`): a known provider; an
 *   openai-compatible model needs a `base_url` (in the agent, or in baton.config when a config is given);
 *   a literal `base_url` is a valid URL.
 * - MCP servers: a literal `url` is a valid URL; a `cwd` and a relative `command` (./x) exist.
 *
 * Not checked: environment variables (a run elsewhere may have them), API keys, reachability.
 * Positions come from re-reading the template text, only when there is something to report
 * or a URL to read (templates built in TypeScript get the field's path instead).
 */
import { existsSync, statSync } from "node:fs";
import { isAbsolute, relative, resolve } from "node:path";
import { PROVIDERS } from "../base/providers.js";
import type { Plan, StageSpec } from "../plan/types.js";
import { loadPlanFile } from "./compile.js";
import { TemplateError, type Diagnostic } from "./errors.js";
import { parseText, pathLocator, Reporter, type DocPath, type Locator } from "./source.js";
import { didYouMean } from "./suggest.js";

/** Options of {@link preflight}. */
export interface PreflightOptions {
  /** The template's name in diagnostics (the file as the user gave it). @default the plan's file relative to the working directory */
  readonly file?: string;
  /** Providers from baton.config (an openai-compatible agent may take its base_url there). Without it, that is not checked. */
  readonly config?: { readonly providers?: Readonly<Record<string, { readonly base_url?: string }>> };
  /**
   * How `run:` modules are loaded (the runtime's loader, `runModules` of stages/run.ts, so a
   * check loads a module exactly as its stage would): with it, each module is imported and its
   * export checked; without it, only that the file exists.
   */
  readonly modules?: RunModules;
}

/** The `run:` module loader preflight checks exports with (stages/run.ts `runModules`). */
export interface RunModules {
  /** The module's namespace (loaded once per process). */
  load(file: string): Promise<Record<string, unknown>>;
  /** Why loading failed, in one line with what to do. */
  failure(err: unknown, module: string): string;
  /** The named function, or a one-line reason there is none. */
  exported(mod: Record<string, unknown>, exportName: string, module: string): unknown;
}

type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === "object" && v !== null && !Array.isArray(v);

/** A path for messages: relative to the working directory when under it. */
function shown(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : file;
}

/** `${NAME}` (and `$${`) stand for some text: a digit fits wherever one may stand (host, port, path). */
function withoutEnv(text: string): string {
  return text.replace(/\$\$\{/g, "$").replace(/\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}/g, "0");
}

/** Why `raw` is not an http(s) URL, or undefined when it is one (or cannot be checked: it has `{{ }}`). */
export function urlProblem(raw: unknown): string | undefined {
  if (typeof raw !== "string" || raw.includes("{{")) return undefined;
  let url: URL;
  try {
    url = new URL(withoutEnv(raw));
  } catch {
    return `'${raw}' is not a valid URL: write it as http://HOST/PATH or https://HOST/PATH`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return `'${raw}' must start with http:// or https://`;
  return undefined;
}

/** One template's checks; `seen` holds the template files already checked (sub-pipelines that include each other). */
class Preflight {
  private parsed: { data: unknown; locator: Locator } | undefined;
  readonly out: Diagnostic[] = [];
  private readonly report: Reporter;

  constructor(
    private readonly plan: Plan,
    private readonly opts: PreflightOptions,
    private readonly seen: Set<string>,
    private readonly name: string,
  ) {
    // Positions are looked up through the template text, parsed on first use.
    const self = this;
    this.report = new Reporter(name, { at: (path, part, offset) => self.source().locator.at(path, part, offset) });
  }

  /** The template data as written and its locator (pathLocator for a template built in TypeScript). */
  private source(): { data: unknown; locator: Locator } {
    if (this.parsed === undefined) {
      const { text, format } = this.plan.source;
      if (text !== undefined && (format === "yaml" || format === "json")) {
        const p = parseText(text, format, this.name);
        this.parsed = { data: p.data, locator: p.locator };
      } else this.parsed = { data: undefined, locator: pathLocator };
    }
    return this.parsed;
  }

  /** The value at `path` in the template as written (undefined for TypeScript templates). */
  private raw(path: DocPath): unknown {
    let v: unknown = this.source().data;
    for (const p of path) v = isRec(v) || Array.isArray(v) ? (v as Record<string | number, unknown>)[p] : undefined;
    return v;
  }

  async run(): Promise<Diagnostic[]> {
    const { plan } = this;
    const jobs: Promise<void>[] = [];
    for (const s of plan.stages) jobs.push(this.spec(s.spec, ["stages", s.id], `stage '${s.id}'`));
    for (const t of Object.values(plan.tools)) jobs.push(this.spec(t.spec, ["tools", t.name], `tool '${t.name}'`));
    this.agents();
    this.mcp();
    await Promise.all(jobs);
    this.out.push(...this.report.diagnostics);
    return this.out;
  }

  private async spec(spec: StageSpec, at: DocPath, who: string): Promise<void> {
    if (spec.kind === "run" && "module" in spec) await this.runModule(spec.module, spec.export, spec.baseDir, [...at, "run"], who);
    else if (spec.kind === "pipeline") await this.pipeline(spec.path, at, who);
    else if (spec.kind === "http") {
      const why = urlProblem(this.raw([...at, "http", "url"]));
      if (why) this.report.value([...at, "http", "url"], `${who}: http url ${why}`);
    }
  }

  private async runModule(module: string, exportName: string, baseDir: string, at: DocPath, who: string): Promise<void> {
    const file = isAbsolute(module) ? module : resolve(baseDir, module);
    if (!existsSync(file)) {
      this.report.value(at, `${who}: run module ${module} not found (looked for ${file}): paths are relative to the template's directory`);
      return;
    }
    const loader = this.opts.modules;
    if (loader === undefined) return;
    let mod: Record<string, unknown>;
    try {
      mod = await loader.load(file);
    } catch (err) {
      this.report.value(at, `${who}: could not load run module ${module}: ${loader.failure(err, module)}`);
      return;
    }
    const fn = loader.exported(mod, exportName, module);
    if (typeof fn === "string") this.report.value(at, `${who}: ${fn}`);
  }

  private async pipeline(file: string, at: DocPath, who: string): Promise<void> {
    const field = [...at, "pipeline"];
    const written = String(this.raw(field) ?? shown(file));
    if (!existsSync(file) || statSync(file).isDirectory()) {
      this.report.value(field, `${who}: sub-pipeline ${written} not found (looked for ${file}): paths are relative to the template's directory`);
      return;
    }
    let sub: Plan;
    try {
      sub = loadPlanFile(shown(file));
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      this.out.push(...err.diagnostics);
      const n = err.diagnostics.length;
      this.report.value(field, `${who}: sub-pipeline ${written} is not valid (${n} error${n === 1 ? "" : "s"} in ${shown(file)}): fix it (baton validate ${shown(file)})`);
      return;
    }
    this.inputs(sub, [...at, "inputs"], who, written);
    if (this.seen.has(file)) return;
    this.seen.add(file);
    const problems = await new Preflight(sub, { ...this.opts, file: shown(file) }, this.seen, shown(file)).run();
    if (problems.length > 0) {
      this.out.push(...problems);
      this.report.value(field, `${who}: sub-pipeline ${written} cannot run (${problems.length} problem${problems.length === 1 ? "" : "s"} in ${shown(file)})`);
    }
  }

  /** Literal `inputs:` of a sub-pipeline against its `inputs:` (names only; values may be expressions). */
  private inputs(sub: Plan, at: DocPath, who: string, written: string): void {
    const given = this.raw(at);
    if (this.source().data === undefined || (given !== undefined && !isRec(given))) return;
    const names = Object.keys(sub.inputsSchema.properties);
    const have = isRec(given) ? Object.keys(given) : [];
    for (const k of have) {
      if (!names.includes(k)) this.report.key([...at, k], `${who}: sub-pipeline ${written} has no input '${k}'${names.length === 0 ? " (it takes none)" : didYouMean(k, new Set(names))}`);
    }
    const missing = (sub.inputsSchema.required ?? []).filter((n) => !have.includes(n));
    if (missing.length > 0) {
      this.report[given === undefined ? "value" : "key"](given === undefined ? [...at.slice(0, -1), "pipeline"] : at, `${who}: sub-pipeline ${written} needs input${missing.length === 1 ? "" : "s"} ${missing.map((m) => `'${m}'`).join(", ")}: give ${missing.length === 1 ? "it" : "them"} under inputs:`);
    }
  }

  private agents(): void {
    for (const [name, agent] of Object.entries(this.plan.agents)) {
      const at: DocPath = ["agents", name];
      const model = agent.model;
      if (typeof model === "string" && !model.includes("${")) {
        const colon = model.indexOf(":");
        const provider = colon <= 0 ? "" : model.slice(0, colon);
        if (colon <= 0) this.report.value([...at, "model"], `agent '${name}': model '${model}' must be provider:model (${PROVIDERS.join(", ")})`);
        else if (!PROVIDERS.includes(provider)) {
          this.report.value([...at, "model"], `agent '${name}': unknown provider '${provider}' in '${model}'${didYouMean(provider, new Set(PROVIDERS)) || ` (providers: ${PROVIDERS.join(", ")})`}`);
        } else if (provider === "openai-compatible" && agent.base_url === undefined && this.opts.config !== undefined && !this.opts.config.providers?.["openai-compatible"]?.base_url) {
          this.report.value([...at, "model"], `agent '${name}': openai-compatible models need a base_url (in the agent or under providers.openai-compatible in baton.config), e.g. http://127.0.0.1:11434/v1 for Ollama`);
        }
      }
      if (typeof agent.base_url === "string" && !agent.base_url.includes("${")) {
        const why = urlProblem(agent.base_url);
        if (why) this.report.value([...at, "base_url"], `agent '${name}': base_url ${why}`);
      }
    }
  }

  private mcp(): void {
    for (const [name, m] of Object.entries(this.plan.mcp)) {
      const at: DocPath = ["mcp", name];
      if (m.url !== undefined) {
        const why = urlProblem(m.url);
        if (why) this.report.value([...at, "url"], `MCP server '${name}': url ${why}`);
      }
      if (m.command === undefined) continue;
      const cwd = m.cwd !== undefined ? resolve(m.baseDir, m.cwd) : m.baseDir;
      if (m.cwd !== undefined && !(existsSync(cwd) && statSync(cwd).isDirectory())) {
        this.report.value([...at, "cwd"], `MCP server '${name}': cwd ${m.cwd} is not a directory (looked for ${cwd}): paths are relative to the template's directory`);
      }
      if ((m.command.startsWith("./") || m.command.startsWith("../")) && !existsSync(resolve(m.baseDir, m.command))) {
        this.report.value([...at, "command"], `MCP server '${name}': command ${m.command} not found (looked for ${resolve(m.baseDir, m.command)}): paths are relative to the template's directory`);
      }
    }
  }
}

/**
 * Check what a run of `plan` needs beyond the template text (see the module comment): every
 * problem, positioned like the compiler's diagnostics; an empty list when the template can run.
 *
 * @example
 * const problems = await preflight(loadPlanFile("p.yaml"), { file: "p.yaml" });
 * for (const d of problems) console.error(formatDiagnostic(d));
 */
export async function preflight(plan: Plan, opts: PreflightOptions = {}): Promise<Diagnostic[]> {
  const name = opts.file ?? (plan.source.file !== undefined ? shown(plan.source.file) : plan.name);
  const seen = new Set<string>(plan.source.file !== undefined ? [plan.source.file] : []);
  const out = await new Preflight(plan, opts, seen, name).run();
  // In file order, files together (a sub-pipeline's problems after its own lines sort).
  const order = new Map<string, number>([[name, 0]]);
  for (const d of out) if (!order.has(d.file)) order.set(d.file, order.size);
  return out.sort((a, b) => order.get(a.file)! - order.get(b.file)! || a.line - b.line || a.col - b.col);
}

/** {@link preflight}, throwing a {@link TemplateError} when there is a problem. */
export async function checkRunnable(plan: Plan, opts: PreflightOptions = {}): Promise<void> {
  const problems = await preflight(plan, opts);
  if (problems.length > 0) throw new TemplateError(problems);
}
