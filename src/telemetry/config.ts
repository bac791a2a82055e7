/**
 * OpenTelemetry settings from the standard `OTEL_*` environment variables. Pure: reads only the
 * environment object it is given, so the CLI, the API and tests can all pass their own.
 */

/** Where and how spans are exported. */
export interface TelemetryConfig {
  /** Full OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`. */
  readonly url: string;
  /** Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TRACES_HEADERS`). */
  readonly headers: Readonly<Record<string, string>>;
  /** `service.name` of the resource. @default "baton" */
  readonly serviceName: string;
  /** Resource attributes from `OTEL_RESOURCE_ATTRIBUTES` (without `service.name`). */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /**
   * Export message content: each model turn's messages (`gen_ai.input.messages`), its reply
   * (`gen_ai.output.messages`) and tool-call arguments and results. Opt-in (`BATON_OTEL_CAPTURE_MESSAGES=1`,
   * or the conventions' `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`); absent = off.
   */
  readonly captureMessages?: boolean;
}

/** The OTLP/HTTP path of traces, appended to `OTEL_EXPORTER_OTLP_ENDPOINT`. */
const TRACES_PATH = "v1/traces";

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v.trim() === "" ? undefined : v.trim());

/**
 * `key1=value1,key2=value2` (values URL-encoded) → a record; malformed pairs are skipped, as the
 * OpenTelemetry specification asks.
 */
export function parseKeyValues(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === undefined) return out;
  for (const pair of text.split(",")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) continue;
    const key = pair.slice(0, eq).trim();
    const raw = pair.slice(eq + 1).trim();
    if (key === "") continue;
    try {
      out[decodeURIComponent(key)] = decodeURIComponent(raw);
    } catch {
      // not valid percent-encoding: skip the pair
    }
  }
  return out;
}

/** The traces URL: `…_TRACES_ENDPOINT` as given, else `…_ENDPOINT` + `/v1/traces`; undefined when neither is set. */
export function tracesUrl(env: NodeJS.ProcessEnv): string | undefined {
  const specific = nonEmpty(env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]);
  if (specific !== undefined) return specific;
  const base = nonEmpty(env["OTEL_EXPORTER_OTLP_ENDPOINT"]);
  if (base === undefined) return undefined;
  return base.endsWith("/") ? base + TRACES_PATH : `${base}/${TRACES_PATH}`;
}

/**
 * Whether tracing is switched off by the environment: `OTEL_SDK_DISABLED=true`, or
 * `OTEL_TRACES_EXPORTER=none`.
 */
export function tracingDisabled(env: NodeJS.ProcessEnv): boolean {
  if (nonEmpty(env["OTEL_SDK_DISABLED"])?.toLowerCase() === "true") return true;
  const exporters = nonEmpty(env["OTEL_TRACES_EXPORTER"]);
  return exporters !== undefined && exporters.split(",").every((x) => x.trim().toLowerCase() === "none");
}

/**
 * Resolve the settings; undefined when no traces endpoint is configured (or tracing is disabled).
 *
 * @example
 * resolveConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" })
 * // { url: "http://127.0.0.1:4318/v1/traces", headers: {}, serviceName: "baton", resourceAttributes: {} }
 */
export function resolveConfig(env: NodeJS.ProcessEnv, serviceName?: string): TelemetryConfig | undefined {
  if (tracingDisabled(env)) return undefined;
  const url = tracesUrl(env);
  if (url === undefined) return undefined;
  return buildConfig(url, env, serviceName);
}

const TRUE = new Set(["1", "true", "yes", "on"]);

/** Whether the environment opts in to exporting message content. */
export function captureMessagesFromEnv(env: NodeJS.ProcessEnv): boolean {
  const flag = (name: string): boolean => TRUE.has(nonEmpty(env[name])?.toLowerCase() ?? "");
  return flag("BATON_OTEL_CAPTURE_MESSAGES") || flag("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT");
}

/** Settings for a given URL (also used when the caller passes its own exporter). */
export function buildConfig(url: string, env: NodeJS.ProcessEnv, serviceName?: string): TelemetryConfig {
  const headers = { ...parseKeyValues(env["OTEL_EXPORTER_OTLP_HEADERS"]), ...parseKeyValues(env["OTEL_EXPORTER_OTLP_TRACES_HEADERS"]) };
  const resourceAttributes = parseKeyValues(env["OTEL_RESOURCE_ATTRIBUTES"]);
  const fromResource = resourceAttributes["service.name"];
  delete resourceAttributes["service.name"];
  return {
    url,
    headers,
    serviceName: serviceName ?? nonEmpty(env["OTEL_SERVICE_NAME"]) ?? fromResource ?? "baton",
    resourceAttributes,
    ...(captureMessagesFromEnv(env) ? { captureMessages: true } : {}),
  };
}
