/**
 * OpenTelemetry export of runs: spans per run, stage execution and attempt, with GenAI
 * semantic-convention attributes on agent attempts.
 *
 * @packageDocumentation
 */
export { createTelemetry, type Telemetry, type TelemetryOptions } from "./otel.js";
export { traceIdOf } from "./mapper.js";
export { resolveConfig, type TelemetryConfig } from "./config.js";
export { ATTR, EVENT, SPAN } from "./attributes.js";
