/**
 * Message content for the GenAI semantic conventions' opt-in attributes
 * (`gen_ai.input.messages`, `gen_ai.output.messages`): the messages a turn sent, as the run's
 * log recorded them (AI SDK model messages: `{ role, content: string | parts[] }`), reshaped into
 * the conventions' `{ role, parts: [{ type: "text", content } | { type: "tool_call", id, name,
 * arguments } | { type: "tool_call_response", id, response }] }`. Parts of other kinds are kept as
 * they are. Nothing is added or un-redacted: the values are the log's.
 */

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : undefined);

/** One content part of a logged message in the conventions' shape. */
function part(p: unknown): unknown {
  if (typeof p === "string") return { type: "text", content: p };
  const o = obj(p);
  if (!o) return p;
  switch (o["type"]) {
    case "text":
      return { type: "text", content: o["text"] ?? "" };
    case "reasoning":
      return { type: "reasoning", content: o["text"] ?? "" };
    case "tool-call":
      return { type: "tool_call", id: o["toolCallId"] ?? null, name: o["toolName"] ?? null, arguments: o["input"] ?? null };
    case "tool-result": {
      const out = obj(o["output"]);
      return { type: "tool_call_response", id: o["toolCallId"] ?? null, response: out && "value" in out ? out["value"] : (o["output"] ?? null) };
    }
    default:
      return o;
  }
}

/** A turn's logged messages in the conventions' input-message shape (a non-array is passed through as is). */
export function inputMessages(messages: unknown): unknown {
  if (!Array.isArray(messages)) return messages;
  return messages.map((m) => {
    const o = obj(m);
    if (!o) return m;
    const content = o["content"];
    return { role: o["role"] ?? "user", parts: Array.isArray(content) ? content.map(part) : [part(content ?? "")] };
  });
}

/** A turn's reply (its recorded text and tool calls) as the conventions' output messages. */
export function outputMessages(turn: Obj): unknown {
  const parts: unknown[] = [];
  if (typeof turn["text"] === "string" && turn["text"] !== "") parts.push({ type: "text", content: turn["text"] });
  for (const c of Array.isArray(turn["calls"]) ? (turn["calls"] as unknown[]) : []) {
    const call = obj(c);
    if (call) parts.push({ type: "tool_call", id: call["id"] ?? null, name: call["tool"] ?? null, arguments: call["args"] ?? null });
  }
  const finish = turn["finish_reason"];
  // The conventions' finish reasons are singular (`tool_call`); providers (and Baton's turns) say `tool_calls`.
  return [{ role: "assistant", parts, ...(typeof finish === "string" ? { finish_reason: finish === "tool_calls" ? "tool_call" : finish } : {}) }];
}

/** JSON text of a value for a string attribute (`null` for what JSON cannot hold). */
export function json(v: unknown): string {
  try {
    return JSON.stringify(v) ?? "null";
  } catch {
    return "null";
  }
}
