/**
 * Template text → data, plus a locator that turns a path in that data into a file position,
 * and the reporter every check writes its diagnostics to.
 */
import type { Document, LineCounter, Node as YamlNode } from "yaml";
import type { Diagnostic } from "./errors.js";
import { yamlLib } from "../base/yaml.js";
import { fastYaml } from "./yaml-fast.js";

/** A path in the template data: keys and sequence indexes. */
export type DocPath = readonly (string | number)[];

/** `stages.verify.routes[0].when` */
export function pathString(path: DocPath): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out === "" ? p : `.${p}`;
  return out;
}

/** Maps a data path to a position. */
export interface Locator {
  /**
   * `part: "key"` points at the key of the last path element, `"value"` at its value;
   * `offset` is a 0-based offset inside a string value (into an expression).
   */
  at(path: DocPath, part: "key" | "value", offset?: number): { readonly line: number; readonly col: number };
}

/** Collects diagnostics, each positioned through a {@link Locator}. */
export class Reporter {
  readonly diagnostics: Diagnostic[] = [];
  constructor(
    readonly file: string,
    private readonly locator: Locator,
  ) {}

  /** Report at the key of `path` (e.g. an unknown field, a stage id). */
  key(path: DocPath, message: string): void {
    this.push(path, this.locator.at(path, "key"), message);
  }

  /** Report at the value of `path`; `offset` points inside a string value. */
  value(path: DocPath, message: string, offset?: number): void {
    this.push(path, this.locator.at(path, "value", offset), message);
  }

  private push(path: DocPath, pos: { line: number; col: number }, message: string): void {
    const d: Diagnostic = { file: this.file, line: pos.line, col: pos.col, message };
    this.diagnostics.push(pos.line > 0 ? d : { ...d, path: pathString(path) });
  }
}

/** For data built in TypeScript: no positions, only paths. */
export const pathLocator: Locator = { at: () => ({ line: 0, col: 0 }) };

/** The parsed template. */
export interface ParsedText {
  readonly data: unknown;
  readonly locator: Locator;
  /** YAML/JSON syntax errors and duplicate keys. */
  readonly diagnostics: Diagnostic[];
  /** True when syntax errors make the data unreliable (only duplicate keys are not fatal). */
  readonly fatal: boolean;
}

class YamlLocator implements Locator {
  constructor(
    private readonly doc: Document,
    private readonly text: string,
    private readonly lines: LineCounter,
  ) {}

  at(path: DocPath, part: "key" | "value", offset?: number): { line: number; col: number } {
    const pos = this.offsetOf(path, part, offset);
    const { line, col } = this.lines.linePos(pos);
    return { line, col };
  }

  private node(path: DocPath): YamlNode | undefined {
    if (path.length === 0) return (this.doc.contents as YamlNode | null) ?? undefined;
    const n = this.doc.getIn(path, true);
    return n !== null && typeof n === "object" && "range" in (n as object) ? (n as YamlNode) : undefined;
  }

  private keyOffset(path: DocPath): number | undefined {
    const { isMap, isScalar, isSeq } = yamlLib();
    const parent = this.node(path.slice(0, -1));
    const last = path[path.length - 1];
    if (isMap(parent)) {
      for (const pair of parent.items) {
        const k = pair.key;
        if (isScalar(k) && String(k.value) === String(last) && k.range) return k.range[0];
      }
    }
    if (isSeq(parent) && typeof last === "number") return (parent.items[last] as YamlNode | undefined)?.range?.[0];
    return undefined;
  }

  private offsetOf(path: DocPath, part: "key" | "value", offset?: number): number {
    const { isScalar } = yamlLib();
    if (part === "value") {
      const n = this.node(path);
      if (n?.range) {
        if (offset !== undefined && isScalar(n) && typeof n.value === "string") return this.scalarOffset(n.range, n.value, offset);
        return n.range[0];
      }
    }
    // The key, else the nearest ancestor that exists, else the document start.
    for (let p = path; p.length > 0; p = p.slice(0, -1)) {
      const k = this.keyOffset(p);
      if (k !== undefined) return k;
    }
    return this.node([])?.range?.[0] ?? 0;
  }

  /** Source offset of the character at `k` in a string scalar's value. */
  private scalarOffset(range: readonly number[], value: string, k: number): number {
    const start = range[0] as number;
    const raw = this.text.slice(start, range[1]);
    const whole = raw.indexOf(value);
    if (whole >= 0 && value !== "") return start + whole + k;
    // Multi-line or escaped: find the value's line holding k verbatim in the source.
    let at = Math.min(k, value.length);
    while (at > 0 && (at >= value.length || value[at] === "\n") && value[at - 1] === "\n") at--;
    const ls = value.lastIndexOf("\n", at - 1) + 1;
    const le = value.indexOf("\n", at);
    const line = value.slice(ls, le < 0 ? value.length : le);
    const found = line.trim() === "" ? -1 : raw.indexOf(line);
    return found >= 0 ? start + found + (Math.min(k, ls + line.length) - ls) : start;
  }
}

function jsonErrorOffset(text: string): { offset: number; message: string } | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const m = /position (\d+)/.exec(message);
    return { offset: m ? Number(m[1]) : 0, message: message.replace(/ in JSON at position \d+.*$/, "") };
  }
}

/**
 * True when some mapping might repeat a key: a scalar key value seen twice in one mapping (a
 * superset of yaml's own `uniqueKeys` test, which compares scalar values with `===`). One walk
 * over the nodes, keys included (aliases are not followed: their anchors are walked where they are).
 */
function mayRepeatKeys(node: unknown): boolean {
  const { isMap, isScalar, isSeq } = yamlLib();
  if (isMap(node)) {
    const seen = new Set<unknown>();
    for (const pair of node.items) {
      const key: unknown = pair.key;
      // A pair without a key counts as a key too (two of them repeat, as in yaml's test).
      const k = key === null ? seen : isScalar(key) ? key.value : key;
      if (seen.has(k)) return true;
      seen.add(k);
      if (key !== null && !isScalar(key) && mayRepeatKeys(key)) return true;
      if (mayRepeatKeys(pair.value)) return true;
    }
    return false;
  }
  if (isSeq(node)) {
    for (const item of node.items) if (mayRepeatKeys(item)) return true;
  }
  return false;
}

/**
 * Positions for a template read by the fast path: the text is parsed with `yaml` (as the slow
 * path does, so every position is the same) only when a diagnostic first needs one.
 */
class LazyYamlLocator implements Locator {
  private located: YamlLocator | undefined;
  constructor(private readonly text: string) {}

  at(path: DocPath, part: "key" | "value", offset?: number): { line: number; col: number } {
    if (this.located === undefined) {
      const { LineCounter, parseDocument } = yamlLib();
      const lines = new LineCounter();
      const doc = parseDocument(this.text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false });
      this.located = new YamlLocator(doc, this.text, lines);
    }
    return this.located.at(path, part, offset);
  }
}

/**
 * Parse YAML (or JSON, which is read by the same parser so positions and duplicate keys work).
 * Text in the fast subset (yaml-fast.ts: what templates are written in, with no repeated key
 * and no error) is read to data directly, and `yaml` parses it again only if a diagnostic needs
 * a position. Anything else goes to `yaml`: yaml's `uniqueKeys` compares each key with every earlier key of its mapping (quadratic in a
 * 2,000-stage `stages:`), so the text is parsed without it and checked in one linear pass; only
 * a document with errors or a repeated key is parsed again with it, for yaml's own diagnostics.
 */
export function parseText(text: string, format: "yaml" | "json", file: string): ParsedText {
  const fast = fastYaml(text);
  // JSON must also be JSON (yaml, and the fast path, read some text JSON.parse refuses).
  if (fast !== undefined && (format === "yaml" || jsonErrorOffset(text) === undefined)) {
    return { data: fast.data, locator: new LazyYamlLocator(text), diagnostics: [], fatal: false };
  }
  const { LineCounter, parseDocument } = yamlLib();
  let lines = new LineCounter();
  let doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length > 0 || mayRepeatKeys(doc.contents)) {
    lines = new LineCounter();
    doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  }
  const diagnostics: Diagnostic[] = [];
  let fatal = false;
  const push = (offset: number, message: string): void => {
    const { line, col } = lines.linePos(offset);
    diagnostics.push({ file, line, col, message });
  };
  for (const e of doc.errors) {
    if (e.code === "DUPLICATE_KEY") {
      const m = /^[^\s:,}\]]+|^"[^"]*"|^'[^']*'/.exec(text.slice(e.pos[0]));
      push(e.pos[0], `duplicate key ${m ? `'${m[0].replace(/^["']|["']$/g, "")}'` : ""}: keys must be unique`.replace("key :", "key:"));
    } else {
      fatal = true;
      push(e.pos[0], `${format === "json" ? "JSON" : "YAML"} syntax error: ${e.message}`);
    }
  }
  if (!fatal && format === "json") {
    const bad = jsonErrorOffset(text);
    if (bad) {
      fatal = true;
      push(bad.offset, `JSON syntax error: ${bad.message}`);
    }
  }
  let data: unknown;
  if (!fatal) {
    try {
      data = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      // Aliases to anchors that do not exist, alias bombs, and the like.
      fatal = true;
      const m = /alias ['"]?([^'"\s]*)/i.exec((err as Error).message);
      const at = m && m[1] ? Math.max(0, text.indexOf(`*${m[1]}`)) : 0;
      push(at, `YAML error: ${(err as Error).message}`);
    }
  }
  return { data, locator: new YamlLocator(doc, text, lines), diagnostics, fatal };
}
