/**
 * The floor: a minimal hand-written Promise scheduler (dependency counters, `await` on every
 * stage function, no persistence), optionally writing one SQLite row per stage execution
 * (better-sqlite3, WAL, synchronous=NORMAL, one INSERT = one implicit transaction).
 */
import Database from "better-sqlite3";
import { stageFns } from "../workloads.mjs";
import { tempDb, removeDb } from "./tmp.mjs";

function compileDag(w) {
  const index = new Map(w.stages.map((s, i) => [s.id, i]));
  const deps = w.stages.map((s) => s.deps.map((d) => index.get(d)));
  const dependents = w.stages.map(() => []);
  deps.forEach((ds, i) => ds.forEach((d) => dependents[d].push(i)));
  return { n: w.stages.length, ids: w.stages.map((s) => s.id), deps, dependents, fns: stageFns(w), forEach: w.stages.map((s) => s.forEach) };
}

/** Run the DAG once; `record(stage, item, output)` is called after every execution. Resolves to the last stage's output. */
function runDag(dag, record) {
  return new Promise((resolve, reject) => {
    const { n, deps, dependents, fns, forEach } = dag;
    const out = new Array(n);
    const waiting = deps.map((d) => d.length);
    let left = n;
    const start = async (i) => {
      try {
        const depOut = deps[i].map((d) => out[d]);
        let v;
        if (forEach[i] !== undefined) {
          const fn = fns[i];
          v = await Promise.all(depOut[0].items.map(async (x, k) => {
            const r = await fn(x);
            record?.(i, k, r);
            return r;
          }));
        } else {
          v = await fns[i](depOut);
          record?.(i, null, v);
        }
        out[i] = v;
        if (--left === 0) return resolve(out[n - 1]);
        for (const j of dependents[i]) if (--waiting[j] === 0) void start(j);
      } catch (err) {
        reject(err);
      }
    };
    for (let i = 0; i < n; i++) if (waiting[i] === 0) void start(i);
  });
}

export async function create(w, { sqlite }) {
  const dag = compileDag(w);
  if (!sqlite) return { run: () => runDag(dag), beforeRep() {}, afterRep() {} };
  let db, insert, file;
  return {
    beforeRep() {
      file = tempDb("floor");
      db = new Database(file);
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.exec("CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, stage TEXT NOT NULL, item INTEGER, data TEXT NOT NULL, PRIMARY KEY (run_id, seq))");
      insert = db.prepare("INSERT INTO events (run_id, seq, stage, item, data) VALUES (?, ?, ?, ?, ?)");
    },
    run(i) {
      const runId = `run-${i}`;
      let seq = 0;
      return runDag(dag, (stage, item, v) => void insert.run(runId, ++seq, dag.ids[stage], item, JSON.stringify(v)));
    },
    afterRep() {
      db.close();
      removeDb(file);
    },
  };
}
