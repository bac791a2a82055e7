/** Errors of template compilation and of run inputs. */

/** One template problem, positioned in its file (1-based line and column). */
export interface Diagnostic {
  /** The file as given (or the pipeline name for a template built in TypeScript). */
  readonly file: string;
  /** 1-based; 0 when the template has no text (built in TypeScript): see {@link path}. */
  readonly line: number;
  /** 1-based; 0 when the template has no text. */
  readonly col: number;
  readonly message: string;
  /** Dotted path of the offending key (`stages.research.retry.attempts`). */
  readonly path?: string;
}

/**
 * Format a diagnostic as `FILE:LINE:COL: message` (or `FILE: PATH: message` for a template
 * built in TypeScript, which has no lines).
 *
 * @example
 * formatDiagnostic({ file: "p.yaml", line: 3, col: 5, message: "unknown agent 'x'" }); // "p.yaml:3:5: unknown agent 'x'"
 */
export function formatDiagnostic(d: Diagnostic): string {
  if (d.line > 0) return `${d.file}:${d.line}:${d.col}: ${d.message}`;
  const where = [d.file, d.path].filter((s) => s !== undefined && s !== "").join(": ");
  return where === "" ? d.message : `${where}: ${d.message}`;
}

/** A template failed validation. `message` lists every diagnostic, one per line. */
export class TemplateError extends Error {
  override readonly name = "TemplateError";
  /** Template errors are never retryable. */
  readonly retryable = false;
  readonly diagnostics: readonly Diagnostic[];

  constructor(diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join("\n"));
    this.diagnostics = diagnostics;
  }
}

/** Run inputs did not match the template's `inputs:`. The message is one line. */
export class InputError extends Error {
  override readonly name = "InputError";
  readonly retryable = false;
  /** Every problem found, one message each (`message` joins them with "; "). */
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(problems.join("; "));
    this.problems = problems;
  }
}
