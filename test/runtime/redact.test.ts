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

describe("redaction is total (issue 13 item 3)", () => {
  const secret = "tok_total_9f8e7d6c5b4a";
  const r = new Redactor(secretValues({ BILLING_API_TOKEN: secret }));

  it("redacts object keys: the secret inside a key is replaced, order kept, clashes numbered", () => {
    const out = r.value({ [secret]: 1, keep: 2, [`id_${secret}`]: { [secret]: "x" }, "[redacted]": 3 });
    expect(Object.keys(out)).toEqual(["[redacted] (2)", "keep", "id_[redacted]", "[redacted]"]);
    expect(out).toEqual({ "[redacted] (2)": 1, keep: 2, "id_[redacted]": { "[redacted]": "x" }, "[redacted]": 3 });
    expect(JSON.stringify(out)).not.toContain(secret);
    // A key renamed to __proto__ would not set the prototype: it stays data.
    const proto = new Redactor(["__proto__x"]).value({ "__proto__x": 1 });
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
  });

  it("redacts values at any depth: 10,000 levels, no stack overflow, the input untouched", () => {
    // (JSON.stringify itself overflows the stack at this depth: the chains are followed by hand.)
    type Deep = { next?: Deep; list?: unknown[]; v?: string };
    const root: Deep = {};
    let at = root;
    for (let i = 0; i < 10_000; i++) at = at.next = i % 2 ? {} : ({ list: [{}] } as Deep);
    at.v = `deep ${secret}`;
    const leaf = (d: Deep): Deep => {
      let x = d;
      while (x.next) x = x.next;
      return x;
    };
    const out = r.value(root);
    expect(out === root).toBe(false);
    expect(leaf(out).v).toBe("deep [redacted]");
    expect(leaf(root).v).toBe(`deep ${secret}`);
    // Deeper than the old 200-level limit, in an array chain too.
    let arr: unknown[] = [secret];
    for (let i = 0; i < 5_000; i++) arr = [arr, 1, true, null];
    let y = r.value(arr);
    for (let i = 0; i < 5_000; i++) y = y[0] as unknown[];
    expect(y).toEqual(["[redacted]"]);
  });

  it("returns the very same object when nothing changed, however deep", () => {
    let v: unknown = { n: 1, b: true, s: "short", z: null };
    for (let i = 0; i < 1_000; i++) v = { child: v, at: i };
    expect(r.value(v)).toBe(v);
  });

  it("a cycle (not JSON) ends the walk instead of looping", () => {
    const a: Record<string, unknown> = { s: secret };
    let at = a;
    for (let i = 0; i < 300; i++) at = (at["next"] = {}) as Record<string, unknown>;
    at["loop"] = a;
    const out = r.value(a) as Record<string, unknown>;
    expect(out["s"]).toBe("[redacted]");
  });

  it("redacts every field the store keeps: answers' data and comment, signals, cancel reasons, waiting lists", () => {
    const events = [
      { type: "approval", at: 1, stage: "s", visit: 1, approved: true, data: { [secret]: [secret] }, comment: `ok ${secret}` },
      { type: "signal", at: 1, name: "go", data: secret },
      { type: "run_cancel_requested", at: 1, reason: `because ${secret}` },
      { type: "run_waiting", at: 1, stage: "s", message: "m", waiting: [{ stage: "s", visit: 1, message: `see ${secret}` }] },
    ];
    for (const e of events) r.event(e as never);
    expect(JSON.stringify(events)).not.toContain(secret);
  });
});

describe("every write path of a runtime goes through the redactor (issue 13 item 3)", () => {
  const NAME = "BATON_REDACT_PATHS_TOKEN";
  const secret = "tok_paths_1a2b3c4d5e6f7a8b";
  const REVIEW = `
baton: 1
name: review
stages:
  draft: { value: "'v1'" }
  review: { needs: [draft], approval: { message: "Publish {{ draft }}?" } }
  gate: { needs: [review], wait: { signal: go } }
  publish: { value: "{ 'review': review, 'gate': gate }" }
output: publish
`;

  it("a paused run's approve --data/--comment and a signal's data are redacted in the log and the result", async () => {
    const { Runtime } = await import("../../src/index.js");
    const { compileSource } = await import("../../src/template/index.js");
    process.env[NAME] = secret;
    try {
      const store = new MemoryStore();
      const rt = new Runtime({ store });
      const plan = compileSource(REVIEW, { format: "yaml", baseDir: process.cwd() });
      const first = await (await rt.start(plan, {})).done;
      expect(first.status).toBe("waiting");
      const a = await rt.answer(first.id, "review", { approved: true, data: { note: `lgtm ${secret}`, [secret]: true }, comment: `use ${secret}` }, { plan });
      expect((await a.handle!.done).status).toBe("waiting");
      const s = await rt.signal(first.id, "go", { data: { token: secret } }, { plan });
      const done = await s.handle!.done;
      expect(done.status).toBe("succeeded");
      expect(done.output).toEqual({ review: { note: "lgtm [redacted]", "[redacted]": true }, gate: { token: "[redacted]" } });
      const { events } = await store.load(first.id);
      expect(events.find((e) => e.type === "approval")).toMatchObject({ comment: "use [redacted]" });
      expect(JSON.stringify(events)).not.toContain(secret);
      expect(JSON.stringify(done)).not.toContain(secret);
      await rt.close();
    } finally {
      delete process.env[NAME];
    }
  });

  it("a signal queued for another process and a cancel's reason are redacted before the store keeps them", async () => {
    const { redactingStore } = await import("../../src/runtime/redact.js");
    const store = new MemoryStore();
    const wrapped = redactingStore(store, new Redactor([secret]));
    expect(redactingStore(wrapped)).toBe(wrapped); // once
    expect(wrapped).toBeInstanceOf(MemoryStore);
    await wrapped.create({ id: "r1", pipeline: "p", planHash: "h" }, [{ type: "run_started", at: 1, run_id: "r1", inputs: { k: secret } } as never]);
    await wrapped.signal("r1", "answer", { stage: "s", approved: true, data: { [secret]: secret }, comment: secret });
    await wrapped.append("r1", [{ type: "run_cancel_requested", at: 2, reason: `by ${secret}` }], 1);
    const { events } = await store.load("r1");
    const signals = await store.takeSignals("r1");
    expect(JSON.stringify([events, signals])).not.toContain(secret);
    expect(signals[0]?.data).toEqual({ stage: "s", approved: true, data: { "[redacted]": "[redacted]" }, comment: "[redacted]" });
  });

  it("a paused run's result names the waiting message as the log has it (redacted)", async () => {
    const { Runtime } = await import("../../src/index.js");
    const { compileSource } = await import("../../src/template/index.js");
    process.env[NAME] = secret;
    try {
      // The message reads a stage output: the state holds it from before the append redacted it.
      const { mkdtempSync, writeFileSync } = await import("node:fs");
      const { tmpdir } = await import("node:os");
      const { join } = await import("node:path");
      const dir = mkdtempSync(join(tmpdir(), "baton-redact-"));
      writeFileSync(join(dir, "draft.mjs"), `export const draft = () => "with " + process.env.${NAME};\n`);
      const plan = compileSource(`
baton: 1
name: waits
stages:
  draft: { run: ./draft.mjs#draft }
  review: { needs: [draft], approval: { message: "Publish {{ draft }}?" } }
`, { format: "yaml", baseDir: dir });
      const rt = new Runtime({ store: new MemoryStore() });
      const r = await (await rt.start(plan, {})).done;
      expect(r.status).toBe("waiting");
      expect(r.error?.message).toBe("Publish with [redacted]?");
      await rt.close();
    } finally {
      delete process.env[NAME];
    }
  });

  it("a run's result (what `baton run` prints) is the redacted output, also when the output is built by an expression", async () => {
    process.env[NAME] = secret;
    try {
      const p = definePipeline({ name: "result" })
        .stage("leak", { run: () => ({ [process.env[NAME]!]: { deep: process.env[NAME] } }) })
        .stage("fails", { needs: ["leak"], run: () => { throw new Error(`no ${process.env[NAME]}`); } });
      const r = await execute(p, {}, { store: new MemoryStore() });
      expect(r.status).toBe("failed");
      expect(r.error?.message).toBe("no [redacted]");
      const ok = definePipeline({ name: "result-ok" }).stage("leak", { run: () => ({ [process.env[NAME]!]: { deep: process.env[NAME] } }) });
      const r2 = await execute(ok, {}, { store: new MemoryStore() });
      expect(r2.output).toEqual({ leak: { "[redacted]": { deep: "[redacted]" } } });
    } finally {
      delete process.env[NAME];
    }
  });
});

describe("live text of a streaming turn (issue 13 item 3)", () => {
  it("is redacted before the store keeps it, and an end that may be the start of a secret is held back", async () => {
    const { redactingStore } = await import("../../src/runtime/redact.js");
    const secret = "tok_live_stream_0a9b8c7d";
    const store = new MemoryStore();
    const wrapped = redactingStore(store, new Redactor([secret]));
    await wrapped.create({ id: "r1", pipeline: "p", planHash: "h" }, [{ type: "run_started", at: 1, run_id: "r1", inputs: {} } as never]);
    await wrapped.putLive!("r1", "s#1:turn:1", `the key is ${secret.slice(0, 10)}`);
    expect((await store.live!("r1"))["s#1:turn:1"]?.text).toBe("the key is ");
    await wrapped.putLive!("r1", "s#1:turn:1", `the key is ${secret}, done`);
    expect((await store.live!("r1"))["s#1:turn:1"]?.text).toBe("the key is [redacted], done");
  });
});
