/** `src/testing/serve.ts`: script parsing, and the CLI end to end through the AI SDK. */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText } from "ai";
import { describe, expect, it } from "vitest";
import { optionsFromScript, parseMatch } from "../../src/testing/serve.js";

globalThis.AI_SDK_LOG_WARNINGS = false;

describe("script parsing", () => {
  it("'/re/flags' strings become regexes, other strings stay substrings", () => {
    const re = parseMatch("/^score: \\d+$/im");
    expect(re).toBeInstanceOf(RegExp);
    expect((re as RegExp).flags).toBe("im");
    expect((re as RegExp).test("x\nSCORE: 9")).toBe(true);
    expect(parseMatch("tides")).toBe("tides");
    expect(parseMatch("a/b")).toBe("a/b");
  });

  it("accepts an array of rules or an options object, and rejects bad rules", () => {
    const fromArray = optionsFromScript([{ match: "/x/", reply: { content: "y" }, times: 2 }, { reply: [{ status: 500 }, {}] }]);
    expect(fromArray.rules?.[0]).toMatchObject({ reply: { content: "y" }, times: 2 });
    expect(fromArray.rules?.[0]?.match).toBeInstanceOf(RegExp);
    expect(fromArray.rules?.[1]?.match).toBeUndefined();
    const fromObject = optionsFromScript({ rules: [], defaultReply: { content: "d" }, latencyMs: 5, limits: { rpm: 3 } });
    expect(fromObject).toEqual({ rules: [], defaultReply: { content: "d" }, latencyMs: 5, limits: { rpm: 3 } });
    expect(() => optionsFromScript([{ match: "x" }])).toThrow(/rule 0 needs a `reply`/);
    expect(() => optionsFromScript([{ match: 3, reply: {} }])).toThrow(/must be a string/);
  });
});

interface Child {
  url: Promise<string>;
  exit: Promise<{ code: number | null; stderr: string }>;
  kill: () => void;
}

function serve(args: string[]): Child {
  const child = spawn(process.execPath, ["--import", "tsx", "src/testing/serve.ts", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const url = new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
      const line = stdout.split("\n")[0];
      if (stdout.includes("\n") && line !== undefined) resolve(line);
    });
    child.once("exit", () => reject(new Error(`serve exited early: ${stderr}`)));
  });
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve) => child.once("exit", (code) => resolve({ code, stderr })));
  return { url, exit, kill: () => void child.kill("SIGTERM") };
}

describe("CLI", () => {
  it("serves a script's rules on the printed URL and reports stats on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "baton-serve-"));
    const script = join(dir, "replies.json");
    writeFileSync(script, JSON.stringify([{ match: "/^hello/i", reply: { content: "scripted hi" } }]));
    const child = serve(["--port", "0", "--script", script]);
    try {
      const url = await child.url;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      const model = createOpenAICompatible({ name: "local", baseURL: url, apiKey: "x" })("llama3");
      expect((await generateText({ model, prompt: "Hello there", maxRetries: 0 })).text).toBe("scripted hi");
      expect((await generateText({ model, prompt: "other", maxRetries: 0 })).text).toBe("ok");
    } finally {
      child.kill();
    }
    const { code, stderr } = await child.exit;
    expect(code).toBe(0);
    expect(stderr).toContain("served 2, errors 0, rate-limited 0, aborted 0");
  });

  it("a bad script stops it at start with one line naming the file and the place (issue 15.6)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "baton-serve-"));
    const cases: [string, string, RegExp][] = [
      ["syntax.json", '[\n  { "match": "x",\n    "reply": { content: "y" } }\n]\n', /syntax\.json:3:16: the script is not valid JSON \(.+\); write an array of rules/],
      ["noreply.json", '[{ "match": "x" }]', /noreply\.json: rule 0 needs a `reply`/],
      ["key.json", '[{ "match": { "lastRole": "tool" }, "reply": {} }]', /key\.json: rule 0: unknown matcher key "lastRole"; expected one of last_role, has_tool, prompt/],
    ];
    for (const [name, text, expected] of cases) {
      writeFileSync(join(dir, name), text);
      const child = serve(["--port", "0", "--script", join(dir, name)]);
      child.url.catch(() => undefined);
      const { code, stderr } = await child.exit;
      expect(code, name).toBe(2);
      expect(stderr.split("\n")[0], name).toMatch(expected);
    }
    const missing = serve(["--script", join(dir, "absent.json")]);
    missing.url.catch(() => undefined);
    const gone = await missing.exit;
    expect(gone.code).toBe(2);
    expect(gone.stderr).toContain(`cannot read the script ${join(dir, "absent.json")}: ENOENT`);
  });

  it("warns on stderr when started without --script (every answer is \"ok\")", async () => {
    const child = serve(["--port", "0"]);
    try {
      await child.url;
    } finally {
      child.kill();
    }
    const { stderr } = await child.exit;
    expect(stderr).toContain('serve: no --script: every request is answered "ok"');
  });

  it("exits 2 on a usage error", async () => {
    const child = serve(["--port", "nope"]);
    child.url.catch(() => undefined);
    const { code, stderr } = await child.exit;
    expect(code).toBe(2);
    expect(stderr).toContain("--port must be a non-negative integer");
  });
});
