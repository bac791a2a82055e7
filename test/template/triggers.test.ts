import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { compiledPlanHash } from "../../src/plan/hash.js";
import type { Plan } from "../../src/plan/types.js";
import { compileObject, compileSource, formatDiagnostic, TemplateError } from "../../src/template/index.js";

const HEAD = `baton: 1
name: t
inputs:
  topic: { type: string, default: tides }
  depth: { type: integer, default: 2 }
stages:
  a: { value: "inputs.topic" }
`;
/** HEAD with a required input. */
const REQUIRED = HEAD.replace("{ type: string, default: tides }", "{ type: string }");

function compile(text: string): Plan {
  return compileSource(text, { file: "t.yaml", format: "yaml", baseDir: "/base" });
}

/** The diagnostics of HEAD + `triggers:` + body, formatted. HEAD is 7 lines: `triggers:` is line 8. */
function problems(body: string, head = HEAD): string[] {
  try {
    compile(`${head}triggers:\n${body}`);
  } catch (err) {
    if (err instanceof TemplateError) return err.diagnostics.map(formatDiagnostic);
    throw err;
  }
  return [];
}

const HELP = `write 5 fields "minute hour day-of-month month day-of-week", e.g. "0 * * * *" (hourly) or "30 2 * * 1-5" (02:30 on weekdays)`;

describe("triggers: compiled", () => {
  it("compiles cron and webhook triggers with their defaults", () => {
    const plan = compile(`${HEAD}triggers:
  - cron: "0 * * * *"
  - name: nightly
    cron: "30 2 * * *"
    timezone: Europe/Berlin
    catch_up: all
    inputs: { topic: tides, depth: 3 }
  - webhook: { path: /hooks/gh, secret_env: GH_SECRET }
  - name: push
    webhook: { path: /hooks/gh/push.v2, secret_env: GH_SECRET, inputs: "{ 'topic': body.repository.name }" }
`);
    const t = plan.triggers ?? [];
    expect(t).toHaveLength(4);
    expect(t[0]).toEqual({ kind: "cron", index: 0, cron: "0 * * * *", timezone: "UTC", inputs: {}, catchUp: "latest" });
    expect(t[1]).toEqual({ kind: "cron", index: 1, name: "nightly", cron: "30 2 * * *", timezone: "Europe/Berlin", inputs: { topic: "tides", depth: 3 }, catchUp: "all" });
    expect(t[2]).toMatchObject({ kind: "webhook", index: 2, path: "/hooks/gh", secretEnv: "GH_SECRET" });
    expect(t[2]?.kind === "webhook" && t[2].inputs.source).toBe("body");
    expect(t[3]?.kind === "webhook" && t[3].inputs.source).toBe("{ 'topic': body.repository.name }");
    expect(Object.isFrozen(t)).toBe(true);
    expect(Object.isFrozen(t[1])).toBe(true);
  });

  it("leaves triggers out of a plan without them", () => {
    expect(compile(HEAD).triggers).toBeUndefined();
    expect(compile(`${HEAD}triggers: []\n`).triggers).toBeUndefined();
  });

  it("takes triggers in a template built in TypeScript", () => {
    const plan = compileObject(
      { baton: 1, name: "t", stages: { a: { value: "1" } }, triggers: [{ cron: "@hourly", catch_up: "none" }, { webhook: { path: "/hooks/x", secret_env: "X" } }] },
      { format: "ts", baseDir: "/base" },
    );
    expect(plan.triggers?.map((t) => t.kind)).toEqual(["cron", "webhook"]);
    expect(() => compileObject({ baton: 1, name: "t", stages: { a: { value: "1" } }, triggers: [{ cron: "bad" }] }, { format: "ts", baseDir: "/base" })).toThrow(
      /^t: triggers\[0\]\.cron: trigger #0: bad cron expression "bad"/,
    );
  });
});

describe("triggers: do not change either plan hash", () => {
  const withTriggers = `${HEAD}triggers:\n  - cron: "0 * * * *"\n    inputs: { topic: x }\n  - webhook: { path: /hooks/a, secret_env: A }\n`;

  it("the same template with and without triggers has the same plan_hash and compiled_hash", () => {
    const bare = compile(HEAD);
    const triggered = compile(withTriggers);
    expect(triggered.hash).toBe(bare.hash);
    expect(compiledPlanHash(triggered)).toBe(compiledPlanHash(bare));
    const other = compile(withTriggers.replace("0 * * * *", "*/5 * * * *"));
    expect(other.hash).toBe(bare.hash);
    expect(compiledPlanHash(other)).toBe(compiledPlanHash(bare));
  });

  it("the SPEC §1 example keeps its hashes when triggers are added", () => {
    const dir = fileURLToPath(new URL("../fixtures/templates/", import.meta.url));
    const text = readFileSync(dir + "research-report.yaml", "utf8");
    const bare = compileSource(text, { file: dir + "research-report.yaml", format: "yaml", baseDir: dir });
    const triggered = compileSource(`${text}\ntriggers:\n  - cron: "0 6 * * 1"\n    timezone: America/New_York\n    inputs: { topic: tides }\n`, { file: dir + "research-report.yaml", format: "yaml", baseDir: dir });
    expect(triggered.triggers).toHaveLength(1);
    expect(triggered.hash).toBe(bare.hash);
    expect(compiledPlanHash(triggered)).toBe(compiledPlanHash(bare));
  });
});

describe("triggers: every problem at its line and column", () => {
  it("bad cron expressions say why, with an example", () => {
    expect(problems(`  - cron: "61 * * * *"\n  - cron: "* * *"\n  - cron: "0 0 * * * *"\n  - cron: "0 0 31 2 *"\n`)).toEqual([
      `t.yaml:9:11: trigger #0: bad cron expression "61 * * * *": Invalid value for minute: 61; ${HELP}`,
      `t.yaml:10:11: trigger #1: bad cron expression "* * *": it has 3 fields, not 5; ${HELP}`,
      `t.yaml:11:11: trigger #2: bad cron expression "0 0 * * * *": it has 6 fields, not 5; ${HELP}`,
      `t.yaml:12:11: trigger #3: cron expression "0 0 31 2 *" never fires (e.g. February 31st); ${HELP}`,
    ]);
    expect(problems(`  - cron: "*/0 * * * *"\n  - cron: "@dayly"\n  - cron: "0 0 ? * *"\n  - cron: "@daily"\n  - cron: "0 9 * * MON-FRI"\n`)).toEqual([
      `t.yaml:9:11: trigger #0: bad cron expression "*/0 * * * *": Syntax error, illegal stepping: 0; ${HELP}`,
      `t.yaml:10:11: trigger #1: bad cron expression "@dayly": unknown nickname (did you mean '@daily'?): use @yearly, @annually, @monthly, @weekly, @daily, @hourly, or ${HELP}`,
      `t.yaml:11:11: trigger #2: bad cron expression "0 0 ? * *": '?' is not supported (it would mean the time the server started): write * instead; ${HELP}`,
    ]);
  });

  it("unknown time zones, with a suggestion", () => {
    expect(problems(`  - cron: "0 * * * *"\n    timezone: Europe/Berln\n  - cron: "0 * * * *"\n    timezone: Mars/Olympus\n`)).toEqual([
      "t.yaml:10:15: trigger #0: unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?): use an IANA name such as Europe/Berlin, America/New_York or UTC",
      "t.yaml:12:15: trigger #1: unknown time zone 'Mars/Olympus': use an IANA name such as Europe/Berlin, America/New_York or UTC",
    ]);
  });

  it("unknown catch_up values", () => {
    expect(problems(`  - cron: "0 * * * *"\n    catch_up: sometimes\n`)).toEqual([`t.yaml:10:15: 'triggers[0].catch_up' must be one of latest, all or none, got "sometimes"`]);
  });

  it("both or neither of cron and webhook; cron-only fields on a webhook", () => {
    expect(problems(`  - { cron: "0 * * * *", webhook: { path: /hooks/a, secret_env: A } }\n  - name: lonely\n  - webhook: { path: /hooks/b, secret_env: B }\n    timezone: UTC\n    catch_up: all\n    inputs: { topic: x }\n`)).toEqual([
      "t.yaml:9:5: trigger #0 needs exactly one of cron: (a schedule) or webhook: (an HTTP endpoint), not both",
      "t.yaml:10:5: trigger 'lonely' needs exactly one of cron: (a schedule) or webhook: (an HTTP endpoint)",
      "t.yaml:12:5: trigger #2: timezone is only for cron triggers",
      "t.yaml:13:5: trigger #2: catch_up is only for cron triggers",
      "t.yaml:14:5: trigger #2: inputs is only for cron triggers: a webhook's inputs go under webhook: (an expression over body, headers and query)",
    ]);
  });

  it("bad webhook paths and secret_env names; duplicate paths and names", () => {
    expect(problems(`  - webhook: { path: /hook/x, secret_env: A }
  - webhook: { path: /hooks/a//b, secret_env: A }
  - webhook: { path: /hooks/../etc, secret_env: A }
  - webhook: { path: "/hooks/a?x=1", secret_env: A }
  - webhook: { path: /hooks/ok, secret_env: gh_secret }
  - name: dup
    webhook: { path: /hooks/same, secret_env: A }
  - name: dup
    webhook: { path: /hooks/same, secret_env: A }
`)).toEqual([
      `t.yaml:9:22: trigger #0: webhook path "/hook/x" must start with /hooks/, e.g. /hooks/github`,
      `t.yaml:10:22: trigger #1: webhook path "/hooks/a//b" may hold only segments of letters, digits, '-', '_' and '.' (no empty, '.' or '..' segments, no query), e.g. /hooks/github/push`,
      `t.yaml:11:22: trigger #2: webhook path "/hooks/../etc" may hold only segments of letters, digits, '-', '_' and '.' (no empty, '.' or '..' segments, no query), e.g. /hooks/github/push`,
      `t.yaml:12:22: trigger #3: webhook path "/hooks/a?x=1" may hold only segments of letters, digits, '-', '_' and '.' (no empty, '.' or '..' segments, no query), e.g. /hooks/github/push`,
      `t.yaml:13:45: 'triggers[4].webhook.secret_env' must be an environment variable name such as GH_SECRET, got "gh_secret"`,
      "t.yaml:16:11: trigger 'dup': the name is already used by trigger #5: trigger names must be unique",
      "t.yaml:17:22: trigger 'dup': webhook path /hooks/same is already used by trigger #5: each webhook needs its own path",
    ]);
  });

  it("webhook inputs: JSONata that does not compile, or reads beyond body, headers and query", () => {
    expect(problems(`  - webhook: { path: /hooks/a, secret_env: A, inputs: "{ 'x': body.(" }\n  - webhook: { path: /hooks/b, secret_env: A, inputs: "{ 'x': bdy.x, 'y': inputs.topic }" }\n`)).toEqual([
      `t.yaml:9:69: trigger #0: inputs: JSONata syntax error: Expected ")" before end of expression`,
      "t.yaml:10:63: trigger #1: inputs reads 'bdy', but a webhook's inputs expression sees only body, headers and query (did you mean 'body'?)",
      "t.yaml:10:75: trigger #1: inputs reads 'inputs', but a webhook's inputs expression sees only body, headers and query",
    ]);
  });

  it("an unknown and a missing cron input are each reported once", () => {
    expect(problems(`  - cron: "0 * * * *"\n    inputs: { tpic: x }\n`, REQUIRED)).toEqual([
      "t.yaml:10:13: trigger #0: missing input 'topic': add it to this trigger's inputs",
      "t.yaml:10:15: trigger #0: unknown input 'tpic' (did you mean 'topic'?)",
    ]);
  });

  it("cron inputs that fail the template's inputs: schema", () => {
    expect(problems(`  - cron: "0 * * * *"\n    inputs: { topic: 5, extra: 1, dpeth: 2 }\n  - cron: "0 * * * *"\n    inputs: { depth: 3 }\n  - cron: "0 * * * *"\n`, REQUIRED)).toEqual([
      "t.yaml:10:22: trigger #0: input 'topic': expected string, got 5",
      "t.yaml:10:25: trigger #0: unknown input 'extra'",
      "t.yaml:10:35: trigger #0: unknown input 'dpeth' (did you mean 'depth'?)",
      "t.yaml:12:13: trigger #1: missing input 'topic': add it to this trigger's inputs",
      "t.yaml:13:5: trigger #2: missing input 'topic': add it to this trigger's inputs",
    ]);
  });

  it("unknown keys, with did-you-mean; wrong shapes", () => {
    expect(problems(`  - { name: x, cronn: "0 * * * *" }\n  - webhook: { pth: /hooks/a, secret_env: A }\n  - 5\n`)).toEqual([
      "t.yaml:9:5: trigger 'x' needs exactly one of cron: (a schedule) or webhook: (an HTTP endpoint)",
      "t.yaml:9:16: unknown field 'cronn' in 'triggers[0]' (did you mean 'cron'?)",
      "t.yaml:10:5: 'triggers[1].webhook' is missing 'path'",
      "t.yaml:10:16: unknown field 'pth' in 'triggers[1].webhook' (did you mean 'path'?)",
      "t.yaml:11:5: 'triggers[2]' must be a mapping with cron: or webhook:, got 5",
    ]);
    expect(problems(" { cron: x }\n")).toEqual(["t.yaml:9:2: 'triggers' must be a list, got a mapping"]);
  });
});

describe("triggers: baton plan", () => {
  it("describePlan lists the triggers as written, and nothing when there are none", async () => {
    const { describePlan } = await import("../../src/template/index.js");
    expect(describePlan(compile(HEAD)).triggers).toBeUndefined();
    const plan = compile(`${HEAD}triggers:\n  - { name: hourly, cron: "0 * * * *" }\n  - webhook: { path: /hooks/a, secret_env: A, inputs: "{ 'topic': body.t }" }\n`);
    expect(describePlan(plan).triggers).toEqual([
      { kind: "cron", name: "hourly", cron: "0 * * * *", timezone: "UTC", catch_up: "latest", inputs: {} },
      { kind: "webhook", path: "/hooks/a", secret_env: "A", inputs: "{ 'topic': body.t }" },
    ]);
  });
});
