/**
 * OpenTelemetry export: every run's events become spans (see `mapper.ts` for their shape), sent
 * over OTLP/HTTP (JSON) by a tracer provider of Baton's own — nothing is registered globally, so
 * an application's own OpenTelemetry SDK is left alone.
 *
 * Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set: then
 * {@link createTelemetry} returns undefined without loading any OpenTelemetry package, and the
 * runtime's hot path pays nothing.
 */
import { createRequire } from "node:module";
import type { IdGenerator, SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { BatonEvent } from "../engine/events.js";
import type { Plan } from "../plan/types.js";
import { buildConfig, resolveConfig, tracesUrl, type TelemetryConfig } from "./config.js";
import { SpanMapper, type TraceIdHint } from "./mapper.js";

/** Options of {@link createTelemetry}. */
export interface TelemetryOptions {
  /** Export here instead of OTLP/HTTP (tests, or an exporter of your own); enables telemetry without an endpoint. */
  readonly exporter?: SpanExporter;
  /** `service.name`. @default `OTEL_SERVICE_NAME`, else "baton" */
  readonly serviceName?: string;
  /** The environment to read `OTEL_*` variables from. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Export message content on model-turn and tool-call spans (`gen_ai.input.messages`,
   * `gen_ai.output.messages`, `gen_ai.tool.call.arguments`, `gen_ai.tool.call.result`), as the
   * run's log holds it (redacted values stay redacted). Off by default: prompts and replies often
   * hold data that should not leave the machine.
   * @default `BATON_OTEL_CAPTURE_MESSAGES=1` (or `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`) in `env`, else false
   */
  readonly captureMessages?: boolean;
}

/** Span export of Baton runs. */
export interface Telemetry {
  /** The OTLP traces URL spans go to (undefined with a custom exporter and no endpoint). */
  readonly endpoint: string | undefined;
  /**
   * Mirror a batch of a run's events as spans: pass it to `RuntimeOptions.onEvents` (it is
   * bound, so `onEvents: telemetry.onEvents` works). Never throws (a telemetry fault must not
   * fail a run). `plan` adds stage kinds and agent settings (GenAI request attributes).
   */
  readonly onEvents: (runId: string, events: readonly BatonEvent[], plan?: Plan) => void;
  /** Export every span ended so far. */
  flush(): Promise<void>;
  /**
   * End spans still open (runs still going: status `interrupted`), export everything and stop.
   * Idempotent; later events are ignored.
   */
  shutdown(): Promise<void>;
}

/**
 * Telemetry from the standard OpenTelemetry environment variables, or undefined when no traces
 * endpoint is configured (or `OTEL_SDK_DISABLED=true` / `OTEL_TRACES_EXPORTER=none`).
 * Reads `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`,
 * `OTEL_SERVICE_NAME` (default "baton"), `OTEL_RESOURCE_ATTRIBUTES` and `BATON_OTEL_CAPTURE_MESSAGES`; the exporter and batch
 * processor also honour `OTEL_EXPORTER_OTLP_TIMEOUT`, `…_COMPRESSION`, `OTEL_BSP_*` and
 * `OTEL_TRACES_SAMPLER[_ARG]` from the process environment.
 *
 * @example
 * const telemetry = createTelemetry(); // undefined unless OTEL_EXPORTER_OTLP_ENDPOINT is set
 * const runtime = new Runtime({ store, ...(telemetry ? { onEvents: telemetry.onEvents } : {}) });
 * // … run …
 * await telemetry?.shutdown();
 */
export function createTelemetry(opts: TelemetryOptions = {}): Telemetry | undefined {
  const env = opts.env ?? process.env;
  const resolved = opts.exporter ? buildConfig(tracesUrl(env) ?? "", env, opts.serviceName) : resolveConfig(env, opts.serviceName);
  if (!resolved) return undefined;
  const capture = opts.captureMessages ?? resolved.captureMessages === true;
  const config: TelemetryConfig = {
    url: resolved.url, headers: resolved.headers, serviceName: resolved.serviceName, resourceAttributes: resolved.resourceAttributes,
    ...(capture ? { captureMessages: true } : {}),
  };
  if (!opts.exporter) warnProtocol(env);
  return new OtelTelemetry(config, opts.exporter);
}

// OpenTelemetry is loaded only when telemetry is on (≈ 100 ms of imports otherwise spent on every CLI start).
const load = createRequire(import.meta.url);

let warned = false;
function warnProtocol(env: NodeJS.ProcessEnv): void {
  const p = (env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] ?? env["OTEL_EXPORTER_OTLP_PROTOCOL"])?.trim();
  if (warned || p === undefined || p === "" || p === "http/json") return;
  warned = true;
  process.emitWarning(`Baton exports traces as OTLP/HTTP JSON; OTEL_EXPORTER_OTLP_PROTOCOL=${p} is ignored (point the endpoint at the collector's HTTP port, usually 4318)`, "BatonTelemetry");
}

function version(): string | undefined {
  try {
    return (load("../../package.json") as { version?: string }).version;
  } catch {
    return undefined;
  }
}

class OtelTelemetry implements Telemetry {
  readonly endpoint: string | undefined;
  private readonly provider: import("@opentelemetry/sdk-trace-base").BasicTracerProvider;
  private readonly mapper: SpanMapper;
  private closed: Promise<void> | undefined;
  private faulted = false;

  constructor(config: TelemetryConfig, exporter: SpanExporter | undefined) {
    const api = load("@opentelemetry/api") as typeof import("@opentelemetry/api");
    const sdk = load("@opentelemetry/sdk-trace-base") as typeof import("@opentelemetry/sdk-trace-base");
    const resources = load("@opentelemetry/resources") as typeof import("@opentelemetry/resources");
    this.endpoint = config.url === "" ? undefined : config.url;
    if (!exporter) {
      const { OTLPTraceExporter } = load("@opentelemetry/exporter-trace-otlp-http") as typeof import("@opentelemetry/exporter-trace-otlp-http");
      exporter = new OTLPTraceExporter({ url: config.url, headers: { ...config.headers } });
    }
    const resource = resources.defaultResource().merge(resources.resourceFromAttributes({ ...config.resourceAttributes, "service.name": config.serviceName }));
    const hint: TraceIdHint = { next: undefined };
    const random = new sdk.RandomIdGenerator();
    const idGenerator: IdGenerator = {
      generateTraceId: () => hint.next ?? random.generateTraceId(),
      generateSpanId: () => random.generateSpanId(),
    };
    this.provider = new sdk.BasicTracerProvider({ resource, idGenerator, spanProcessors: [new sdk.BatchSpanProcessor(exporter)] });
    const v = version();
    this.mapper = new SpanMapper(api, this.provider.getTracer("baton", v), hint, { captureMessages: config.captureMessages === true });
  }

  readonly onEvents = (runId: string, events: readonly BatonEvent[], plan?: Plan): void => {
    if (this.closed) return;
    try {
      this.mapper.onEvents(runId, events, plan);
    } catch (err) {
      if (this.faulted) return;
      this.faulted = true;
      process.emitWarning(`Baton telemetry: could not export events of run ${runId}: ${(err as Error).message}`, "BatonTelemetry");
    }
  };

  async flush(): Promise<void> {
    await this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    this.closed ??= (async () => {
      this.mapper.endAll(Date.now(), "interrupted");
      try {
        await this.provider.shutdown();
      } catch (err) {
        // A collector that is down or unreachable loses the spans, never the command (issue 15.6:
        // `baton run` exited 1 after a successful run when nothing listened on the endpoint).
        process.emitWarning(`Baton telemetry: could not export spans${this.endpoint ? ` to ${this.endpoint}` : ""}: ${(err as Error).message} (the runs are not affected)`, "BatonTelemetry");
      }
    })();
    return this.closed;
  }
}
