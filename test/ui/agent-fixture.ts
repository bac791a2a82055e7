/**
 * A tool-using agent for the UI tests: a template whose agent (`openai:gpt-4o-mini`, its
 * `base_url` on the fake OpenAI server of baton/testing) calls `publish`, a `value:` tool that
 * needs a human's approval per call. The fake's first turn asks for two calls (p1 "Tides",
 * p2 "Moons"); once the tool results come back it answers in text.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeOpenAI, type FakeOpenAI, type FakeRequest } from "../../src/testing/index.js";

export const FINAL = "Published what you approved.";

const lastRole = (r: FakeRequest): string | undefined => r.messages.at(-1)?.role;

/** The fake provider, scripted for two publish calls then a final answer; sets a dummy OPENAI_API_KEY. */
export async function startPublishFake(): Promise<FakeOpenAI> {
  process.env.OPENAI_API_KEY ??= "sk-test-not-a-real-key";
  return startFakeOpenAI({
    rules: [
      { match: (r) => lastRole(r) === "tool", reply: { content: FINAL, usage: { prompt_tokens: 120, completion_tokens: 8 } } },
      {
        match: (r) => lastRole(r) === "user",
        reply: {
          toolCalls: [
            { id: "p1", name: "publish", arguments: { title: "Tides" } },
            { id: "p2", name: "publish", arguments: { title: "Moons" } },
          ],
          usage: { prompt_tokens: 80, completion_tokens: 20 },
        },
      },
    ],
  });
}

/** Write the template (into a fresh temp dir, so runs can reload it when answered) and return its path. */
export function writePublishTemplate(fakeUrl: string): string {
  const dir = mkdtempSync(join(tmpdir(), "baton-ui-agent-"));
  const file = join(dir, "publish.yaml");
  writeFileSync(file, `baton: 1
name: agent-publish
tools:
  publish:
    description: Publish a report.
    input: { type: object, required: [title], properties: { title: { type: string } } }
    value: "{ 'ok': true }"
    approval: "Publish {{ args.title }}?"
agents:
  bot:
    model: openai:gpt-4o-mini
    base_url: "${fakeUrl}"
    max_tokens: 100
    tools: [publish]
stages:
  report: { agent: bot, prompt: "Publish the reports" }
output: report
`);
  return file;
}

/** The streamed answer of {@link writeStreamTemplate}'s agent: the fake sends it in 3 chunks. */
export const STREAMED = "Tides rise twice a day because the Moon pulls the oceans toward it and the Earth turns beneath them.";

/**
 * A template whose agent stage (`report`, no tools) runs once a human approved `gate`, so a
 * page can follow the run before the model starts writing. With the fake's `chunkDelayMs` the
 * answer streams over a few seconds.
 */
export function writeStreamTemplate(fakeUrl: string): string {
  const dir = mkdtempSync(join(tmpdir(), "baton-ui-stream-"));
  const file = join(dir, "stream.yaml");
  writeFileSync(file, `baton: 1
name: agent-stream
agents:
  writer:
    model: openai:gpt-4o-mini
    base_url: "${fakeUrl}"
    max_tokens: 100
stages:
  gate: { approval: { message: "Start writing?" } }
  report: { needs: [gate], agent: writer, prompt: "Explain the tides" }
output: report
`);
  return file;
}

/** The final answer of {@link writeLookupTemplate}'s agent, once the tool result is back. */
export const LOOKUP_FINAL = "High tide in Brest is at 06:12.";

/**
 * The fake provider for {@link writeLookupTemplate}: the first turn calls `lookup` once (id
 * "l1", place "Brest"); once the tool result is back it answers {@link LOOKUP_FINAL}.
 */
export async function startLookupFake(): Promise<FakeOpenAI> {
  process.env.OPENAI_API_KEY ??= "sk-test-not-a-real-key";
  return startFakeOpenAI({
    rules: [
      { match: (r) => lastRole(r) === "tool", reply: { content: LOOKUP_FINAL, usage: { prompt_tokens: 90, completion_tokens: 9 } } },
      { match: (r) => lastRole(r) === "user", reply: { toolCalls: [{ id: "l1", name: "lookup", arguments: { place: "Brest" } }], usage: { prompt_tokens: 60, completion_tokens: 12 } } },
    ],
  });
}

/** The prompt of {@link writeLookupTemplate}'s agent stage. */
export const LOOKUP_PROMPT = "When is high tide in Brest?";

/** A template whose agent (stage `ask`) calls one `value:` tool, `lookup`, without approval, then answers: two turns, one call. */
export function writeLookupTemplate(fakeUrl: string): string {
  const dir = mkdtempSync(join(tmpdir(), "baton-ui-lookup-"));
  const file = join(dir, "lookup.yaml");
  writeFileSync(file, `baton: 1
name: agent-lookup
tools:
  lookup:
    description: Look up the tide times of a place.
    input: { type: object, required: [place], properties: { place: { type: string } } }
    value: "{ 'place': args.place, 'high': '06:12' }"
agents:
  tides:
    model: openai:gpt-4o-mini
    base_url: "${fakeUrl}"
    max_tokens: 100
    tools: [lookup]
stages:
  ask: { agent: tides, prompt: "${LOOKUP_PROMPT}" }
output: ask
`);
  return file;
}
