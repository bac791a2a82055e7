/**
 * Property: the trace's `exhausted` route decisions (issue 15.7) are exactly the routes the
 * engine passed over because their `max` was used up. The engine records no event for them,
 * so the trace works them out from the log and the plan; here they are checked against the engine's own
 * state: the times each route had been taken (`RunState.routeTaken`) when the visit finished,
 * captured live from simulated runs (the engine decides, seeded coin flips answer each `when`).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildTrace } from "../../src/trace/index.js";
import { makePlan, simulate, type SimStage } from "../engine/sim.js";

type RouteSpec = NonNullable<SimStage["routes"]>[number];

const arbRoute: fc.Arbitrary<RouteSpec> = fc.oneof(
  fc.record({ goto: fc.constantFrom("a", "b"), max: fc.integer({ min: 1, max: 3 }) }),
  fc.constant({ fail: "stop" }),
);

describe("exhausted routes in the trace", () => {
  it("match the engine's route counts: every used-up route before the one taken (or all of them) on each finished visit", () => {
    let seen = 0;
    fc.assert(
      fc.property(fc.array(arbRoute, { minLength: 1, maxLength: 3 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.double({ min: 0.2, max: 0.95, noNaN: true }), (routes, seed, routeRate) => {
        const plan = makePlan([{ id: "a" }, { id: "b", deps: ["a"] }, { id: "c", deps: ["b"], routes }, { id: "d", deps: ["c"] }]);
        const c = plan.stageIndex.get("c")!;
        const cs = plan.stages[c]!;
        /** Times each of c's routes had been taken when each visit of c finished, from the live engine state. */
        const counts = new Map<number, number[]>();
        const r = simulate(plan, {
          seed, routeRate, failRate: 0, maxSteps: 2000,
          onStep: (state) => {
            const node = state.nodes[c]!;
            if (node.total < 0 || node.settledCount < node.total || counts.has(node.visit)) return;
            counts.set(node.visit, cs.routes.map((_, i) => state.routeTaken.get(c * 1024 + i) ?? 0));
          },
        });
        const trace = buildTrace(r.log, plan);
        expect(["succeeded", "failed"]).toContain(trace.run.status);
        for (const [visit, taken] of counts) {
          const ds = trace.decisions.filter((d) => d.stage === "c" && d.visit === visit && d.kind === "route");
          const first = ds.find((d) => d.taken === true)?.route ?? cs.routes.length;
          const expected = cs.routes.flatMap((rt, i) => (i < first && taken[i]! >= rt.max ? [{ route: i, exhausted: { taken: taken[i]!, max: rt.max } }] : []));
          expect(ds.filter((d) => d.exhausted !== undefined).map((d) => ({ route: d.route, exhausted: d.exhausted }))).toEqual(expected);
          seen += expected.length;
          // A route passed over is never also evaluated on that visit, and only the last route says where the run went on.
          for (const d of ds) if (d.exhausted === undefined) expect(expected.some((e) => e.route === d.route)).toBe(false);
          for (const d of ds) if (d.exhausted !== undefined) expect(d.continues_to !== undefined).toBe(d.route === cs.routes.length - 1);
        }
      }),
      { numRuns: 300 },
    );
    expect(seen).toBeGreaterThan(50); // the runs do use routes up
  });
});
