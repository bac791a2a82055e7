/**
 * How stores keep large payloads: a payload field of an event whose JSON is at least
 * {@link BLOB_MIN_BYTES} UTF-8 bytes is stored once in a `blobs` table, keyed by the sha256 of
 * that JSON, and the event keeps `{"$blob":"<hash>"}` in its place. Reads put the values back,
 * so callers never see blob references. Shared by the SQLite and PostgreSQL adapters, so both
 * write the same event JSON.
 */
import { createHash } from "node:crypto";
import type { BatonEvent, EventType } from "../engine/events.js";

/** A payload field whose JSON is at least this many UTF-8 bytes is stored in `blobs`. */
export const BLOB_MIN_BYTES = 16 * 1024;

/** Fields, per event type, whose values may be moved to `blobs`. */
export const BLOB_FIELDS: Partial<Record<EventType, readonly string[]>> = {
  run_started: ["inputs"],
  stage_succeeded: ["input", "output"],
  stage_failed: ["input"],
  stage_settled: ["output"],
  stage_completed: ["output"],
  decision: ["items"],
  run_finished: ["output"],
  step_recorded: ["output", "messages"],
};

/** Fields always stored in `blobs`, whatever their size: an agent turn's rendered messages (content-addressed, stored once). */
export const ALWAYS_BLOB: Partial<Record<EventType, readonly string[]>> = { step_recorded: ["messages"] };

/** How a blob reference starts in JSON; a small value that starts so is stored as a blob too. */
export const BLOB_REF_PREFIX = '{"$blob":';

/** Whether `json` is at least {@link BLOB_MIN_BYTES} UTF-8 bytes. */
export function isBig(json: string): boolean {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: only count bytes when it can matter.
  if (json.length >= BLOB_MIN_BYTES) return true;
  return json.length * 3 >= BLOB_MIN_BYTES && Buffer.byteLength(json, "utf8") >= BLOB_MIN_BYTES;
}

/** Whether `value` is a blob reference `{ $blob: "<hash>" }`. */
export function isBlobRef(value: unknown): value is { $blob: string } {
  if (typeof value !== "object" || value === null) return false;
  const ref = (value as { $blob?: unknown }).$blob;
  return typeof ref === "string" && Object.keys(value).length === 1;
}

/** The key of a blob: the hex sha256 of its JSON. */
export function blobHash(json: string): string {
  return createHash("sha256").update(json).digest("hex");
}

/**
 * The event's stored JSON, with large payload fields replaced by blob references; `put(hash,
 * json)` is called for each moved field (the caller stores it, ignoring duplicates). Each
 * payload field is stringified exactly once; events without payload fields in one call.
 */
export function encodeEvent(event: BatonEvent, put: (hash: string, json: string) => void): string {
  const fields = BLOB_FIELDS[event.type];
  if (fields === undefined) return JSON.stringify(event);
  let out = "{";
  for (const key of Object.keys(event)) {
    let json: string | undefined = JSON.stringify((event as unknown as Record<string, unknown>)[key]);
    if (json === undefined) continue;
    if (fields.includes(key) && (isBig(json) || json.startsWith(BLOB_REF_PREFIX) || ALWAYS_BLOB[event.type]?.includes(key))) {
      const hash = blobHash(json);
      put(hash, json);
      json = `{"$blob":"${hash}"}`;
    }
    out += (out.length === 1 ? "" : ",") + JSON.stringify(key) + ":" + json;
  }
  return out + "}";
}

/**
 * Parse a stored event; `refs` lists the blobs it references (usually none), for adapters
 * that fetch blobs in bulk before {@link restoreBlobs}.
 */
export function parseStored(data: string): { event: BatonEvent; refs: string[] } {
  const event = JSON.parse(data) as BatonEvent;
  const fields = BLOB_FIELDS[event.type];
  if (fields === undefined || !data.includes(BLOB_REF_PREFIX)) return { event, refs: [] };
  const obj = event as unknown as Record<string, unknown>;
  const refs: string[] = [];
  for (const key of fields) {
    const value = obj[key];
    if (isBlobRef(value)) refs.push(value.$blob);
  }
  return { event, refs };
}

/** Put the blob-stored fields of a parsed event back (in place); `blob(hash)` returns a blob's JSON. */
export function restoreBlobs(event: BatonEvent, blob: (hash: string) => string | undefined): BatonEvent {
  const fields = BLOB_FIELDS[event.type];
  if (fields === undefined) return event;
  const obj = event as unknown as Record<string, unknown>;
  for (const key of fields) {
    const value = obj[key];
    if (!isBlobRef(value)) continue;
    const json = blob(value.$blob);
    if (json === undefined) throw new Error(`event log is missing blob ${value.$blob} (${event.type}.${key})`);
    obj[key] = JSON.parse(json) as unknown;
  }
  return event;
}

/** Parse a stored event and put its blob-stored fields back, looking blobs up one by one. */
export function decodeEvent(data: string, blob: (hash: string) => string | undefined): BatonEvent {
  const event = JSON.parse(data) as BatonEvent;
  if (BLOB_FIELDS[event.type] === undefined || !data.includes(BLOB_REF_PREFIX)) return event;
  return restoreBlobs(event, blob);
}
