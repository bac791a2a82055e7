/**
 * The live terminal view in a REAL terminal (issue 15 item 4): `baton run` / `resume` run in a
 * detached tmux session of a fixed size on a private tmux server, and the test reads the screen
 * with `tmux capture-pane -p`. Every capture is taken once a condition holds (polled, with a
 * generous cap that only stops a hung test: it asserts nothing about speed). Off a TTY (piped) the
 * same commands print plain lines.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "baton-tty-"));
const db = join(dir, "tty.db");
/** A tmux server of this test file's own (`-L`): nothing else's sessions are touched. */
const SOCKET = `baton-progress-${process.pid}`;
const COLS = 100;
const ROWS = 30;
/** Only stops a hung test (the conditions normally hold within seconds). */
const CAP_MS = 120_000;

writeFileSync(join(dir, "h.mjs"), `export async function quick(ctx) { return "ok " + (ctx.item ?? ""); }\n`);
writeFileSync(join(dir, "child.yaml"), `baton: 1
name: kid
stages:
  inner: { run: ./h.mjs#quick }
`);
// rpm 1: the second item of fan waits a whole 61-second window for the pool — longer than its
// 5 s timeout, which must not count the wait (issue 15.2).
writeFileSync(join(dir, "live.yaml"), `baton: 1
name: live
limits: { llm: { rpm: 1 } }
stages:
  a: { run: ./h.mjs#quick }
  sub: { needs: [a], pipeline: ./child.yaml }
  fan: { needs: [sub], for_each: "[1, 2]", run: ./h.mjs#quick, limit: llm, timeout: 5s }
  review: { needs: [fan], approval: { message: "Ship it?" } }
output: review
`);

function tmux(...args: string[]): string {
  const r = spawnSync("tmux", ["-L", SOCKET, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tmux ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

let sessions = 0;
/** Start `baton ARGS` in a new detached session (COLS × ROWS); the pane stays after it exits, with its exit code. */
function startBaton(args: string[]): string {
  const name = `s${++sessions}`;
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = `cd ${quote(dir)} && ${quote(process.execPath)} ${quote(CLI)} --db ${quote(db)} ${args.map(quote).join(" ")}; echo EXIT=$?; sleep 3600`;
  tmux("new-session", "-d", "-s", name, "-x", String(COLS), "-y", String(ROWS), cmd);
  return name;
}

const screen = (session: string): string => tmux("capture-pane", "-p", "-t", session);

/** Poll the screen until `cond` holds; the screen it held on. */
async function until(session: string, what: string, cond: (s: string) => boolean): Promise<string> {
  const end = Date.now() + CAP_MS;
  let last = "";
  while (Date.now() < end) {
    last = screen(session);
    if (cond(last)) return last;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`the screen never showed ${what}; it shows:\n${last}`);
}

/** The table rows of stage `id` on a screen. */
const rowOf = (s: string, id: string): string => s.split("\n").find((l) => new RegExp(`^  \\S ${id} `).test(l)) ?? "";
/** The seconds a "waiting for pool … 12.3s" note shows, if any. */
const poolWaitSecs = (s: string): string | undefined => /waiting for pool llm \(rpm\) (\S+)/.exec(s)?.[1];

function bator(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, "--db", db, ...args], { cwd: dir, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every `+1.2s` / `+15ms` offset in a text, in seconds. */
const offsets = (text: string): number[] => [...text.matchAll(/(?:^|\s)\+(\d+(?:\.\d+)?)(ms|s)\b/gm)].map((m) => Number(m[1]) / (m[2] === "ms" ? 1000 : 1));

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does)");
  if (spawnSync("tmux", ["-V"]).status !== 0) throw new Error("tmux is missing: apt-get install -y tmux (.ci/run installs it)");
});
afterAll(() => {
  spawnSync("tmux", ["-L", SOCKET, "kill-server"]); // our own server only
});

// Each test waits for conditions capped at CAP_MS (a hung CLI fails instead of hanging the suite).
describe("the live view on a real terminal (tmux)", { timeout: 3 * CAP_MS }, () => {
  let runId = "";

  it("ticks while a pool waits (and says so), heads the table with the followed run's id, and after Ctrl-C shows no stage running", async () => {
    const s = startBaton(["run", "live.yaml"]);
    const first = await until(s, "a stage waiting for its pool", (x) => poolWaitSecs(x) !== undefined);
    runId = /^run (\S+)/m.exec(first)?.[1] ?? "";
    expect(runId).toMatch(/^[0-9a-z]{18}$/); // the parent's id: never its sub-pipeline run's (…~sub)
    expect(rowOf(first, "a")).toMatch(/✓ a +succeeded/);
    expect(rowOf(first, "sub")).toMatch(/✓ sub +succeeded/);
    expect(rowOf(first, "fan")).toMatch(/▶ fan +running .*[01]\/2 items +waiting for pool llm \(rpm\) \S+/); // item 0 may still be finishing
    expect(rowOf(first, "review")).toMatch(/· review +pending/);
    // Nothing happens while the pool waits, and the screen still moves: the elapsed times tick.
    const later = await until(s, "the wait's time moving on", (x) => poolWaitSecs(x) !== undefined && poolWaitSecs(x) !== poolWaitSecs(first));
    expect(later).not.toBe(first);
    expect(/^run (\S+) +(\S+)/m.exec(later)?.[2]).not.toBe(/^run (\S+) +(\S+)/m.exec(first)?.[2]);
    expect(/^run (\S+)/m.exec(later)?.[1]).toBe(runId);
    // The sub-pipeline did run as a child run of this one (so the header had a child id to get wrong).
    expect(bator(["runs"]).stdout).toContain(`${runId}~sub`);

    tmux("send-keys", "-t", s, "C-c");
    const end = await until(s, "the command's exit", (x) => /EXIT=\d+/.test(x));
    expect(end).toMatch(/EXIT=130/);
    expect(end).toContain(`resume it with: baton resume ${runId}`);
    expect(end).not.toMatch(/▶|\brunning\b/); // no stage is left shown running
    expect(rowOf(end, "fan")).toMatch(/■ fan +cancelled/);
    expect(rowOf(end, "a")).toMatch(/✓ a +succeeded/);
    // The interrupt notice sits above the final table (the redraw moved over the old one, not under it).
    expect(end.indexOf("interrupt: cancelling the run")).toBeLessThan(end.indexOf(`run ${runId}`));
    expect(end.split("\n").filter((l) => /^ {2}\S (a|sub|fan|review) /.test(l))).toHaveLength(4);
    // One Ctrl-C is one cancel request in the run's log (the followed run was asked twice before).
    const log = new Database(db, { readonly: true });
    try {
      const n = log.prepare("SELECT count(*) AS n FROM events WHERE run_id = ? AND type = 'run_cancel_requested'").get(runId) as { n: number };
      expect(n.n).toBe(1);
    } finally {
      log.close();
    }
  });

  it("resume off a TTY (piped): plain lines, offsets from the resume, the fan's real item count", () => {
    expect(runId).not.toBe("");
    const r = bator(["resume", runId]);
    expect(r.code).toBe(3); // waiting at the approval
    expect(r.stderr).not.toContain("\x1b[");
    expect(r.stderr).toContain(`run ${runId} resumed (2 of 4 stages done before)`);
    expect(r.stderr).toContain("fan completed (2 items)");
    expect(r.stderr).toContain("review waits: Ship it?");
    const offs = offsets(r.stderr);
    expect(offs.length).toBeGreaterThan(2);
    // From this resume (never from the epoch, never negative): minutes at the very most.
    for (const o of offs) expect(o).toBeLessThan(600);
  });

  it("resume on a TTY: the finished stages show as finished, the approval as waiting, under the run's own id", async () => {
    const s = startBaton(["resume", runId]);
    const end = await until(s, "the command's exit", (x) => /EXIT=\d+/.test(x));
    expect(end).toMatch(/EXIT=3/);
    expect(/^run (\S+)/m.exec(end)?.[1]).toBe(runId);
    expect(rowOf(end, "a")).toMatch(/✓ a +succeeded/);
    expect(rowOf(end, "sub")).toMatch(/✓ sub +succeeded/);
    expect(rowOf(end, "fan")).toMatch(/✓ fan +succeeded .*2\/2 items/);
    expect(rowOf(end, "review")).toMatch(/⏸ review +waiting .*Ship it\?/);
    expect(end).not.toMatch(/·|pending|▶|\brunning\b/);
  });

  it("approve off a TTY finishes the run; its lines stay plain and sane", () => {
    const r = bator(["approve", runId, "review"]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain("\x1b[");
    expect(r.stderr).toMatch(/review approved/);
    expect(r.stderr).toContain(`run ${runId} succeeded`);
    for (const o of offsets(r.stderr)) expect(o).toBeLessThan(600);
    expect(bator(["runs"]).stdout).toMatch(new RegExp(`${runId} +succeeded`));
  });
});
