/** Shared setup of the UI tests: a temp SQLite store, a runtime, a UI server on a free port. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { planFromSource } from "../../src/api/run.js";
import { Runtime, type RunHandle } from "../../src/runtime/runtime.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { loadPlanFile, validateInputs } from "../../src/template/index.js";
import { startUi, type UiServer } from "../../src/ui/server.js";

export const EXAMPLE = resolve("examples/research-report.yaml");
export const SLOW = resolve("test/fixtures/cli/slow.yaml");
export const APPROVE = resolve("test/fixtures/ui/approve.yaml");
/** Runs until the file named by its input `file` exists (test/fixtures/ui/gate.mjs). */
export const GATE = resolve("test/fixtures/ui/gate.yaml");

export interface Env {
  readonly store: SqliteStore;
  readonly runtime: Runtime;
  readonly ui: UiServer;
  readonly dir: string;
  close(): Promise<void>;
}

/** A fresh store, runtime and server (port 0). */
export async function setup(o: { token?: string; runtime?: boolean } = {}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), "baton-ui-"));
  const store = SqliteStore.open(join(dir, "ui.db"));
  const runtime = new Runtime({ store, loadPlan: planFromSource });
  const ui = await startUi({ store, port: 0, pollMs: 50, templates: { root: process.cwd() }, ...(o.runtime === false ? {} : { runtime }), ...(o.token ? { token: o.token } : { auth: "none" as const }) });
  return {
    store, runtime, ui, dir,
    close: async () => {
      await ui.close();
      await runtime.close();
      await store.close();
    },
  };
}

/** Start a template file's run on the runtime directly. */
export async function startFile(runtime: Runtime, file: string, inputs: Record<string, unknown> = {}): Promise<RunHandle> {
  const plan = loadPlanFile(file);
  return runtime.start(plan, validateInputs(plan, inputs), { seed: 7 });
}

/** A JSON request against the server. */
export async function req(ui: UiServer, path: string, init: { method?: string; body?: unknown; token?: string; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token) headers["Authorization"] = `Bearer ${init.token}`;
  if (init.body !== undefined && !headers["Content-Type"]) headers["Content-Type"] = "application/json";
  const res = await fetch(new URL(path, ui.url), {
    method: init.method ?? "GET", headers,
    ...(init.body !== undefined ? { body: typeof init.body === "string" ? init.body : JSON.stringify(init.body) } : {}),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

/** Wait until `check` holds (polling), or fail after `ms`. */
export async function until(check: () => Promise<boolean> | boolean, ms = 8000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 40));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Read a server-sent event stream until it ends; returns its events (name + parsed data). */
export async function readSse(url: string, o: { headers?: Record<string, string>; onEvent?: (e: { event: string; data: any; id?: string }) => void; timeoutMs?: number } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), o.timeoutMs ?? 10_000);
  const res = await fetch(url, { headers: { Accept: "text/event-stream", ...o.headers }, signal: ctl.signal });
  const out: { event: string; data: any; id?: string }[] = [];
  if (!res.ok || !res.body) {
    clearTimeout(timer);
    return { status: res.status, events: out, contentType: res.headers.get("content-type") };
  }
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = "message";
        let data = "";
        let id: string | undefined;
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
          else if (line.startsWith("id: ")) id = line.slice(4);
        }
        if (data === "") continue;
        const e = { event, data: JSON.parse(data), ...(id !== undefined ? { id } : {}) };
        out.push(e);
        o.onEvent?.(e);
      }
    }
  } finally {
    clearTimeout(timer);
  }
  return { status: res.status, events: out, contentType: res.headers.get("content-type") };
}
