/** The providers a `model: provider:model` may name (no SDK imported: `baton validate` checks them too). */
export const PROVIDERS: readonly string[] = ["openai", "anthropic", "openai-compatible", "mock"];
