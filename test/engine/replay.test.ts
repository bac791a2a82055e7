/**
 * Strict replay of recorded logs (test/fixtures/logs/*.jsonl, written by scripts/record-logs.mjs
 * from real runs): the engine of today must read every recorded run exactly as the engine that
 * recorded it did, so runs in flight survive an upgrade.
 *
 * For each log, compiled from its run_started's recorded source as resume does:
 *  1. it folds strictly: `apply` places every event (a false return names the line);
 *  2. `decide` on every prefix where the recording engine decided gives the events it recorded
 *     there, and nothing where it recorded nothing;
 *  3. it was recorded by this engine version or an older one, with a plan this compiler still
 *     compiles the same way (`compiled_hash`): otherwise resume would refuse such runs.
 *
 * Where `decide` ran: at the start of every run of events the engine decides (a run can span
 * several decides, e.g. when a retry's timer fires with nothing in between), and it gave
 * nothing right after such a run when an external event follows, nor at the end of the log.
 * <name>.batches.json (written by the recorder) lists the size of every append — one store
 * transaction: the events that arrived, then rounds of what `decide` added and what its
 * expression commands evaluated to, ending with a decide — so the end of every append is a
 * point too, where decide gave nothing unless the append ends with decided events (or the
 * next append starts with them: start, resume and answers are appended outside a step).
 *
 * archive/<commit>/ holds logs recorded by earlier builds, never re-recorded: runs started
 * before an upgrade, replayed by the engine after it.
 *
 * A changed engine rule or compiler default that changes what a recorded run does next fails
 * here. When that is intended: bump ENGINE_VERSION (src/engine/version.ts), copy the current
 * logs to archive/<commit>/, re-record with `npm run record-logs`, and decide what happens to
 * runs of the older version (an archived log that no longer replays is a run resume must refuse).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { planFromSource } from "../../src/api/run.js";
import { apply, createState, decide, ENGINE_VERSION, fold, type BatonEvent, type RunStarted } from "../../src/engine/index.js";
import { compiledPlanHash } from "../../src/plan/hash.js";
import type { Plan } from "../../src/plan/types.js";

const DIR = resolve("test/fixtures/logs");
const logsIn = (dir: string): string[] => readdirSync(join(DIR, dir)).filter((f) => f.endsWith(".jsonl")).map((f) => join(dir, f.slice(0, -".jsonl".length))).sort();
/** The current recordings (scripts/record-logs.mjs rewrites them). */
const CURRENT = logsIn(".");
/**
 * Logs recorded by earlier builds (archive/<commit>/), kept as they were and never re-recorded:
 * runs started before an upgrade, replayed by the engine after it.
 */
const ARCHIVED = existsSync(join(DIR, "archive")) ? readdirSync(join(DIR, "archive")).sort().flatMap((c) => logsIn(join("archive", c))) : [];
const NAMES = [...CURRENT, ...ARCHIVED];

/** What the recordings must cover (scripts/record-logs.mjs records these). */
const REQUIRED = ["approval", "cancel", "crash", "escalation", "fallback", "for_each", "retries", "routes"];

interface Fixture {
  readonly name: string;
  readonly log: readonly BatonEvent[];
  /** Sizes of the appends that wrote the log, when recorded. */
  readonly batches: readonly number[] | undefined;
  readonly plan: Plan;
}

function load(name: string): Fixture {
  const lines = readFileSync(join(DIR, `${name}.jsonl`), "utf8").split("\n").filter((l) => l.trim() !== "");
  const log = lines.map((l, i) => {
    try {
      return JSON.parse(l) as BatonEvent;
    } catch (err) {
      throw new Error(`${name}.jsonl line ${i + 1}: not JSON: ${(err as Error).message}`);
    }
  });
  const first = log[0];
  if (first?.type !== "run_started") throw new Error(`${name}.jsonl: line 1 is ${first?.type ?? "missing"}, not run_started`);
  const bf = join(DIR, `${name}.batches.json`);
  const batches = existsSync(bf) ? (JSON.parse(readFileSync(bf, "utf8")) as number[]) : undefined;
  // As resume does: recompile the recorded template text.
  return { name, log, batches, plan: planFromSource(first.source) };
}

/**
 * Whether `decide` records this event (it then ends the append it is in), or it comes from
 * outside the engine: a handler's result, an evaluated expression, an answer, a signal, the
 * runtime's own records of a resume, the output assembly.
 */
function decidedByEngine(e: BatonEvent): boolean {
  switch (e.type) {
    case "stage_started":
    case "retry_scheduled":
    case "stage_settled":
    case "stage_skipped":
    case "stage_completed":
    case "stage_escalated":
    case "run_waiting":
      return true;
    case "decision":
      return e.kind === "fallback"; // if / for_each / route: evaluated by the host
    case "stage_cancelled":
      return !e.reason.startsWith("interrupted"); // resume records interrupted attempts before run_resumed
    case "run_finished":
      // succeeded, or failed while assembling the output: the host's assembly
      return e.status === "cancelled" || (e.status === "failed" && !(e.error?.kind === "expression" && e.error.message.startsWith("output:")));
    default:
      // run_started, stage_succeeded, stage_failed, stage_waiting, stage_reused, approval,
      // run_cancel_requested, run_resumed
      return false;
  }
}

/** JSON with keys sorted at every level (events compare by value, whatever their key order). */
function canon(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canon).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canon(o[k])}`).join(",")}}`;
}

/** Fold a whole log into a fresh state, strictly; returns the problems (line numbers 1-based). */
function foldStrict(plan: Plan, log: readonly BatonEvent[]): string[] {
  const state = createState(plan);
  const problems: string[] = [];
  log.forEach((e, i) => {
    try {
      if (!apply(state, e)) problems.push(`line ${i + 1}: apply could not place ${canon(e)}`);
    } catch (err) {
      problems.push(`line ${i + 1}: apply threw ${(err as Error).message} on ${canon(e)}`);
    }
  });
  return problems;
}

/** A point where the recording engine ran `decide`: after log[0..at) at time `now`, it recorded log[at..at+count). */
interface Point {
  readonly at: number;
  readonly count: number;
  readonly now: number;
  /** Where the point comes from, for messages. */
  readonly why: string;
}

/**
 * Decide points found from the log alone: each run of engine-decided events starts one (a run
 * can span several decides: a retry's timer fires with no event in between), decide gives
 * nothing right after a run that an external event follows, nor at the end of the log.
 */
function pointsFromLog(f: Fixture, problems: string[]): Point[] {
  const { log, plan } = f;
  const points: Point[] = [];
  let i = 0;
  while (i < log.length) {
    if (!decidedByEngine(log[i]!)) {
      i++;
      continue;
    }
    let j = i;
    while (j < log.length && decidedByEngine(log[j]!)) j++;
    while (i < j) {
      const got = decide(fold(plan, log.slice(0, i)), log[i]!.at).events;
      if (got.length === 0) {
        problems.push(`line ${i + 1}: the log has events decided by the engine from here (${canon(log[i])}…), decide gives none`);
        break;
      }
      points.push({ at: i, count: Math.min(got.length, j - i), now: log[i]!.at, why: `lines ${i + 1}–${j} (decided events)` });
      i += got.length;
    }
    i = j;
    if (j < log.length) points.push({ at: j, count: 0, now: log[j - 1]!.at, why: `end of the decided events at line ${j}` });
  }
  points.push({ at: log.length, count: 0, now: log[log.length - 1]!.at, why: "end of the log" });
  return points;
}

/**
 * With the recorded appends, also: every step ends with a decide, so an append that ends with
 * an external event is a point where decide gave nothing — unless the next append starts with
 * decided events (then that is the decide: an append written outside a step, such as start,
 * resume or an answer, or a step cut short).
 */
function pointsFromBatches(f: Fixture, problems: string[]): Point[] {
  const { log } = f;
  const sizes = f.batches!;
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== log.length) {
    problems.push(`${f.name}.batches.json adds up to ${total} events, the log has ${log.length}: re-record both`);
    return [];
  }
  const points = pointsFromLog(f, problems);
  const known = new Set(points.filter((p) => p.count === 0).map((p) => p.at));
  let pos = 0;
  sizes.forEach((size, b) => {
    pos += size;
    const last = log[pos - 1]!;
    const next = log[pos];
    if (next === undefined || decidedByEngine(last) || decidedByEngine(next) || known.has(pos)) return;
    points.push({ at: pos, count: 0, now: last.at, why: `end of append ${b + 1} (lines ${pos - size + 1}–${pos})` });
  });
  return points.sort((a, b) => a.at - b.at);
}

interface Outcome {
  readonly problems: string[];
  /** Points where decide gave the recorded events in another order. */
  readonly reordered: string[];
}

function replay(f: Fixture): Outcome {
  const problems: string[] = [];
  const reordered: string[] = [];
  const points = f.batches ? pointsFromBatches(f, problems) : pointsFromLog(f, problems);
  for (const p of points) {
    const expected = f.log.slice(p.at, p.at + p.count);
    let got: BatonEvent[];
    try {
      got = decide(fold(f.plan, f.log.slice(0, p.at)), p.now).events;
    } catch (err) {
      problems.push(`index ${p.at} (${p.why}): decide threw ${(err as Error).stack ?? err}`);
      continue;
    }
    const e = expected.map(canon);
    const g = got.map(canon);
    if (e.join("\n") === g.join("\n")) continue;
    if ([...e].sort().join("\n") === [...g].sort().join("\n")) {
      reordered.push(`index ${p.at} (${p.why})`);
      continue;
    }
    problems.push(
      `index ${p.at} (${p.why}), decide(now=${p.now}) on the ${p.at} events before line ${p.at + 1}:\n` +
        `  expected (${e.length}):\n${e.map((x) => `    ${x}`).join("\n") || "    (nothing)"}\n` +
        `  got (${g.length}):\n${g.map((x) => `    ${x}`).join("\n") || "    (nothing)"}`,
    );
  }
  return { problems, reordered };
}

describe("recorded logs", () => {
  it("cover retries, routes both ways, fallback, approval, escalation, for_each, crash + resume, cancel", () => {
    expect(CURRENT).toEqual(expect.arrayContaining(REQUIRED));
  });
});

describe.each(NAMES)("replay of %s.jsonl", (name) => {
  const f = load(name);
  const first = f.log[0] as RunStarted;

  it("was recorded by this engine version or an older one, with a plan that compiles the same", () => {
    expect(typeof first.engine, `${name}: run_started records no engine version`).toBe("number");
    expect(first.engine!, `${name}: recorded by engine version ${first.engine}, this is ${ENGINE_VERSION}`).toBeLessThanOrEqual(ENGINE_VERSION);
    expect(f.plan.hash, `${name}: the recorded template text no longer hashes the same`).toBe(first.plan_hash);
    expect(compiledPlanHash(f.plan), `${name}: the compiler now compiles this template differently (resume would refuse such runs)`).toBe(first.compiled_hash);
  });

  it("folds strictly: apply places every event", () => {
    const problems = foldStrict(f.plan, f.log);
    expect(problems, `${name}.jsonl:\n${problems.join("\n")}`).toEqual([]);
  });

  it("decide on every prefix gives the recorded next events", () => {
    const { problems } = replay(f);
    expect(problems, `${name}.jsonl:\n${problems.slice(0, 5).join("\n")}${problems.length > 5 ? `\n… ${problems.length - 5} more` : ""}`).toEqual([]);
  });

  it("decide gives them in the recorded order", () => {
    const { reordered } = replay(f);
    expect(reordered, `${name}.jsonl: same events in another order at ${reordered.join("; ")}`).toEqual([]);
  });

  if (f.batches) {
    it("replays the same without the recorded appends (points found from the log alone)", () => {
      const problems = replay({ ...f, batches: undefined }).problems;
      expect(problems, `${name}.jsonl (log only):\n${problems.slice(0, 5).join("\n")}`).toEqual([]);
    });
  }
});

describe("the replay check itself", () => {
  const f = load("retries");
  const i = f.log.findIndex((e) => e.type === "retry_scheduled");

  it("fails when the log lacks an event decide records there", () => {
    const batches = [...f.batches!];
    for (let b = 0, pos = 0; b < batches.length; pos += batches[b]!, b++) {
      if (i < pos + batches[b]!) {
        batches[b]!--;
        break;
      }
    }
    const { problems } = replay({ ...f, log: f.log.filter((_, k) => k !== i), batches });
    expect(problems.join("\n")).toContain(canon(f.log[i]));
  });

  it("fails where decide gives events and the log has none", () => {
    const { problems } = replay({ ...f, log: f.log.slice(0, i), batches: undefined });
    expect(problems.join("\n")).toMatch(/end of the log[\s\S]*"type":"retry_scheduled"/);
  });

  it("names the line of an event apply cannot place", () => {
    const j = f.log.findIndex((e) => e.type === "stage_succeeded");
    const log = [...f.log.slice(0, j + 1), f.log[j]!, ...f.log.slice(j + 1)];
    expect(foldStrict(f.plan, log)).toEqual([expect.stringContaining(`line ${j + 2}: apply could not place`)]);
  });
});
