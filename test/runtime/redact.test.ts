/** No secret in any stored snapshot (SPEC §5). */
import { describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { definePipeline, execute, MemoryStore } from "../../src/index.js";
import { Redactor, secretValues } from "../../src/runtime/redact.js";

describe("secret redaction", () => {
  it("values of *KEY*/*TOKEN*/*SECRET*/*PASSWORD* env vars and key-shaped strings never reach the log", async () => {
    process.env.PAYMENTS_SERVICE_TOKEN = "tok_live_4f9a8b7c6d5e";
    const planted = "sk-proj-AbCdEfGhIjKlMnOpQrStUv123456";
    try {
      const p = definePipeline({ name: "secrets" })
        .stage("leak", {
          input: { token: process.env.PAYMENTS_SERVICE_TOKEN, note: `Authorization: Bearer ${"x".repeat(24)}` },
          run: (ctx) => {
            ctx.log(`calling with ${process.env.PAYMENTS_SERVICE_TOKEN}`);
            return { echoed: ctx.input, key: planted };
          },
        })
        .stage("fails", { needs: ["leak"], on_error: "continue", run: () => { throw new Error(`denied for ${planted}`); } });
      const store = new MemoryStore();
      const r = await execute(p, {}, { store });
      expect(r.status).toBe("succeeded");
      const { events } = await store.load(r.id);
      const text = JSON.stringify(events);
      expect(text).not.toContain("tok_live_4f9a8b7c6d5e");
      expect(text).not.toContain(planted);
      expect(text).not.toContain("x".repeat(24));
      const ok = events.find((e) => e.type === "stage_succeeded" && e.stage === "leak") as Extract<BatonEvent, { type: "stage_succeeded" }>;
      expect(ok.output).toEqual({ echoed: { token: "[redacted]", note: "Authorization: Bearer [redacted]" }, key: "[redacted]" });
      expect(ok.logs).toEqual(["calling with [redacted]"]);
      const failed = events.find((e) => e.type === "stage_failed") as Extract<BatonEvent, { type: "stage_failed" }>;
      expect(failed.error.message).toBe("denied for [redacted]");
    } finally {
      delete process.env.PAYMENTS_SERVICE_TOKEN;
    }
  });

  it("leaves ordinary data alone and returns the same object when nothing changed", () => {
    const r = new Redactor(secretValues({ DB_PASSWORD: "hunter2hunter2", HOME: "/root" }));
    const v = { a: [1, "two", { b: "Bearer short" }], c: null };
    expect(r.value(v)).toBe(v);
    expect(r.value({ p: "pw=hunter2hunter2" })).toEqual({ p: "pw=[redacted]" });
  });
});

describe("redaction reaches agent turns and waiting tool calls", () => {
  it("a turn's messages, a recorded call's output and a waiting call's args are redacted before storage", async () => {
    const { Redactor } = await import("../../src/runtime/redact.js");
    process.env.SOME_API_KEY = "sk-live-abcdefghijklmnop1234";
    try {
      const r = new Redactor();
      const turn = { type: "step_recorded", at: 1, stage: "s", visit: 1, attempt: 1, name: "turn:1", kind: "turn", started_at: 1, output: { text: "key sk-live-abcdefghijklmnop1234" }, messages: [{ role: "user", content: "use sk-live-abcdefghijklmnop1234 please" }] };
      const waiting = { type: "stage_waiting", at: 1, stage: "s", visit: 1, attempt: 1, message: "m", calls: [{ id: "c", tool: "t", args: { token: "sk-live-abcdefghijklmnop1234" }, message: "ok?" }] };
      r.event(turn as never);
      r.event(waiting as never);
      const all = JSON.stringify([turn, waiting]);
      expect(all).not.toContain("sk-live-abcdefghijklmnop1234");
      expect(all).toContain("[redacted]");
    } finally {
      delete process.env.SOME_API_KEY;
    }
  });
});
