/**
 * Model objects are built once per (provider, base URL, API key, model id) and reused by every
 * call (issue 14: rebuilding one per call was most of Baton's per-call overhead); a changed key,
 * base URL or model id gets a new one that uses it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { resolveModel } from "../../src/agents/providers.js";

const KEY = "BATON_TEST_CACHE_OPENAI_KEY";
/** The Authorization header the model would send (the AI SDK keeps its headers in `config`). */
async function auth(m: unknown): Promise<string | undefined> {
  const cfg = (m as { config: { headers: () => Record<string, string | undefined> | Promise<Record<string, string | undefined>> } }).config;
  const h = await cfg.headers();
  return h.Authorization ?? h.authorization;
}

afterEach(() => {
  delete process.env[KEY];
});

describe("model object cache", () => {
  it("the same agent resolves to the same model object on every call", () => {
    process.env[KEY] = "sk-cache-one-0000000000000000";
    const agent = { model: "openai:gpt-4o-mini", api_key_env: KEY };
    const a = resolveModel("w", agent, {});
    const b = resolveModel("w", agent, {});
    expect(b.model).toBe(a.model);
    expect(b.modelId).toBe("gpt-4o-mini");
  });

  it("a changed API key, base URL or model id gets a new model object that uses it", async () => {
    process.env[KEY] = "sk-cache-one-0000000000000000";
    const agent = { model: "openai:gpt-4o-mini", api_key_env: KEY };
    const first = resolveModel("w", agent, {}).model;
    expect(await auth(first)).toBe("Bearer sk-cache-one-0000000000000000");
    process.env[KEY] = "sk-cache-two-0000000000000000";
    const rotated = resolveModel("w", agent, {}).model;
    expect(rotated).not.toBe(first);
    expect(await auth(rotated)).toBe("Bearer sk-cache-two-0000000000000000");
    const other = resolveModel("w", { ...agent, base_url: "http://127.0.0.1:9/v1" }, {}).model;
    expect(other).not.toBe(rotated);
    expect((other as unknown as { config: { url: (o: { path: string }) => string } }).config.url({ path: "/chat/completions" })).toBe("http://127.0.0.1:9/v1/chat/completions");
    const model2 = resolveModel("w", { ...agent, model: "openai:gpt-4o" }, {}).model;
    expect(model2).not.toBe(rotated);
    expect((model2 as unknown as { modelId: string }).modelId).toBe("gpt-4o");
  });
});
