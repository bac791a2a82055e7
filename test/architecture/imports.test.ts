/**
 * The module graph of src/ keeps the shape DESIGN.md gives it: "Dependencies point down this
 * list's data flow, never up: engine imports nothing but plan and expr types; runtime and
 * distributed import engine, never the reverse; cli/ui import anything."
 *
 * Every `import … from`, `export … from`, side-effect `import "…"`, dynamic `import("…")` and
 * `import("…")` type of every src/**\/*.ts file is read with the TypeScript parser (so comments
 * and strings are never mistaken for imports) and checked against:
 *   (a) no cycle between modules (top-level directories of src/) — and none between files;
 *   (b) the layering table below: each module imports only the modules its row lists, and
 *       only types from the ones listed as type-only.
 * A failure names every offending import as `src/file.ts:line → src/target.ts`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const SRC = join(ROOT, "src");

/**
 * The layering, bottom to top. A module may import itself and the modules in `imports`
 * (values and types); from the modules in `types` only types (statements erased at compile
 * time: `import type`, `export type`, `import("…")` types). Everything else is an upward or
 * sideways arrow. Each row says why.
 */
const LAYERS: Readonly<Record<string, { readonly imports: readonly string[]; readonly types?: readonly string[]; readonly why: string }>> = {
  base: { imports: [], why: "error kinds and classes, run status, RunResult: the vocabulary every layer shares; imports nothing" },
  expr: { imports: ["base"], why: "the one place that knows JSONata" },
  plan: { imports: ["base"], types: ["expr"], why: "the immutable IR: data types (and its hash)" },
  engine: { imports: ["base"], types: ["plan", "expr"], why: "pure fold/decide: 'engine imports nothing but plan and expr types'" },
  template: { imports: ["base", "expr", "plan"], why: "compiles YAML/TS into a plan" },
  store: { imports: ["base"], types: ["plan", "engine"], why: "the event log behind one port: stores events, never runs the engine" },
  agents: { imports: ["base"], types: ["plan", "engine"], why: "LLM providers, tokens, cost" },
  stages: {
    imports: ["base", "expr", "plan", "template", "agents"],
    types: ["engine"],
    why: "(ctx) → output, 'knows nothing of scheduling'; declares the ports (pool lease, budget hold, child runs) the runtime implements",
  },
  runtime: { imports: ["base", "expr", "plan", "template", "engine", "store", "agents", "stages"], why: "the shell for one process: executes what engine decides" },
  distributed: {
    imports: ["base", "expr", "plan", "template", "engine", "store", "agents", "stages", "runtime"],
    why: "BullMQ workers: another host of runtime's step loop; runtime never imports it",
  },
  trace: { imports: ["base", "expr", "plan", "template", "engine", "store"], why: "read-only views over the log" },
  telemetry: { imports: ["base", "plan", "engine"], why: "maps events onto OpenTelemetry spans" },
  api: {
    imports: ["base", "expr", "plan", "template", "engine", "store", "agents", "stages", "runtime", "trace", "telemetry"],
    why: "the TypeScript API (definePipeline, run, execute) over the runtime",
  },
  testing: { imports: ["base"], why: "`baton/testing`: a standalone fake provider" },
  index: {
    imports: ["base", "expr", "plan", "template", "engine", "store", "agents", "stages", "runtime", "distributed", "trace", "telemetry", "api", "testing"],
    why: "src/index.ts, the public entry: re-exports the library (not cli, not ui)",
  },
  auth: { imports: ["base"], types: ["store"], why: "API tokens over the store port's records: below ui (its server checks them) and cli (`baton token`)" },
  registry: { imports: ["template"], types: ["plan", "store"], why: "registered pipelines (`baton deploy`) over the store port's records: below ui (the API starts runs by name) and serve" },
  "ui/client": { imports: ["base"], types: ["ui", "trace", "engine"], why: "the browser bundle: no Node code, only base values and the server's JSON types (the trace, and the stored events it reads: engine types)" },
  ui: {
    imports: ["base", "expr", "plan", "template", "engine", "store", "agents", "stages", "runtime", "distributed", "trace", "telemetry", "api", "auth", "registry"],
    why: "thin: calls the library; only cli and serve call it (its browser client is bundled, not imported)",
  },
  serve: {
    imports: ["base", "expr", "plan", "template", "engine", "store", "agents", "runtime", "distributed", "registry", "auth", "ui"],
    why: "`baton serve`: composes the UI server, the runtime or a worker, the trigger scheduler and the recovery sweep; only cli calls it",
  },
  cli: {
    imports: ["base", "expr", "plan", "template", "engine", "store", "agents", "stages", "runtime", "distributed", "trace", "telemetry", "api", "ui", "auth", "registry", "serve", "testing"],
    why: "thin: imports anything; nothing imports it",
  },
};

/**
 * Cycles allowed anyway, each with its reason (`"a ↔ b"` for modules, `"src/x.ts ↔ src/y.ts"`
 * for files, names sorted). None today.
 */
const ALLOWED_CYCLES: Readonly<Record<string, string>> = {};

interface Edge {
  /** Importing file, relative to the repository root. */
  readonly from: string;
  readonly line: number;
  /** Imported file, relative to the repository root. */
  readonly to: string;
  /** The statement is erased at compile time. */
  readonly typeOnly: boolean;
  readonly statement: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

const rel = (abs: string) => relative(ROOT, abs).split(sep).join("/");

/** The relative imports of one file (package imports are not part of the graph). */
function importsOf(file: string): Edge[] {
  const text = readFileSync(file, "utf8");
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: Edge[] = [];
  const add = (node: ts.Node, spec: string, typeOnly: boolean) => {
    if (!spec.startsWith(".")) return;
    const target = resolve(dirname(file), spec).replace(/\.js$/, ".ts");
    const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
    const statement = node.getText(sf).split("\n")[0]!.slice(0, 120);
    out.push({ from: rel(file), line, to: rel(target), typeOnly, statement });
  };
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
      // `import { type A }` is not erased under verbatimModuleSyntax (it becomes `import {}`): a value edge.
      add(n, n.moduleSpecifier.text, n.importClause?.isTypeOnly === true);
    } else if (ts.isExportDeclaration(n) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      add(n, n.moduleSpecifier.text, n.isTypeOnly);
    } else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference) && ts.isStringLiteral(n.moduleReference.expression)) {
      add(n, n.moduleReference.expression.text, n.isTypeOnly);
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
      add(n, n.argument.literal.text, true);
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = n.arguments[0];
      if (arg && ts.isStringLiteralLike(arg)) add(n, arg.text, false);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** The module of a file or import target: its top-level directory under src/ (`ui/client` apart), or undefined outside src/. */
function moduleOf(path: string): string | undefined {
  if (!path.startsWith("src/")) return undefined;
  const parts = path.slice(4).split("/");
  if (parts.length === 1) return parts[0] === "index.ts" ? "index" : `(file ${parts[0]})`;
  if (parts[0] === "ui" && parts[1] === "client" && parts.length > 2) return "ui/client";
  return parts[0];
}

const where = (e: Edge) => `${e.from}:${e.line} → ${e.to}${e.typeOnly ? " (type)" : ""}   ${e.statement}`;

/** Strongly connected components with more than one node (Tarjan). */
function cycles(graph: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v);
  return out;
}

/**
 * A cycle, hop by hop, with the imports that make each hop: `all` lists every hop between
 * members of `scc` (modules: a handful), otherwise one shortest loop through its first member
 * (files: there may be many).
 */
function cycleReport(scc: readonly string[], edges: readonly Edge[], key: (path: string) => string | undefined, all: boolean): string {
  const members = new Set(scc);
  const hops = new Map<string, Edge[]>();
  for (const e of edges) {
    const a = key(e.from);
    const b = key(e.to);
    if (a === undefined || b === undefined || a === b || !members.has(a) || !members.has(b)) continue;
    const k = `${a}\0${b}`;
    (hops.get(k) ?? hops.set(k, []).get(k)!).push(e);
  }
  const show = (k: string) => [`  ${k.replace("\0", " → ")}`, ...hops.get(k)!.map((e) => `      ${where(e)}`)];
  if (all) return `cycle through ${scc.join(", ")}:\n${[...hops.keys()].sort().flatMap(show).join("\n")}`;
  const start = scc[0]!;
  const back = new Map<string, string>();
  const queue = [start];
  let last: string | undefined;
  while (queue.length > 0 && last === undefined) {
    const v = queue.shift()!;
    for (const w of scc) {
      if (!hops.has(`${v}\0${w}`)) continue;
      if (w === start) {
        last = v;
        break;
      }
      if (!back.has(w)) {
        back.set(w, v);
        queue.push(w);
      }
    }
  }
  const path = [start];
  for (let v = last!; v !== start; v = back.get(v)!) path.splice(1, 0, v);
  path.push(start);
  return `cycle through ${scc.join(", ")}, e.g.:\n${path.slice(1).flatMap((to, i) => show(`${path[i]}\0${to}`)).join("\n")}`;
}

const files = sourceFiles(SRC);
const edges = files.flatMap(importsOf);

describe("module graph of src/ (DESIGN.md: dependencies point down, never up)", () => {
  it("reads the imports of every source file", () => {
    expect(files.length).toBeGreaterThan(50);
    // Sanity: each kind of statement is seen (a parser that saw nothing would pass everything).
    expect(edges.some((e) => e.from === "src/engine/decide.ts" && e.to === "src/plan/types.ts" && e.typeOnly)).toBe(true);
    expect(edges.some((e) => e.from === "src/index.ts" && e.statement.startsWith("export"))).toBe(true);
    expect(edges.some((e) => e.from === "src/stages/index.ts" && e.to === "src/stages/agent.ts" && !e.typeOnly)).toBe(true);
    const missing = edges.filter((e) => e.to.startsWith("src/") && !files.includes(join(ROOT, e.to)));
    expect(missing.map(where), "imports of files that do not exist").toEqual([]);
  });

  it("every module has a row in the layering table", () => {
    const unknown = [...new Set(files.map((f) => moduleOf(rel(f))!))].filter((m) => !(m in LAYERS));
    expect(unknown, "add these to LAYERS in test/architecture/imports.test.ts (where do they sit, and why?)").toEqual([]);
  });

  it("(a) no cycles between modules", () => {
    const graph = new Map<string, Set<string>>();
    for (const e of edges) {
      const a = moduleOf(e.from);
      const b = moduleOf(e.to);
      if (a === undefined || b === undefined || a === b) continue;
      (graph.get(a) ?? graph.set(a, new Set()).get(a)!).add(b);
    }
    const found = cycles(graph).filter((c) => !(c.join(" ↔ ") in ALLOWED_CYCLES));
    expect(found.map((c) => cycleReport(c, edges, moduleOf, true)).join("\n"), "import cycles between modules").toBe("");
  });

  it("(a) no cycles between files", () => {
    const graph = new Map<string, Set<string>>();
    for (const e of edges) {
      if (!e.to.startsWith("src/")) continue;
      (graph.get(e.from) ?? graph.set(e.from, new Set()).get(e.from)!).add(e.to);
    }
    const found = cycles(graph).filter((c) => !(c.join(" ↔ ") in ALLOWED_CYCLES));
    expect(found.map((c) => cycleReport(c, edges, (p) => p, false)).join("\n"), "import cycles between files").toBe("");
  });

  it("(b) every import follows the layering table", () => {
    const offending: string[] = [];
    for (const e of edges) {
      const a = moduleOf(e.from);
      const b = moduleOf(e.to);
      if (a === undefined || b === undefined || a === b) continue;
      const row = LAYERS[a];
      if (row === undefined) continue; // reported by the table test
      if (row.imports.includes(b)) continue;
      if (row.types?.includes(b)) {
        if (e.typeOnly) continue;
        offending.push(`${where(e)}\n      ${a} may import only types from ${b} (use \`import type\`)`);
        continue;
      }
      offending.push(`${where(e)}\n      ${a} may not import ${b}: ${a} imports ${[...row.imports, ...(row.types ?? []).map((t) => `${t} (types)`)].join(", ") || "nothing"}`);
    }
    expect(offending.join("\n"), "imports against the layering (test/architecture/imports.test.ts, LAYERS)").toBe("");
  });

  it("the layering table itself has no cycles and names only known modules", () => {
    const graph = new Map<string, Set<string>>();
    for (const [m, row] of Object.entries(LAYERS)) {
      for (const d of [...row.imports, ...(row.types ?? [])]) {
        expect(LAYERS, `${m} lists unknown module ${d}`).toHaveProperty([d]);
        (graph.get(m) ?? graph.set(m, new Set()).get(m)!).add(d);
      }
    }
    expect(cycles(graph)).toEqual([]);
  });
});
