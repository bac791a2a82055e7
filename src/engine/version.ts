/**
 * The engine's semantics version, recorded in every `run_started` (`engine`).
 *
 * An integer, bumped whenever engine semantics change: how `apply` folds an event, what
 * `decide` emits for a state (readiness, retries and their delays, on_error, routes and their
 * `max`, for_each, cancel, waiting). Recorded logs (test/fixtures/logs) are replayed against
 * this engine; a log recorded by a newer engine (a higher number) is not continued by this one.
 */
export const ENGINE_VERSION = 1;
