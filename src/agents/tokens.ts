/**
 * Counting prompt tokens with a real tokenizer (gpt-tokenizer, BPE ranks shipped in the
 * package, no download). Other providers' tokenizers differ by a few percent; the context check
 * leaves that margin to the provider.
 */
import { countTokens as countO200k } from "gpt-tokenizer/encoding/o200k_base";
import { countTokens as countCl100k } from "gpt-tokenizer/encoding/cl100k_base";

/** Tokens of one chat message (content plus the per-message framing of chat formats). */
const PER_MESSAGE = 4;

/** Count the tokens of chat messages. */
export function countPromptTokens(messages: readonly { role: string; content: string }[], tokenizer: "o200k_base" | "cl100k_base" = "o200k_base"): number {
  const count = tokenizer === "cl100k_base" ? countCl100k : countO200k;
  let n = 3; // reply priming
  for (const m of messages) n += PER_MESSAGE + count(m.content);
  return n;
}
