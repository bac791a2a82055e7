/**
 * The fast YAML path (src/template/yaml-fast.ts) against the `yaml` package (issue 14): whatever
 * the fast path accepts, yaml parses without an error (repeated keys included) to the same data;
 * templates written in the common subset are accepted; anchors, aliases, tags and repeated keys
 * are refused (left to yaml); and every diagnostic keeps its file:line:col.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { inspect, isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { parseDocument } from "yaml";
import { describe, expect, it } from "vitest";
import { compileSource, formatDiagnostic, TemplateError } from "../../src/template/index.js";
import { fastYaml } from "../../src/template/yaml-fast.js";

/** yaml's reading of `text`: its data, or "error" when it reports any error (a repeated key included). */
function yamlData(text: string): { data: unknown } | "error" {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) return "error";
  try {
    return { data: doc.toJS({ maxAliasCount: 100 }) };
  } catch {
    return "error";
  }
}

/** The property every text must have: refused, or read as yaml reads it. */
function agrees(text: string): boolean {
  const fast = fastYaml(text);
  if (fast === undefined) return true;
  const ref = yamlData(text);
  expect(ref, `the fast path accepted text yaml refuses:\n${text}`).not.toBe("error");
  // isDeepStrictEqual: same prototypes, own properties, NaN and -0 (expect's equality compares
  // own `constructor` properties as types).
  const want = (ref as { data: unknown }).data;
  expect(isDeepStrictEqual(fast.data, want), `data differs for:\n${text}\nfast: ${inspect(fast.data, { depth: 9 })}\nyaml: ${inspect(want, { depth: 9 })}`).toBe(true);
  return true;
}

// ---- generated templates in the subset -------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const KEY_WORDS = ["a", "b", "run", "value", "input", "stages", "needs", "__proto__", "constructor", "toString", "on", "yes", "no", "y", "1a", "-k", "a[0]", "a b", "a#b", "a:b", "é"];
const key = fc.oneof(fc.constantFrom(...KEY_WORDS), fc.string({ unit: fc.constantFrom("a", "b", "1", " ", ":", "#", "'", '"', "-", "\n", "é", "\\", "{", ","), minLength: 1, maxLength: 6 }));
const CHARS = ["a", "b", "z", "0", "1", "9", " ", " ", ":", "#", "-", "'", '"', "\\", "{", "}", "[", "]", ",", "&", "*", "!", "|", ">", "%", "@", "`", "\n", "\n", "\t", "é", "😀", ".", "e", "+", "~"];
const str = fc.oneof(
  fc.string({ unit: fc.constantFrom(...CHARS), maxLength: 24 }),
  fc.constantFrom("true", "False", "NULL", "~", "null", "0o17", "0x1F", "-12", "+3", "1.5", "1e3", ".inf", "-.Inf", ".nan", "007", "1_000", "2001-01-01", "line one\nline two\n", "a\n\nb\n\n", "  indented\nnext", "{{ s.n }}", "{ 'n': s.n + 1 }"),
);
const scalar: fc.Arbitrary<Json> = fc.oneof(str, fc.integer({ min: -1e6, max: 1e6 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null));
const tree: fc.Arbitrary<Json> = fc.letrec<{ node: Json }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    scalar,
    fc.array(tie("node"), { maxLength: 4 }),
    fc.dictionary(key, tie("node"), { maxKeys: 5 }).map((d) => d as Json),
  ),
})).node;

const PLAIN = /^[A-Za-z_][A-Za-z0-9_ ./-]*$/;
const WORDS = /^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE)$/;

/** Random choices for the renderer (styles, comments, blank lines), drawn from one integer stream. */
class Choices {
  private i = 0;
  constructor(private readonly xs: number[]) {}
  pick(n: number): number {
    const x = this.xs.length > 0 ? this.xs[this.i++ % this.xs.length]! : 0;
    return x % n;
  }
}

function renderKey(k: string, c: Choices): string {
  if (PLAIN.test(k) && !k.endsWith(" ") && !WORDS.test(k) && c.pick(4) > 0) return k;
  if (!k.includes("\n") && c.pick(3) === 0) return `'${k.replaceAll("'", "''")}'`;
  return JSON.stringify(k);
}

function flowScalar(v: Json, c: Choices): string {
  if (typeof v === "string") {
    if (PLAIN.test(v) && !v.endsWith(" ") && !WORDS.test(v) && c.pick(2) === 0) return v;
    return JSON.stringify(v);
  }
  if (v === null) return c.pick(2) ? "null" : "~";
  return String(v);
}

function flow(v: Json, c: Choices): string {
  if (Array.isArray(v)) return `[${v.map((e) => flow(e, c)).join(c.pick(2) ? ", " : ",")}]`;
  if (v !== null && typeof v === "object") {
    const items = Object.entries(v).map(([k, e]) => `${renderKey(k, c)}: ${flow(e, c)}`);
    return items.length === 0 ? "{}" : c.pick(2) ? `{ ${items.join(", ")} }` : `{${items.join(", ")}}`;
  }
  return flowScalar(v, c);
}

const pad = (n: number): string => " ".repeat(n);
const comment = (c: Choices): string => (c.pick(5) === 0 ? "  # note: a, b" : "");

/** A string as a block scalar, when it can be one; `ind` is the content's indent. */
function blockString(v: string, ind: number, c: Choices): string | undefined {
  if (!v.includes("\n") && / /.test(v.trim()) && !/  /.test(v) && v.trim() === v && !v.includes("\t") && c.pick(2) === 0) {
    // Folded, one word group per line.
    const words = v.split(" ");
    const lines: string[] = [];
    for (let i = 0; i < words.length; i += 2) lines.push(words.slice(i, i + 2).join(" "));
    return `>-${comment(c)}\n${lines.map((l) => pad(ind) + l).join("\n")}\n`;
  }
  if (!v.includes("\n") || v.includes("\t") || /(^|\n) /.test(v) || v.trim() === "") return undefined;
  const body = v.replace(/\n+$/, "");
  const trailing = v.length - body.length;
  const head = trailing === 0 ? "|-" : trailing === 1 ? "|" : "|+";
  const lines = body.split("\n").map((l) => (l === "" ? "" : pad(ind) + l));
  return `${head}${comment(c)}\n${lines.join("\n")}\n${"\n".repeat(Math.max(0, trailing - 1))}`;
}

/** `v` as the value after `key:` (or `- `) of a collection at indent `ind`: inline text and following lines. */
function blockValue(v: Json, ind: number, c: Choices): string {
  if (Array.isArray(v) && v.length > 0 && c.pick(3) > 0) {
    const at = c.pick(2) ? ind : ind + 2;
    return `${comment(c)}\n${blockSeq(v, at, c)}`;
  }
  if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length > 0 && c.pick(3) > 0) {
    return `${comment(c)}\n${blockMap(v, ind + 2, c)}`;
  }
  if (typeof v === "string") {
    const block = blockString(v, ind + 2, c);
    if (block !== undefined) return " " + block;
    if (!v.includes("\n") && c.pick(3) === 0) return ` '${v.replaceAll("'", "''")}'${comment(c)}\n`;
  }
  if (v === null && c.pick(3) === 0) return `${comment(c)}\n`;
  return ` ${flow(v, c)}${comment(c)}\n`;
}

function blockMap(v: { [k: string]: Json }, ind: number, c: Choices): string {
  let out = "";
  for (const [k, e] of Object.entries(v)) {
    if (c.pick(6) === 0) out += c.pick(2) ? "\n" : `${pad(c.pick(3) * ind)}# a comment line\n`;
    out += `${pad(ind)}${renderKey(k, c)}:${blockValue(e, ind, c)}`;
  }
  return out;
}

function blockSeq(v: Json[], ind: number, c: Choices): string {
  let out = "";
  for (const e of v) {
    if (e !== null && typeof e === "object" && !Array.isArray(e) && Object.keys(e).length > 0 && c.pick(2) === 0) {
      // Compact: `- key: value` with the other keys under the first.
      const text = blockMap(e, ind + 2, c);
      out += `${pad(ind)}- ${text.slice(ind + 2)}`;
    } else out += `${pad(ind)}-${blockValue(e, ind, c)}`;
  }
  return out;
}

/** A document: a top-level block mapping (as templates are), or JSON. */
const documents = fc
  .tuple(fc.dictionary(key, tree, { minKeys: 1, maxKeys: 6 }), fc.array(fc.nat(1000), { minLength: 1, maxLength: 64 }), fc.nat(9))
  .map(([data, xs, style]) => {
    const c = new Choices(xs);
    if (style === 0) return JSON.stringify(data, null, c.pick(2) ? 2 : undefined);
    return (c.pick(4) === 0 ? "---\n" : "") + (c.pick(4) === 0 ? "# a template\n" : "") + blockMap(data as { [k: string]: Json }, 0, c);
  });

describe("fast YAML path: whatever it accepts, yaml reads the same", () => {
  it("generated templates (block and flow collections, quoted, plain and block scalars, comments)", () => {
    fc.assert(fc.property(documents, agrees), { numRuns: 1500 });
  }, 120_000); // a hang guard for a loaded machine (≈ 9 s at load 15), not a time bound

  it("the same templates, mutated: characters inserted, deleted or replaced, lines repeated or re-indented", () => {
    const mutation = fc.tuple(fc.nat(), fc.nat(4), fc.constantFrom(" ", "  ", "\n", ":", "-", "- ", "#", "'", '"', "\\", "{", "}", "[", "]", ",", "&a ", "*a", "!!str ", "!t ", "|", ">", "|2", "? ", "---", "...", "%YAML 1.1\n", "<<: ", "\t", "\r", "0x", ".5", "e3", "a: b", "x"));
    fc.assert(
      fc.property(documents, fc.array(mutation, { minLength: 1, maxLength: 4 }), (text, muts) => {
        let t = text;
        for (const [at, kind, s] of muts) {
          const i = at % (t.length + 1);
          if (kind === 0) t = t.slice(0, i) + s + t.slice(i);
          else if (kind === 1) t = t.slice(0, i) + t.slice(i + 1);
          else if (kind === 2) t = t.slice(0, i) + s + t.slice(i + s.length);
          else {
            const lines = t.split("\n");
            const l = at % lines.length;
            if (kind === 3) lines.splice(l, 0, lines[l]!);
            else lines[l] = (lines[l]!.startsWith(" ") ? lines[l]!.slice(1) : " " + lines[l]);
            t = lines.join("\n");
          }
        }
        return agrees(t);
      }),
      { numRuns: 3000 },
    );
  }, 120_000);

  it("accepts templates written in the subset (so the property above is not vacuous)", () => {
    let accepted = 0;
    fc.assert(
      fc.property(documents, (text) => {
        if (fastYaml(text) !== undefined) accepted++;
      }),
      { numRuns: 500 },
    );
    // Strings with tabs or U+2028-like characters and some key shapes are left to yaml; most are read.
    expect(accepted).toBeGreaterThan(300);
  });

  it.each([
    ["a duplicate key", "a: 1\nb: 2\na: 3\n"],
    ["a duplicate key in a flow mapping", "x: { a: 1, a: 2 }\n"],
    ["quoted and plain spellings of one key", "a: 1\n'a': 2\n"],
    ["an anchor and alias", "x: &base { a: 1 }\ny: *base\n"],
    ["a merge key", "x: { a: 1 }\ny:\n  <<: { a: 1 }\n"],
    ["a tag", "x: !!str 12\n"],
    ["a local tag", "x: !thing 12\n"],
    ["a directive", "%YAML 1.2\n---\nx: 1\n"],
    ["two documents", "x: 1\n---\ny: 2\n"],
    ["a non-string key", "1: a\nb: 2\n"],
    ["a null key", "~: a\n"],
    ["a complex key", "? [a, b]\n: c\n"],
    ["a multi-line plain scalar", "x: one\n  two\n"],
    ["a multi-line quoted scalar", 'x: "one\n  two"\n'],
    ["a block scalar with an indentation indicator", "x: |2\n   a\n"],
    ["a tab", "x:\t1\n"],
    ["CRLF line ends", "x: 1\r\ny: 2\r\n"],
    ["a syntax error", "x: 1\n  y: 2\n"],
    ["a nested compact mapping", "x: a: b\n"],
  ])("refuses %s (yaml reads it, or reports its error)", (_what, text) => {
    expect(fastYaml(text)).toBeUndefined();
  });

  it("reads what yaml reads in the cases templates use", () => {
    const text = [
      "baton: 1",
      "name: report # a comment",
      "stages:",
      "  research:",
      "    agent: writer",
      "    prompt: |",
      "      Research {{ input.topic }}.",
      "",
      "      Use: bullet points # not a comment",
      "    retry: { attempts: 3, backoff: 2s }",
      "  verify:",
      "    needs: [research]",
      "    value: \"{ 'ok': research.n > 1 }\"",
      "    routes:",
      "      - when: ok",
      "        to: done",
      "      - to: research",
      "    folded: >-",
      "      one two",
      "      three",
      "    quoted: 'it''s'",
      "    escaped: \"tab\\there \\u00e9\"",
      "    numbers: [0o17, 0x1F, -12, 1.5, 1e3, .inf, 007]",
      "    nothing:",
      "    __proto__: kept",
      "",
    ].join("\n");
    const fast = fastYaml(text);
    expect(fast).toBeDefined();
    expect(isDeepStrictEqual(fast!.data, (yamlData(text) as { data: unknown }).data)).toBe(true);
    const stages = (fast!.data as { stages: Record<string, Record<string, unknown>> }).stages;
    expect(stages.research!.prompt).toBe("Research {{ input.topic }}.\n\nUse: bullet points # not a comment\n");
    expect(stages.verify!.numbers).toEqual([15, 31, -12, 1.5, 1000, Infinity, 7]);
    expect(Object.hasOwn(stages.verify!, "__proto__")).toBe(true);
  });
});

// ---- diagnostics ------------------------------------------------------------------------------

const FIXTURES = fileURLToPath(new URL("../fixtures/templates/", import.meta.url));

/** Every diagnostic of compiling `text`, formatted ([] when it compiles). */
function diagnosticsOf(text: string, format: "yaml" | "json"): string[] {
  try {
    compileSource(text, { file: "t." + format, format, baseDir: FIXTURES });
    return [];
  } catch (err) {
    if (!(err instanceof TemplateError)) throw err;
    return err.diagnostics.map(formatDiagnostic);
  }
}

/**
 * The same text with a last line the fast path refuses (a comment holding a tab; for JSON, a CR
 * LF): yaml reads it as before (same data, same positions), so this is what the yaml-only path reports.
 */
const viaYaml = (text: string): string => (text.endsWith("\n") ? text : text + "\n") + (text.trimStart().startsWith("{") ? "\r\n" : "#\t\n");

describe("fast YAML path: diagnostics are unchanged", () => {
  const files = readdirSync(FIXTURES).filter((f) => /\.(ya?ml|json)$/.test(f));

  it.each(files)("%s: the same diagnostics, at the same file:line:col, as the yaml-only path", (f) => {
    const text = readFileSync(FIXTURES + f, "utf8");
    const format = f.endsWith(".json") ? "json" : "yaml";
    expect(fastYaml(viaYaml(text))).toBeUndefined();
    expect(diagnosticsOf(text, format)).toEqual(diagnosticsOf(viaYaml(text), format));
  });

  it("the fixtures with template errors (not YAML ones) go through the fast path", () => {
    for (const f of ["structure.yaml", "kinds.yaml", "references.yaml", "expressions.yaml", "routes.yaml", "cycles.yaml"]) {
      const text = readFileSync(FIXTURES + f, "utf8");
      expect(fastYaml(text), f).toBeDefined();
      expect(diagnosticsOf(text, "yaml").length, f).toBeGreaterThan(0);
    }
  });

  it("generated templates with errors: same diagnostics through either path", () => {
    const FIELDS = ["run: ./s.mjs#f", "value: '1 +'", "value: \"{{ nope.x }}\"", "needs: [ghost]", "retires: 3", "retry: { attempts: 0 }", "timeout: 10", "agent: nobody", "prompt: |\n      hi {{ input.x }}\n", "for_each: \"[1, 2]\"", "concurrency: three", "value: \"s0.n + 1\"", "on_error: ignore", "routes:\n      - to: s0"];
    const stage = fc.array(fc.constantFrom(...FIELDS), { minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(fc.array(stage, { minLength: 1, maxLength: 5 }), fc.boolean(), (stages, typo) => {
        const lines = ["baton: 1", typo ? "nmae: t" : "name: t", "stages:"];
        stages.forEach((fields, i) => {
          lines.push(`  s${i}:`);
          const seen = new Set<string>();
          for (const f of fields) {
            const k = f.slice(0, f.indexOf(":"));
            if (seen.has(k)) continue; // a repeated key is yaml's (tested above)
            seen.add(k);
            lines.push(`    ${f}`);
          }
        });
        const text = lines.join("\n") + "\n";
        expect(fastYaml(text)).toBeDefined();
        expect(diagnosticsOf(text, "yaml")).toEqual(diagnosticsOf(viaYaml(text), "yaml"));
      }),
      { numRuns: 150 },
    );
  });
});
