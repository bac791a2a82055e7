/**
 * Compiled expressions. `expr/` is the one place that knows JSONata; everything else sees
 * these interfaces.
 */

/** The names an expression can read: `inputs`, stage ids, `item`/the `as` name, `index`, `route`, `visit`, `attempt`, `prev`, `error`. */
export type Scope = Readonly<Record<string, unknown>>;

/** A compiled JSONata expression. */
export interface Expr {
  /** The expression text as written. */
  readonly source: string;
  /**
   * Root names the expression reads (first steps of paths evaluated against the scope),
   * sorted and unique: stage ids, `inputs`, `item`, … Found by walking the JSONata AST.
   */
  readonly roots: readonly string[];
  /** For `inputs.<name>` paths: the input names read (for validation). */
  readonly inputNames: readonly string[];
  /**
   * Evaluate against a scope. Simple paths (`a.b.c`) are evaluated synchronously without
   * JSONata and return a plain value; everything else returns a Promise. Bounded in time
   * and depth; failures reject/throw {@link ExprError}.
   */
  evaluate(scope: Scope): unknown;
}

/** A value with `{{ expr }}` interpolations (a stage's `input:`, `prompt:`, a route's `with:`). */
export interface ValueTemplate {
  /** Union of the roots of every interpolated expression, sorted and unique. */
  readonly roots: readonly string[];
  readonly inputNames: readonly string[];
  /** Every expression inside, in document order (for validation/dependency listing). */
  readonly exprs: readonly Expr[];
  /** Evaluate; synchronous (plain value) when every expression inside is a simple path, else a Promise. */
  evaluate(scope: Scope): unknown;
}
