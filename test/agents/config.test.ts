/** baton.config: providers, model facts, and keys kept out of files. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkConfig, loadConfig } from "../../src/agents/config.js";
import { modelInfo, costOf } from "../../src/agents/models.js";
import { expandEnv } from "../../src/agents/providers.js";

describe("baton.config", () => {
  it("loads YAML and TypeScript configs from the working directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), "baton-cfg-"));
    writeFileSync(join(dir, "baton.config.yaml"), "providers:\n  openai-compatible: { base_url: http://127.0.0.1:11434/v1 }\nmodels:\n  llama3.1: { context_window: 8192 }\n");
    const c = await loadConfig(dir);
    expect(c.providers?.["openai-compatible"]?.base_url).toBe("http://127.0.0.1:11434/v1");
    expect(modelInfo("openai-compatible", "llama3.1", c.models).context_window).toBe(8192);
    const ts = mkdtempSync(join(tmpdir(), "baton-cfg-"));
    writeFileSync(join(ts, "baton.config.ts"), "const c: { models: Record<string, { input_usd_per_mtok: number }> } = { models: { 'gpt-4o-mini': { input_usd_per_mtok: 1 } } };\nexport default c;\n");
    expect(modelInfo("openai", "gpt-4o-mini", (await loadConfig(ts)).models).input_usd_per_mtok).toBe(1);
  });

  it("refuses keys in config files and unknown fields, with the fix", () => {
    expect(() => checkConfig({ providers: { openai: { api_key: "sk-123" } } }, "baton.config.yaml")).toThrow(
      "baton.config.yaml: providers.openai.api_key: keys never go in config files: set api_key_env to the name of an environment variable holding it",
    );
    expect(() => checkConfig({ providres: {} })).toThrow("unknown field 'providres'");
    expect(() => checkConfig({ models: { x: { context_window: -1 } } })).toThrow("models.x.context_window must be a number ≥ 0, got -1");
  });

  it("model facts: exact ids, prefixes, overrides; cost per million tokens", () => {
    expect(modelInfo("anthropic", "claude-sonnet-4-5-20250929").context_window).toBe(200_000);
    expect(costOf(modelInfo("openai", "gpt-4o-mini"), { input: 1_000_000, output: 1_000_000 })).toBeCloseTo(0.75, 10);
    expect(costOf(modelInfo("openai-compatible", "unknown-model"), { input: 10, output: 10 })).toBeUndefined();
  });

  it("expands ${VAR} and ${VAR:-default} in model and base_url", () => {
    process.env.BATON_TEST_MODEL = "openai:gpt-4o";
    expect(expandEnv("${BATON_TEST_MODEL:-mock:x}", "m")).toBe("openai:gpt-4o");
    expect(expandEnv("${BATON_TEST_UNSET:-mock:x}", "m")).toBe("mock:x");
    expect(() => expandEnv("${BATON_TEST_UNSET}", "agent 'a': model")).toThrow("agent 'a': model refers to ${BATON_TEST_UNSET}, which is not set in the environment");
    delete process.env.BATON_TEST_MODEL;
  });
});
