/**
 * The shape limits of JSON values Baton stores (stage inputs and outputs, run inputs): how deep
 * they may nest, measured without recursion so that a 10,000-level value is named as such
 * instead of overflowing the stack (issue 13.12).
 */

/** How deep a stage's input, output or any stored value may nest (objects and arrays). */
export const MAX_JSON_DEPTH = 1000;

/**
 * The nesting depth of `root` (1 for `{}`), and whether it contains itself; iterative, so any
 * depth is measured without a stack overflow. Counts own enumerable values, as JSON does.
 */
export function shapeOf(root: object): { depth: number; cycle: boolean } {
  const onPath = new Set<object>([root]);
  const frames: { obj: object; vals: unknown[]; i: number }[] = [{ obj: root, vals: Object.values(root), i: 0 }];
  let depth = 1;
  while (frames.length > 0) {
    const f = frames[frames.length - 1]!;
    if (f.i >= f.vals.length) {
      frames.pop();
      onPath.delete(f.obj);
      continue;
    }
    const v = f.vals[f.i++];
    if (typeof v !== "object" || v === null) continue;
    if (onPath.has(v)) return { depth, cycle: true };
    onPath.add(v);
    frames.push({ obj: v, vals: Object.values(v), i: 0 });
    if (frames.length > depth) depth = frames.length;
  }
  return { depth, cycle: false };
}
