/** `tools:`, `mcp:` and agents' tool fields (SPEC §8) as `baton validate` checks them: every error at once, with file:line:col. */
import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatDiagnostic, validateFile } from "../../src/template/index.js";

const dir = mkdtempSync(join(tmpdir(), "baton-vtools-"));
function errors(yaml: string): string[] {
  const file = join(dir, "t.yaml");
  writeFileSync(file, yaml);
  return validateFile(file).map((d) => formatDiagnostic(d).replace(dir + "/", ""));
}

describe("validate: tools and MCP", () => {
  it("accepts the SPEC §8 example", () => {
    expect(errors(`baton: 1
name: ok
limits: { web: { concurrency: 2 } }
tools:
  search:
    description: Search the web for primary sources.
    input: { type: object, required: [query], properties: { query: { type: string } } }
    run: ./tools.ts#search
    retry: { attempts: 3, delay: 1s }
    timeout: 30s
    limit: web
  publish:
    description: Publish the report.
    input: { type: object, required: [title], properties: { title: { type: string } } }
    http: { url: "http://127.0.0.1:8080/publish", method: POST, body: "{{ args }}" }
    approval: "Publish '{{ args.title }}'?"
mcp:
  files: { command: node, args: [./mcp/files.mjs], env: { ROOT: ./data } }
  web: { url: "http://127.0.0.1:8931/mcp", headers_env: { Authorization: WEB_MCP_AUTH } }
agents:
  researcher:
    model: openai:gpt-4o-mini
    tools: [search, mcp.files.read_file, mcp.web.*]
    max_steps: 8
    parallel_tools: true
stages:
  research: { agent: researcher, prompt: "Research {{ inputs.topic }}" }
inputs: { topic: { type: string } }
`)).toEqual([]);
  });

  it("reports every tool error at once, positioned", () => {
    const e = errors(`baton: 1
name: bad
tools:
  two:
    description: Two kinds.
    input: { type: object }
    run: ./a.ts
    value: "1"
  notobj:
    description: Not an object schema.
    input: { type: string }
    value: "args"
  scope:
    description: Reads a stage.
    input: { type: object }
    value: "research.text & args.x"
  pooled:
    description: Unknown pool.
    input: { type: object }
    value: "1"
    limit: nowhere
  nodesc:
    input: { type: object }
    value: "1"
mcp:
  both: { command: node, url: "http://x/mcp" }
agents:
  a: { model: openai:gpt-4o-mini, tools: [search, mcp.nope.x, mcp.bad, two, two], max_steps: 0 }
stages:
  research: { agent: a, prompt: hi }
`);
    const text = e.join("\n");
    expect(text).toMatch(/t\.yaml:4:\d+: .*tool 'two' has 2 kinds \(run, value\): keep exactly one/);
    expect(text).toMatch(/t\.yaml:11:\d+: .*tool 'notobj': input must be an object schema/);
    expect(text).toMatch(/t\.yaml:16:\d+: .*tool 'scope' can read only args \(the call's arguments\) and inputs, not 'research'/);
    expect(text).toMatch(/t\.yaml:21:\d+: .*unknown limit 'nowhere': declare it under limits:/);
    expect(text).toMatch(/tool 'nodesc'.*description|required property 'description'/);
    expect(text).toMatch(/MCP server 'both' needs either command: \(stdio\) or url: \(Streamable HTTP\), not both/);
    expect(text).toMatch(/agent 'a': unknown tool 'search'/);
    expect(text).toMatch(/agent 'a': MCP server 'nope' is not declared/);
    expect(text).toMatch(/agent 'a': 'mcp\.bad' must be mcp\.SERVER\.TOOL or mcp\.SERVER\.\*/);
    expect(text).toMatch(/agent 'a' lists tool 'two' twice/);
    expect(text).toMatch(/max_steps/);
  });
});
