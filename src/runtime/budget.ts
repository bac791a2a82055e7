/**
 * A run's budget (SPEC §3: tokens, USD) as a port with one operation that matters: `hold` checks
 * that a call's estimate fits what is left and holds it, atomically — so concurrent calls of one
 * run (in one process, or on many workers) cannot overshoot it. `settle` ends the hold once the
 * attempt is over; what it used is then counted (from its event once applied).
 */
import type { Plan } from "../plan/types.js";
import type { BudgetHold, Usage } from "../stages/types.js";

// A hold is what stage kinds see of the budget (`ExecuteArgs.hold`), so it is declared with the
// stage contract (../stages/types.ts) and implemented here and in distributed/redis-budget.ts.
export type { BudgetHold, Usage };

export interface BudgetPort {
  hold(tokens: number, usd: number): BudgetHold | Promise<BudgetHold>;
  /** The attempt holding `h` (undefined: it held nothing) is over; `spent` is what it reported (recorded with its outcome event unless `recorded` is false). */
  settle(h: BudgetHold | undefined, spent: Usage | undefined, recorded: boolean): void;
}

/** Whether `used + (tokens, usd)` fits the plan's budget; which limit it crosses otherwise. */
export function overBudget(plan: Plan, used: Usage, tokens: number, usd: number): "tokens" | "usd" | undefined {
  const b = plan.budget;
  if (!b) return undefined;
  if (b.tokens !== undefined && used.tokens + tokens > b.tokens) return "tokens";
  if (b.usd !== undefined && usd > 0 && used.usd + usd > b.usd) return "usd";
  return undefined;
}

/**
 * The budget of a run driven in this process: used = usage applied to the run's state + holds of
 * attempts in flight + usage reported by attempts that ended but is not applied yet.
 */
export class LocalBudget implements BudgetPort {
  private readonly reserved = { tokens: 0, usd: 0 };
  private readonly unapplied = { tokens: 0, usd: 0 };

  constructor(
    private readonly plan: Plan,
    private readonly applied: () => { readonly input: number; readonly output: number; readonly usd: number },
  ) {}

  used(): Usage {
    const u = this.applied();
    return { tokens: u.input + u.output + this.reserved.tokens + this.unapplied.tokens, usd: u.usd + this.reserved.usd + this.unapplied.usd };
  }

  hold(tokens: number, usd: number): BudgetHold {
    const used = this.used();
    const over = overBudget(this.plan, used, tokens, usd);
    if (over) return { ok: false, over, used, tokens, usd };
    this.reserved.tokens += tokens;
    this.reserved.usd += usd;
    return { ok: true, used, tokens, usd };
  }

  settle(h: BudgetHold | undefined, spent: Usage | undefined, recorded: boolean): void {
    if (h?.ok) {
      this.reserved.tokens -= h.tokens;
      this.reserved.usd -= h.usd;
    }
    if (spent && recorded) {
      this.unapplied.tokens += spent.tokens;
      this.unapplied.usd += spent.usd;
    }
  }

  /** An outcome event with usage was applied to the state: it no longer counts as unapplied. */
  onApplied(tokens: number, usd: number): void {
    this.unapplied.tokens -= tokens;
    this.unapplied.usd -= usd;
  }
}
