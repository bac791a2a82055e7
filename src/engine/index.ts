/** The pure engine: `fold(events) → state`, `decide(state, now) → events + effects`. */
export * from "./events.js";
export { apply, createState, EngineInvariantError, execAt, fold, routeAvailable, transition, type Exec, type Node, type RunState, type RunStatus } from "./state.js";
export { backoffDelay, decide, nextWakeAt, type DecideOptions, type Effect, type Step } from "./decide.js";
export { jitter } from "./jitter.js";
export { scopeFor, readOf } from "./scope.js";
export * from "./key.js";
export {
  commandFor, execOf, executeCommand, keyOf, runningAttempts, usageOf,
  type AssembleCommand, type CancelCommand, type Command, type ConditionCommand, type ExecuteCommand, type ExprCommand, type RoutesCommand,
} from "./commands.js";
export { ENGINE_VERSION, FOR_EACH_CONCURRENCY } from "./version.js";
export { usageBeyondSteps } from "./usage.js";
export { enableRelease } from "./release.js";
