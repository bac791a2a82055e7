/**
 * What Baton knows about models: context windows and prices (USD per million tokens).
 * Shipped defaults; `baton.config` overrides or adds entries under `models:`.
 */

/** Facts about one model. */
export interface ModelInfo {
  /** Tokens the model accepts (prompt + completion). */
  readonly context_window?: number;
  /** USD per 1,000,000 input tokens. */
  readonly input_usd_per_mtok?: number;
  /** USD per 1,000,000 output tokens. */
  readonly output_usd_per_mtok?: number;
  /** USD per 1,000,000 input tokens read from the provider's prompt cache (default: the input price). */
  readonly cached_input_usd_per_mtok?: number;
  /** Tokenizer used to count prompts. @default "o200k_base" */
  readonly tokenizer?: "o200k_base" | "cl100k_base";
}

/** Shipped defaults, keyed by model id (without provider); a key ending in `*` matches a prefix. */
export const KNOWN_MODELS: Readonly<Record<string, ModelInfo>> = {
  "gpt-4o-mini": { context_window: 128_000, input_usd_per_mtok: 0.15, output_usd_per_mtok: 0.6, cached_input_usd_per_mtok: 0.075 },
  "gpt-4o": { context_window: 128_000, input_usd_per_mtok: 2.5, output_usd_per_mtok: 10, cached_input_usd_per_mtok: 1.25 },
  "gpt-4.1-nano": { context_window: 1_047_576, input_usd_per_mtok: 0.1, output_usd_per_mtok: 0.4, cached_input_usd_per_mtok: 0.025 },
  "gpt-4.1-mini": { context_window: 1_047_576, input_usd_per_mtok: 0.4, output_usd_per_mtok: 1.6, cached_input_usd_per_mtok: 0.1 },
  "gpt-4.1": { context_window: 1_047_576, input_usd_per_mtok: 2, output_usd_per_mtok: 8, cached_input_usd_per_mtok: 0.5 },
  "gpt-5-nano": { context_window: 400_000, input_usd_per_mtok: 0.05, output_usd_per_mtok: 0.4, cached_input_usd_per_mtok: 0.005 },
  "gpt-5-mini": { context_window: 400_000, input_usd_per_mtok: 0.25, output_usd_per_mtok: 2, cached_input_usd_per_mtok: 0.025 },
  "gpt-5": { context_window: 400_000, input_usd_per_mtok: 1.25, output_usd_per_mtok: 10, cached_input_usd_per_mtok: 0.125 },
  "o4-mini": { context_window: 200_000, input_usd_per_mtok: 1.1, output_usd_per_mtok: 4.4, cached_input_usd_per_mtok: 0.275 },
  "o3": { context_window: 200_000, input_usd_per_mtok: 2, output_usd_per_mtok: 8, cached_input_usd_per_mtok: 0.5 },
  "gpt-3.5-turbo": { context_window: 16_385, input_usd_per_mtok: 0.5, output_usd_per_mtok: 1.5, tokenizer: "cl100k_base" },
  "claude-3-5-haiku*": { context_window: 200_000, input_usd_per_mtok: 0.8, output_usd_per_mtok: 4, cached_input_usd_per_mtok: 0.08 },
  "claude-3-5-sonnet*": { context_window: 200_000, input_usd_per_mtok: 3, output_usd_per_mtok: 15, cached_input_usd_per_mtok: 0.3 },
  "claude-3-7-sonnet*": { context_window: 200_000, input_usd_per_mtok: 3, output_usd_per_mtok: 15, cached_input_usd_per_mtok: 0.3 },
  "claude-haiku-4*": { context_window: 200_000, input_usd_per_mtok: 1, output_usd_per_mtok: 5, cached_input_usd_per_mtok: 0.1 },
  "claude-sonnet-4*": { context_window: 200_000, input_usd_per_mtok: 3, output_usd_per_mtok: 15, cached_input_usd_per_mtok: 0.3 },
  "claude-opus-4*": { context_window: 200_000, input_usd_per_mtok: 15, output_usd_per_mtok: 75, cached_input_usd_per_mtok: 1.5 },
  "llama3.1*": { context_window: 128_000, input_usd_per_mtok: 0, output_usd_per_mtok: 0 },
  "llama3.2*": { context_window: 128_000, input_usd_per_mtok: 0, output_usd_per_mtok: 0 },
  "qwen2.5*": { context_window: 32_768, input_usd_per_mtok: 0, output_usd_per_mtok: 0 },
  "mistral*": { context_window: 32_768, input_usd_per_mtok: 0, output_usd_per_mtok: 0 },
};

/**
 * Look a model up: `overrides` (from config, keyed `provider:model` or `model`) first, then the
 * shipped table (exact id, then the longest matching `prefix*`). Mock models cost nothing.
 */
export function modelInfo(provider: string, model: string, overrides: Readonly<Record<string, ModelInfo>> = {}): ModelInfo {
  const base = lookup(KNOWN_MODELS, model) ?? (provider === "mock" ? { context_window: 128_000, input_usd_per_mtok: 0, output_usd_per_mtok: 0 } : {});
  const over = overrides[`${provider}:${model}`] ?? lookup(overrides, model);
  return over ? { ...base, ...over } : base;
}

function lookup(table: Readonly<Record<string, ModelInfo>>, model: string): ModelInfo | undefined {
  if (Object.hasOwn(table, model)) return table[model];
  let best: string | undefined;
  for (const k of Object.keys(table)) {
    if (k.endsWith("*") && model.startsWith(k.slice(0, -1)) && (best === undefined || k.length > best.length)) best = k;
  }
  return best === undefined ? undefined : table[best];
}

/** USD cost of a call, or undefined when the model's prices are unknown. */
export function costOf(info: ModelInfo, tokens: { input: number; output: number; cached?: number | undefined }): number | undefined {
  if (info.input_usd_per_mtok === undefined || info.output_usd_per_mtok === undefined) return undefined;
  // `input` includes the cached tokens (as providers report it); those are billed at the cache price.
  const cached = Math.min(tokens.cached ?? 0, tokens.input);
  const cachedPrice = info.cached_input_usd_per_mtok ?? info.input_usd_per_mtok;
  return ((tokens.input - cached) * info.input_usd_per_mtok + cached * cachedPrice + tokens.output * info.output_usd_per_mtok) / 1_000_000;
}
