/**
 * `model: provider:model` → an AI SDK language model. Providers are configured the usual way:
 * `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` (or the variable named by `api_key_env`), and a base
 * URL for OpenAI-compatible servers in the agent or in `baton.config`.
 */
import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import type { LanguageModel } from "ai";
import { NonRetryableError } from "../base/errors.js";
import type { BatonConfig } from "./config.js";
import { mockModel } from "./mock.js";
import { PROVIDERS } from "../base/providers.js";
import { modelInfo, type ModelInfo } from "./models.js";

/** An agent as declared under `agents:`. */
export interface AgentSpec {
  readonly model: string;
  readonly system?: string;
  readonly temperature?: number;
  readonly max_tokens?: number;
  /** Its pool: a name, or `{ pool, key }` (a pool instance per key). */
  readonly limit?: string | { readonly pool: string; readonly key?: string };
  readonly base_url?: string;
  readonly api_key_env?: string;
  readonly output?: unknown;
}

export interface ResolvedModel {
  readonly model: LanguageModel;
  readonly provider: string;
  readonly modelId: string;
  readonly info: ModelInfo;
}

const DEFAULT_KEY_ENV: Record<string, string | undefined> = { openai: "OPENAI_API_KEY", anthropic: "ANTHROPIC_API_KEY", "openai-compatible": undefined };

// Clients are reused per (provider, base URL, key) so connections are pooled, and so are their
// model objects (building one is most of the cost of a call that does not go out: issue 14).
// Keyed by what they are built from, so a changed key, base URL or model id gets a new one.
const clients = new Map<string, (id: string) => LanguageModel>();
const models = new Map<string, LanguageModel>();
/** Cached model objects at most (a key rotated many times must not grow the cache without bound). */
const MAX_MODELS = 256;

/**
 * Expand `${NAME}` and `${NAME:-default}` from the environment (in `model` and `base_url`, so a
 * template can choose its provider at run time). An unset variable without a default is an error.
 */
export function expandEnv(text: string, where: string): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_, name: string, dflt: string | undefined) => {
    const v = process.env[name];
    if (v !== undefined && v !== "") return v;
    if (dflt !== undefined) return dflt;
    throw new NonRetryableError(`${where} refers to \${${name}}, which is not set in the environment (write \${${name}:-default} for a default)`, { kind: "template" });
  });
}

/** Resolve an agent's model. Errors are non-retryable and say what to set. */
export function resolveModel(agentName: string, declared: AgentSpec, config: BatonConfig): ResolvedModel {
  const agent: AgentSpec = {
    ...declared,
    model: expandEnv(declared.model, `agent '${agentName}': model`),
    ...(declared.base_url !== undefined ? { base_url: expandEnv(declared.base_url, `agent '${agentName}': base_url`) } : {}),
  };
  const colon = agent.model.indexOf(":");
  if (colon <= 0) throw new NonRetryableError(`agent '${agentName}': model '${agent.model}' must be provider:model (openai, anthropic, openai-compatible or mock)`, { kind: "template" });
  const provider = agent.model.slice(0, colon);
  const modelId = agent.model.slice(colon + 1);
  const info = modelInfo(provider, modelId, config.models);
  if (provider === "mock") return { model: mockModel(modelId), provider, modelId, info };
  if (!PROVIDERS.includes(provider) || !(provider in DEFAULT_KEY_ENV)) {
    throw new NonRetryableError(`agent '${agentName}': unknown provider '${provider}' in '${agent.model}' (${PROVIDERS.join(", ")})`, { kind: "template" });
  }
  const pc = config.providers?.[provider] ?? {};
  const baseURL = agent.base_url ?? pc.base_url;
  const keyEnv = agent.api_key_env ?? pc.api_key_env ?? DEFAULT_KEY_ENV[provider];
  const apiKey = keyEnv ? process.env[keyEnv] : undefined;
  if (provider === "openai-compatible" && !baseURL) {
    throw new NonRetryableError(`agent '${agentName}': openai-compatible models need a base_url (in the agent or under providers.openai-compatible in baton.config), e.g. http://127.0.0.1:11434/v1 for Ollama`, { kind: "template" });
  }
  if (provider !== "openai-compatible" && !apiKey) {
    throw new NonRetryableError(`agent '${agentName}' (${agent.model}) needs an API key: set ${keyEnv} in the environment${agent.api_key_env ? "" : " (or name another variable with api_key_env)"}`, { kind: "auth" });
  }
  if (keyEnv && agent.api_key_env && !apiKey && provider === "openai-compatible") {
    throw new NonRetryableError(`agent '${agentName}': api_key_env names ${keyEnv}, which is not set in the environment`, { kind: "auth" });
  }
  const key = `${provider}\0${baseURL ?? ""}\0${apiKey ?? ""}`;
  const modelKey = `${key}\0${modelId}`;
  const cached = models.get(modelKey);
  if (cached) return { model: cached, provider, modelId, info };
  let make = clients.get(key);
  if (!make) {
    if (provider === "openai") {
      const c = createOpenAI({ apiKey: apiKey!, ...(baseURL ? { baseURL } : {}) });
      make = (id) => c.chat(id);
    } else if (provider === "anthropic") {
      const c = createAnthropic({ apiKey: apiKey!, ...(baseURL ? { baseURL } : {}) });
      make = (id) => c(id);
    } else {
      const c = createOpenAICompatible({ name: "openai-compatible", baseURL: baseURL!, includeUsage: true, ...(apiKey ? { apiKey } : {}) });
      make = (id) => c(id);
    }
    clients.set(key, make);
  }
  const model = make(modelId);
  if (models.size >= MAX_MODELS) models.clear();
  models.set(modelKey, model);
  return { model, provider, modelId, info };
}
