/**
 * A local OTLP/HTTP collector stub: a real `node:http` server on 127.0.0.1 that accepts
 * `POST /v1/traces` with an OTLP JSON body (gzip too), decodes every span and keeps it.
 */
import { createServer, type IncomingHttpHeaders } from "node:http";
import { gunzipSync } from "node:zlib";

/** A decoded attribute value (OTLP AnyValue). */
export type Value = string | number | boolean | null | Value[] | { [k: string]: Value };

/** One received span, with attributes decoded to plain values. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  /** ms since epoch (from the nanosecond strings). */
  start: number;
  end: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, Value>;
  events: { name: string; timeNs: bigint; attributes: Record<string, Value> }[];
  links: { traceId: string; spanId: string; attributes: Record<string, Value> }[];
  /** 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string | undefined };
  resource: Record<string, Value>;
  scope: { name: string; version: string | undefined };
}

export interface Collector {
  /** Base URL for `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Every request: method, path, headers. */
  readonly requests: { method: string; path: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
  kvlistValue?: { values?: KeyValue[] };
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}

function decode(v: AnyValue | undefined): Value {
  if (!v) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(decode);
  if (v.kvlistValue) return attrs(v.kvlistValue.values);
  return null;
}

function attrs(list: KeyValue[] | undefined): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const kv of list ?? []) out[kv.key] = decode(kv.value);
  return out;
}

/** OTLP JSON ids are hex strings (base64 is accepted too, as some exporters send it). */
function id(x: string | undefined): string | undefined {
  if (x === undefined || x === "") return undefined;
  if (/^[0-9a-f]+$/i.test(x)) return x.toLowerCase();
  return Buffer.from(x, "base64").toString("hex");
}

const ns = (x: string | number | undefined): bigint => BigInt(x ?? 0);

interface OtlpBody {
  resourceSpans?: {
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: {
      scope?: { name?: string; version?: string };
      spans?: {
        traceId?: string; spanId?: string; parentSpanId?: string; name?: string; kind?: number;
        startTimeUnixNano?: string | number; endTimeUnixNano?: string | number; attributes?: KeyValue[];
        events?: { name?: string; timeUnixNano?: string | number; attributes?: KeyValue[] }[];
        links?: { traceId?: string; spanId?: string; attributes?: KeyValue[] }[];
        status?: { code?: number; message?: string };
      }[];
    }[];
  }[];
}

/** Start the stub on a free port. */
export async function startCollector(): Promise<Collector> {
  const spans: ReceivedSpan[] = [];
  const requests: Collector["requests"] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      requests.push({ method: req.method ?? "?", path, headers: req.headers });
      if (req.method !== "POST" || path !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      let raw = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") raw = gunzipSync(raw);
      let body: OtlpBody;
      try {
        body = JSON.parse(raw.toString("utf8")) as OtlpBody;
      } catch {
        res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ message: "not OTLP JSON" }));
        return;
      }
      for (const rs of body.resourceSpans ?? []) {
        const resource = attrs(rs.resource?.attributes);
        for (const ss of rs.scopeSpans ?? []) {
          const scope = { name: ss.scope?.name ?? "", version: ss.scope?.version };
          for (const s of ss.spans ?? []) {
            const startNs = ns(s.startTimeUnixNano);
            const endNs = ns(s.endTimeUnixNano);
            spans.push({
              traceId: id(s.traceId) ?? "", spanId: id(s.spanId) ?? "", parentSpanId: id(s.parentSpanId),
              name: s.name ?? "", kind: s.kind ?? 0,
              startNs, endNs, start: Number(startNs / 1_000_000n), end: Number(endNs / 1_000_000n),
              attributes: attrs(s.attributes),
              events: (s.events ?? []).map((e) => ({ name: e.name ?? "", timeNs: ns(e.timeUnixNano), attributes: attrs(e.attributes) })),
              links: (s.links ?? []).map((l) => ({ traceId: id(l.traceId) ?? "", spanId: id(l.spanId) ?? "", attributes: attrs(l.attributes) })),
              status: { code: s.status?.code ?? 0, message: s.status?.message || undefined },
              resource, scope,
            });
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  const port = addr !== null && typeof addr === "object" ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
