/**
 * `baton.config.(yaml|yml|json|ts|mjs|js)`: provider endpoints and key variables, model
 * overrides (context windows, prices). Keys never go in templates or config files: they are
 * read from the environment variables the config names.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { UserError } from "../base/errors.js";
import { findUp } from "../base/project.js";
import { yamlLib } from "../base/yaml.js";
import type { ModelInfo } from "./models.js";

/** How to reach one provider. */
export interface ProviderConfig {
  /** Base URL of the API (OpenAI-compatible servers: e.g. http://127.0.0.1:11434/v1 for Ollama). */
  readonly base_url?: string;
  /** Environment variable that holds the API key. */
  readonly api_key_env?: string;
}

/** The whole config file. */
export interface BatonConfig {
  readonly providers?: Readonly<Record<string, ProviderConfig>>;
  /** Model facts keyed `provider:model` or `model`: context_window, input/output_usd_per_mtok, tokenizer. */
  readonly models?: Readonly<Record<string, ModelInfo>>;
  /** Resource pools for every run in the process; they replace templates' definitions of the same name. */
  readonly limits?: Readonly<Record<string, { readonly concurrency?: number; readonly rpm?: number; readonly tpm?: number }>>;
  /** Where the config came from (for messages). */
  readonly file?: string;
}

const NAMES = ["baton.config.yaml", "baton.config.yml", "baton.config.json", "baton.config.ts", "baton.config.mjs", "baton.config.js"];

/**
 * Find the config: `$BATON_CONFIG` (relative to `dir`), else `baton.config.*` in `dir` or the
 * nearest directory above it that has one (the project root, as for `.baton/`). Undefined when there is none.
 */
export function findConfig(dir = process.cwd()): string | undefined {
  const env = process.env.BATON_CONFIG;
  if (env) {
    const file = resolve(dir, env);
    if (!existsSync(file)) throw new UserError(`BATON_CONFIG points at ${file}, which does not exist`);
    return file;
  }
  return findUp(NAMES, dir, false);
}

/** Load and check the config (an empty config when there is none). */
export async function loadConfig(dir = process.cwd()): Promise<BatonConfig> {
  const file = findConfig(dir);
  if (!file) return {};
  let data: unknown;
  if (/\.(ts|mjs|js)$/.test(file)) {
    const mod = file.endsWith(".ts")
      ? ((await (await import("tsx/esm/api")).tsImport(pathToFileURL(file).href, import.meta.url)) as { default?: unknown })
      : ((await import(pathToFileURL(file).href)) as { default?: unknown });
    data = mod.default;
    // A .ts file outside an ESM package is loaded as CommonJS: unwrap its `export default`.
    if (data && typeof data === "object" && Object.keys(data).length === 1 && "default" in data) data = (data as { default: unknown }).default;
  } else {
    try {
      data = yamlLib().parse(readFileSync(file, "utf8")); // yaml loads only when there is a YAML config (issue 14.1)
    } catch (err) {
      throw new UserError(`${file}: ${(err as Error).message}`);
    }
  }
  return checkConfig(data ?? {}, file);
}

/** Validate a config object; one clear error per problem found first. */
export function checkConfig(data: unknown, file = "baton.config"): BatonConfig {
  const fail = (msg: string): never => {
    throw new UserError(`${file}: ${msg}`);
  };
  if (typeof data !== "object" || data === null || Array.isArray(data)) fail("expected a mapping with providers: and models:");
  const d = data as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!["providers", "models", "limits"].includes(k)) fail(`unknown field '${k}' (expected providers, models or limits)`);
  const limits = (d.limits ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, l] of Object.entries(limits)) {
    for (const [k, v] of Object.entries(l ?? {})) {
      if (!["concurrency", "rpm", "tpm"].includes(k)) fail(`limits.${name}: unknown field '${k}' (concurrency, rpm, tpm)`);
      if (typeof v !== "number" || !Number.isInteger(v) || v < 1) fail(`limits.${name}.${k} must be a whole number ≥ 1, got ${JSON.stringify(v)}`);
    }
  }
  const providers = (d.providers ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, p] of Object.entries(providers)) {
    if (!["openai", "anthropic", "openai-compatible"].includes(name)) fail(`providers.${name}: unknown provider (openai, anthropic, openai-compatible)`);
    for (const k of Object.keys(p ?? {})) {
      if (/key|token|secret/i.test(k) && k !== "api_key_env") fail(`providers.${name}.${k}: keys never go in config files: set api_key_env to the name of an environment variable holding it`);
      if (!["base_url", "api_key_env"].includes(k)) fail(`providers.${name}: unknown field '${k}' (base_url, api_key_env)`);
    }
  }
  const models = (d.models ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, m] of Object.entries(models)) {
    for (const [k, v] of Object.entries(m ?? {})) {
      if (k === "tokenizer") {
        if (v !== "o200k_base" && v !== "cl100k_base") fail(`models.${name}.tokenizer must be o200k_base or cl100k_base`);
      } else if (["context_window", "input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok"].includes(k)) {
        if (typeof v !== "number" || !(v >= 0)) fail(`models.${name}.${k} must be a number ≥ 0, got ${JSON.stringify(v)}`);
      } else fail(`models.${name}: unknown field '${k}' (context_window, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok, tokenizer)`);
    }
  }
  return { providers: providers as BatonConfig["providers"] & object, models: models as BatonConfig["models"] & object, limits: limits as BatonConfig["limits"] & object, file };
}
