/**
 * A fast path for the YAML templates are written in (issue 14 items 1 and 2): the `yaml` package
 * builds a concrete syntax tree, then a document of nodes with source ranges, then the data;
 * loading it is 73 CommonJS files (≈ 20 % of `baton validate`) and parsing is ≈ 38 % of a
 * compile. This reads the common subset of YAML straight to data, with no positions:
 *
 *   - block mappings and sequences (compact `- key: value` entries too), comments, a leading `---`;
 *   - plain scalars on one line, resolved exactly as yaml's YAML 1.2 core schema does (null,
 *     booleans, integers in decimal/0o/0x, floats, .inf/.nan, else strings);
 *   - single- and double-quoted scalars on one line (common escapes);
 *   - literal `|` and folded `>` block scalars with `-`/`+` chomping;
 *   - flow mappings and sequences (`{ a: 1 }`, `[a, b]`, JSON), over several lines.
 *
 * Anything else — anchors, aliases, tags, directives, several documents, complex or non-string
 * keys, `<<`, a repeated key, multi-line plain or quoted scalars, tabs, CR, control characters,
 * and any text it cannot read for certain — makes it return `undefined`, and the caller parses
 * with `yaml` as before (which also reports every error with its position). So the data is
 * always what `yaml`'s `parseDocument(text).toJS()` yields (test/template/yaml-fast.test.ts
 * compares the two on generated templates), and a diagnostic's position comes from `yaml`.
 * @internal
 */

/** Thrown (one preallocated object, no stack capture) when the text leaves the subset. */
const BAIL = new Error("outside the fast YAML subset");

/** Characters the fast path never reads: tabs, CR, other C0/C1 controls, DEL, BOM, U+2028/9. */
const UNREAD = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\ufeff\u2028\u2029]/;

const NULL = /^(?:~|[Nn]ull|NULL)?$/;
const BOOL = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const INT_OCT = /^0o[0-7]+$/;
const INT = /^[-+]?[0-9]+$/;
const INT_HEX = /^0x[0-9a-fA-F]+$/;
const FLOAT_NAN = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
const FLOAT_EXP = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/;

/** A plain scalar's value under yaml's core schema (same tests, same order, same conversions). */
function resolvePlain(s: string): unknown {
  const c = s.charCodeAt(0);
  // Only these first characters can start a null, a boolean or a number.
  if (!(c === 126 || c === 110 || c === 78 || c === 116 || c === 84 || c === 102 || c === 70 || c === 43 || c === 45 || c === 46 || (c >= 48 && c <= 57))) return s;
  if (NULL.test(s)) return null;
  if (BOOL.test(s)) return c === 116 || c === 84;
  if (INT_OCT.test(s)) return parseInt(s.substring(2), 8);
  if (INT.test(s)) return parseInt(s, 10);
  if (INT_HEX.test(s)) return parseInt(s.substring(2), 16);
  if (FLOAT_NAN.test(s)) return s.slice(-3).toLowerCase() === "nan" ? NaN : s[0] === "-" ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  if (FLOAT_EXP.test(s) || FLOAT.test(s)) return parseFloat(s);
  return s;
}

/** A mapping key: only keys that resolve to strings (a number or null key would be stringified). */
function plainKey(s: string): string {
  if (s.length > 1000 || s === "<<" || typeof resolvePlain(s) !== "string") throw BAIL;
  return s;
}

/** As yaml's toJS: an inherited name (`__proto__`, `toString`) becomes an own property. */
function setKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (Object.prototype.hasOwnProperty.call(obj, key)) throw BAIL; // repeated: yaml reports it
  if (key in obj) Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

const SIMPLE_ESCAPES: Record<string, string> = { "\\": "\\", '"': '"', "/": "/", n: "\n", t: "\t", r: "\r", "0": "\0", b: "\b", f: "\f" };

/** Indicator characters a plain scalar (or plain key) may not start with. */
function startsPlain(s: string, i: number, flow: boolean): boolean {
  const c = s[i];
  if (c === undefined) return false;
  if ("?:,[]{}#&*!|>'\"%@`".includes(c)) return false;
  if (c === "-") {
    const d = s[i + 1];
    if (d === undefined || d === " " || d === "\n" || (flow && ",[]{}".includes(d))) return false;
  }
  return true;
}

class FastYaml {
  /** The current content line: its start, its first non-space character, its indent (-1 at the end). */
  private ls = 0;
  private p = 0;
  private ind = -1;
  private readonly n: number;

  constructor(private readonly s: string) {
    this.n = s.length;
  }

  document(): unknown {
    const s = this.s;
    this.next(0, true);
    if (this.ind === -1) throw BAIL;
    if (this.ind === 0 && s.startsWith("---", this.p)) {
      // A leading `---` alone on its line (a comment may follow).
      const r = this.spaces(this.p + 3);
      if (r === this.p + 3 && r < this.n && s[r] !== "\n") throw BAIL;
      this.endLine(r, this.p + 3);
    }
    if (this.indent() !== 0) throw BAIL;
    let value: unknown;
    const c = s[this.p];
    if (c === "{" || c === "[") {
      const [v, q] = this.flow(this.p, -1);
      value = v;
      this.endLine(q, q);
    } else value = this.blockNode(0);
    if (this.indent() !== -1) throw BAIL;
    return value;
  }

  /** The current line's indent, -1 at the end (a method: TypeScript narrows fields across calls). */
  private indent(): number {
    return this.ind;
  }

  private spaces(i: number): number {
    const s = this.s;
    while (s.charCodeAt(i) === 32) i++;
    return i;
  }

  /** The first ` #` (a comment's start) in [from, to), or -1: searched on the line only. */
  private commentIn(from: number, to: number): number {
    const s = this.s;
    for (let i = from; i < to; i++) if (s.charCodeAt(i) === 35 && s.charCodeAt(i - 1) === 32) return i - 1;
    return -1;
  }

  private lineEnd(i: number): number {
    const e = this.s.indexOf("\n", i);
    return e < 0 ? this.n : e;
  }

  /** Move to the next line with content at or after line start `i` (skipping blank and comment lines). */
  private next(i: number, first = false): void {
    const s = this.s;
    const n = this.n;
    while (i < n) {
      const j = this.spaces(i);
      if (j >= n) break;
      const c = s.charCodeAt(j);
      if (c === 10) {
        i = j + 1;
        continue;
      }
      if (c === 35) {
        i = this.lineEnd(j) + 1;
        continue;
      }
      // Document markers (`---`, `...`) and directives: several documents are yaml's business.
      if (j === i && (c === 45 || c === 46) && (s.startsWith("---", i) || s.startsWith("...", i))) {
        const d = s[i + 3];
        if ((d === undefined || d === " " || d === "\n") && !(first && c === 45)) throw BAIL;
      }
      this.ls = i;
      this.p = j;
      this.ind = j - i;
      return;
    }
    this.ls = n;
    this.p = n;
    this.ind = -1;
  }

  /** After a value ending at `q`: only spaces and a comment may follow on its line. `from` is where the value ended. */
  private endLine(q: number, from: number): void {
    const s = this.s;
    const r = this.spaces(q);
    if (r < this.n && s[r] !== "\n" && !(s[r] === "#" && r > from)) throw BAIL;
    this.next(this.lineEnd(r) + 1);
  }

  /** The node on the current line, a block sequence or mapping at indent `ind`. */
  private blockNode(ind: number): unknown {
    const s = this.s;
    const p = this.p;
    if (s[p] === "-" && (p + 1 >= this.n || s[p + 1] === " " || s[p + 1] === "\n")) return this.blockSeq(ind);
    return this.blockMap(ind, p);
  }

  /** Where the key that starts at `p` ends (just after its `:`), or -1 if the line is no `key:` line. */
  private keyEnd(p: number): number {
    const s = this.s;
    const c = s[p];
    let i: number;
    if (c === '"' || c === "'") {
      i = this.quotedEnd(p);
      if (i < 0) return -1;
      i = this.spaces(i);
      if (s[i] !== ":") return -1;
    } else {
      if (!startsPlain(s, p, false)) return -1;
      // The first `:` followed by a space or the line's end, on this line, before any comment.
      for (i = p; ; i++) {
        const ch = s.charCodeAt(i);
        if (ch === 10 || i >= this.n || (ch === 35 && s.charCodeAt(i - 1) === 32)) return -1;
        if (ch === 58) {
          const d = s.charCodeAt(i + 1);
          if (d === 32 || d === 10 || i + 1 >= this.n) break;
        }
      }
    }
    const d = s[i + 1];
    return d === undefined || d === " " || d === "\n" ? i + 1 : -1;
  }

  /** A block mapping whose keys are at column `ind`; its first key starts at `p` (maybe mid-line, after `- `). */
  private blockMap(ind: number, p: number): Record<string, unknown> {
    const s = this.s;
    const obj: Record<string, unknown> = {};
    for (;;) {
      const q = this.keyEnd(p);
      if (q < 0) throw BAIL;
      let key: string;
      if (s[p] === '"' || s[p] === "'") {
        key = this.quoted(p)[0];
        if (key.length > 1000) throw BAIL;
      } else key = plainKey(s.slice(p, q - 1).trimEnd());
      setKey(obj, key, this.mapValue(ind, q));
      if (this.ind === ind) {
        p = this.p;
        if (s[p] === "-" && (s[p + 1] === " " || s[p + 1] === "\n" || p + 1 >= this.n)) throw BAIL;
        continue;
      }
      if (this.ind > ind) throw BAIL;
      return obj;
    }
  }

  /** The value after a key's `:` at `q`, of a mapping at indent `ind`. */
  private mapValue(ind: number, q: number): unknown {
    const s = this.s;
    const r = this.spaces(q);
    if (r >= this.n || s[r] === "\n" || s[r] === "#") {
      this.next(this.lineEnd(r) + 1);
      if (this.ind === -1 || this.ind < ind) return null;
      if (this.ind === ind) {
        const p = this.p;
        return s[p] === "-" && (p + 1 >= this.n || s[p + 1] === " " || s[p + 1] === "\n") ? this.blockSeq(ind) : null;
      }
      return this.blockNode(this.ind);
    }
    return this.inline(ind, r);
  }

  /** A block sequence whose dashes are at column `ind`. */
  private blockSeq(ind: number): unknown[] {
    const s = this.s;
    const out: unknown[] = [];
    for (;;) {
      const q = this.p + 1;
      const r = this.spaces(q);
      if (r >= this.n || s[r] === "\n" || (s[r] === "#" && r > q)) {
        this.next(this.lineEnd(r) + 1);
        out.push(this.ind > ind ? this.blockNode(this.ind) : null);
      } else if (s[r] === "-" && (r + 1 >= this.n || s[r + 1] === " " || s[r + 1] === "\n")) {
        throw BAIL;
      } else if (this.keyEnd(r) >= 0) {
        out.push(this.blockMap(r - this.ls, r));
      } else out.push(this.inline(ind, r));
      if (this.ind === ind) {
        const p = this.p;
        if (s[p] === "-" && (p + 1 >= this.n || s[p + 1] === " " || s[p + 1] === "\n")) continue;
        return out;
      }
      if (this.ind > ind) throw BAIL;
      return out;
    }
  }

  /** A value that starts at `r` on the line of its key or dash; `ind` is the indent of that mapping or sequence. */
  private inline(ind: number, r: number): unknown {
    const s = this.s;
    const c = s[r];
    if (c === "|" || c === ">") return this.blockScalar(ind, r);
    if (c === '"' || c === "'") {
      const [v, q] = this.quoted(r);
      this.endLine(q, q);
      return v;
    }
    if (c === "{" || c === "[") {
      const [v, q] = this.flow(r, ind);
      this.endLine(q, q);
      return v;
    }
    if (!startsPlain(s, r, false)) throw BAIL;
    const e = this.lineEnd(r);
    const h = this.commentIn(r, e);
    const end = h >= 0 ? h : e;
    const text = s.slice(r, end).trimEnd();
    if (text.includes(": ") || text.endsWith(":")) throw BAIL;
    this.next(e + 1);
    return resolvePlain(text);
  }

  /** End (just past the closing quote) of the one-line quoted scalar at `p`, or -1. */
  private quotedEnd(p: number): number {
    const s = this.s;
    const e = this.lineEnd(p);
    if (s[p] === "'") {
      let i = p + 1;
      for (;;) {
        i = s.indexOf("'", i);
        if (i < 0 || i > e) return -1;
        if (s[i + 1] === "'") i += 2;
        else return i + 1;
      }
    }
    let i = p + 1;
    for (;;) {
      const qi = s.indexOf('"', i);
      if (qi < 0 || qi > e) return -1;
      let b = qi - 1;
      while (s[b] === "\\") b--;
      if ((qi - 1 - b) % 2 === 0) return qi + 1;
      i = qi + 1;
    }
  }

  /** A quoted scalar on one line at `p`: its value and the position after the closing quote. */
  private quoted(p: number): [string, number] {
    const s = this.s;
    const end = this.quotedEnd(p);
    if (end < 0) throw BAIL;
    const body = s.slice(p + 1, end - 1);
    if (s[p] === "'") return [body.includes("''") ? body.replaceAll("''", "'") : body, end];
    if (!body.includes("\\")) return [body, end];
    let out = "";
    let i = 0;
    for (;;) {
      const b = body.indexOf("\\", i);
      if (b < 0) return [out + body.slice(i), end];
      out += body.slice(i, b);
      const e = body[b + 1]!;
      const simple = SIMPLE_ESCAPES[e];
      if (simple !== undefined) {
        out += simple;
        i = b + 2;
      } else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(body.slice(b + 2, b + 6))) {
        out += String.fromCharCode(parseInt(body.slice(b + 2, b + 6), 16));
        i = b + 6;
      } else throw BAIL;
    }
  }

  /** A `|` or `>` block scalar whose header is at `r`, in a collection at indent `ind`. */
  private blockScalar(ind: number, r: number): string {
    const s = this.s;
    const n = this.n;
    const folded = s[r] === ">";
    let q = r + 1;
    let chomp: "clip" | "strip" | "keep" = "clip";
    if (s[q] === "-") (chomp = "strip"), q++;
    else if (s[q] === "+") (chomp = "keep"), q++;
    const h = this.spaces(q);
    if (h >= n || (s[h] !== "\n" && !(s[h] === "#" && h > q))) throw BAIL;
    let pos = this.lineEnd(h) + 1;
    if (pos >= n) throw BAIL;
    // The block's indent: that of its first non-empty line; no empty line before it may be longer.
    let bi = -1;
    let longestEmpty = 0;
    for (let i = pos; i < n; ) {
      const j = this.spaces(i);
      if (j >= n || s[j] === "\n") {
        longestEmpty = Math.max(longestEmpty, j - i);
        i = j + 1;
        continue;
      }
      bi = j - i;
      break;
    }
    if (bi <= ind || longestEmpty > bi) throw BAIL;
    const lines: string[] = [];
    while (pos < n) {
      const j = this.spaces(pos);
      const e = this.lineEnd(pos);
      if (j === e) {
        if (j - pos > bi) throw BAIL;
        if (e >= n) break; // spaces at the end of the file, with no line break: not an empty line
        lines.push("");
        pos = e + 1;
        continue;
      }
      if (j - pos < bi) break;
      const line = s.slice(pos + bi, e);
      if (folded && line[0] === " ") throw BAIL;
      if (e >= n) throw BAIL; // the last line of the file without its newline
      lines.push(line);
      pos = e + 1;
    }
    let last = lines.length - 1;
    while (last >= 0 && lines[last] === "") last--;
    if (last < 0 || (folded && lines[0] === "")) throw BAIL;
    let body: string;
    if (folded) {
      body = lines[0]!;
      let empty = 0;
      for (let k = 1; k <= last; k++) {
        const l = lines[k]!;
        if (l === "") empty++;
        else {
          body += (empty > 0 ? "\n".repeat(empty) : " ") + l;
          empty = 0;
        }
      }
    } else body = lines.slice(0, last + 1).join("\n");
    const trailing = lines.length - 1 - last;
    this.next(Math.min(pos, n));
    if (chomp === "strip") return body;
    if (chomp === "keep") return body + "\n".repeat(trailing + 1);
    return body + "\n";
  }

  /** Skip spaces, line breaks and comments inside a flow collection; continuation lines must be indented past `ind`. */
  private flowSpace(i: number, ind: number): number {
    const s = this.s;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 32) i++;
      else if (c === 10) {
        const j = this.spaces(i + 1);
        const d = s.charCodeAt(j);
        if (d !== 10 && d !== 35 && j < this.n && j - (i + 1) <= ind) throw BAIL;
        if (j - (i + 1) === 0 && (s.startsWith("---", j) || s.startsWith("...", j))) throw BAIL;
        i = j;
      } else if (c === 35) {
        const prev = s.charCodeAt(i - 1);
        if (prev !== 32 && prev !== 10) throw BAIL;
        i = this.lineEnd(i);
      } else return i;
    }
  }

  /** A plain scalar inside a flow collection at `i`: its text and where it stopped. */
  private flowPlain(i: number): [string, number] {
    const s = this.s;
    if (!startsPlain(s, i, true)) throw BAIL;
    let j = i;
    for (; j < this.n; j++) {
      const c = s[j]!;
      if (c === "\n" || c === "," || c === "[" || c === "]" || c === "{" || c === "}") break;
      if (c === "#" && s[j - 1] === " ") break;
      if (c === ":") {
        const d = s[j + 1];
        if (d === undefined || d === " " || d === "\n" || d === "," || d === "[" || d === "]" || d === "{" || d === "}") break;
      }
    }
    return [s.slice(i, j).trimEnd(), j];
  }

  /** A flow value at `i`: [value, position after it]; a `:` after it (a pair) is refused. */
  private flowValue(i: number, ind: number): [unknown, number] {
    const s = this.s;
    const c = s[i];
    if (c === "{" || c === "[") return this.flow(i, ind);
    if (c === '"' || c === "'") return this.quoted(i);
    const [text, j] = this.flowPlain(i);
    if (s[j] === ":") throw BAIL;
    return [resolvePlain(text), j];
  }

  /** A flow mapping or sequence at `i`; [value, position after its closing bracket]. */
  private flow(i: number, ind: number): [unknown, number] {
    const s = this.s;
    if (s[i] === "[") {
      const out: unknown[] = [];
      i = this.flowSpace(i + 1, ind);
      while (s[i] !== "]") {
        const [v, j] = this.flowValue(i, ind);
        out.push(v);
        i = this.flowSpace(j, ind);
        if (s[i] === ",") i = this.flowSpace(i + 1, ind);
        else if (s[i] !== "]") throw BAIL;
      }
      return [out, i + 1];
    }
    const obj: Record<string, unknown> = {};
    i = this.flowSpace(i + 1, ind);
    while (s[i] !== "}") {
      let key: string;
      let j: number;
      if (s[i] === '"' || s[i] === "'") {
        [key, j] = this.quoted(i);
        j = this.spaces(j);
        if (s[j] !== ":") throw BAIL;
      } else {
        const [text, k] = this.flowPlain(i);
        if (s[k] !== ":") throw BAIL;
        key = plainKey(text);
        j = k;
      }
      if (key.length > 1000) throw BAIL;
      j = this.flowSpace(j + 1, ind);
      if (s[j] === "," || s[j] === "}" || j >= this.n) throw BAIL;
      const [v, k] = this.flowValue(j, ind);
      setKey(obj, key, v);
      i = this.flowSpace(k, ind);
      if (s[i] === ",") i = this.flowSpace(i + 1, ind);
      else if (s[i] !== "}") throw BAIL;
    }
    return [obj, i + 1];
  }
}

/**
 * The data of `text` when it is in the fast subset (see above), else `undefined`: then parse it
 * with `yaml`, which yields the same data for everything this accepts.
 */
export function fastYaml(text: string): { readonly data: unknown } | undefined {
  if (UNREAD.test(text)) return undefined;
  try {
    return { data: new FastYaml(text).document() };
  } catch (err) {
    // Nesting deep enough to overflow the stack is left to yaml too (and its error).
    if (err === BAIL || err instanceof RangeError) return undefined;
    throw err;
  }
}
