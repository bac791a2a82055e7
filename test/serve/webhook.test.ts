import { createHash, createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { compileExpr } from "../../src/expr/index.js";
import type { Plan, WebhookTriggerPlan } from "../../src/plan/types.js";
import { deliveryId, deliveryKey, findWebhook, MAX_DELIVERY_ID, verifySignature, WebhookError, webhookInputs } from "../../src/serve/webhook.js";
import { compileSource } from "../../src/template/index.js";

const secret = "It's a Secret to Everybody";
const raw = Buffer.from('{"action":"opened","repository":{"name":"baton"}}');
const sign = (body: Buffer, key = secret): string => "sha256=" + createHmac("sha256", key).update(body).digest("hex");

describe("verifySignature", () => {
  it("accepts GitHub's X-Hub-Signature-256 and X-Baton-Signature", () => {
    expect(verifySignature(secret, raw, { "x-hub-signature-256": sign(raw) })).toEqual({ ok: true });
    expect(verifySignature(secret, raw, { "x-baton-signature": sign(raw) })).toEqual({ ok: true });
    expect(verifySignature(secret, raw, { "x-baton-signature": sign(raw).toUpperCase().replace("SHA256=", "sha256=") })).toEqual({ ok: true });
    expect(verifySignature(secret, raw, { "x-hub-signature-256": sign(raw), "x-baton-signature": sign(raw) })).toEqual({ ok: true });
  });

  it("matches GitHub's documented test vector", () => {
    // docs.github.com "Validating webhook deliveries": secret "It's a Secret to Everybody", payload "Hello, World!"
    const body = Buffer.from("Hello, World!");
    const sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    expect(verifySignature(secret, body, { "x-hub-signature-256": sig })).toEqual({ ok: true });
  });

  it("refuses a missing signature", () => {
    const r = verifySignature(secret, raw, {});
    expect(r).toEqual({ ok: false, reason: expect.stringMatching(/^missing signature: send X-Hub-Signature-256 or X-Baton-Signature/) });
  });

  it("refuses a malformed signature", () => {
    for (const bad of ["abc", "sha1=" + "0".repeat(40), "sha256=" + "0".repeat(63), "sha256=" + "z".repeat(64), sign(raw) + "00", ""]) {
      const r = verifySignature(secret, raw, { "x-hub-signature-256": bad });
      expect(r, bad).toEqual({ ok: false, reason: "bad X-Hub-Signature-256 format: expected sha256= followed by 64 hex digits" });
    }
    expect(verifySignature(secret, raw, { "x-baton-signature": ["a", "b"] as unknown as string })).toEqual({ ok: false, reason: "more than one X-Baton-Signature header: send one" });
  });

  it("refuses a wrong secret and a tampered body, without showing the expected value", () => {
    const expected = sign(raw).slice(7);
    const wrong = verifySignature(secret, raw, { "x-hub-signature-256": sign(raw, "another secret") });
    expect(wrong).toEqual({ ok: false, reason: expect.stringContaining("X-Hub-Signature-256 does not match the body") });
    const tampered = verifySignature(secret, Buffer.from(raw.toString().replace("opened", "closed")), { "x-hub-signature-256": sign(raw) });
    expect(tampered.ok).toBe(false);
    for (const r of [wrong, tampered]) if (!r.ok) expect(r.reason).not.toContain(expected);
  });

  it("needs both signatures to match when both are sent", () => {
    const r = verifySignature(secret, raw, { "x-hub-signature-256": sign(raw), "x-baton-signature": sign(raw, "x") });
    expect(r).toEqual({ ok: false, reason: expect.stringContaining("X-Baton-Signature does not match") });
  });

  it("refuses every delivery when the secret is empty", () => {
    expect(verifySignature("", raw, { "x-hub-signature-256": sign(raw, "") })).toEqual({ ok: false, reason: expect.stringContaining("secret is empty") });
  });
});

describe("deliveryId and deliveryKey", () => {
  it("reads X-GitHub-Delivery, then X-Baton-Delivery", () => {
    expect(deliveryId({ "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958" }, raw)).toEqual({ ok: true, id: "72d3162e-cc78-11e3-81ab-4c9367dc0958", from: "header" });
    expect(deliveryId({ "x-baton-delivery": "run-42" }, raw)).toEqual({ ok: true, id: "run-42", from: "header" });
    expect(deliveryId({ "x-github-delivery": "gh", "x-baton-delivery": "b" }, raw)).toEqual({ ok: true, id: "gh", from: "header" });
  });

  it("falls back to the sha256 of the body: the same body is the same delivery", () => {
    const hex = createHash("sha256").update(raw).digest("hex");
    expect(deliveryId({}, raw)).toEqual({ ok: true, id: hex, from: "body" });
    expect(deliveryId({}, Buffer.from(raw))).toEqual(deliveryId({}, raw));
    expect(deliveryId({}, Buffer.from("other"))).not.toEqual(deliveryId({}, raw));
  });

  it("refuses long, unprintable or repeated ids", () => {
    expect(deliveryId({ "x-github-delivery": "a".repeat(MAX_DELIVERY_ID) }, raw).ok).toBe(true);
    expect(deliveryId({ "x-github-delivery": "a".repeat(MAX_DELIVERY_ID + 1) }, raw)).toEqual({ ok: false, reason: "X-GitHub-Delivery is 201 characters long: at most 200 are allowed" });
    for (const bad of ["", "a b", "a\u0000b", "tab\there", "é"]) {
      expect(deliveryId({ "x-baton-delivery": bad }, raw), JSON.stringify(bad)).toEqual({ ok: false, reason: expect.stringContaining("X-Baton-Delivery must be visible ASCII") });
    }
    expect(deliveryId({ "x-baton-delivery": ["a", "b"] as unknown as string }, raw)).toEqual({ ok: false, reason: "more than one X-Baton-Delivery header: send one" });
  });

  it("keys a delivery by pipeline, path and id", () => {
    expect(deliveryKey("triage", { path: "/hooks/gh" }, "d1")).toBe("webhook:triage:/hooks/gh:d1");
    expect(deliveryKey("a:b", { path: "/hooks/gh" }, "d1")).not.toBe(deliveryKey("a", { path: "/hooks/gh" }, "b:d1"));
  });
});

const hook = (inputs = "body"): Pick<WebhookTriggerPlan, "inputs" | "path"> => ({ path: "/hooks/gh", inputs: compileExpr(inputs) });
const json = { "content-type": "application/json; charset=utf-8" };

describe("webhookInputs", () => {
  it("gives the JSON body by default", async () => {
    expect(await webhookInputs(hook(), { body: raw, headers: json })).toEqual({ action: "opened", repository: { name: "baton" } });
    expect(await webhookInputs(hook(), { body: raw, headers: { "content-type": "application/vnd.github+json" } })).toEqual({ action: "opened", repository: { name: "baton" } });
  });

  it("evaluates the expression over body, headers and query", async () => {
    const h = hook("{ 'repo': body.repository.name, 'event': headers.`x-github-event`, 'tag': query.tag, 'n': $count(query.n) }");
    const out = await webhookInputs(h, { body: raw, headers: { ...json, "x-github-event": "issues" }, query: new URLSearchParams("tag=v1&n=1&n=2") });
    expect(out).toEqual({ repo: "baton", event: "issues", tag: "v1", n: 2 });
    const fromRecord = await webhookInputs(hook("{ 'tag': query.tag }"), { body: raw, headers: json, query: { tag: "v2", none: undefined } });
    expect(fromRecord).toEqual({ tag: "v2" });
  });

  it("gives a non-JSON body as text", async () => {
    const out = await webhookInputs(hook("{ 'text': body, 'len': $length(body) }"), { body: Buffer.from("a=1&b=2"), headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(out).toEqual({ text: "a=1&b=2", len: 7 });
    expect(await webhookInputs(hook("{ 'text': body }"), { body: "plain", headers: {} })).toEqual({ text: "plain" });
  });

  it("returns a copy the caller may change", async () => {
    const out = await webhookInputs(hook("body.repository"), { body: raw, headers: json });
    expect(out).toEqual({ name: "baton" });
    (out as { name: string }).name = "x";
    expect(await webhookInputs(hook("body.repository"), { body: raw, headers: json })).toEqual({ name: "baton" });
  });

  it("fails with 400 for a JSON content-type whose body is not JSON", async () => {
    const p = webhookInputs(hook(), { body: Buffer.from("{oops"), headers: json });
    await expect(p).rejects.toBeInstanceOf(WebhookError);
    await expect(p).rejects.toMatchObject({ status: 400, message: expect.stringContaining("webhook /hooks/gh: the body is not valid JSON") });
  });

  it("fails with 422 when the result is not a mapping", async () => {
    for (const [expr, got] of [["body.missing", "nothing"], ["body.action", "a string"], ["[1, 2]", "a list"], ["null", "null"], ["42", "a number"]] as const) {
      await expect(webhookInputs(hook(expr), { body: raw, headers: json }), expr).rejects.toMatchObject({ status: 422, message: expect.stringContaining(`must give a mapping of run inputs, got ${got}`) });
    }
  });

  it("fails with 422 when the expression fails", async () => {
    await expect(webhookInputs(hook("$error('nope')"), { body: raw, headers: json })).rejects.toMatchObject({ status: 422, message: expect.stringContaining("nope") });
    // A runaway expression is stopped by the bounds of every Baton expression.
    const runaway = hook("( $f := function($n) { 1 + $f($n + 1) }; $f(0) )");
    await expect(webhookInputs(runaway, { body: raw, headers: json })).rejects.toMatchObject({ status: 422, message: expect.stringMatching(/recursed more than \d+ levels deep|ran for more than/) });
  });
});

describe("findWebhook", () => {
  const plan = (name: string, path: string): Plan =>
    compileSource(`baton: 1\nname: ${name}\nstages:\n  a: { value: "1" }\ntriggers:\n  - cron: "0 * * * *"\n  - webhook: { path: ${path}, secret_env: S }\n`, { format: "yaml", baseDir: "." });

  it("finds the plan and trigger listening on a path", () => {
    const a = plan("a", "/hooks/a");
    const b = plan("b", "/hooks/b");
    const hit = findWebhook([a, b], "/hooks/b");
    expect(hit?.plan).toBe(b);
    expect(hit?.trigger).toMatchObject({ kind: "webhook", index: 1, path: "/hooks/b", secretEnv: "S" });
    expect(findWebhook([a, b], "/hooks/c")).toBeUndefined();
    expect(findWebhook([a, b], "/hooks/a/")).toBeUndefined();
  });
});
