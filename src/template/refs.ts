/**
 * Expressions inside a template: compile them, position their errors inside the expression,
 * and check every name they read against what is in scope where they appear.
 */
import { ExprError } from "../expr/index.js";
import { compileExprInternal, type CompiledExpr } from "../expr/compile.js";
import { compileValueTemplateCollect, type CompiledValueTemplate } from "../expr/value-template.js";
import type { RootRef } from "../expr/roots.js";
import type { DocPath, Reporter } from "./source.js";
import { didYouMean } from "./suggest.js";

/** Names bound inside every stage. */
export const STAGE_SCOPE = ["route", "visit", "attempt", "prev"] as const;
/** Names bound only in a stage used as a fallback. */
export const FALLBACK_SCOPE = ["error", "input"] as const;
/** Stage ids that would shadow (or be shadowed by) a scope name. */
export const RESERVED_IDS: ReadonlySet<string> = new Set(["inputs", "item", "index", ...STAGE_SCOPE, ...FALLBACK_SCOPE, "output"]);

/**
 * Names every JavaScript object already has (Object.prototype's, and `prototype`). A stage id,
 * an `as:` name or an input spelled so would read as the built-in — or, for `__proto__`, as
 * null — instead of its value, so templates may not use them (issue 13.13).
 */
export const OBJECT_NAMES: ReadonlySet<string> = new Set([
  "__proto__", "constructor", "prototype", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable",
  "toLocaleString", "toString", "valueOf", "__defineGetter__", "__defineSetter__", "__lookupGetter__", "__lookupSetter__",
]);

/** Why `name` cannot name a stage, input or item: "every JavaScript object has a '__proto__'…". */
export function objectNameProblem(name: string, what: string): string | undefined {
  if (!OBJECT_NAMES.has(name)) return undefined;
  return `${what} '${name}' is reserved: every JavaScript object has a '${name}', so it would read as ${name === "__proto__" ? "null" : "a built-in function"} instead of its value`;
}

/** The stage an expression belongs to, as far as its scope is concerned. */
export interface StageScope {
  readonly id: string;
  /** Names bound to the current item when the stage has for_each (`item`, `index`, the `as` name). */
  readonly itemNames?: ReadonlySet<string>;
  readonly isFallback: boolean;
  /** Stage ids the stage's expressions read (filled in as expressions are checked). */
  readonly reads: Set<string>;
}

/** Where an expression appears. `stage` undefined = the pipeline's final `output`. */
export interface Where {
  readonly stage?: StageScope;
  /** The field, for messages (`if`, `prompt`, `routes[0].when` …). */
  readonly field: string;
  /** Evaluated once per for_each item (input, prompt, value, http, inputs, approval). */
  readonly perItem: boolean;
  /** The expression belongs to a tool (SPEC §8): only `args` and `inputs` are in scope. */
  readonly tool?: string;
}

/** What the whole template declares. */
export interface Declared {
  readonly stageIds: ReadonlySet<string>;
  readonly inputs: ReadonlySet<string>;
}

/** Checks expressions against the declared names and reports through a {@link Reporter}. */
export class ExprChecker {
  constructor(
    private readonly report: Reporter,
    private readonly declared: Declared,
  ) {}

  /** A bare expression (`if`, `when`, `for_each`, `value`, `output`). Booleans are literal conditions. */
  expr(path: DocPath, value: unknown, where: Where): CompiledExpr | undefined {
    if (typeof value === "boolean") return compileExprInternal(String(value));
    if (typeof value !== "string") return undefined; // the schema check reported it
    let e: CompiledExpr;
    try {
      e = compileExprInternal(value);
    } catch (err) {
      if (!(err instanceof ExprError)) throw err;
      this.report.value(path, err.detail, err.offset);
      return undefined;
    }
    this.refs(e.refs, path, 0, where);
    return e;
  }

  /** A value with `{{ }}` interpolations (`input`, `prompt`, `with`, `http`, `inputs`, `approval.message`). */
  template(path: DocPath, value: unknown, where: Where): CompiledValueTemplate | undefined {
    const { template, errors } = compileValueTemplateCollect(value);
    for (const err of errors) this.report.value([...path, ...(err.path ?? [])], err.detail, err.offset);
    if (template === undefined) return undefined;
    for (const site of template.sites) this.refs(site.expr.refs, [...path, ...site.path], site.offset, where);
    return template;
  }

  private refs(refs: readonly RootRef[], path: DocPath, base: number, where: Where): void {
    const seen = new Set<string>();
    for (const ref of refs) {
      const key = ref.input ? `inputs.${ref.input.name}` : ref.name;
      if (seen.has(key)) continue;
      seen.add(key);
      const problem = this.problem(ref, where);
      if (problem !== undefined) this.report.value(path, problem.message, base + problem.offset);
    }
  }

  private problem(ref: RootRef, where: Where): { message: string; offset: number } | undefined {
    const { name } = ref;
    const at = (message: string): { message: string; offset: number } => ({ message, offset: ref.offset });
    if (name === "inputs") {
      if (ref.input === undefined || this.declared.inputs.has(ref.input.name)) return undefined;
      const hint = this.declared.inputs.size === 0 ? ": declare it under inputs:" : didYouMean(ref.input.name, this.declared.inputs);
      return { message: `unknown input '${ref.input.name}'${hint}`, offset: ref.input.offset };
    }
    if (where.tool !== undefined) {
      if (name === "args") return undefined;
      return at(`tool '${where.tool}' can read only args (the call's arguments) and inputs, not '${name}'`);
    }
    const stage = where.stage;
    if (this.declared.stageIds.has(name)) {
      stage?.reads.add(name);
      return undefined;
    }
    const scopeNames = [...STAGE_SCOPE, "item", "index", ...FALLBACK_SCOPE];
    if (stage === undefined) {
      if (scopeNames.includes(name)) return at(`'${name}' is not in scope in the pipeline output: only inputs and stage ids are`);
    } else {
      if ((STAGE_SCOPE as readonly string[]).includes(name)) return undefined;
      if (name === "item" || name === "index" || stage.itemNames?.has(name)) {
        if (stage.itemNames === undefined) return at(`'${name}' is only in scope in a stage with for_each`);
        if (!where.perItem) {
          return at(`'${name}' is not in scope in '${where.field}': for_each items exist only in input, prompt, value, http, inputs and approval`);
        }
        return undefined;
      }
      if ((FALLBACK_SCOPE as readonly string[]).includes(name)) {
        return stage.isFallback ? undefined : at(`'${name}' is only in scope in a fallback stage (one named by on_error: { fallback: ... })`);
      }
    }
    if (this.declared.inputs.has(name)) return at(`unknown stage '${name}' in expression: read the input as inputs.${name}`);
    const candidates = [...this.declared.stageIds, "inputs", ...(stage ? scopeNames : []), ...(stage?.itemNames ?? [])];
    return at(`unknown stage or input '${name}' in expression${didYouMean(name, candidates)}`);
  }
}
