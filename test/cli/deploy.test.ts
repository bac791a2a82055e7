/** `baton deploy` and `baton pipelines [show]` end to end: the built CLI, a real SQLite file. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "baton-deploy-"));
const db = join(dir, "deploy.db");

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
});

function baton(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, "--db", db, ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1", USER: "ana" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const T = (dflt: number) => `baton: 1\nname: greeter\ninputs:\n  who: { type: string, default: w${dflt}, description: Whom to greet }\n  times: { type: integer }\nstages:\n  hi: { value: "'hi ' & inputs.who" }\n`;

describe("baton deploy", () => {
  it("registers a version per content hash; the same content again is unchanged; a bad template is refused like validate", () => {
    const file = join(dir, "greeter.yaml");
    writeFileSync(file, T(1));
    const first = baton(["deploy", file]);
    expect(first.code, first.stderr).toBe(0);
    const v1 = /^deployed greeter version ([0-9a-f]{12})\n$/.exec(first.stdout)?.[1];
    expect(v1).toBeDefined();
    expect(baton(["deploy", file]).stdout).toBe(`greeter version ${v1} unchanged\n`);

    writeFileSync(file, T(2));
    const second = baton(["deploy", file, "--json"]);
    const doc = JSON.parse(second.stdout);
    expect(doc).toEqual({ name: "greeter", version: expect.stringMatching(/^[0-9a-f]{12}$/), created: true });
    expect(doc.version).not.toBe(v1);

    const bad = baton(["deploy", "test/fixtures/templates/cycles.yaml", "examples/research-report.yaml"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^test\/fixtures\/templates\/cycles\.yaml:\d+:\d+: dependency cycle: a → b → c → a$/m);
    expect(bad.stderr).toMatch(/^baton: 3 errors: 1 of 2 templates not deployed$/m);
    expect(bad.stdout).toMatch(/^deployed research-report version [0-9a-f]{12}$/m); // the good one still goes in
    expect(baton(["deploy", "/dev/zero"]).stderr).toMatch(/cannot read the template: not a regular file/);

    const list = baton(["pipelines"]);
    expect(list.code).toBe(0);
    expect(list.stdout.split("\n")[0]).toMatch(/^NAME\s+VERSION\s+VERSIONS\s+DEPLOYED$/);
    expect(list.stdout).toMatch(new RegExp(`^greeter\\s+${doc.version}\\s+2\\s+\\d{4}-\\d\\d-\\d\\dT`, "m"));
    expect(list.stdout).toMatch(/^research-report\s+[0-9a-f]{12}\s+1\s+/m);
    const json = JSON.parse(baton(["pipelines", "--json"]).stdout);
    expect(json.map((p: { name: string; versions: number }) => [p.name, p.versions])).toEqual([["greeter", 2], ["research-report", 1]]);

    const show = baton(["pipelines", "show", "greeter"]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain(`pipeline greeter  latest ${doc.version}`);
    expect(show.stdout).toMatch(new RegExp(`^${v1}\\s+\\S+\\s+ana\\s+${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$`, "m"));
    expect(show.stdout).toContain('who: string (default "w2")  Whom to greet');
    expect(show.stdout).toContain("times: integer (required)");
    const old = JSON.parse(baton(["pipelines", "show", "greeter", "--version", v1!, "--json"]).stdout);
    expect(old).toMatchObject({ name: "greeter", latest: doc.version, version: v1, file });
    expect(old.inputs.properties.who.default).toBe("w1");
    expect(old.versions).toHaveLength(2);

    const none = baton(["pipelines", "show", "nope"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe("baton: no pipeline 'nope' is registered (registered: greeter, research-report)\n");
    expect(baton(["pipelines", "show", "greeter", "--version", "000000000000"]).stderr).toMatch(/^baton: pipeline 'greeter' has no version 000000000000/);
  });

  it("an empty store says how to register", () => {
    const r = spawnSync(process.execPath, [CLI, "--db", join(dir, "empty.db"), "pipelines"], { encoding: "utf8" });
    expect(r.stdout).toBe("no pipelines registered: register one with `baton deploy FILE`\n");
  });
});
