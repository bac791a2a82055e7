/** Usage arithmetic shared by the engine, the budgets and the hosts. */
import type { AttemptUsage } from "./events.js";

/**
 * The usage an outcome adds to the run's totals: its tokens and cost minus what its attempt's
 * recorded turns (`step_recorded`) counted already. One rule for the engine, budgets and hosts.
 */
export function usageBeyondSteps(u: AttemptUsage): { readonly input: number; readonly output: number; readonly usd: number } {
  return {
    input: (u.tokens?.input ?? 0) - (u.recorded_tokens?.input ?? 0),
    output: (u.tokens?.output ?? 0) - (u.recorded_tokens?.output ?? 0),
    usd: (u.cost_usd ?? 0) - (u.recorded_cost_usd ?? 0),
  };
}
