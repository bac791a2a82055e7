/**
 * `triggers:` — what starts runs of a pipeline under `baton serve`: cron schedules and signed
 * webhooks. Checked at validate time and compiled to {@link TriggerPlan}s. Triggers never
 * change how a run executes, so they are left out of both plan hashes.
 */
import { createRequire } from "node:module";
import type { Cron } from "croner";
import { ExprError } from "../expr/index.js";
import { compileExprInternal, type CompiledExpr } from "../expr/compile.js";
import type { CatchUpPolicy, Plan, TriggerPlan } from "../plan/types.js";
import { InputError } from "./errors.js";
import { isRec, type Rec } from "./fields.js";
import { validateInputs } from "./inputs.js";
import type { DocPath, Reporter } from "./source.js";
import { didYouMean } from "./suggest.js";

/** The names a webhook's `inputs` expression reads. */
export const WEBHOOK_SCOPE: readonly string[] = Object.freeze(["body", "headers", "query"]);

/** Catch-up policies of cron triggers. @default "latest" */
export const CATCH_UP_POLICIES: readonly CatchUpPolicy[] = Object.freeze(["latest", "all", "none"]);

/** `/hooks/` then one or more segments of letters, digits, `-`, `_`, `.` (not `.` or `..`). */
const HOOK_PATH = /^\/hooks(\/[A-Za-z0-9._-]+)+$/;

/** Nicknames croner reads. */
const NICKNAMES = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"];

const CRON_HELP = `write 5 fields "minute hour day-of-month month day-of-week", e.g. "0 * * * *" (hourly) or "30 2 * * 1-5" (02:30 on weekdays)`;

/**
 * Build the croner schedule of a cron expression (5 fields or a nickname such as `@hourly`) in
 * a time zone. Throws croner's error for a bad expression or time zone.
 * @internal shared with `serve/cron.ts`.
 */
export function cronSchedule(expression: string, timezone: string): Cron {
  // Loaded on first use: only templates with cron triggers (and `baton serve`) need croner.
  const { Cron: CronClass } = createRequire(import.meta.url)("croner") as typeof import("croner");
  return new CronClass(expression, { timezone, mode: "5-part" });
}

/** Why `tz` is not an IANA time zone this runtime knows, or undefined when it is one. */
export function timezoneProblem(tz: string): string | undefined {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return undefined;
  } catch {
    const known = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
    return `unknown time zone '${tz}'${didYouMean(tz, known)}: use an IANA name such as Europe/Berlin, America/New_York or UTC`;
  }
}

/** Why a cron expression cannot be used, or undefined when it fires (checked from a fixed instant). */
export function cronProblem(expression: string, timezone: string): string | undefined {
  const text = expression.trim();
  if (text.includes("?")) return `bad cron expression ${JSON.stringify(expression)}: '?' is not supported (it would mean the time the server started): write * instead; ${CRON_HELP}`;
  if (text.startsWith("@") && !NICKNAMES.includes(text.toLowerCase())) return `bad cron expression ${JSON.stringify(expression)}: unknown nickname${didYouMean(text.toLowerCase(), NICKNAMES)}: use ${NICKNAMES.join(", ")}, or ${CRON_HELP}`;
  const fields = text.split(/\s+/).length;
  if (!expression.trim().startsWith("@") && fields !== 5) return `bad cron expression ${JSON.stringify(expression)}: it has ${fields} field${fields === 1 ? "" : "s"}, not 5; ${CRON_HELP}`;
  let schedule: Cron;
  try {
    schedule = cronSchedule(expression, timezone);
  } catch (err) {
    const why = (err as Error).message.replace(/^CronPattern: /, "").replace(/\.$/, "");
    return `bad cron expression ${JSON.stringify(expression)}: ${why}; ${CRON_HELP}`;
  }
  // A fixed reference keeps validation deterministic; 2000-01-01 is before any date a pattern could need.
  if (schedule.nextRun(new Date(Date.UTC(2000, 0, 1))) === null) {
    return `cron expression ${JSON.stringify(expression)} never fires (e.g. February 31st); ${CRON_HELP}`;
  }
  return undefined;
}

/** Why a webhook path cannot be used, or undefined. */
function pathProblem(path: string): string | undefined {
  if (!path.startsWith("/hooks/")) return `webhook path ${JSON.stringify(path)} must start with /hooks/, e.g. /hooks/github`;
  if (!HOOK_PATH.test(path) || path.split("/").some((s) => s === "." || s === "..")) {
    return `webhook path ${JSON.stringify(path)} may hold only segments of letters, digits, '-', '_' and '.' (no empty, '.' or '..' segments, no query), e.g. /hooks/github/push`;
  }
  return undefined;
}

interface TriggerCtx {
  readonly report: Reporter;
  readonly inputsSchema: Plan["inputsSchema"];
}

/** Report each problem of literal cron `inputs` against the template's `inputs:`. */
function checkCronInputs(inputs: Rec, path: DocPath, who: string, ctx: TriggerCtx): void {
  // Unknown inputs are found first and stop validateInputs; the known ones are then checked alone.
  const props = ctx.inputsSchema.properties;
  const known = Object.fromEntries(Object.entries(inputs).filter(([k]) => Object.hasOwn(props, k)));
  const found = new Set<string>();
  for (const subset of Object.keys(known).length < Object.keys(inputs).length ? [inputs, known] : [inputs]) {
    try {
      validateInputs({ inputsSchema: ctx.inputsSchema }, subset);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      for (const p of err.problems) found.add(p.replace(/ — pass --input .*$/, ""));
    }
  }
  for (const problem of found) {
    const unknown = /^unknown input '([^']+)'/.exec(problem);
    const bad = /^input '([^']+)'/.exec(problem);
    if (unknown) ctx.report.key([...path, unknown[1] as string], `${who}: ${problem}`);
    else if (bad && Object.hasOwn(inputs, bad[1] as string)) ctx.report.value([...path, bad[1] as string], `${who}: ${problem}`);
    else ctx.report.value(path, `${who}: ${problem}${/^missing input/.test(problem) ? ": add it to this trigger's inputs" : ""}`);
  }
}

function webhookInputsExpr(raw: unknown, path: DocPath, who: string, report: Reporter): CompiledExpr | undefined {
  if (raw !== undefined && typeof raw !== "string") return undefined; // the schema check reported it
  const source = raw ?? "body";
  let expr: CompiledExpr;
  try {
    expr = compileExprInternal(source);
  } catch (err) {
    if (!(err instanceof ExprError)) throw err;
    report.value(path, `${who}: inputs: ${err.detail}`, err.offset);
    return undefined;
  }
  let ok = true;
  for (const ref of expr.refs) {
    if (WEBHOOK_SCOPE.includes(ref.name)) continue;
    ok = false;
    report.value(path, `${who}: inputs reads '${ref.name}', but a webhook's inputs expression sees only body, headers and query${didYouMean(ref.name, WEBHOOK_SCOPE)}`, ref.offset);
  }
  return ok ? expr : undefined;
}

/**
 * Check `triggers:` (a list; the schema check reported other shapes and unknown keys) and
 * compile it. Reports every problem; returns the triggers that are valid.
 */
export function analyzeTriggers(raw: unknown, ctx: TriggerCtx): TriggerPlan[] {
  if (!Array.isArray(raw)) return [];
  const { report } = ctx;
  const out: TriggerPlan[] = [];
  const paths = new Map<string, number>();
  const names = new Map<string, number>();
  raw.forEach((t: unknown, index) => {
    if (!isRec(t)) return; // the schema check reported it
    const at: DocPath = ["triggers", index];
    const name = typeof t.name === "string" ? t.name : undefined;
    const who = `trigger ${name !== undefined ? `'${name}'` : `#${index}`}`;
    if (name !== undefined) {
      const first = names.get(name);
      if (first !== undefined) report.value([...at, "name"], `${who}: the name is already used by trigger #${first}: trigger names must be unique`);
      else names.set(name, index);
    }
    const hasCron = t.cron !== undefined;
    const hasHook = t.webhook !== undefined;
    if (hasCron === hasHook) {
      report.key(at, `${who} needs exactly one of cron: (a schedule) or webhook: (an HTTP endpoint)${hasCron ? ", not both" : ""}`);
      return;
    }
    if (hasCron) {
      const cron = t.cron;
      const timezone = t.timezone === undefined ? "UTC" : t.timezone;
      if (typeof cron !== "string" || typeof timezone !== "string") return; // the schema check reported it
      const tzBad = timezoneProblem(timezone);
      if (tzBad !== undefined) report.value([...at, "timezone"], `${who}: ${tzBad}`);
      const cronBad = cronProblem(cron, tzBad === undefined ? timezone : "UTC");
      if (cronBad !== undefined) report.value([...at, "cron"], `${who}: ${cronBad}`);
      const inputs = t.inputs === undefined ? {} : t.inputs;
      if (!isRec(inputs)) return; // the schema check reported it
      checkCronInputs(inputs, t.inputs === undefined ? at : [...at, "inputs"], who, ctx);
      const catchUp = t.catch_up === undefined ? "latest" : t.catch_up;
      if (!CATCH_UP_POLICIES.includes(catchUp as CatchUpPolicy)) return; // the schema check reported it
      if (tzBad !== undefined || cronBad !== undefined) return;
      out.push({ kind: "cron", index, ...(name !== undefined ? { name } : {}), cron, timezone, inputs: structuredClone(inputs), catchUp: catchUp as CatchUpPolicy });
      return;
    }
    for (const key of ["timezone", "catch_up", "inputs"] as const) {
      if (t[key] !== undefined) report.key([...at, key], `${who}: ${key} is only for cron triggers${key === "inputs" ? ": a webhook's inputs go under webhook: (an expression over body, headers and query)" : ""}`);
    }
    const hook = t.webhook;
    if (!isRec(hook) || typeof hook.path !== "string" || typeof hook.secret_env !== "string") return; // the schema check reported it
    const hookAt: DocPath = [...at, "webhook"];
    const pathBad = pathProblem(hook.path);
    if (pathBad !== undefined) report.value([...hookAt, "path"], `${who}: ${pathBad}`);
    else {
      const first = paths.get(hook.path);
      if (first !== undefined) report.value([...hookAt, "path"], `${who}: webhook path ${hook.path} is already used by trigger #${first}: each webhook needs its own path`);
      else paths.set(hook.path, index);
    }
    const inputs = webhookInputsExpr(hook.inputs, [...hookAt, "inputs"], who, report);
    if (pathBad !== undefined || inputs === undefined) return;
    out.push({ kind: "webhook", index, ...(name !== undefined ? { name } : {}), path: hook.path, secretEnv: hook.secret_env, inputs });
  });
  return out;
}
