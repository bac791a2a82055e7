/**
 * Issue 15 item 2, the tool-loop path: an agent's tool call that waits for its tool's pool does not
 * time the agent's attempt out (the attempt's `timeout:` pauses while the call waits). Against the
 * fake OpenAI server; the pool is held by another stage until the test lets it go, after longer
 * than the timeout. The assertions are on the outcome (succeeded, one attempt), never on durations.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { MemoryStore, Runtime } from "../../src/index.js";
import { Pools } from "../../src/runtime/pools.js";
import { compileSource } from "../../src/template/index.js";
import { startFakeOpenAI, type FakeOpenAI } from "../../src/testing/index.js";
import { buildTrace } from "../../src/trace/index.js";

const g = globalThis as unknown as { __toolWait: { gate: Promise<void>; held: boolean } };
let open: () => void = () => undefined;
g.__toolWait = { gate: new Promise<void>((r) => (open = r)), held: false };

const dir = mkdtempSync(join(tmpdir(), "baton-tool-wait-"));
writeFileSync(join(dir, "h.mjs"), `export async function hold() { globalThis.__toolWait.held = true; await globalThis.__toolWait.gate; return "held"; }
export async function lookup(ctx) { return "found " + ctx.input.q; }
`);

let fake: FakeOpenAI;
beforeAll(async () => {
  fake = await startFakeOpenAI();
  process.env.OPENAI_API_KEY ??= "sk-test-tool-wait-0000000000";
  fake.addRule({ match: (r) => r.messages.at(-1)?.role === "user", reply: { toolCalls: [{ id: "c1", name: "lookup", arguments: { q: "tides" } }] } });
  fake.addRule({ match: (r) => r.messages.at(-1)?.role === "tool", reply: { content: "done" } });
});
afterAll(async () => {
  await fake.close();
});

describe("a tool call's pool wait does not count against the agent attempt's timeout (issue 15.2)", () => {
  it("the tool waits for its pool longer than the timeout; the agent stage succeeds at its first attempt", async () => {
    const head = `
baton: 1
name: tool-wait
limits: { tools: { concurrency: 1 } }
tools:
  lookup:
    description: look a thing up
    input: { type: object, properties: { q: { type: string } }, required: [q] }
    run: ./h.mjs#lookup
    limit: tools
agents:
  bot: { model: "openai:gpt-4o-mini", base_url: "${fake.url}", max_tokens: 20, tools: [lookup], stream: false }
stages:
`;
    const plan = (stages: string) => compileSource(head + stages, { format: "yaml", baseDir: dir });
    const pools = new Pools();
    const rt = new Runtime({ store: new MemoryStore(), pools });
    // Warm up (the model client and the tool module load on first use), the pool free.
    const warm = await rt.start(plan(`  ask: { agent: bot, prompt: "look it up" }\n`), {});
    expect((await warm.done).status).toBe("succeeded");
    // Another run holds the tools pool first…
    const hog = await rt.start(plan(`  hog: { run: ./h.mjs#hold, limit: tools }\n`), {});
    await vi.waitFor(() => expect(g.__toolWait.held).toBe(true), { timeout: 60_000, interval: 20 });
    // …so the agent's tool call waits for it…
    const h = await rt.start(plan(`  ask: { agent: bot, prompt: "look it up", timeout: 3s, retry: { attempts: 1 } }\n`), {});
    await vi.waitFor(() => expect(pools.get("tools")!.stats().waiting).toBe(1), { timeout: 60_000, interval: 20 });
    // …for longer than the agent's 3 s timeout (a wait the test needs, not a measurement).
    await new Promise((r) => setTimeout(r, 4000));
    open();
    expect((await hog.done).status).toBe("succeeded");
    const r = await h.done;
    expect(r.error?.message).toBeUndefined();
    expect(r.status).toBe("succeeded");
    const ask = buildTrace((await rt.store.load(h.id)).events).stages.find((s) => s.stage === "ask")!;
    expect(ask.attempts).toHaveLength(1);
    expect(ask).toMatchObject({ pool: "tools", waited_for: "pool 'tools' at its concurrency of 1" });
    expect(ask.pool_wait_ms!).toBeGreaterThan(3000);
    await rt.close();
  }, 120_000);
});
