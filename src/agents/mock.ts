/**
 * The `mock:` provider: a stand-in language model for offline demos and examples, NOT a real
 * model. It answers deterministically from the prompt: when the agent asks for JSON (an
 * `output:` schema is in the system message) it returns a value shaped like the schema;
 * otherwise a short text that quotes the prompt. Tests use the fake OpenAI server instead,
 * which exercises the real provider clients.
 */
import type { LanguageModelV3, LanguageModelV3CallOptions, LanguageModelV3GenerateResult, LanguageModelV3StreamPart } from "@ai-sdk/provider";

function textOf(options: LanguageModelV3CallOptions): { system: string; user: string } {
  let system = "";
  let user = "";
  for (const m of options.prompt) {
    if (m.role === "system") system += m.content + "\n";
    else if (m.role === "user") for (const p of m.content) if (p.type === "text") user += p.text + "\n";
  }
  return { system, user: user.trim() };
}

/** A value shaped like a JSON Schema, derived deterministically from `seed`. */
export function sampleOf(schema: unknown, seed: string, depth = 0): unknown {
  const s = (schema ?? {}) as Record<string, unknown>;
  if (s.default !== undefined) return s.default;
  if (Array.isArray(s.enum) && s.enum.length) return s.enum[seed.length % s.enum.length];
  if (s.const !== undefined) return s.const;
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, unknown>)) out[k] = depth > 6 ? null : sampleOf(v, `${seed}.${k}`, depth + 1);
      return out;
    }
    case "array": {
      const n = Math.max(Number(s.minItems ?? 0), 3);
      return Array.from({ length: depth > 6 ? 0 : n }, (_, i) => sampleOf(s.items, `${seed}[${i}]`, depth + 1));
    }
    case "number":
      return Math.min(Number(s.maximum ?? 1), Math.max(Number(s.minimum ?? 0), 0.9));
    case "integer":
      return Math.max(Number(s.minimum ?? 0), Math.min(Number(s.maximum ?? 3), 3));
    case "boolean":
      return true;
    case "null":
      return null;
    default:
      return `${seed.split(".").at(-1)?.replace(/\[\d+\]/, "")} (mock)`;
  }
}

/** A mock language model with the given id. */
export function mockModel(modelId: string): LanguageModelV3 {
  return {
    specificationVersion: "v3",
    provider: "mock",
    modelId,
    supportedUrls: {},
    async doGenerate(options): Promise<LanguageModelV3GenerateResult> {
      const { system, user } = textOf(options);
      const m = /JSON Schema:\s*(\{[\s\S]*\})\s*$/.exec(system.trim());
      let text: string;
      if (m) {
        let schema: unknown = {};
        try {
          schema = JSON.parse(m[1]!);
        } catch {
          schema = {};
        }
        text = JSON.stringify(sampleOf(schema, "reply"));
      } else {
        text = `[mock ${modelId}] ${user.replace(/\s+/g, " ").slice(0, 160)}`;
      }
      const input = Math.ceil((system.length + user.length) / 4);
      const output = Math.ceil(text.length / 4);
      return {
        content: [{ type: "text", text }],
        finishReason: { unified: "stop", raw: "stop" },
        usage: { inputTokens: { total: input, noCache: input, cacheRead: undefined, cacheWrite: undefined }, outputTokens: { total: output, text: output, reasoning: undefined } },
        warnings: [],
      };
    },
    async doStream(options) {
      // The same answer as doGenerate, streamed in a few pieces (live views show it arriving).
      const r = await this.doGenerate(options);
      const text = r.content.map((p) => (p.type === "text" ? p.text : "")).join("");
      const size = Math.max(1, Math.ceil(text.length / 4));
      const parts: LanguageModelV3StreamPart[] = [{ type: "stream-start", warnings: [] }, { type: "text-start", id: "t" }];
      for (let i = 0; i < text.length; i += size) parts.push({ type: "text-delta", id: "t", delta: text.slice(i, i + size) });
      parts.push({ type: "text-end", id: "t" }, { type: "finish", finishReason: r.finishReason, usage: r.usage });
      return {
        stream: new ReadableStream<LanguageModelV3StreamPart>({
          start(c) {
            for (const p of parts) c.enqueue(p);
            c.close();
          },
        }),
      };
    },
  };
}
