/**
 * `GET /api/runs/:id/stream`: a run's events as server-sent events. The store is polled
 * (`eventsAfter`) so runs driven by any process sharing the store are followed alike. The live
 * text of model turns streaming now (`store.live`, written coalesced by whichever process runs
 * the turn) is polled with them and sent as `delta` events when it changed.
 */
import type { ServerResponse } from "node:http";
import { liveKey, parseLiveKey, type Store } from "../store/port.js";

/** Timing of event streams. */
export interface StreamOptions {
  /** How often the store is polled for new events, in ms. @default 200 */
  readonly pollMs: number;
  /** How often a comment line keeps idle connections (and proxies) open, in ms. @default 15000 */
  readonly heartbeatMs: number;
  /** Streams open right now, so the server can end them when it closes. */
  readonly open: Set<ServerResponse>;
}

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

/** The turn number of a turn step's name (`turn:3`, `agent:x/turn:3`), or undefined. */
function turnOf(name: string): number | undefined {
  const m = /(?:^|\/)turn:(\d+)$/.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Write each event after `after` as `id: SEQ` + `data: {json}`, then follow the run until it
 * finishes: then an `end` event (`data: {"status": …}`) closes the stream. While a run waits
 * for a human the stream stays open (heartbeats), since someone may answer it.
 *
 * While the run is followed, the text of each model turn streaming now is sent whenever it
 * changed since it was last sent (no `id:`, so a reconnect resumes from the last event):
 * `event: delta` + `data: {"stage":S,"visit":V,"item":I?,"turn":N,"text":TEXT_SO_FAR}` (`item`
 * only for a for_each item; the text is the whole turn so far, or its last 8 KB). A turn whose
 * `step_recorded` event was sent gets no more deltas (the event has the whole turn).
 */
export async function streamRun(res: ServerResponse, store: Store, runId: string, after: number, o: StreamOptions): Promise<void> {
  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    Connection: "keep-alive",
    "X-Accel-Buffering": "no",
  });
  res.write("retry: 2000\n\n");
  o.open.add(res);
  let seq = after;
  let closed = false;
  let busy = false;
  /** Live text last sent, by live key. */
  const sent = new Map<string, string>();
  /** Live keys of turns whose step_recorded event was sent. */
  const recorded = new Set<string>();
  let poll: NodeJS.Timeout | undefined;
  let beat: NodeJS.Timeout | undefined;
  const stop = (): void => {
    if (closed) return;
    closed = true;
    clearInterval(poll);
    clearInterval(beat);
    o.open.delete(res);
    if (!res.writableEnded) res.end();
  };
  const tick = async (): Promise<void> => {
    if (busy || closed) return;
    busy = true;
    try {
      const events = await store.eventsAfter(runId, seq);
      let finished: string | undefined;
      for (const e of events) {
        seq++;
        res.write(`id: ${seq}\ndata: ${JSON.stringify(e)}\n\n`);
        if (e.type === "run_finished") finished = e.status;
        else if (e.type === "run_resumed") finished = undefined;
        else if (e.type === "step_recorded" && e.kind === "turn") {
          const n = turnOf(e.name);
          if (n !== undefined) recorded.add(liveKey(e, n));
        }
      }
      if (finished === undefined && store.live !== undefined) {
        const live = await store.live(runId);
        if (closed) return;
        for (const [key, v] of Object.entries(live)) {
          if (sent.get(key) === v.text || recorded.has(key)) continue;
          const k = parseLiveKey(key);
          if (k === undefined) continue;
          sent.set(key, v.text);
          const data = { stage: k.stage, visit: k.visit, ...(k.item !== undefined ? { item: k.item } : {}), turn: k.turn, text: v.text };
          res.write(`event: delta\ndata: ${JSON.stringify(data)}\n\n`);
        }
        for (const key of sent.keys()) if (!Object.hasOwn(live, key)) sent.delete(key);
      }
      if (finished === undefined && events.length === 0) {
        const status = (await store.get(runId))?.status;
        if (status !== undefined && FINISHED.has(status)) finished = status;
      }
      if (finished !== undefined) {
        res.write(`event: end\ndata: ${JSON.stringify({ status: finished, seq })}\n\n`);
        stop();
      }
    } catch (err) {
      res.write(`event: error\ndata: ${JSON.stringify({ error: (err as Error).message })}\n\n`);
      stop();
    } finally {
      busy = false;
    }
  };
  res.on("close", stop);
  poll = setInterval(() => void tick(), o.pollMs);
  beat = setInterval(() => res.write(": ping\n\n"), o.heartbeatMs);
  await tick();
}
