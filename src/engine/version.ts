/**
 * The engine's semantics version, recorded in every `run_started` (`engine`).
 *
 * An integer, bumped whenever engine semantics change: how `apply` folds an event, what
 * `decide` emits for a state (readiness, retries and their delays, on_error, routes and their
 * `max`, for_each, cancel, waiting). Recorded logs (test/fixtures/logs) are replayed against
 * this engine; a log recorded by a newer engine (a higher number) is not continued by this one.
 *
 * A run keeps the semantics of the version that started it (`RunState.engine`): a rule that
 * changes is written `state.engine >= N ? new : old`, so a run in flight across an upgrade
 * behaves exactly as it did (its recorded log replays), and new runs get the new rule.
 *
 * New behaviour a rule keys on new data instead (data older logs never hold) needs no bump: waits
 * with deadlines (`stage_waiting.due_at`, `signal`, `sleep`; `signal` events) are decided only
 * for runs whose log records them.
 *
 * Versions:
 * 1. the engine as first recorded.
 * 2. a run does not pause for a human while the same step asked for evaluations (a route, `if`
 *    or `for_each` still to decide may let other work go on); v1 paused at once, so a human
 *    had to answer twice when the evaluation escalated too.
 * 3. a `for_each` without `concurrency:` runs at most {@link FOR_EACH_CONCURRENCY} items at once
 *    (v1–2: every item at once, all started in one step — 10,000 items blocked the event loop
 *    for 269 ms). Runs started under v1–2 keep starting every item at once.
 */
export const ENGINE_VERSION = 3;

/** Items of a `for_each` in flight at once when the stage sets no `concurrency:` (engine ≥ 3). */
export { FOR_EACH_CONCURRENCY } from "../base/defaults.js";
