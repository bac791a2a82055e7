/** Defaults that the engine applies and that `baton plan` shows (one definition for both). */

/** Items of a `for_each` in flight at once when the stage sets no `concurrency:` (engine ≥ 3). */
export const FOR_EACH_CONCURRENCY = 100;
