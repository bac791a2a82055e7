/**
 * Secrets never reach the log (SPEC §5): values of environment variables named like
 * *KEY*, *TOKEN*, *SECRET*, *PASSWORD*, and strings that look like API keys or bearer tokens
 * (base/secrets.ts says which), are replaced by `[redacted]` in everything a store keeps —
 * stage inputs and outputs, logs, error messages, decisions, run inputs and outputs, answers
 * and signals (`--data`, `--comment`), object keys, at any depth.
 *
 * One mechanism: {@link redactingStore} wraps the store a host writes through, and every
 * `create`, `append`, `signal` and `putLive` passes the redactor there, once. Events are
 * redacted in place before they are written, so what the host hands on after the append (live
 * views, telemetry, the run's result) is the redacted event too.
 */
import { REDACTED, redactText, secretValues, shortestOf, SHORTEST_VALUE } from "../base/secrets.js";
import type { BatonEvent } from "../engine/events.js";
import type { Store } from "../store/port.js";

export { REDACTED, secretValues };

/** A container being walked: its copy (made on the first change) and where it goes when done. */
interface Frame {
  readonly node: Record<string, unknown> | unknown[];
  /** Own enumerable keys (objects) — undefined for arrays. */
  readonly keys: string[] | undefined;
  i: number;
  copy: Record<string, unknown> | unknown[] | undefined;
  /** Redacted keys by original key, when some key changed (objects only). */
  renamed: Map<string, string> | undefined;
  /** Index in the parent frame (array) or key (object). */
  readonly slot: number | string;
}

/** Nesting walked by plain recursion; deeper, an explicit stack takes over. */
const RECURSION_DEPTH = 64;
/** Nesting (of the explicit-stack walk) beyond which it checks for cycles (JSON has none; a live object graph might). */
const CYCLE_CHECK_DEPTH = 256;

/**
 * A redactor for the given secret values; by default the environment's (base/secrets.ts),
 * looked up the first time a string long enough to hold one is met — most runs' events carry
 * numbers, ids and short labels only, and the scan of the environment costs tens of µs.
 */
export class Redactor {
  /** The shortest string that may change: a lower bound until the secrets are known. */
  private shortest: number;
  private list: readonly string[] | undefined;

  constructor(secrets?: readonly string[]) {
    this.list = secrets;
    this.shortest = secrets ? shortestOf(secrets) : SHORTEST_VALUE;
  }

  /** The secret values (scanned from the environment on first use when none were given). */
  private get secrets(): readonly string[] {
    let l = this.list;
    if (l === undefined) {
      l = this.list = secretValues();
      this.shortest = shortestOf(l);
    }
    return l;
  }

  /** Redact a string. */
  text(s: string): string {
    if (s.length < this.shortest) return s;
    const secrets = this.secrets; // (may raise `shortest` once the secrets are known)
    return redactText(s, secrets, this.shortest);
  }

  /**
   * Redact text still streaming in: also hold back an end that may be the start of a secret
   * (4+ characters of it), which the next piece may complete.
   */
  streaming(s: string): string {
    const out = this.text(s);
    let cut = out.length;
    for (const v of this.secrets) {
      for (let n = Math.min(v.length - 1, out.length); n >= 4; n--) {
        if (out.endsWith(v.slice(0, n))) {
          cut = Math.min(cut, out.length - n);
          break;
        }
      }
    }
    return cut === out.length ? out : out.slice(0, cut);
  }

  /**
   * Redact any JSON value at any depth (an explicit stack: no recursion limit, no stack
   * overflow), keys included: a key containing a secret is renamed with the secret replaced
   * (`"tok_…_id"` → `"[redacted]_id"`; a clash with another key gets ` (2)`, ` (3)`, …).
   * Returns the same object when nothing changed; changed containers are copies (the input
   * is never modified).
   *
   * @example
   * new Redactor(["hunter2hunter2"]).value({ "hunter2hunter2": ["pw hunter2hunter2"] }); // { "[redacted]": ["pw [redacted]"] }
   */
  value<T>(v: T): T {
    if (typeof v === "string") return this.text(v) as T;
    if (v === null || typeof v !== "object") return v;
    return this.walk(v, 0) as T;
  }

  /** The common case: plain recursion (no allocation unless something changes), to {@link RECURSION_DEPTH}. */
  private walk(v: object, depth: number): object {
    if (depth >= RECURSION_DEPTH) return this.deep(v);
    if (Array.isArray(v)) {
      let copy: unknown[] | undefined;
      for (let i = 0; i < v.length; i++) {
        const x: unknown = v[i];
        let r = x;
        if (typeof x === "string") {
          if (x.length >= this.shortest) r = this.text(x);
        } else if (typeof x === "object" && x !== null) r = this.walk(x, depth + 1);
        if (r !== x) (copy ??= v.slice())[i] = r;
      }
      return copy ?? v;
    }
    const obj = v as Record<string, unknown>;
    let copy: Record<string, unknown> | undefined;
    let renamed: Map<string, string> | undefined;
    for (const k in obj) {
      if (k.length >= this.shortest) {
        const rk = this.text(k);
        if (rk !== k) (renamed ??= new Map()).set(k, rk);
      }
      const x = obj[k];
      let r = x;
      if (typeof x === "string") {
        if (x.length >= this.shortest) r = this.text(x);
      } else if (typeof x === "object" && x !== null) r = this.walk(x, depth + 1);
      if (r !== x) (copy ??= { ...obj })[k] = r;
    }
    return renamed ? renameKeys(copy ?? obj, renamed) : (copy ?? obj);
  }

  /** Deeper than {@link RECURSION_DEPTH}: the same walk with an explicit stack (any depth, no stack overflow). */
  private deep(v: object): object {
    const stack: Frame[] = [frame(v, 0)];
    let ancestors: Set<object> | undefined;
    for (;;) {
      const f = stack[stack.length - 1]!;
      const { node, keys } = f;
      const n = keys === undefined ? (node as unknown[]).length : keys.length;
      let descended = false;
      while (f.i < n) {
        const slot: number | string = keys === undefined ? f.i : keys[f.i]!;
        f.i++;
        if (typeof slot === "string" && slot.length >= this.shortest) {
          const k = this.text(slot);
          if (k !== slot) (f.renamed ??= new Map()).set(slot, k);
        }
        const x = (node as Record<string | number, unknown>)[slot];
        if (typeof x === "string") {
          if (x.length < this.shortest) continue;
          const r = this.text(x);
          if (r !== x) ((f.copy ??= copyOf(node)) as Record<string | number, unknown>)[slot] = r;
        } else if (typeof x === "object" && x !== null) {
          if (stack.length > CYCLE_CHECK_DEPTH) {
            ancestors ??= new Set(stack.map((s) => s.node));
            if (ancestors.has(x)) continue; // a cycle: not JSON, left for the store to refuse
            ancestors.add(x);
          }
          stack.push(frame(x, slot));
          descended = true;
          break;
        }
      }
      if (descended) continue;
      // Done with this container: its result replaces it in the parent's copy.
      stack.pop();
      ancestors?.delete(node);
      const out = f.renamed ? renameKeys((f.copy ?? node) as Record<string, unknown>, f.renamed) : (f.copy ?? node);
      const parent = stack[stack.length - 1];
      if (!parent) return out;
      if (out !== node) ((parent.copy ??= copyOf(parent.node)) as Record<string | number, unknown>)[f.slot] = out;
    }
  }

  /** Redact an event's payload fields in place (events are fresh objects the runtime built). */
  event(e: BatonEvent): void {
    // The two events of every stage execution carry few payload fields (a start carries none).
    const fields = e.type === "stage_succeeded" ? SUCCEEDED_FIELDS : e.type === "stage_started" ? NO_FIELDS : FIELDS;
    if (fields.length === 0) return;
    const m = e as unknown as Record<string, unknown>;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      const x = m[f];
      // Numbers, booleans and absent fields cost one typeof.
      if (typeof x === "string") {
        if (x.length >= this.shortest) m[f] = this.text(x);
      } else if (typeof x === "object" && x !== null) m[f] = this.value(x);
    }
  }
}

function frame(node: object, slot: number | string): Frame {
  return { node: node as Frame["node"], keys: Array.isArray(node) ? undefined : Object.keys(node), i: 0, copy: undefined, renamed: undefined, slot };
}

function copyOf(node: Frame["node"]): Frame["node"] {
  return Array.isArray(node) ? node.slice() : { ...node };
}

/** The object with keys renamed, in their order; a renamed key never overwrites another. */
function renameKeys(obj: Record<string, unknown>, renamed: ReadonlyMap<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const taken = new Set(Object.keys(obj).filter((k) => !renamed.has(k)));
  for (const k of Object.keys(obj)) {
    let name = renamed.get(k);
    if (name === undefined) name = k;
    else {
      const base = name;
      for (let n = 2; taken.has(name); n++) name = `${base} (${n})`;
      taken.add(name);
    }
    // defineProperty: a key renamed to "__proto__" stays a plain own key.
    Object.defineProperty(out, name, { value: obj[k], enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Event fields that carry data or free text. */
const FIELDS = ["input", "output", "logs", "error", "inputs", "read", "with", "items", "result", "message", "reason", "data", "comment", "messages", "calls", "waiting"] as const;
/** Of {@link FIELDS}, those a `stage_succeeded` has (engine/events.ts); a `stage_started` has none. */
const SUCCEEDED_FIELDS = ["input", "output", "logs"] as const;
const NO_FIELDS = [] as const;

const WRAPPED = Symbol("baton.redacting");

/**
 * The store with every write redacted once: events of `create`/`append`/`appendNow` (in
 * place), `signal` data, `putLive` text. Reads and records pass through; `instanceof` and
 * optional methods are the store's own. Wrapping a wrapped store returns it.
 *
 * @example
 * const store = redactingStore(new MemoryStore());
 */
export function redactingStore<S extends Store>(store: S, redactor: Redactor = new Redactor()): S {
  if ((store as unknown as Record<symbol, unknown>)[WRAPPED] === true) return store;
  const events = (es: readonly BatonEvent[]): readonly BatonEvent[] => {
    for (let i = 0; i < es.length; i++) redactor.event(es[i]!);
    return es;
  };
  const writes: Partial<Record<keyof Store, unknown>> = {
    create: (run: Parameters<Store["create"]>[0], es: readonly BatonEvent[]) => store.create(run, events(es)),
    append: (id: string, es: readonly BatonEvent[], seq: number) => store.append(id, events(es), seq),
    signal: (id: string, kind: string, data?: unknown) => (data === undefined ? store.signal(id, kind) : store.signal(id, kind, redactor.value(data))),
  };
  if (store.appendNow) writes.appendNow = (id: string, es: readonly BatonEvent[], seq: number) => store.appendNow!(id, events(es), seq);
  if (store.putLive) writes.putLive = (id: string, key: string, text: string | undefined) => store.putLive!(id, key, text === undefined ? undefined : redactor.streaming(text));
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, p) {
      if (p === WRAPPED) return true;
      const w = writes[p as keyof Store];
      if (w !== undefined) return w;
      const x = Reflect.get(target, p, target) as unknown;
      if (typeof x !== "function") return x;
      let b = bound.get(p);
      if (b === undefined) bound.set(p, (b = (x as (...a: unknown[]) => unknown).bind(target)));
      return b;
    },
  });
}
