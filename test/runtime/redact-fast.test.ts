/**
 * The redactor's fast paths (issue 14: redaction walked every field of every event) stay total:
 * the environment is scanned on first need (so a secret set after the redactor was made is still
 * found), a stage start carries nothing to redact, and a stage's outcome is redacted at any depth.
 */
import { describe, expect, it } from "vitest";
import type { BatonEvent } from "../../src/engine/events.js";
import { definePipeline, execute, MemoryStore } from "../../src/index.js";
import { Redactor } from "../../src/runtime/redact.js";

const secret = "tok_fastpath_5e4d3c2b1a";

describe("redaction fast paths", () => {
  it("the environment is read when the first long string is met, not when the redactor is made", () => {
    const r = new Redactor();
    process.env.FASTPATH_API_TOKEN = secret;
    try {
      expect(r.value({ n: 1, ok: true, s: "short" })).toEqual({ n: 1, ok: true, s: "short" });
      expect(r.text(`a ${secret} b`)).toBe("a [redacted] b");
    } finally {
      delete process.env.FASTPATH_API_TOKEN;
    }
  });

  it("stage outcomes are redacted in nested strings, arrays, logs and errors; starts are left as they are", () => {
    const r = new Redactor([secret]);
    const started = { type: "stage_started", at: 1, stage: "s", visit: 1, attempt: 1, queued_ms: 0 } as BatonEvent;
    const copy = { ...started };
    r.event(started);
    expect(started).toEqual(copy);
    const ok = {
      type: "stage_succeeded", at: 2, stage: "s", visit: 1, attempt: 1,
      input: { deep: [{ k: [`x ${secret}`] }] }, output: [1, [2, [`${secret}`]], { n: null }], logs: [`log ${secret}`],
    } as unknown as BatonEvent;
    r.event(ok);
    const failed = { type: "stage_failed", at: 3, stage: "s", visit: 1, attempt: 2, error: { kind: "handler", message: `denied ${secret}`, retryable: true } } as BatonEvent;
    r.event(failed);
    const text = JSON.stringify([ok, failed]);
    expect(text).not.toContain(secret);
    expect(ok).toMatchObject({ input: { deep: [{ k: ["x [redacted]"] }] }, output: [1, [2, ["[redacted]"]], { n: null }], logs: ["log [redacted]"] });
    expect(failed).toMatchObject({ error: { message: "denied [redacted]" } });
  });

  it("a run's stored log holds no secret from a handler's nested output, its logs or its error", async () => {
    process.env.FASTPATH_DB_PASSWORD = secret;
    try {
      const p = definePipeline({ name: "fast-redact" })
        .stage("a", { run: (ctx) => { ctx.log(`pw ${secret}`); return { list: [{ pw: secret }], n: 3 }; } })
        .stage("b", { needs: ["a"], on_error: "continue", run: () => { throw new Error(`no ${secret}`); } });
      const store = new MemoryStore();
      const res = await execute(p, {}, { store });
      expect(res.status).toBe("succeeded");
      const { events } = await store.load(res.id);
      expect(JSON.stringify(events)).not.toContain(secret);
      const a = events.find((e) => e.type === "stage_succeeded" && e.stage === "a") as Extract<BatonEvent, { type: "stage_succeeded" }>;
      expect(a.output).toEqual({ list: [{ pw: "[redacted]" }], n: 3 });
    } finally {
      delete process.env.FASTPATH_DB_PASSWORD;
    }
  });
});
