/**
 * The dependency graph: deps and dependents, cycles, topological order, route directions and
 * the rules for fallback stages.
 */
import type { Analysis } from "./analyze.js";
import type { Reporter } from "./source.js";

/** The graph of a template, by stage index. */
export interface Graph {
  readonly deps: readonly (readonly number[])[];
  readonly dependents: readonly (readonly number[])[];
  /** Deps before dependents, ties by stage order; undefined when there is a cycle. */
  readonly topo?: readonly number[];
  readonly isFallback: readonly boolean[];
  /** `backward` of each goto route, keyed `stage/route`. */
  readonly backward: ReadonlyMap<string, boolean>;
}

/** Strongly connected components with more than one stage (iterative Tarjan). */
function cyclicComponents(deps: readonly (readonly number[])[]): number[][] {
  const n = deps.length;
  const index = new Array<number>(n).fill(-1);
  const low = new Array<number>(n).fill(0);
  const onStack = new Array<boolean>(n).fill(false);
  const stack: number[] = [];
  const out: number[][] = [];
  let counter = 0;
  for (let root = 0; root < n; root++) {
    if (index[root] !== -1) continue;
    const work: [number, number][] = [[root, 0]];
    while (work.length > 0) {
      const frame = work[work.length - 1] as [number, number];
      const [v, i] = frame;
      if (i === 0) {
        index[v] = low[v] = counter++;
        stack.push(v);
        onStack[v] = true;
      }
      const edges = deps[v] as readonly number[];
      if (i < edges.length) {
        frame[1] = i + 1;
        const w = edges[i] as number;
        if (index[w] === -1) work.push([w, 0]);
        else if (onStack[w]) low[v] = Math.min(low[v] as number, index[w] as number);
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low[parent[0]] = Math.min(low[parent[0]] as number, low[v] as number);
      if (low[v] === index[v]) {
        const comp: number[] = [];
        for (let w = -1; w !== v; ) {
          w = stack.pop() as number;
          onStack[w] = false;
          comp.push(w);
        }
        if (comp.length > 1) out.push(comp.sort((a, b) => a - b));
      }
    }
  }
  return out.sort((a, b) => (a[0] as number) - (b[0] as number));
}

/** Shortest cycle through `start` inside a component, following data flow (dep → dependent). */
function cycleFrom(start: number, comp: ReadonlySet<number>, dependents: readonly (readonly number[])[]): number[] {
  const prev = new Map<number, number>();
  const queue = [start];
  for (let q = 0; q < queue.length; q++) {
    const v = queue[q] as number;
    for (const w of dependents[v] as readonly number[]) {
      if (!comp.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let x = v; x !== start; x = prev.get(x) as number) path.push(x);
        return [start, ...path.slice(1).reverse(), start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

/** Kahn's algorithm, always taking the ready stage that comes first in the template. */
function topoOrder(deps: readonly (readonly number[])[], dependents: readonly (readonly number[])[]): number[] {
  const missing = deps.map((d) => d.length);
  const ready: number[] = [];
  missing.forEach((m, i) => m === 0 && ready.push(i));
  const order: number[] = [];
  while (ready.length > 0) {
    const v = ready.shift() as number;
    order.push(v);
    for (const w of dependents[v] as readonly number[]) {
      missing[w] = (missing[w] as number) - 1;
      if (missing[w] === 0) {
        let lo = 0;
        let hi = ready.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if ((ready[mid] as number) < w) lo = mid + 1;
          else hi = mid;
        }
        ready.splice(lo, 0, w);
      }
    }
  }
  return order;
}

/** Build the graph and report cycles, impossible routes and misused fallback stages. */
export function buildGraph(a: Analysis, report: Reporter): Graph {
  const { stages, stageIndex } = a;
  const idOf = (i: number): string => (stages[i] as (typeof stages)[number]).id;
  const deps = stages.map((s) => {
    const set = new Set<number>();
    for (const name of [...s.needs, ...s.reads]) {
      const j = stageIndex.get(name);
      if (j !== undefined && j !== s.idx) set.add(j);
    }
    return [...set].sort((x, y) => x - y);
  });
  const dependents: number[][] = stages.map(() => []);
  deps.forEach((ds, i) => ds.forEach((d) => (dependents[d] as number[]).push(i)));

  const cycles = cyclicComponents(deps);
  for (const comp of cycles) {
    const start = comp[0] as number;
    const cycle = cycleFrom(start, new Set(comp), dependents);
    report.key(["stages", idOf(start)], `dependency cycle: ${cycle.map(idOf).join(" → ")}`);
  }

  const memo = new Map<number, Set<number>>();
  const ancestors = (i: number): Set<number> => {
    let set = memo.get(i);
    if (set) return set;
    set = new Set<number>();
    const todo = [...(deps[i] as number[])];
    while (todo.length > 0) {
      const d = todo.pop() as number;
      if (set.has(d)) continue;
      set.add(d);
      todo.push(...(deps[d] as number[]));
    }
    memo.set(i, set);
    return set;
  };

  const isFallback = stages.map(() => false);
  const standsInFor = new Map<number, number[]>();
  for (const s of stages) {
    if (s.onError.kind !== "fallback") continue;
    const f = stageIndex.get(s.onError.stage) as number;
    isFallback[f] = true;
    standsInFor.set(f, [...(standsInFor.get(f) ?? []), s.idx]);
  }

  const backward = new Map<string, boolean>();
  for (const s of stages) {
    s.routes.forEach((r, k) => {
      if (r.goto === undefined) return;
      const t = stageIndex.get(r.goto) as number;
      const at = [...r.path, "goto"];
      if (isFallback[t]) report.value(at, `route goto '${r.goto}' from '${s.id}': '${r.goto}' is a fallback stage, which runs only when called as one`);
      else if (t === s.idx || ancestors(s.idx).has(t)) backward.set(`${s.idx}/${k}`, true);
      else if (ancestors(t).has(s.idx)) backward.set(`${s.idx}/${k}`, false);
      else if (cycles.length === 0) report.value(at, `route goto '${r.goto}' from '${s.id}' is neither upstream nor downstream of '${s.id}'`);
    });
  }

  for (const [f, users] of standsInFor) {
    const fs = stages[f] as (typeof stages)[number];
    const label = `stage '${fs.id}' is a fallback (of ${users.map((u) => `'${idOf(u)}'`).join(", ")})`;
    if (fs.routes.length > 0) report.key(["stages", fs.id, "routes"], `${label}, so it cannot have routes`);
    if (fs.forEach !== undefined) report.key(["stages", fs.id, "for_each"], `${label}, so it cannot have for_each`);
    for (const u of users) {
      for (const d of deps[f] as number[]) {
        if (d === u) {
          report.key(["stages", fs.id], `fallback stage '${fs.id}' reads '${idOf(u)}', the stage it stands in for: read its input as 'input' and its failure as 'error'`);
        } else if (!ancestors(u).has(d)) {
          report.key(["stages", fs.id], `fallback stage '${fs.id}' reads '${idOf(d)}', which is not upstream of '${idOf(u)}' (the stage it stands in for): read only stages '${idOf(u)}' depends on`);
        }
      }
    }
    for (const r of dependents[f] as number[]) {
      report.key(["stages", idOf(r)], `stage '${idOf(r)}' reads '${fs.id}', a fallback stage that runs only when called as one: read ${users.map((u) => `'${idOf(u)}'`).join(" or ")} instead`);
    }
  }

  // Fallbacks of fallbacks must end somewhere.
  const reported = new Set<number>();
  for (const s of stages) {
    const chain = [s.idx];
    for (let cur = stages[s.idx]; cur?.onError.kind === "fallback"; ) {
      const next = stageIndex.get(cur.onError.stage) as number;
      const at = chain.indexOf(next);
      if (at >= 0) {
        const loop = chain.slice(at);
        const first = Math.min(...loop);
        if (!reported.has(first)) {
          reported.add(first);
          const from = loop.indexOf(first);
          const ordered = [...loop.slice(from), ...loop.slice(0, from), first];
          report.key(["stages", idOf(first), "on_error"], `fallback cycle: ${ordered.map(idOf).join(" → ")}`);
        }
        break;
      }
      chain.push(next);
      cur = stages[next];
    }
  }

  return { deps, dependents, ...(cycles.length === 0 ? { topo: topoOrder(deps, dependents) } : {}), isFallback, backward };
}
