/**
 * The coalescing writer of live turn text (see {@link Store.putLive}): streamed pieces of model
 * turns are buffered per key in the process that runs the turn and written to the store at most
 * once per interval per run, so other processes (the UI, which polls the store) see the text
 * grow without a write per token. When a turn's `step_recorded` event is appended its key is
 * cleared (the log has the turn now), when an attempt ends its execution's keys are, and when
 * the run stops here everything this writer wrote for it is deleted.
 */
import type { BatonEvent } from "../engine/events.js";
import { liveExecKey, liveKey, liveTail, type Store } from "./port.js";

/** Options of a {@link LiveWriter}. */
export interface LiveWriterOptions {
  /** Least time between two writes of one run's live text, in ms. @default 250 */
  readonly intervalMs?: number;
  /**
   * Run `fn` after `ms`; returns a function that cancels it. @default an unref'd setTimeout.
   * Tests pass a manual scheduler.
   */
  readonly schedule?: (fn: () => void, ms: number) => () => void;
  /** A write that failed (live text is best effort: the run goes on). @default ignored */
  readonly onError?: (err: unknown, run: string) => void;
}

/** What one run's live text looks like in this process. */
interface RunLive {
  /** The whole text so far of each turn streaming now. */
  readonly texts: Map<string, string>;
  /** Writes not sent yet: the text to put, or undefined to delete. */
  readonly dirty: Map<string, string | undefined>;
  /** Keys that have a row in the store (or will, once the write in flight lands). */
  readonly stored: Set<string>;
  /** Cancels the pending interval flush. */
  cancel: (() => void) | undefined;
  /** The flush in flight. */
  writing: Promise<void> | undefined;
  /** Flush as soon as the write in flight is done (a turn ended meanwhile). */
  urgent: boolean;
  /** The run stopped here: no more text is taken; the state goes once its last writes are done. */
  stopped: boolean;
}

const defaultSchedule = (fn: () => void, ms: number): (() => void) => {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
};

/** The `turn:N` of a turn step's name (`turn:3`, or `agent:x/turn:3` for ctx.agent), or undefined. */
function turnOf(name: string): number | undefined {
  const m = /(?:^|\/)turn:(\d+)$/.exec(name);
  return m === null ? undefined : Number(m[1]);
}

export class LiveWriter {
  private readonly runs = new Map<string, RunLive>();
  private readonly intervalMs: number;
  private readonly schedule: (fn: () => void, ms: number) => () => void;

  /** `store` undefined: text is only accumulated (for in-process listeners), never written. */
  constructor(
    private readonly store: Pick<Store, "putLive"> | undefined,
    private readonly o: LiveWriterOptions = {},
  ) {
    this.intervalMs = o.intervalMs ?? 250;
    this.schedule = o.schedule ?? defaultSchedule;
  }

  /** Add a streamed piece of a turn's text (`key`: {@link liveKey}); returns the turn's text so far. */
  delta(run: string, key: string, piece: string): string {
    let r = this.runs.get(run);
    if (r?.stopped) return (r.texts.get(key) ?? "") + piece;
    if (r === undefined) {
      r = { texts: new Map(), dirty: new Map(), stored: new Set(), cancel: undefined, writing: undefined, urgent: false, stopped: false };
      this.runs.set(run, r);
    }
    const text = (r.texts.get(key) ?? "") + piece;
    r.texts.set(key, text);
    if (this.store?.putLive === undefined) return text;
    r.dirty.set(key, text);
    if (r.cancel === undefined && r.writing === undefined) this.arm(run, r);
    return text;
  }

  /** The text so far of a turn streaming now, if any. */
  text(run: string, key: string): string | undefined {
    return this.runs.get(run)?.texts.get(key);
  }

  /** The turn is over (recorded, or its attempt ended): forget its text and delete its row now. */
  end(run: string, key: string): void {
    const r = this.runs.get(run);
    if (r === undefined) return;
    this.drop(r, key);
    this.urge(run, r);
    this.gc(run, r);
  }

  /** The execution's attempt is over: end every turn of it streaming now. */
  endExec(run: string, exec: { stage: string; visit: number; item?: number | undefined }): void {
    const r = this.runs.get(run);
    if (r === undefined) return;
    const prefix = `${liveExecKey(exec)}:`;
    for (const key of new Set([...r.texts.keys(), ...r.stored, ...r.dirty.keys()])) if (key.startsWith(prefix)) this.drop(r, key);
    this.urge(run, r);
    this.gc(run, r);
  }

  /**
   * Follow what a run appended: a turn's `step_recorded` ends its key; an attempt's outcome
   * (succeeded, failed, cancelled, waiting) ends its execution's; `run_finished` stops the run.
   */
  observe(run: string, events: readonly BatonEvent[]): void {
    if (!this.runs.has(run)) return;
    for (const e of events) {
      switch (e.type) {
        case "step_recorded": {
          const n = e.kind === "turn" ? turnOf(e.name) : undefined;
          if (n !== undefined) this.end(run, liveKey(e, n));
          break;
        }
        case "stage_succeeded":
        case "stage_failed":
        case "stage_cancelled":
        case "stage_waiting":
          this.endExec(run, e);
          break;
        case "run_finished":
          void this.stop(run);
          return;
      }
    }
  }

  /** The run stopped in this process: take no more text for it and delete what was written. */
  async stop(run: string): Promise<void> {
    const r = this.runs.get(run);
    if (r === undefined) return;
    r.stopped = true;
    r.cancel?.();
    r.cancel = undefined;
    for (const key of [...r.texts.keys(), ...r.stored, ...r.dirty.keys()]) this.drop(r, key);
    this.urge(run, r);
    while (r.writing !== undefined) await r.writing;
    if (this.runs.get(run) === r) this.runs.delete(run);
  }

  /** Writes in flight and pending, done (every run's). */
  async flushAll(): Promise<void> {
    for (const [run, r] of this.runs) this.urge(run, r);
    for (const r of this.runs.values()) while (r.writing !== undefined) await r.writing;
  }

  /** Stop every run (delete what was written) and wait for it. */
  async close(): Promise<void> {
    await Promise.all([...this.runs.keys()].map((run) => this.stop(run)));
  }

  /** Runs with live state in this writer (diagnostics and tests). */
  get size(): number {
    return this.runs.size;
  }

  /** Forget a run with nothing streaming, stored or pending. */
  private gc(run: string, r: RunLive): void {
    if (r.texts.size === 0 && r.dirty.size === 0 && r.stored.size === 0 && r.writing === undefined && r.cancel === undefined && this.runs.get(run) === r) {
      this.runs.delete(run);
    }
  }

  /** Forget a key's text; delete its row if one was (or is being) written. */
  private drop(r: RunLive, key: string): void {
    r.texts.delete(key);
    if (r.stored.has(key)) r.dirty.set(key, undefined);
    else r.dirty.delete(key);
  }

  /** Flush now (deletes should not wait for the interval), or right after the write in flight. */
  private urge(run: string, r: RunLive): void {
    if (r.dirty.size === 0) return;
    if (r.writing !== undefined) {
      r.urgent = true;
      return;
    }
    r.cancel?.();
    r.cancel = undefined;
    this.flush(run, r);
  }

  /** Flush once the interval has passed. */
  private arm(run: string, r: RunLive): void {
    r.cancel = this.schedule(() => {
      r.cancel = undefined;
      this.flush(run, r);
    }, this.intervalMs);
  }

  /** Send every pending write of the run (in one go); then wait at least an interval before the next. */
  private flush(run: string, r: RunLive): void {
    const put = this.store?.putLive?.bind(this.store);
    if (put === undefined || r.dirty.size === 0 || r.writing !== undefined) return;
    const writes = [...r.dirty];
    r.dirty.clear();
    r.urgent = false;
    for (const [key, text] of writes) {
      if (text === undefined) r.stored.delete(key);
      else r.stored.add(key);
    }
    const writing = Promise.all(writes.map(([key, text]) => put(run, key, text === undefined ? undefined : liveTail(text)))).then(
      () => undefined,
      (err: unknown) => this.o.onError?.(err, run),
    );
    r.writing = writing.then(() => {
      r.writing = undefined;
      if (r.dirty.size === 0) return this.gc(run, r);
      if (r.urgent || r.stopped) this.urge(run, r);
      else if (r.cancel === undefined) this.arm(run, r);
    });
  }
}
