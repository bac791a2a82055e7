/**
 * Preflight (issue 15.3): what a template needs beyond its text — run: modules and their
 * exports, sub-pipeline files, URLs, providers, MCP paths — reported all at once, positioned
 * like the compiler's diagnostics (FILE:LINE:COL: message).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compileObject, formatDiagnostic, loadPlanFile } from "../../src/template/index.js";
import { runModules } from "../../src/stages/run.js";
import { preflight, urlProblem } from "../../src/template/preflight.js";

/** A directory with these files; returns its path. */
function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "baton-preflight-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** preflight of DIR/t.yaml, formatted, with DIR stripped. */
async function problems(dir: string, opts: Parameters<typeof preflight>[1] = {}): Promise<string[]> {
  const plan = loadPlanFile(join(dir, "t.yaml"));
  return (await preflight(plan, { file: "t.yaml", modules: runModules, ...opts })).map((d) => formatDiagnostic(d).replaceAll(dir, "DIR"));
}

const GOOD_STAGE = "export function go() { return 1; }\nexport const notAFunction = 2;\nexport default function () { return 0; }\n";

describe("preflight", () => {
  it("a template that can run has no problems", async () => {
    const dir = dirWith({
      "t.yaml": [
        "baton: 1", "name: t",
        "agents:", "  a: { model: \"mock:any\" }", "  b: { model: \"${MODEL:-openai:gpt-4o-mini}\" }",
        "stages:",
        "  one: { run: ./stage.mjs#go }",
        "  two: { run: ./stage.mjs }",
        "  three: { http: { url: \"https://${API_HOST}/v1/x\" } }",
        "  four: { http: { url: \"{{ inputs.base }}/x\" } }",
        "  five: { pipeline: ./sub/child.yaml, inputs: { topic: \"{{ inputs.base }}\" } }",
        "  six: { agent: a, prompt: hi }",
        "inputs:", "  base: { type: string, default: \"http://h\" }",
      ].join("\n"),
      "stage.mjs": GOOD_STAGE,
      "sub/child.yaml": "baton: 1\nname: child\ninputs:\n  topic: { type: string }\nstages:\n  c: { run: ./child.mjs#go }\n",
      "sub/child.mjs": GOOD_STAGE,
    });
    expect(await problems(dir)).toEqual([]);
  });

  it("reports a missing run: module, a missing export, a missing sub-pipeline, a bad URL and an unknown provider, all at once", async () => {
    const dir = dirWith({
      "t.yaml": [
        "baton: 1",
        "name: t",
        "agents:",
        "  g: { model: \"google:gemini-2.0\" }",
        "  o: { model: \"opnai:gpt-4o\" }",
        "stages:",
        "  a:",
        "    run: ./missing.mjs#go",
        "  b:",
        "    run: ./stage.mjs#nope",
        "  c:",
        "    pipeline: ./nosuch.yaml",
        "  d:",
        "    http: { url: \"htp//example.com\" }",
        "  e:",
        "    http: { url: \"ftp://example.com/x\" }",
        "  f:",
        "    agent: g",
        "    prompt: hi",
        "  h:",
        "    run: ./stage.mjs#notAFunction",
      ].join("\n"),
      "stage.mjs": GOOD_STAGE,
    });
    expect(await problems(dir)).toEqual([
      "t.yaml:4:15: agent 'g': unknown provider 'google' in 'google:gemini-2.0' (providers: openai, anthropic, openai-compatible, mock)",
      "t.yaml:5:15: agent 'o': unknown provider 'opnai' in 'opnai:gpt-4o' (did you mean 'openai'?)",
      "t.yaml:8:10: stage 'a': run module ./missing.mjs not found (looked for DIR/missing.mjs): paths are relative to the template's directory",
      "t.yaml:10:10: stage 'b': ./stage.mjs has no exported function 'nope' (it exports: go, default); write run: ./stage.mjs#<name>",
      "t.yaml:12:15: stage 'c': sub-pipeline ./nosuch.yaml not found (looked for DIR/nosuch.yaml): paths are relative to the template's directory",
      "t.yaml:14:18: stage 'd': http url 'htp//example.com' is not a valid URL: write it as http://HOST/PATH or https://HOST/PATH",
      "t.yaml:16:18: stage 'e': http url 'ftp://example.com/x' must start with http:// or https://",
      "t.yaml:21:10: stage 'h': ./stage.mjs has no exported function 'notAFunction' (it exports: go, default); write run: ./stage.mjs#<name>",
    ]);
  });

  it("a module that cannot load: one line naming the stage, the module and what to do (no require stack)", async () => {
    const dir = dirWith({
      "t.yaml": "baton: 1\nname: t\nstages:\n  a: { run: ./needs-pkg.cjs#go }\n  b: { run: ./rel.cjs#go }\n",
      "needs-pkg.cjs": "const x = require('left-pad-not-installed');\nexports.go = () => x;\n",
      "rel.cjs": "const x = require('./nothere.cjs');\nexports.go = () => x;\n",
    });
    // (The built CLI's messages for ESM and syntax errors: test/cli/preflight.test.ts.)
    const out = await problems(dir);
    expect(out).toHaveLength(2);
    expect(out[0]).toBe("t.yaml:4:13: stage 'a': could not load run module ./needs-pkg.cjs: it imports 'left-pad-not-installed', which is not installed: install it in the project (npm install left-pad-not-installed)");
    expect(out[1]).toBe("t.yaml:5:13: stage 'b': could not load run module ./rel.cjs: Cannot find module './nothere.cjs' (imported by ./rel.cjs): check the path in the import");
    for (const line of out) expect(line).not.toContain("\n");
  });

  it("sub-pipelines: their own problems (positioned in their file), literal inputs against theirs, include cycles checked once", async () => {
    const dir = dirWith({
      "t.yaml": [
        "baton: 1", "name: t",
        "stages:",
        "  s:",
        "    pipeline: ./sub.yaml",
        "    inputs: { topik: x }",
        "  bad:",
        "    pipeline: ./invalid.yaml",
        "  loop:",
        "    pipeline: ./a.yaml",
        "    inputs: {}",
      ].join("\n"),
      "sub.yaml": "baton: 1\nname: sub\ninputs:\n  topic: { type: string }\nstages:\n  x:\n    run: ./gone.ts\n",
      "invalid.yaml": "baton: 1\nname: invalid\nstages:\n  x:\n    value: \"1\"\n    run: ./y.mjs\n",
      "a.yaml": "baton: 1\nname: a\nstages:\n  back:\n    if: \"false\"\n    pipeline: ./b.yaml\n",
      "b.yaml": "baton: 1\nname: b\nstages:\n  again:\n    if: \"false\"\n    pipeline: ./a.yaml\n",
    });
    expect(await problems(dir)).toEqual([
      "t.yaml:5:15: stage 's': sub-pipeline ./sub.yaml cannot run (1 problem in DIR/sub.yaml)",
      "t.yaml:6:5: stage 's': sub-pipeline ./sub.yaml needs input 'topic': give it under inputs:",
      "t.yaml:6:15: stage 's': sub-pipeline ./sub.yaml has no input 'topik' (did you mean 'topic'?)",
      "t.yaml:8:15: stage 'bad': sub-pipeline ./invalid.yaml is not valid (1 error in DIR/invalid.yaml): fix it (baton validate DIR/invalid.yaml)",
      "DIR/invalid.yaml:4:3: stage 'x' has 2 kinds (run, value): keep exactly one",
      "DIR/sub.yaml:7:10: stage 'x': run module ./gone.ts not found (looked for DIR/gone.ts): paths are relative to the template's directory",
    ]);
  });

  it("agents: openai-compatible needs a base_url (agent or config), a literal base_url is a URL; MCP cwd and ./command exist", async () => {
    const dir = dirWith({
      "t.yaml": [
        "baton: 1", "name: t",
        "agents:",
        "  local: { model: \"openai-compatible:llama\" }",
        "  far: { model: \"openai:gpt-4o\", base_url: \"localhost:8080/v1\" }",
        "mcp:",
        "  files: { command: ./bin/server.mjs, cwd: ./work }",
        "  web: { url: \"http://exa mple/mcp\" }",
        "stages:",
        "  a: { value: \"1\" }",
      ].join("\n"),
    });
    const withoutConfig = await problems(dir);
    expect(withoutConfig).toEqual([
      "t.yaml:5:44: agent 'far': base_url 'localhost:8080/v1' must start with http:// or https://",
      "t.yaml:7:21: MCP server 'files': command ./bin/server.mjs not found (looked for DIR/bin/server.mjs): paths are relative to the template's directory",
      "t.yaml:7:44: MCP server 'files': cwd ./work is not a directory (looked for DIR/work): paths are relative to the template's directory",
      "t.yaml:8:15: MCP server 'web': url 'http://exa mple/mcp' is not a valid URL: write it as http://HOST/PATH or https://HOST/PATH",
    ]);
    expect(await problems(dir, { config: {} })).toEqual([
      "t.yaml:4:19: agent 'local': openai-compatible models need a base_url (in the agent or under providers.openai-compatible in baton.config), e.g. http://127.0.0.1:11434/v1 for Ollama",
      ...withoutConfig,
    ]);
    expect(await problems(dir, { config: { providers: { "openai-compatible": { base_url: "http://127.0.0.1:11434/v1" } } } })).toEqual(withoutConfig);
  });

  it("a template built in TypeScript gets the field's path instead of a position", async () => {
    const dir = dirWith({});
    const plan = compileObject({ baton: 1, name: "ts", stages: { a: { run: "./nope.mjs#go" }, b: { http: { url: "nope" } }, c: { run: async () => 1 } } }, { format: "ts", baseDir: dir });
    expect((await preflight(plan, { modules: runModules })).map(formatDiagnostic).map((l) => l.replaceAll(dir, "DIR"))).toEqual([
      "ts: stages.a.run: stage 'a': run module ./nope.mjs not found (looked for DIR/nope.mjs): paths are relative to the template's directory",
    ]);
  });

  it("without a module loader, only that run: modules exist is checked (nothing is imported)", async () => {
    const dir = dirWith({
      "t.yaml": "baton: 1\nname: t\nstages:\n  a: { run: ./side-effect.mjs#missing }\n",
      "side-effect.mjs": "globalThis.__batonPreflightLoaded = true;\nexport const go = () => 1;\n",
    });
    expect((await preflight(loadPlanFile(join(dir, "t.yaml")))).map(formatDiagnostic)).toEqual([]);
    expect((globalThis as { __batonPreflightLoaded?: boolean }).__batonPreflightLoaded).toBeUndefined();
    expect(await problems(dir)).toHaveLength(1);
    expect((globalThis as { __batonPreflightLoaded?: boolean }).__batonPreflightLoaded).toBe(true);
  });

  it("urlProblem: plain strings only; ${ENV} stands for text", () => {
    expect(urlProblem("https://example.com/x")).toBeUndefined();
    expect(urlProblem("https://${HOST}:${PORT:-80}/x")).toBeUndefined();
    expect(urlProblem("{{ inputs.url }}")).toBeUndefined();
    expect(urlProblem("mailto:x@example.com")).toBe("'mailto:x@example.com' must start with http:// or https://");
    expect(urlProblem("example.com/x")).toMatch(/is not a valid URL/);
  });
});
