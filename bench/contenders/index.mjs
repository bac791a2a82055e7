/** Every contender: id → label, group and how to create it. Imported lazily (one per child process). */
export const CONTENDERS = [
  { id: "floor", label: "floor (Promise scheduler)", load: () => import("./floor.mjs"), opts: { sqlite: false } },
  { id: "floor-sqlite", label: "floor + SQLite row/stage", load: () => import("./floor.mjs"), opts: { sqlite: true } },
  { id: "baton-mem", label: "Baton TS, memory", load: () => import("./baton.mjs"), opts: { sqlite: false, variant: "ts" } },
  { id: "baton-sqlite", label: "Baton TS, SQLite", load: () => import("./baton.mjs"), opts: { sqlite: true, variant: "ts" } },
  { id: "yaml-value-mem", label: "Baton YAML value:, memory", load: () => import("./baton.mjs"), opts: { sqlite: false, variant: "yaml-value" } },
  { id: "yaml-value-sqlite", label: "Baton YAML value:, SQLite", load: () => import("./baton.mjs"), opts: { sqlite: true, variant: "yaml-value" } },
  { id: "yaml-run-mem", label: "Baton YAML run:+input, memory", load: () => import("./baton.mjs"), opts: { sqlite: false, variant: "yaml-run" } },
  { id: "yaml-run-sqlite", label: "Baton YAML run:+input, SQLite", load: () => import("./baton.mjs"), opts: { sqlite: true, variant: "yaml-run" } },
  { id: "langgraph", label: "LangGraph, no checkpointer", load: () => import("./langgraph.mjs"), opts: { checkpointer: undefined } },
  { id: "langgraph-memsaver", label: "LangGraph + MemorySaver", load: () => import("./langgraph.mjs"), opts: { checkpointer: "memory" } },
  { id: "langgraph-sqlite", label: "LangGraph + SqliteSaver", load: () => import("./langgraph.mjs"), opts: { checkpointer: "sqlite" } },
];
