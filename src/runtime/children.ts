/**
 * Child runs of `pipeline:` stages: which run id an attempt's child has. The child of execution
 * `base` is `base`, and a retry after a failed child starts `base-aN` (N = the attempt): an
 * unfinished child is resumed, a succeeded one reused. Shared by the embedded runtime and
 * distributed workers.
 */
import type { RunRecord, Store } from "../store/port.js";

/** The id of the child attempt `attempt` of `base` runs (the newest child, or a fresh one after a failure), and its row. */
export async function childRunId(store: Store, base: string, attempt: number): Promise<{ id: string; existing: RunRecord | undefined }> {
  let id = base;
  let existing = await store.get(base);
  for (let a = 2; a <= attempt; a++) {
    const r = await store.get(`${base}-a${a}`);
    if (!r) break;
    id = `${base}-a${a}`;
    existing = r;
  }
  if (existing?.status === "failed" && attempt > 1) {
    id = `${base}-a${attempt}`;
    existing = await store.get(id);
  }
  return { id, existing };
}

/** The parent run id of a child run id (`PARENT~stage…`). */
export function parentOf(childId: string): string {
  return childId.slice(0, childId.lastIndexOf("~"));
}
