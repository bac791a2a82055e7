/**
 * The run stream's `delta` events: live turn text written into the store by another process
 * (here another Store instance on the same SQLite file) reaches a real SSE client as
 * `event: delta` + `data: {"stage","visit","item"?,"turn","text"}` whenever it changed, never
 * twice unchanged, and not after the turn's step_recorded event; and end to end, an agent run
 * streaming through the runtime's coalescing writer shows up in the UI server of another store.
 */
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { Runtime } from "../../src/runtime/runtime.js";
import { liveKey } from "../../src/store/port.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { compileSource } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI } from "../../src/testing/index.js";
import { startUi, type UiServer } from "../../src/ui/server.js";
import { readSse, setup, type Env } from "./helpers.js";

const T0 = Date.UTC(2026, 0, 1);
const started = (id: string): BatonEvent => ({
  type: "run_started", at: T0, run_id: id, pipeline: "p", plan_hash: "h1",
  source: { format: "yaml", text: "stages: []" }, inputs: {}, seed: 1,
} as BatonEvent);

describe("SSE delta events from live turn text", () => {
  let env: Env;
  let other: SqliteStore;
  beforeEach(async () => {
    env = await setup({ runtime: false });
    other = SqliteStore.open(join(env.dir, "ui.db")); // "another process": its own connection
  });
  afterEach(async () => {
    await other.close();
    await env.close();
  });

  it("sends a key's text whenever it changed, in exactly the documented format, and nothing more for a recorded turn", async () => {
    const id = "run-live-0001";
    await other.create({ id, pipeline: "p", planHash: "h1" }, [started(id)]);
    const K1 = liveKey({ stage: "research", visit: 1 }, 1);
    const K2 = liveKey({ stage: "fan", visit: 2, item: 3 }, 4);
    await other.putLive(id, K1, "Tides");
    let seq = 1;
    const raw: string[] = [];
    const deltas: string[] = [];
    let failure: unknown;
    const step = (p: Promise<unknown>): void => void p.catch((err: unknown) => (failure ??= err));
    const sse = await readSse(new URL(`/api/runs/${id}/stream`, env.ui.url).href, {
      timeoutMs: 20_000,
      onEvent: (e) => {
        raw.push(e.event === "message" ? `message:${e.data.type}` : e.event);
        if (e.event === "message" && e.data.type === "step_recorded") {
          // The turn is in the log now: a stale live row for it must not be sent again.
          step((async () => {
            await other.putLive(id, K1, "Tides are caused by the Moon");
            await other.putLive(id, K2, "ab");
          })());
        }
        if (e.event !== "delta") return;
        deltas.push(JSON.stringify(e.data));
        const text = e.data.text as string;
        step((async () => {
          if (text === "Tides") await other.putLive(id, K2, "a");
          else if (text === "a") await other.putLive(id, K1, "Tides are");
          else if (text === "Tides are") {
            const rec: BatonEvent = { type: "step_recorded", at: T0 + 1, stage: "research", visit: 1, attempt: 1, name: "turn:1", kind: "turn", started_at: T0, output: { n: 1, text: "Tides are", calls: [] } } as BatonEvent;
            seq = await other.append(id, [rec], seq);
          } else if (text === "ab") {
            seq = await other.append(id, [{ type: "run_finished", at: T0 + 2, status: "succeeded", output: null } as BatonEvent], seq);
          }
        })());
      },
    });
    expect(failure).toBeUndefined();
    expect(sse.status).toBe(200);
    // Each change once, in order; K2 changing proves polls ran while K1 stood still (no repeats).
    expect(deltas).toEqual([
      '{"stage":"research","visit":1,"turn":1,"text":"Tides"}',
      '{"stage":"fan","visit":2,"item":3,"turn":4,"text":"a"}',
      '{"stage":"research","visit":1,"turn":1,"text":"Tides are"}',
      '{"stage":"fan","visit":2,"item":3,"turn":4,"text":"ab"}',
    ]);
    expect(raw.filter((r) => r.startsWith("message:"))).toEqual(["message:run_started", "message:step_recorded", "message:run_finished"]);
    expect(raw.at(-1)).toBe("end");
    // Deltas carry no id: a reconnect resumes after the last event, not a delta.
    expect(sse.events.filter((e) => e.event === "delta").every((e) => e.id === undefined)).toBe(true);
    // The finished run's live text is gone.
    expect(await env.store.live(id)).toEqual({});
  });

  it("writes the delta lines as `event: delta` then `data: {json}` (raw stream)", async () => {
    const id = "run-live-0002";
    await other.create({ id, pipeline: "p", planHash: "h1" }, [started(id)]);
    await other.putLive(id, liveKey({ stage: "s", visit: 1 }, 2), 'say "hi"\n');
    const ctl = new AbortController();
    const res = await fetch(new URL(`/api/runs/${id}/stream`, env.ui.url), { signal: ctl.signal });
    let buf = "";
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      if (buf.includes("event: delta")) {
        const block = buf.slice(buf.indexOf("event: delta"));
        if (block.includes("\n\n")) break;
      }
    }
    ctl.abort();
    const block = buf.slice(buf.indexOf("event: delta"));
    expect(block.slice(0, block.indexOf("\n\n") + 2)).toBe('event: delta\ndata: {"stage":"s","visit":1,"turn":2,"text":"say \\"hi\\"\\n"}\n\n');
  });
});

const FULL = "Tides rise and fall twice a day.";

describe("an agent run streaming through the runtime, watched from another store's UI server", () => {
  let fake: FakeOpenAI;
  let env: Env;
  let watcherStore: SqliteStore;
  let watcher: UiServer;
  beforeEach(async () => {
    process.env.OPENAI_API_KEY ??= "sk-test-not-a-real-key";
    // Each turn in pieces ~500 ms apart: the writer (250 ms) flushes while it streams. Turn 1
    // says something and calls a tool; turn 2 (after the tool result) answers.
    fake = await startFakeOpenAI({
      rules: [
        { match: (r) => r.messages.at(-1)?.role === "tool", reply: { content: FULL, chunkDelayMs: 500 } },
        { reply: { content: "Let me look up the tide tables.", toolCalls: [{ id: "c1", name: "tides", arguments: { place: "Oslo" } }], chunkDelayMs: 500 } },
      ],
    });
    env = await setup({ runtime: false });
    watcherStore = SqliteStore.open(join(env.dir, "ui.db"));
    watcher = await startUi({ store: watcherStore, port: 0, pollMs: 50, auth: "none" });
  });
  afterEach(async () => {
    await watcher.close();
    await watcherStore.close();
    await env.close();
    await fake.close();
  });

  it("the UI gets growing prefixes of each turn's text as deltas, then its step_recorded; a recorded turn's row is gone", async () => {
    const file = join(env.dir, "agent.yaml");
    writeFileSync(file, `baton: 1
name: live-agent
tools:
  tides:
    description: Tide tables.
    input: { type: object, required: [place], properties: { place: { type: string } } }
    value: "{ 'high': '06:12' }"
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 100, tools: [tides] }
stages:
  research: { agent: bot, prompt: "Explain tides" }
output: research
`);
    const plan = compileSource((await import("node:fs")).readFileSync(file, "utf8"), { format: "yaml", baseDir: env.dir });
    const inProcess: { key: string; text: string }[] = [];
    const runtime = new Runtime({ store: env.store, onDelta: (_id, key, text) => inProcess.push({ key, text }) });
    try {
      const h = await runtime.start(plan, {}, { seed: 1 });
      // While turn 2 streams, what the store holds (turn 1 was recorded before turn 2 began).
      const duringTurn2: string[][] = [];
      let reading: Promise<void> = Promise.resolve();
      const sse = await readSse(new URL(`/api/runs/${h.id}/stream`, watcher.url).href, {
        timeoutMs: 20_000,
        onEvent: (e) => {
          if (e.event === "delta" && e.data.turn === 2) reading = reading.then(async () => void duringTurn2.push(Object.keys(await watcherStore.live(h.id))));
        },
      });
      await reading;
      const result = await h.done;
      expect(result.status).toBe("succeeded");
      expect(result.output).toBe(FULL);
      const turn1 = "Let me look up the tide tables.";
      // In process: every piece, as the text so far.
      expect(new Set(inProcess.map((d) => d.key))).toEqual(new Set(["research#1:turn:1", "research#1:turn:2"]));
      expect(inProcess.filter((d) => d.key.endsWith(":turn:1")).at(-1)?.text).toBe(turn1);
      expect(inProcess.at(-1)).toEqual({ key: "research#1:turn:2", text: FULL });
      // Over the store and SSE: deltas of each turn, each a prefix of its text, before the turn's event.
      const kinds = sse.events.map((e) => (e.event === "message" ? `${e.data.type}${e.data.kind ? `:${e.data.kind}` : ""}` : `${e.event}${e.event === "delta" ? `:${e.data.turn}` : ""}`));
      for (const n of [1, 2]) {
        const deltas = sse.events.filter((e) => e.event === "delta" && e.data.turn === n).map((e) => e.data);
        expect(deltas.length, `deltas of turn ${n}`).toBeGreaterThan(0);
        for (const d of deltas) {
          expect(d).toMatchObject({ stage: "research", visit: 1, turn: n });
          expect(d.item).toBeUndefined();
          expect((n === 1 ? turn1 : FULL).startsWith(d.text)).toBe(true);
        }
      }
      const turnEvents = kinds.flatMap((k, i) => (k === "step_recorded:turn" ? [i] : []));
      expect(turnEvents).toHaveLength(2);
      expect(kinds.lastIndexOf("delta:1")).toBeLessThan(turnEvents[0]!);
      expect(kinds.indexOf("delta:2")).toBeGreaterThan(kinds.indexOf("step_recorded:tool_call"));
      expect(kinds.lastIndexOf("delta:2")).toBeLessThan(turnEvents[1]!);
      expect(kinds.at(-1)).toBe("end");
      // Turn 1's row was deleted once it was recorded: while turn 2 streamed the store held turn 2 only.
      expect(duringTurn2.length).toBeGreaterThan(0);
      for (const keys of duringTurn2) expect(keys.filter((k) => k !== "research#1:turn:2")).toEqual([]);
      expect(await watcherStore.live(h.id)).toEqual({});
      // The log holds each turn once, not per token.
      const { events } = await env.store.load(h.id);
      expect(events.filter((e) => e.type === "step_recorded" && e.kind === "turn")).toHaveLength(2);
    } finally {
      await runtime.close();
    }
  });
});
