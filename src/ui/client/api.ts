/// <reference lib="dom" />
/**
 * The web app's only way to the server: the JSON API. A token given once as `/?token=T` is
 * kept for the tab (memory and sessionStorage) and removed from the address bar.
 */
import type { RunDetail, RunSummary } from "../types.js";

const KEY = "baton-ui-token";
let token: string | undefined;

/** Take `?token=` from the address (then drop it from the URL), or the tab's saved token. */
export function initToken(): void {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  if (given) {
    setToken(given);
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
    return;
  }
  try {
    token = sessionStorage.getItem(KEY) ?? undefined;
  } catch {
    token = undefined;
  }
}

/** Use this token from now on (the login form calls this). */
export function setToken(t: string): void {
  token = t;
  try {
    sessionStorage.setItem(KEY, t);
  } catch {
    // storage disabled: memory only
  }
}

/** An API call that failed: HTTP status and the server's one-line message. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Call the API; resolves to the JSON body, rejects with {@link ApiFailure}. */
export async function call<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token) headers["Authorization"] = `Bearer ${token}`;
  if (init.body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, { method: init.method ?? "GET", headers, ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}) });
  } catch {
    throw new ApiFailure(0, "cannot reach the Baton UI server: is `baton ui` still running?");
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text === "" ? undefined : JSON.parse(text);
  } catch {
    data = undefined;
  }
  if (res.status === 401) window.dispatchEvent(new Event("baton:unauthorized"));
  if (!res.ok) throw new ApiFailure(res.status, (data as { error?: string } | undefined)?.error ?? `${res.status} ${res.statusText}`);
  return data as T;
}

const enc = encodeURIComponent;

export const api = {
  runs: (q: { status?: string; pipeline?: string; limit?: number }) => {
    const p = new URLSearchParams();
    if (q.status) p.set("status", q.status);
    if (q.pipeline) p.set("pipeline", q.pipeline);
    if (q.limit) p.set("limit", String(q.limit));
    const qs = p.toString();
    return call<RunSummary[]>(`/api/runs${qs ? `?${qs}` : ""}`);
  },
  run: (id: string) => call<RunDetail>(`/api/runs/${enc(id)}`),
  start: (template: string, inputs: Record<string, unknown>) => call<{ id: string }>("/api/runs", { method: "POST", body: { template, inputs } }),
  /** `call`: the id of one tool call waiting for approval (needed when several wait). */
  approve: (id: string, body: { stage: string; data?: unknown; comment?: string; item?: number; call?: string }) => call<{ ok: true }>(`/api/runs/${enc(id)}/approve`, { method: "POST", body }),
  reject: (id: string, body: { stage: string; comment?: string; item?: number; call?: string }) => call<{ ok: true }>(`/api/runs/${enc(id)}/reject`, { method: "POST", body }),
  /** The run's events after sequence number `after`, only those of the given types. */
  events: <T>(id: string, after: number, types: readonly string[]) => call<T[]>(`/api/runs/${enc(id)}/events?after=${after}&type=${enc(types.join(","))}`),
  /** The messages an agent turn sent to the model, by the turn's `messages_ref` (a list of { role, content }). */
  messages: (id: string, ref: string) => call<unknown>(`/api/runs/${enc(id)}/messages/${enc(ref)}`),
  cancel: (id: string) => call<{ ok: true }>(`/api/runs/${enc(id)}/cancel`, { method: "POST", body: {} }),
  /** URL of the run's event stream (EventSource cannot send headers: the token goes in the query). */
  streamUrl: (id: string, after: number) => `/api/runs/${enc(id)}/stream?after=${after}${token ? `&token=${enc(token)}` : ""}`,
};
