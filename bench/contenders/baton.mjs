/**
 * Baton through its public API: TS pipelines with function stages, or YAML templates compiled
 * with `compileSource` (value stages, or run stages with `input: "{{ … }}"`), executed with
 * `execute(pipeline, inputs, { store })`. One store per repetition, shared by the runs of that
 * repetition, opened before and closed after the timed part.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { stageFns } from "../workloads.mjs";
import { tempDb, removeDb } from "./tmp.mjs";

const here = dirname(fileURLToPath(import.meta.url));
// BENCH_BATON: unset/"dist" = the build, "src" = the sources (through tsx), else a path to an index module.
const which = process.env.BENCH_BATON || "dist";
const baton = await import(which === "dist" ? "../../dist/index.js" : which === "src" ? "../../src/index.ts" : new URL(which, `file://${process.cwd()}/`).href);
const { definePipeline, execute, compileSource, validateInputs, MemoryStore, SqliteStore } = baton;

function tsPipeline(w) {
  const fns = stageFns(w);
  let p = definePipeline({ name: `bench-${w.id}` });
  w.stages.forEach((s, i) => {
    const fn = fns[i];
    const deps = s.deps;
    if (s.forEach !== undefined) {
      p = p.stage(s.id, { needs: deps, for_each: `${deps[0]}.items`, run: (ctx) => fn(ctx.item) });
    } else if (deps.length === 0) {
      p = p.stage(s.id, { run: () => fn([]) });
    } else {
      p = p.stage(s.id, { needs: deps, run: (ctx) => fn(deps.map((d) => ctx.outputs[d])) });
    }
  });
  return p.returns(w.stages[w.stages.length - 1].id);
}

const q = (s) => JSON.stringify(s); // a JSON string is a valid YAML scalar

/** YAML with `value:` stages: roots build an object, links are simple paths, fan-ins build an array. */
function yamlValue(w) {
  const lines = ["baton: 1", `name: bench-${w.id}-yaml`, "stages:"];
  const fe = w.stages.find((s) => s.forEach !== undefined);
  for (const s of w.stages) {
    lines.push(`  ${s.id}:`);
    if (s.forEach !== undefined) {
      lines.push(`    for_each: ${s.deps[0]}.items`, "    value: item");
    } else if (s.deps.length === 0) {
      lines.push(`    value: ${q(fe ? `{"v": 0, "items": [0..${fe.forEach - 1}]}` : `{"v": 0}`)}`);
    } else if (s.deps.length === 1 && w.stages.find((x) => x.id === s.deps[0]).forEach !== undefined) {
      lines.push(`    value: ${q(`$count(${s.deps[0]})`)}`);
    } else if (s.deps.length === 1) {
      lines.push(`    value: ${s.deps[0]}`);
    } else {
      lines.push(`    value: ${q(`[${s.deps.join(", ")}]`)}`);
    }
  }
  lines.push(`output: ${w.stages[w.stages.length - 1].id}`);
  return lines.join("\n") + "\n";
}

/** YAML with `run:` stages (bench/fixtures/stage.mjs) fed by `input: "{{ dep }}"`. */
function yamlRun(w) {
  const lines = ["baton: 1", `name: bench-${w.id}-yaml-run`, "stages:"];
  const fe = w.stages.find((s) => s.forEach !== undefined);
  for (const s of w.stages) {
    lines.push(`  ${s.id}:`);
    if (s.forEach !== undefined) {
      lines.push("    run: ./fixtures/stage.mjs#step", `    for_each: ${s.deps[0]}.items`, `    input: "{{ item }}"`);
    } else if (s.deps.length === 0) {
      if (fe) lines.push("    run: ./fixtures/stage.mjs#items", `    input: { n: ${fe.forEach} }`);
      else lines.push("    run: ./fixtures/stage.mjs#step");
    } else if (s.deps.length === 1) {
      lines.push("    run: ./fixtures/stage.mjs#step", `    input: "{{ ${s.deps[0]} }}"`);
    } else {
      lines.push("    run: ./fixtures/stage.mjs#step", `    input: [${s.deps.map((d) => `"{{ ${d} }}"`).join(", ")}]`);
    }
  }
  lines.push(`output: ${w.stages[w.stages.length - 1].id}`);
  return lines.join("\n") + "\n";
}

/** What the YAML variants return (the TS variant returns what the floor returns). */
function yamlExpected(w, kind) {
  const fe = w.stages.find((s) => s.forEach !== undefined);
  const sink = w.stages[w.stages.length - 1];
  if (kind === "value") {
    if (fe) return fe.forEach;
    if (sink.deps.length > 1) return sink.deps.map(() => ({ v: 0 }));
    return { v: 0 };
  }
  if (fe) return { v: (fe.forEach * (fe.forEach - 1)) / 2 };
  if (sink.deps.length > 1) return { v: sink.deps.length };
  return { v: w.stages.length - 1 };
}

function pipelineOf(plan) {
  return { name: plan.name, plan, parseInputs: (raw) => validateInputs(plan, raw ?? {}) };
}

export async function create(w, { sqlite, variant }) {
  let pipeline, expected;
  if (variant === "ts") {
    pipeline = tsPipeline(w);
  } else {
    const text = variant === "yaml-value" ? yamlValue(w) : yamlRun(w);
    const plan = compileSource(text, { format: "yaml", file: join(here, "..", `bench-${w.id}-${variant}.yaml`), baseDir: join(here, "..") });
    pipeline = pipelineOf(plan);
    expected = yamlExpected(w, variant === "yaml-value" ? "value" : "run");
  }
  void pipeline.plan; // compile outside the timed part
  let store, file;
  return {
    expected,
    async beforeRep() {
      if (sqlite) {
        file = tempDb("baton");
        store = SqliteStore.open(file);
      } else {
        store = new MemoryStore();
      }
    },
    async run() {
      const r = await execute(pipeline, {}, { store });
      if (r.status !== "succeeded") throw new Error(`baton run ${r.status}: ${JSON.stringify(r.error)}`);
      return r.output;
    },
    async afterRep() {
      await store.close();
      if (file) removeDb(file);
    },
    /** For BENCH_DUMP: the template text. */
    source: variant === "ts" ? undefined : pipeline.plan.source.text,
  };
}
