/**
 * The one storage port. Every run is an append-only event log; everything else (trace,
 * resume, runs list) is read from it. Adapters: SQLite (embedded default), memory (tests,
 * benchmarks), PostgreSQL (distributed, later). One conformance suite runs against each.
 */
import type { RunStatus } from "../base/result.js";
import type { BatonEvent } from "../engine/events.js";

/** Status of a run as stored in its row (derived by the store from the events it appends); declared once in ../base/result.ts. */
export type { RunStatus };

/** The run row: a summary kept in step with the log in the same transaction. */
export interface RunRecord {
  readonly id: string;
  readonly pipeline: string;
  readonly planHash: string;
  readonly status: RunStatus;
  /** ISO-8601 UTC. */
  readonly startedAt: string;
  readonly endedAt?: string;
  /** Sequence number of the last event (events are numbered 1, 2, …). */
  readonly seq: number;
  /** Parent run id for sub-pipelines and reruns. */
  readonly parentId?: string;
}

export interface RunFilter {
  readonly status?: RunStatus;
  readonly pipeline?: string;
  /** @default 100 */
  readonly limit?: number;
}

/** A signal sent to a run from outside its owner process (cancel, approve, …). */
export interface RunSignal {
  readonly id: number;
  readonly runId: string;
  readonly kind: string;
  readonly data?: unknown;
  /** ISO-8601 UTC. */
  readonly at: string;
}

/** Thrown by {@link Store.append} when `expectedSeq` is not the run's current sequence number. */
export class ConflictError extends Error {
  override readonly name = "ConflictError";
  constructor(
    readonly runId: string,
    readonly expectedSeq: number,
    readonly actualSeq: number,
  ) {
    super(`run ${runId} was advanced by someone else: expected sequence ${expectedSeq}, found ${actualSeq}`);
  }
}

/**
 * Run `attempt` (read the run, append at its sequence number) until no other appender wins the
 * race in between: a {@link ConflictError} means "read again and retry". For writers that share a
 * run with others (commands writing to a run the workers drive).
 */
export async function retryConflicts<T>(runId: string, attempt: () => Promise<T>, tries = 50): Promise<T> {
  for (let i = 0; i < tries; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
    }
  }
  throw new Error(`run ${runId}: could not append after ${tries} conflicting appends by others; try again`);
}

/**
 * Live text of a model turn while it streams (ephemeral: not part of the log; the finished turn
 * is recorded as a `step_recorded` event). Keyed by {@link liveKey}.
 */
export interface LiveText {
  /** The text so far (its tail, at most {@link LIVE_TEXT_MAX} characters). */
  readonly text: string;
  /** When it was last written, ms since epoch. */
  readonly at: number;
}

/** The most characters of a turn's live text a store keeps (the tail). */
export const LIVE_TEXT_MAX = 8192;

/** `text` cut to its last {@link LIVE_TEXT_MAX} characters (never splitting a surrogate pair). */
export function liveTail(text: string, max: number = LIVE_TEXT_MAX): string {
  if (text.length <= max) return text;
  let start = text.length - max;
  const c = text.charCodeAt(start);
  if (c >= 0xdc00 && c <= 0xdfff) start++; // a low surrogate: its high half was cut off
  return text.slice(start);
}

/** An execution of a stage as live keys name it (the ExecKey fields that matter). */
export interface LiveExec {
  readonly stage: string;
  readonly visit: number;
  readonly item?: number | undefined;
}

/** The key of an execution's live text: `${stage}#${visit}` + `[${item}]` for a for_each item. */
export function liveExecKey(k: LiveExec): string {
  return `${k.stage}#${k.visit}${k.item !== undefined ? `[${k.item}]` : ""}`;
}

/** The key of a model turn's live text: `${stage}#${visit}[${item}]:turn:${n}` (no `[…]` without an item). */
export function liveKey(k: LiveExec, turn: number): string {
  return `${liveExecKey(k)}:turn:${turn}`;
}

/** The parts of a {@link liveKey}, or undefined when `key` is not one. */
export function parseLiveKey(key: string): { stage: string; visit: number; item?: number; turn: number } | undefined {
  const m = /^(.+)#(\d+)(?:\[(\d+)\])?:turn:(\d+)$/.exec(key);
  if (m === null) return undefined;
  return { stage: m[1]!, visit: Number(m[2]), ...(m[3] !== undefined ? { item: Number(m[3]) } : {}), turn: Number(m[4]) };
}

/** Thrown when a run id is unknown. */
export class RunNotFoundError extends Error {
  override readonly name = "RunNotFoundError";
  constructor(readonly runId: string) {
    super(`no run ${runId} in this store: list runs with \`baton runs\``);
  }
}

/**
 * The storage port. All methods are async so remote adapters fit; the SQLite adapter
 * completes synchronously inside them.
 */
export interface Store {
  /**
   * Whether other processes can see this store (SQLite, PostgreSQL): then runs hold renewed
   * leases and poll for signals. An in-memory store is private to its process.
   */
  readonly shared: boolean;
  /**
   * Create a run whose log starts with `events` (the first must be `run_started`).
   * Throws if the id exists. Returns the new sequence number (= events.length).
   */
  create(run: { id: string; pipeline: string; planHash: string; parentId?: string }, events: readonly BatonEvent[]): Promise<number>;
  /**
   * Append events atomically (one transaction) if the run's sequence number is `expectedSeq`;
   * else throw {@link ConflictError} and write nothing. Updates the run row's status/endedAt
   * from `run_finished` / `run_waiting` / `run_resumed` events in the same transaction.
   * Returns the new sequence number.
   */
  append(runId: string, events: readonly BatonEvent[], expectedSeq: number): Promise<number>;
  /**
   * The same as {@link append}, completed synchronously, for stores that can (in-memory):
   * saves the runtime a promise per step. Optional.
   */
  appendNow?(runId: string, events: readonly BatonEvent[], expectedSeq: number): number;
  /** The run row and its whole log, in order. Throws {@link RunNotFoundError}. */
  load(runId: string): Promise<{ run: RunRecord; events: BatonEvent[] }>;
  /** Events with seq > afterSeq, in order (for followers). */
  eventsAfter(runId: string, afterSeq: number): Promise<BatonEvent[]>;
  /** The run row, or undefined. */
  get(runId: string): Promise<RunRecord | undefined>;
  /** Runs, newest first. */
  list(filter?: RunFilter): Promise<RunRecord[]>;
  /** Resolve a unique id prefix (≥ 4 chars) to a run id; throws RunNotFoundError or an ambiguity error. */
  resolveId(prefix: string): Promise<string>;

  /**
   * Take or renew the run's lease for `owner` until now+ttlMs. Succeeds when the run has no
   * lease, an expired one, or one held by `owner`. Returns false when another live owner holds it.
   */
  claim(runId: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Drop the lease if `owner` holds it. */
  release(runId: string, owner: string): Promise<void>;
  /** The current lease holder, if its lease has not expired. */
  leaseHolder(runId: string): Promise<string | undefined>;

  /** Queue a signal for the run's owner. */
  signal(runId: string, kind: string, data?: unknown): Promise<void>;
  /** Signals not yet taken, oldest first; marks them taken. */
  takeSignals(runId: string): Promise<RunSignal[]>;

  /**
   * Live text of a streaming model turn, for other processes' live views (UI): upsert `text`
   * (kept to its last {@link LIVE_TEXT_MAX} characters) under `key` ({@link liveKey}), or
   * delete the key when `text` is undefined. Not part of the log. A write for a run that is
   * unknown or finished is ignored (a late write cannot outlive the run); the store deletes a
   * run's live text when it appends its `run_finished`. Optional to implement (every adapter
   * here does).
   */
  putLive?(run: string, key: string, text: string | undefined): Promise<void>;
  /** The run's live texts by key (empty for an unknown run, or one with none). */
  live?(run: string): Promise<Record<string, LiveText>>;

  /**
   * Records: small JSON documents by (kind, key), kept beside the runs — registered pipelines,
   * API tokens (by hash), idempotency keys, trigger state. Not part of any run's log.
   *
   * `putRecord` writes `value` under the key and returns it (`created: true` when the key was
   * new). With `ifAbsent` it writes only when the key is new and otherwise returns the stored
   * value unchanged: of concurrent writers of one new key exactly one gets `created: true`
   * and all get the same value back (idempotency keys, deduped deliveries rest on this).
   * Values must be JSON; `kind` and `key` are non-empty strings.
   */
  putRecord(kind: string, key: string, value: unknown, o?: { ifAbsent?: boolean }): Promise<{ created: boolean; value: unknown }>;
  /** One record, or undefined. */
  getRecord(kind: string, key: string): Promise<StoredRecord | undefined>;
  /** The records of a kind in key order (code-unit order), optionally only keys starting with `prefix`. */
  listRecords(kind: string, o?: { prefix?: string; limit?: number }): Promise<StoredRecord[]>;
  /** Delete a record; whether it existed. */
  deleteRecord(kind: string, key: string): Promise<boolean>;

  close(): Promise<void>;
}

/** A record kept beside the runs (see {@link Store.putRecord}). */
export interface StoredRecord {
  readonly key: string;
  readonly value: unknown;
  /** When it was last written (ISO 8601). */
  readonly at: string;
}

/** Record kinds and keys are non-empty strings (see {@link Store.putRecord}). */
export function checkRecordKey(kind: string, key: string): void {
  if (typeof kind !== "string" || kind === "") throw new TypeError("a record kind must be a non-empty string");
  if (typeof key !== "string" || key === "") throw new TypeError(`a ${kind} record key must be a non-empty string`);
}

/** A record's value as stored JSON text: it must serialize (functions, undefined and BigInts do not). */
export function recordJson(kind: string, key: string, value: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new TypeError(`record ${kind}/${key}: the value is not JSON (${(err as Error).message})`);
  }
  if (json === undefined) throw new TypeError(`record ${kind}/${key}: the value is not JSON`);
  return json;
}

/**
 * The run a unique id prefix names, among the ids that start with it: the only one, or — when
 * the prefix names a run and its child runs (`PARENT~stage…`, which start with the parent's id) —
 * the shortest, which all the others descend from. Throws {@link RunNotFoundError} for none and
 * an ambiguity error otherwise (`total`: how many match, when `ids` holds only some of them).
 */
export function pickByPrefix(prefix: string, ids: readonly string[], total = ids.length): string {
  if (ids.length === 0) throw new RunNotFoundError(prefix);
  if (total === 1) return ids[0]!;
  let top = ids[0]!;
  for (const id of ids) if (id.length < top.length) top = id;
  if (total === ids.length && ids.every((id) => id === top || id.startsWith(`${top}~`))) return top;
  throw new Error(`run id prefix '${prefix}' matches ${total} runs: give more characters`);
}
