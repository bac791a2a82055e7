/** Template side of waiting with deadlines: approval timeout/on_timeout, wait:, sleep:, until:. */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { compileSource, formatDiagnostic, validateFile } from "../../src/template/index.js";

const dir = fileURLToPath(new URL("../fixtures/templates/", import.meta.url));

describe("waits in templates", () => {
  it("compile to plan specs: durations in ms, on_timeout only with a timeout", () => {
    const plan = compileSource(`
baton: 1
name: w
stages:
  a: { approval: { message: hi, timeout: 24h, on_timeout: approve } }
  b: { approval: { message: hi, timeout: 1s } }
  c: { wait: { signal: review_done, timeout: 2h, on_timeout: continue } }
  d: { wait: { signal: go } }
  e: { sleep: 10m }
  f: { until: "inputs.at" }
inputs: { at: { type: string } }
`, { format: "yaml", baseDir: process.cwd() });
    const spec = (id: string) => plan.stages[plan.stageIndex.get(id)!]!.spec;
    expect(spec("a")).toMatchObject({ kind: "approval", timeoutMs: 86_400_000, onTimeout: "approve" });
    expect(spec("b")).toMatchObject({ kind: "approval", timeoutMs: 1000 });
    expect("onTimeout" in spec("b")).toBe(false);
    expect(spec("c")).toEqual({ kind: "wait", signal: "review_done", timeoutMs: 7_200_000, onTimeout: "continue" });
    expect(spec("d")).toEqual({ kind: "wait", signal: "go" });
    expect(spec("e")).toEqual({ kind: "sleep", ms: 600_000 });
    expect(spec("f")).toMatchObject({ kind: "sleep" });
    expect((spec("f") as { until?: unknown }).until).toBeDefined();
  });

  it("reports bad fields at FILE:LINE:COL", () => {
    expect(validateFile(dir + "waits.yaml").map((d) => formatDiagnostic(d).replace(dir, ""))).toEqual([
      "waits.yaml:4:15: stage 'a': bad duration 'soon' for 'sleep': write it like 500ms, 30s, 2m or 1h",
      "waits.yaml:5:8: stage 'b' wait is missing 'signal'",
      "waits.yaml:6:33: stage 'c': on_timeout needs a timeout",
      "waits.yaml:7:20: JSONata syntax error: Expected \")\" before end of expression",
      "waits.yaml:8:39: stage 'e': 'wait.on_timeout' must be one of fail or continue, got \"reject\"",
      "waits.yaml:9:45: stage 'f': 'approval.on_timeout' must be one of reject, approve or fail, got \"maybe\"",
    ]);
  });
});
