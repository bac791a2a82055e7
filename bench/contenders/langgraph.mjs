/**
 * LangGraph.js: a StateGraph with one node per stage and one LastValue channel per stage,
 * an edge per dependency (a multi-source edge is a join), `Send` for for_each. Without a
 * checkpointer, with MemorySaver, or with the SQLite checkpointer (own better-sqlite3
 * connection: WAL, synchronous=NORMAL, a fresh file per repetition). Checkpointed runs use
 * `durability: "sync"` (BENCH_LG_DURABILITY), like Baton appending before acting.
 */
import Database from "better-sqlite3";
import { Annotation, END, MemorySaver, Send, START, StateGraph } from "@langchain/langgraph";
import { SqliteSaver } from "@langchain/langgraph-checkpoint-sqlite";
import { stageFns } from "../workloads.mjs";
import { tempDb, removeDb } from "./tmp.mjs";

const durability = process.env.BENCH_LG_DURABILITY || "sync";

/** The channel holding a stage's output (LangGraph forbids a node and a channel of the same name). */
const ch = (id) => `out_${id}`;

function buildGraph(w) {
  const fns = stageFns(w);
  const channels = {};
  for (const s of w.stages) {
    channels[ch(s.id)] = s.forEach !== undefined ? Annotation({ reducer: (a, b) => a.concat(b), default: () => [] }) : Annotation();
  }
  const g = new StateGraph(Annotation.Root(channels));
  w.stages.forEach((s, i) => {
    const fn = fns[i];
    const deps = s.deps;
    if (s.forEach !== undefined) g.addNode(s.id, (input) => ({ [ch(s.id)]: [fn(input.item)] }));
    else g.addNode(s.id, (state) => ({ [ch(s.id)]: fn(deps.map((d) => state[ch(d)])) }));
  });
  for (const s of w.stages) {
    if (s.deps.length === 0) g.addEdge(START, s.id);
    else if (s.forEach !== undefined) {
      const src = s.deps[0];
      g.addConditionalEdges(src, (state) => state[ch(src)].items.map((item) => new Send(s.id, { item })));
    } else if (s.deps.length === 1) g.addEdge(s.deps[0], s.id);
    else g.addEdge(s.deps, s.id);
  }
  const hasDependents = new Set(w.stages.flatMap((s) => s.deps));
  for (const s of w.stages) if (!hasDependents.has(s.id)) g.addEdge(s.id, END);
  return g;
}

export async function create(w, { checkpointer }) {
  const graph = buildGraph(w);
  const last = w.stages[w.stages.length - 1].id;
  const recursionLimit = w.stages.length * 4 + 100;
  let app, db, file, rep = 0;
  if (!checkpointer) app = graph.compile();
  return {
    async beforeRep() {
      rep++;
      if (checkpointer === "memory") app = graph.compile({ checkpointer: new MemorySaver() });
      else if (checkpointer === "sqlite") {
        file = tempDb("langgraph");
        db = new Database(file);
        db.pragma("journal_mode = WAL");
        db.pragma("synchronous = NORMAL");
        const saver = new SqliteSaver(db);
        saver.setup();
        app = graph.compile({ checkpointer: saver });
      }
    },
    async run(i) {
      const config = { recursionLimit };
      if (checkpointer) Object.assign(config, { configurable: { thread_id: `rep${rep}-run${i}` }, durability });
      const state = await app.invoke({}, config);
      return state[ch(last)];
    },
    async afterRep() {
      if (db) {
        db.close();
        removeDb(file);
        db = undefined;
      }
      app = checkpointer ? undefined : app;
    },
  };
}
