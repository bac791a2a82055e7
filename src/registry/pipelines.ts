/**
 * Registered pipelines: templates deployed into the store (`baton deploy FILE`), one version per
 * content hash, so runs can be started by name over the API without the server ever reading a
 * path a request names. Records of kind {@link PIPELINE_KIND} (`NAME@VERSION`) hold each version's
 * text; {@link LATEST_KIND} (`NAME`) points at the version deployed last.
 */
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { dirname, extname, resolve } from "node:path";
import type { Plan } from "../plan/types.js";
import type { Store } from "../store/port.js";
import { compileSource, TemplateError } from "../template/index.js";

/** Record kind of one deployed version (key `NAME@VERSION`). */
export const PIPELINE_KIND = "pipeline";
/** Record kind of the latest version of a name (key `NAME`). */
export const LATEST_KIND = "pipeline-latest";
/** Templates larger than this are refused. */
export const TEMPLATE_MAX_BYTES = 1024 * 1024;

/** One deployed version of a pipeline, as stored. */
export interface PipelineEntry {
  readonly name: string;
  /** First 12 hex characters of the sha256 of `text`. */
  readonly version: string;
  readonly format: "yaml" | "json";
  /** Absolute path the template was deployed from: `run:` modules and sub-pipelines resolve next to it. */
  readonly file: string;
  /** The template text; runs compile from this, never from the file. */
  readonly text: string;
  /** When this version was first deployed (ISO 8601). */
  readonly deployed_at: string;
  /** Who deployed it, when known. */
  readonly by?: string;
}

/** One row of {@link listPipelines}. */
export interface PipelineSummary {
  readonly name: string;
  /** The version deployed last. */
  readonly version: string;
  /** How many versions are registered. */
  readonly versions: number;
  /** When the latest version was (re)deployed (ISO 8601). */
  readonly deployed_at: string;
}

/** What {@link deploy} did. */
export interface Deployed {
  readonly name: string;
  readonly version: string;
  /** false: this exact text was registered before (it is the latest again). */
  readonly created: boolean;
}

interface LatestValue {
  readonly version: string;
  readonly deployed_at: string;
}

/** The version of a template text: the first 12 hex characters of its sha256. */
export function versionOf(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 12);
}

/** Whether a string has the shape of a version (12 lowercase hex characters). */
export function isVersion(s: string): boolean {
  return /^[0-9a-f]{12}$/.test(s);
}

/** Read a template file: a regular file of at most {@link TEMPLATE_MAX_BYTES}, else a TemplateError like `baton validate`'s. */
function readTemplateFile(file: string): string {
  const fail = (why: string): never => {
    throw new TemplateError([{ file, line: 1, col: 1, message: `cannot read the template: ${why}` }]);
  };
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) fail("not a regular file");
    size = st.size;
  } catch (err) {
    if (err instanceof TemplateError) throw err;
    return fail((err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message);
  }
  if (size > TEMPLATE_MAX_BYTES) fail(`it is ${size} bytes; templates are at most ${TEMPLATE_MAX_BYTES} bytes`);
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    return fail((err as Error).message);
  }
}

/**
 * Register a template file: compile it (refusing it with the diagnostics `baton validate`
 * prints), store its text as version {@link versionOf}(text) of its `name:`, and make that the
 * latest version. Deploying the same text again stores nothing new (`created: false`) but makes
 * it the latest again.
 *
 * @throws {@link TemplateError} when the file cannot be read or does not compile.
 * @example
 * const { name, version, created } = await deploy(store, "examples/research-report.yaml", { by: "ana" });
 */
export async function deploy(store: Store, file: string, o: { by?: string; now?: () => number } = {}): Promise<Deployed> {
  const text = readTemplateFile(file);
  const format = extname(file).toLowerCase() === ".json" ? "json" : "yaml";
  const abs = resolve(file);
  // Diagnostics name the file as given, like `baton validate`.
  const plan = compileSource(text, { file, format, baseDir: dirname(abs) });
  await checkWebhookPaths(store, plan, file);
  const version = versionOf(text);
  const at = new Date((o.now ?? Date.now)()).toISOString();
  const entry: PipelineEntry = { name: plan.name, version, format, file: abs, text, deployed_at: at, ...(o.by ? { by: o.by } : {}) };
  const put = await store.putRecord(PIPELINE_KIND, `${plan.name}@${version}`, entry, { ifAbsent: true });
  const latest: LatestValue = { version, deployed_at: at };
  await store.putRecord(LATEST_KIND, plan.name, latest);
  return { name: plan.name, version, created: put.created };
}

/**
 * A webhook path belongs to one pipeline: a deploy whose webhook trigger uses a path the latest
 * version of another registered pipeline listens on is refused (a delivery must start one
 * pipeline, not whichever is found first).
 */
async function checkWebhookPaths(store: Store, plan: Plan, file: string): Promise<void> {
  const paths = new Set((plan.triggers ?? []).flatMap((t) => (t.kind === "webhook" ? [t.path] : [])));
  if (paths.size === 0) return;
  for (const r of await store.listRecords(LATEST_KIND)) {
    if (r.key === plan.name) continue;
    const other = await getPipeline(store, r.key);
    if (other === undefined) continue;
    let theirs: Plan;
    try {
      theirs = planOf(other);
    } catch {
      continue; // no longer compiles: it listens on nothing
    }
    for (const t of theirs.triggers ?? []) {
      if (t.kind === "webhook" && paths.has(t.path)) {
        throw new TemplateError([{ file, line: 1, col: 1, message: `webhook path ${t.path} is already taken by pipeline '${other.name}' (version ${other.version}): give this trigger another path, or deploy '${other.name}' without it first` }]);
      }
    }
  }
}

/** Every version of one name, newest deployment first. */
export async function listVersions(store: Store, name: string): Promise<PipelineEntry[]> {
  const recs = await store.listRecords(PIPELINE_KIND, { prefix: `${name}@` });
  return recs
    .map((r) => r.value as PipelineEntry)
    .filter((e) => e.name === name)
    .sort((a, b) => (a.deployed_at < b.deployed_at ? 1 : a.deployed_at > b.deployed_at ? -1 : 0));
}

/**
 * The registered pipelines: each name with its latest version, how many versions it has and
 * when the latest was deployed, by name.
 *
 * @example
 * for (const p of await listPipelines(store)) console.log(p.name, p.version);
 */
export async function listPipelines(store: Store): Promise<PipelineSummary[]> {
  const latest = await store.listRecords(LATEST_KIND);
  const all = await store.listRecords(PIPELINE_KIND);
  const counts = new Map<string, number>();
  for (const r of all) {
    const name = (r.value as PipelineEntry).name;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return latest.map((r) => {
    const v = r.value as LatestValue;
    return { name: r.key, version: v.version, versions: counts.get(r.key) ?? 0, deployed_at: v.deployed_at };
  });
}

/**
 * One registered version of a pipeline (the latest when `version` is omitted), or undefined.
 * `name` and `version` are only ever record keys: nothing is read from the file system.
 *
 * @example
 * const entry = await getPipeline(store, "research-report"); // latest
 * const pinned = await getPipeline(store, "research-report", "3f2a9c0b1d4e");
 */
export async function getPipeline(store: Store, name: string, version?: string): Promise<PipelineEntry | undefined> {
  let v = version;
  if (v === undefined) {
    const latest = await store.getRecord(LATEST_KIND, name);
    if (latest === undefined) return undefined;
    v = (latest.value as LatestValue).version;
  }
  const rec = await store.getRecord(PIPELINE_KIND, `${name}@${v}`);
  const entry = rec?.value as PipelineEntry | undefined;
  return entry !== undefined && entry.name === name ? entry : undefined;
}

/**
 * Compile a registered version to its plan, from the stored text with the stored file as base
 * (so `run:` modules and sub-pipelines resolve next to it). The plan's source records the text,
 * which `planFromSource` recompiles when the run resumes.
 *
 * @throws {@link TemplateError} when the stored text no longer compiles (a sub-pipeline that moved).
 * @example
 * const plan = planOf((await getPipeline(store, "research-report"))!);
 */
export function planOf(entry: PipelineEntry): Plan {
  // A version's text never changes and compiling reads no other file: compile each once.
  const key = `${entry.name}@${entry.version}\u0000${entry.file}`;
  let plan = plans.get(key);
  if (plan === undefined) {
    plan = compileSource(entry.text, { file: entry.file, format: entry.format, baseDir: dirname(entry.file) });
    if (plans.size >= PLANS_MAX) plans.clear();
    plans.set(key, plan);
  }
  return plan;
}

/** Compiled plans of registered versions (plans are immutable, so runs may share one). */
const plans = new Map<string, Plan>();
const PLANS_MAX = 256;
