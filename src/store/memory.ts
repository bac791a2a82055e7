/**
 * The in-memory event-log store: tests and benchmarks. Same semantics as the SQLite store,
 * minus durability. Events are kept as given (no cloning on the hot path), but the internal
 * arrays are never handed out.
 */
import { rowChange } from "./status.js";
import type { BatonEvent } from "../engine/events.js";
import { ConflictError, RunNotFoundError, checkRecordKey, liveTail, pickByPrefix, recordJson } from "./port.js";
import type { LiveText, RunFilter, RunRecord, RunSignal, RunStatus, Store, StoredRecord } from "./port.js";

interface PendingSignal {
  readonly id: number;
  readonly kind: string;
  readonly data: unknown;
  readonly at: number;
}

interface MemRun {
  readonly id: string;
  readonly pipeline: string;
  readonly planHash: string;
  readonly parentId: string | undefined;
  readonly startedAt: number;
  status: RunStatus;
  endedAt: number | undefined;
  readonly events: BatonEvent[];
  leaseOwner: string | undefined;
  leaseUntil: number;
  /** Signals not yet taken, oldest first. */
  signals: PendingSignal[];
  /** Live text of streaming turns (see {@link Store.putLive}); created on first use. */
  live: Map<string, LiveText> | undefined;
}

/** Apply the run-row effect of events (see {@link rowChange}). */
function applyStatus(run: MemRun, events: readonly BatonEvent[]): void {
  const c = rowChange(events);
  if (c.status !== undefined) run.status = c.status;
  if (c.endedAt === null) run.endedAt = undefined;
  else if (c.endedAt !== undefined) run.endedAt = c.endedAt;
}

function toRecord(run: MemRun): RunRecord {
  return {
    id: run.id,
    pipeline: run.pipeline,
    planHash: run.planHash,
    status: run.status,
    startedAt: new Date(run.startedAt).toISOString(),
    ...(run.endedAt !== undefined ? { endedAt: new Date(run.endedAt).toISOString() } : {}),
    seq: run.events.length,
    ...(run.parentId !== undefined ? { parentId: run.parentId } : {}),
  };
}

/** Newest first: started_at desc, then id desc (the SQLite store's order). */
function newestFirst(a: MemRun, b: MemRun): number {
  if (a.startedAt !== b.startedAt) return b.startedAt - a.startedAt;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** The in-memory adapter of the {@link Store} port. */
export class MemoryStore implements Store {
  readonly shared = false;
  private readonly runs = new Map<string, MemRun>();
  private nextSignalId = 1;
  /** Records by kind, then key (JSON text: callers never share the stored object). */
  private readonly records = new Map<string, Map<string, { json: string; at: number }>>();

  async create(
    run: { id: string; pipeline: string; planHash: string; parentId?: string },
    events: readonly BatonEvent[],
  ): Promise<number> {
    const first = events[0];
    if (first?.type !== "run_started") throw new Error(`run ${run.id}: the first event must be run_started`);
    if (first.run_id !== run.id) throw new Error(`run ${run.id}: its run_started event names run ${first.run_id}`);
    if (this.runs.has(run.id)) throw new Error(`run ${run.id} already exists`);
    const mem: MemRun = {
      id: run.id,
      pipeline: run.pipeline,
      planHash: run.planHash,
      parentId: run.parentId,
      startedAt: first.at,
      status: "running",
      endedAt: undefined,
      events: events.slice(),
      leaseOwner: undefined,
      leaseUntil: 0,
      signals: [],
      live: undefined,
    };
    applyStatus(mem, events);
    this.runs.set(run.id, mem);
    return mem.events.length;
  }

  async append(runId: string, events: readonly BatonEvent[], expectedSeq: number): Promise<number> {
    return this.appendNow(runId, events, expectedSeq);
  }

  appendNow(runId: string, events: readonly BatonEvent[], expectedSeq: number): number {
    const run = this.runs.get(runId);
    if (run === undefined) throw new RunNotFoundError(runId);
    const log = run.events;
    if (log.length !== expectedSeq) throw new ConflictError(runId, expectedSeq, log.length);
    for (let i = 0; i < events.length; i++) {
      const e = events[i] as BatonEvent;
      log.push(e);
      if (e.type === "run_finished" || e.type === "run_waiting" || e.type === "run_resumed") {
        applyStatus(run, [e]);
        if (e.type === "run_finished") run.live = undefined;
      }
    }
    return log.length;
  }

  async load(runId: string): Promise<{ run: RunRecord; events: BatonEvent[] }> {
    const run = this.must(runId);
    return { run: toRecord(run), events: run.events.slice() };
  }

  async eventsAfter(runId: string, afterSeq: number): Promise<BatonEvent[]> {
    return this.must(runId).events.slice(Math.max(0, afterSeq));
  }

  async get(runId: string): Promise<RunRecord | undefined> {
    const run = this.runs.get(runId);
    return run === undefined ? undefined : toRecord(run);
  }

  async list(filter?: RunFilter): Promise<RunRecord[]> {
    const limit = filter?.limit ?? 100;
    const matches: MemRun[] = [];
    for (const run of this.runs.values()) {
      if (filter?.status !== undefined && run.status !== filter.status) continue;
      if (filter?.pipeline !== undefined && run.pipeline !== filter.pipeline) continue;
      matches.push(run);
    }
    return matches.sort(newestFirst).slice(0, Math.max(0, limit)).map(toRecord);
  }

  async resolveId(prefix: string): Promise<string> {
    if (this.runs.has(prefix)) return prefix;
    if (prefix.length < 4) throw new RunNotFoundError(prefix);
    const ids: string[] = [];
    for (const id of this.runs.keys()) if (id.startsWith(prefix)) ids.push(id);
    return pickByPrefix(prefix, ids);
  }

  async claim(runId: string, owner: string, ttlMs: number): Promise<boolean> {
    const run = this.must(runId);
    const now = Date.now();
    if (run.leaseOwner !== undefined && run.leaseUntil >= now && run.leaseOwner !== owner) return false;
    run.leaseOwner = owner;
    run.leaseUntil = now + ttlMs;
    return true;
  }

  async release(runId: string, owner: string): Promise<void> {
    const run = this.runs.get(runId);
    if (run?.leaseOwner === owner) {
      run.leaseOwner = undefined;
      run.leaseUntil = 0;
    }
  }

  async leaseHolder(runId: string): Promise<string | undefined> {
    const run = this.runs.get(runId);
    if (run?.leaseOwner === undefined || run.leaseUntil < Date.now()) return undefined;
    return run.leaseOwner;
  }

  async signal(runId: string, kind: string, data?: unknown): Promise<void> {
    this.must(runId).signals.push({ id: this.nextSignalId++, kind, data, at: Date.now() });
  }

  async takeSignals(runId: string): Promise<RunSignal[]> {
    const run = this.must(runId);
    const taken = run.signals;
    if (taken.length === 0) return [];
    run.signals = [];
    return taken.map((s) => ({
      id: s.id,
      runId,
      kind: s.kind,
      ...(s.data !== undefined ? { data: s.data } : {}),
      at: new Date(s.at).toISOString(),
    }));
  }

  async putLive(runId: string, key: string, text: string | undefined): Promise<void> {
    const run = this.runs.get(runId);
    if (run === undefined) return;
    if (text === undefined) {
      run.live?.delete(key);
      return;
    }
    if (run.endedAt !== undefined) return; // finished: a late write is dropped
    (run.live ??= new Map()).set(key, { text: liveTail(text), at: Date.now() });
  }

  async live(runId: string): Promise<Record<string, LiveText>> {
    const out: Record<string, LiveText> = {};
    for (const [k, v] of this.runs.get(runId)?.live ?? []) out[k] = v;
    return out;
  }

  async putRecord(kind: string, key: string, value: unknown, o: { ifAbsent?: boolean } = {}): Promise<{ created: boolean; value: unknown }> {
    checkRecordKey(kind, key);
    let m = this.records.get(kind);
    if (!m) this.records.set(kind, (m = new Map()));
    const had = m.get(key);
    if (had && o.ifAbsent) return { created: false, value: JSON.parse(had.json) };
    const json = recordJson(kind, key, value);
    m.set(key, { json, at: Date.now() });
    return { created: had === undefined, value: JSON.parse(json) };
  }

  async getRecord(kind: string, key: string): Promise<StoredRecord | undefined> {
    const r = this.records.get(kind)?.get(key);
    return r ? { key, value: JSON.parse(r.json), at: new Date(r.at).toISOString() } : undefined;
  }

  async listRecords(kind: string, o: { prefix?: string; limit?: number } = {}): Promise<StoredRecord[]> {
    const m = this.records.get(kind);
    if (!m) return [];
    const keys = [...m.keys()].filter((k) => o.prefix === undefined || k.startsWith(o.prefix)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return keys.slice(0, o.limit ?? Infinity).map((k) => {
      const r = m.get(k)!;
      return { key: k, value: JSON.parse(r.json), at: new Date(r.at).toISOString() };
    });
  }

  async deleteRecord(kind: string, key: string): Promise<boolean> {
    return this.records.get(kind)?.delete(key) ?? false;
  }

  async close(): Promise<void> {
    // Nothing to release; the data stays readable until the store is garbage-collected.
  }

  private must(runId: string): MemRun {
    const run = this.runs.get(runId);
    if (run === undefined) throw new RunNotFoundError(runId);
    return run;
  }
}
