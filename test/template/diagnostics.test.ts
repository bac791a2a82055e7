import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { formatDiagnostic, loadPlanFile, TemplateError, validateFile } from "../../src/template/index.js";

const dir = fileURLToPath(new URL("../fixtures/templates/", import.meta.url));

/** Every diagnostic of a fixture, formatted, with the fixture directory stripped. */
function diagnostics(name: string): string[] {
  return validateFile(dir + name).map((d) => formatDiagnostic(d).replace(dir, ""));
}

describe("validateFile reports every error, positioned at the offending key or value", () => {
  it("structure (schema): unknown fields with suggestions, wrong types, missing fields, enums, unions", () => {
    expect(diagnostics("structure.yaml")).toEqual([
      "structure.yaml:1:1: the template is missing 'name' (add `name: my-pipeline`)",
      "structure.yaml:1:8: 'baton' must be 1 (the template format version), got 2",
      "structure.yaml:2:1: unknown top-level field 'nmae' (did you mean 'name'?)",
      "structure.yaml:3:14: 'concurrency' must be a positive integer, got 0",
      "structure.yaml:4:10: bad duration '10' for 'timeout': write it like 500ms, 30s, 2m or 1h",
      "structure.yaml:6:13: 'defaults.on_error' must be one of fail, continue or escalate, got a mapping",
      "structure.yaml:7:22: 'defaults.retry.attempts' must be a positive integer, got 0",
      "structure.yaml:9:3: agent 'helper' is missing 'model'",
      "structure.yaml:11:5: unknown field 'temprature' in agent 'helper' (did you mean 'temperature'?)",
      "structure.yaml:15:5: unknown field 'retires' in stage 'a' (did you mean 'retry'?)",
      "structure.yaml:16:5: stage 'a': 'concurrency' limits for_each items: it needs for_each",
      "structure.yaml:16:18: stage 'a': 'concurrency' must be a positive integer, got \"three\"",
      "structure.yaml:17:15: stage 'a': 'on_error' must be fail, continue, escalate or { fallback: STAGE }, got \"ignore\"",
      "structure.yaml:18:27: unknown field 'backof' in stage 'a' retry (did you mean 'backoff'?)",
      "structure.yaml:18:50: stage 'a': 'retry.jitter' must be one of full or none, got \"some\"",
      "structure.yaml:19:12: stage 'a': 'needs' must be a stage id or a list of stage ids, got 5",
      "structure.yaml:23:9: stage 'b' routes[0] is missing 'when'",
    ]);
  });

  it("YAML syntax errors", () => {
    expect(diagnostics("yaml-syntax.yaml")).toEqual([
      "yaml-syntax.yaml:6:1: YAML syntax error: All mapping items must start at the same column",
      "yaml-syntax.yaml:8:12: YAML syntax error: Nested mappings are not allowed in compact mappings",
    ]);
  });

  it("duplicate keys", () => {
    expect(diagnostics("duplicate-keys.yaml")).toEqual([
      "duplicate-keys.yaml:6:5: duplicate key 'value': keys must be unique",
      "duplicate-keys.yaml:7:3: duplicate key 'a': keys must be unique",
    ]);
  });

  it("stage kinds and kind-specific fields", () => {
    expect(diagnostics("kinds.yaml")).toEqual([
      "kinds.yaml:6:3: stage 'empty' has no kind: give it one of agent, run, value, http, pipeline, approval, wait, sleep, until",
      "kinds.yaml:8:3: stage 'double' has 2 kinds (run, value): keep exactly one",
      "kinds.yaml:12:5: stage 'chatty': agent stages need a 'prompt'",
      "kinds.yaml:15:5: stage 'prompted': 'prompt' is only for agent stages",
      "kinds.yaml:18:5: stage 'sub': 'inputs' is only for pipeline stages (did you mean 'input'?)",
      "kinds.yaml:21:5: stage 'shaped': 'output' (a JSON Schema for replies) is only for agent stages",
      "kinds.yaml:24:5: stage 'alone': 'as' names the for_each item: it needs for_each",
      "kinds.yaml:25:5: stage 'alone': 'concurrency' limits for_each items: it needs for_each",
    ]);
  });

  it("stage ids: pattern, reserved names, JSONata keywords", () => {
    expect(diagnostics("ids.yaml")).toEqual([
      "ids.yaml:4:3: stage id 'fetch-data' is not valid: use letters, digits and _, not starting with a digit",
      "ids.yaml:6:3: stage id '2nd' is not valid: use letters, digits and _, not starting with a digit",
      "ids.yaml:8:3: stage id 'inputs' is reserved (it names something in scope): rename the stage",
      "ids.yaml:10:3: stage id 'item' is reserved (it names something in scope): rename the stage",
      "ids.yaml:12:3: stage id 'true' is a JSONata keyword: rename the stage",
    ]);
  });

  it("references: stages, inputs, agents, limits, needs, goto and scope names", () => {
    expect(diagnostics("references.yaml")).toEqual([
      "references.yaml:8:49: unknown limit 'lmm' (did you mean 'llm'?)",
      "references.yaml:11:12: unknown agent 'writter' (did you mean 'writer'?)",
      "references.yaml:12:33: unknown input 'topik' (did you mean 'topic'?)",
      "references.yaml:12:49: unknown stage or input 'reserch' in expression (did you mean 'research'?)",
      "references.yaml:13:12: unknown limit 'llmm' (did you mean 'llm'?)",
      "references.yaml:15:47: unknown stage or input 'analyse' in expression (did you mean 'analyze'?)",
      "references.yaml:16:13: unknown stage 'researh' (did you mean 'research'?)",
      "references.yaml:20:10: 'source' is not in scope in 'if': for_each items exist only in input, prompt, value, http, inputs and approval",
      "references.yaml:26:13: 'item' is only in scope in a stage with for_each",
      "references.yaml:26:20: 'error' is only in scope in a fallback stage (one named by on_error: { fallback: ... })",
      "references.yaml:26:28: unknown stage 'topic' in expression: read the input as inputs.topic",
      "references.yaml:28:16: unknown stage or input 'verfy' in expression",
      "references.yaml:29:15: unknown stage 'reserch' (did you mean 'research'?)",
      "references.yaml:30:40: 'visit' is not in scope in the pipeline output: only inputs and stage ids are",
    ]);
  });

  it("expression errors positioned inside plain, quoted, block and {{ }} strings", () => {
    expect(diagnostics("expressions.yaml")).toEqual([
      "expressions.yaml:5:26: JSONata syntax error: Expected \")\" before end of expression",
      "expressions.yaml:7:28: JSONata syntax error: Expected \")\" before end of expression",
      "expressions.yaml:9:15: JSONata syntax error: Syntax error: \"b\"",
      "expressions.yaml:13:15: JSONata syntax error: The symbol \",\" cannot be used as a unary operator",
      "expressions.yaml:17:28: JSONata syntax error: Expected \")\" before end of expression",
      "expressions.yaml:18:15: unterminated `{{`: close it with `}}`",
      "expressions.yaml:20:13: `*` at the top of an expression reads every stage: name the stage instead",
      "expressions.yaml:22:15: stage 'fe': for_each must be an expression string such as research.sources",
    ]);
  });

  it("durations and retry delays", () => {
    expect(diagnostics("durations.yaml")).toEqual([
      "durations.yaml:3:10: bad duration '30' for 'timeout': write it like 500ms, 30s, 2m or 1h",
      "durations.yaml:5:12: bad duration '2 minutes' for 'defaults.timeout': write it like 500ms, 30s, 2m or 1h",
      "durations.yaml:6:35: defaults: retry.max_delay (2s) is less than retry.delay (10s): raise max_delay or lower delay",
      "durations.yaml:10:14: stage 'a': bad duration '5' for 'timeout': write it like 500ms, 30s, 2m or 1h",
      "durations.yaml:11:21: stage 'a': bad duration '1x' for 'retry.delay': write it like 500ms, 30s, 2m or 1h",
      "durations.yaml:14:36: stage 'b': retry.max_delay (500ms) is less than retry.delay (5s): raise max_delay or lower delay",
      "durations.yaml:16:49: stage 'c': bad duration 'soon' for 'http.timeout': write it like 500ms, 30s, 2m or 1h",
    ]);
  });

  it("routes: actions, with, direction, fallback targets", () => {
    expect(diagnostics("routes.yaml")).toEqual([
      "routes.yaml:14:9: stage 'c' route 1 has no action: give it one of goto, fail, escalate",
      "routes.yaml:15:9: stage 'c' route 2 has 2 actions (goto, fail): keep exactly one",
      "routes.yaml:19:15: route goto 'side' from 'c' is neither upstream nor downstream of 'c'",
      "routes.yaml:22:9: stage 'c' route 4: 'with' only applies to goto routes",
      "routes.yaml:24:15: route goto 'rescue' from 'c': 'rescue' is a fallback stage, which runs only when called as one",
    ]);
  });

  it("dependency cycles, each reported once", () => {
    expect(diagnostics("cycles.yaml")).toEqual([
      "cycles.yaml:4:3: dependency cycle: a → b → c → a",
      "cycles.yaml:10:3: dependency cycle: d → e → d",
      "cycles.yaml:17:12: stage 'f' needs itself",
    ]);
  });

  it("fallback stages", () => {
    expect(diagnostics("fallbacks.yaml")).toEqual([
      "fallbacks.yaml:11:3: fallback stage 'rescue' reads 'other', which is not upstream of 'main' (the stage it stands in for): read only stages 'main' depends on",
      "fallbacks.yaml:13:5: stage 'rescue' is a fallback (of 'main'), so it cannot have for_each",
      "fallbacks.yaml:14:5: stage 'rescue' is a fallback (of 'main'), so it cannot have routes",
      "fallbacks.yaml:17:3: stage 'reader' reads 'rescue', a fallback stage that runs only when called as one: read 'main' instead",
      "fallbacks.yaml:21:27: stage 'self' cannot be its own fallback",
      "fallbacks.yaml:24:5: fallback cycle: ping → pong → ping",
    ]);
  });

  it("JSON templates are positioned too", () => {
    expect(diagnostics("bad.json")).toEqual([
      "bad.json:5:29: JSONata syntax error: Expected \")\" before end of expression",
      "bad.json:5:32: unknown field 'retires' in stage 'a' (did you mean 'retry'?)",
    ]);
  });

  it("JSON syntax errors", () => {
    expect(diagnostics("broken.json")).toEqual([
      "broken.json:4:1: JSON syntax error: Expected double-quoted property name",
    ]);
  });

  it("JSON Schemas in inputs, agents and stages, and input defaults", () => {
    expect(diagnostics("json-schemas.yaml")).toEqual([
      `json-schemas.yaml:4:14: input 'a' is not a valid JSON Schema: type must be one of array, boolean, integer, null, number, object, string, got "strnig" (did you mean 'string'?)`,
      `json-schemas.yaml:5:32: input 'b': default "five" must be integer`,
      "json-schemas.yaml:6:17: input 'c' is not a valid JSON Schema: $schema 'http://json-schema.org/draft-07/schema#' is not supported: write JSON Schema draft 2020-12",
      "json-schemas.yaml:8:77: agent 'w': output is not a valid JSON Schema: properties.a.minimum must be number",
    ]);
  });

  it("reports a missing file as one diagnostic instead of throwing", () => {
    expect(diagnostics("no-such-file.yaml")).toEqual(["no-such-file.yaml:1:1: cannot read the template: no such file"]);
  });
});

describe("loadPlanFile", () => {
  it("throws a TemplateError carrying every diagnostic, one per line in the message", () => {
    let err: unknown;
    try {
      loadPlanFile(dir + "cycles.yaml");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TemplateError);
    const te = err as TemplateError;
    expect(te.diagnostics).toHaveLength(3);
    expect(te.message.split("\n")).toEqual(te.diagnostics.map(formatDiagnostic));
    expect(te.diagnostics[0]).toEqual({ file: dir + "cycles.yaml", line: 4, col: 3, message: "dependency cycle: a → b → c → a" });
  });
});
