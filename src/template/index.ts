/**
 * Templates: parse YAML/JSON (or take a TypeScript object), validate everything in one pass
 * with `file:line:col` diagnostics, infer dependencies, and compile to an immutable plan.
 */
export { compileObject, compileSource, loadPlanFile, validateFile, type ObjectOptions, type SourceOptions } from "./compile.js";
export { formatDiagnostic, InputError, TemplateError, type Diagnostic } from "./errors.js";
export { validateInputs } from "./inputs.js";
export { describePlan, type PlanDescription, type StageDescription, type TriggerDescription } from "./describe.js";
export { templateSchema } from "./schema.js";
