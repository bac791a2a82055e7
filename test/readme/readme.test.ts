/** test/readme/readme.ts: how README blocks are found, marked and turned into scripts (issue 15.6). */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { batonCommands, blockScript, commandLines, expectedExit, shellBlocks } from "./readme.js";

const md = [
  "# Title", // 1
  "", // 2
  "```sh", // 3
  "echo one", // 4
  "```", // 5
  "", // 6
  "<!-- not-run: needs a real API key -->", // 7
  "", // 8
  "```bash", // 9
  "baton run x.yaml --input a=1", // 10
  "```", // 11
  "```yaml", // 12
  "a: 1", // 13
  "```", // 14
  "```console", // 15
  "echo two", // 16
  "```", // 17
  "<!-- not-run: the marker belongs to the next block only -->", // 18
  "text in between", // 19
  "```shell", // 20
  "echo three", // 21
  "```", // 22
].join("\n");

/** Run a block's script in bash; its exit code and stderr. */
function run(text: string, line = 100): { code: number | null; stderr: string } {
  const r = spawnSync("bash", ["-c", blockScript({ line, lang: "sh", text })], { encoding: "utf8" });
  return { code: r.status, stderr: r.stderr };
}

describe("shellBlocks", () => {
  it("finds sh/bash/console/shell fences with their lines, skips others, and reads a not-run marker only right before a fence", () => {
    const blocks = shellBlocks(md);
    expect(blocks.map((b) => [b.line, b.lang, b.text, b.notRun])).toEqual([
      [3, "sh", "echo one", undefined],
      [9, "bash", "baton run x.yaml --input a=1", "needs a real API key"],
      [15, "console", "echo two", undefined],
      [20, "shell", "echo three", undefined],
    ]);
  });

  it("refuses a fence that is never closed, naming its line", () => {
    expect(() => shellBlocks("a\n```sh\necho x\n")).toThrow("README.md:2: a code fence that is never closed");
  });
});

describe("blockScript", () => {
  it("stops at the first failing command and names its README line", () => {
    const r = run("true\nfalse\necho after", 100);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("README.md:102: exit code 1 from: false");
    expect(r.stderr).not.toContain("after");
  });

  it("a failure inside a pipeline fails the block (pipefail)", () => {
    expect(run("false | cat").code).not.toBe(0);
  });

  it("'# exit code N' expects exactly N: the right code passes, 0 or another code fails", () => {
    expect(run("sh -c 'exit 3'   # exit code 3: waiting").code).toBe(0);
    const zero = run("true   # exit code 3", 10);
    expect(zero.code).toBe(1);
    expect(zero.stderr).toContain("README.md:11: exit code 0, the README says 3");
    expect(run("sh -c 'exit 1'   # exit code 3").code).toBe(1);
    // The code of a command substitution in an assignment counts too.
    expect(run("X=$(sh -c 'echo id; exit 3')   # exit code 3\n[ \"$X\" = id ]").code).toBe(0);
  });

  it("expectedExit leaves lines without the comment alone", () => {
    expect(expectedExit("baton run a.yaml   # prints the output")).toEqual({ command: "baton run a.yaml   # prints the output", code: 0 });
    expect(expectedExit("baton run a.yaml   # exit code 3: waits")).toEqual({ command: "baton run a.yaml  ", code: 3 });
  });
});

describe("console transcripts", () => {
  it("run only their `$ ` lines and continuations; output lines are not run", () => {
    const block = { line: 1, lang: "console", text: "$ echo a \\\n  b\na b\n$ false   # exit code 1\nfalse is output here, not a command" };
    expect(commandLines(block)).toEqual(["echo a \\", "  b", "", "false   # exit code 1", ""]);
    const r = spawnSync("bash", ["-c", blockScript(block)], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe("a b\n");
  });
});

describe("batonCommands", () => {
  it("reads subcommand words and flags past env assignments, continuations, chains and comments", () => {
    const cmds = batonCommands([
      "REPORT_MODEL=openai:gpt-4o-mini X=1 \\",
      "  baton run examples/a.yaml --input topic=\"x\"   # a --comment-flag in a comment",
      "baton token create --name ci --scope read,run && baton token list --json",
      "# baton ui --ignored",
      "$ baton approve RUN review --data '{}'",
    ].join("\n"));
    expect(cmds.map((c) => [c.words, c.flags])).toEqual([
      [["run"], ["--input"]],
      [["token", "create"], ["--name", "--scope"]],
      [["token", "list"], ["--json"]],
      [["approve", "review"], ["--data"]],
    ]);
  });
});
