/**
 * The project root, found as git finds `.git`: the nearest directory, from the working directory
 * upward, that holds the thing looked for (`.baton/`, `baton.config.*`).
 */
import { statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

/**
 * The first of `names` found in `start` or the nearest directory above it (the full path), or
 * undefined when no directory up to the filesystem root holds one. `dir: true` accepts only
 * directories, `false` only files.
 *
 * @example
 * findUp([".baton"], process.cwd(), true); // "/home/me/project/.baton" from /home/me/project/src
 */
export function findUp(names: readonly string[], start: string, dir: boolean): string | undefined {
  for (let at = resolve(start); ; ) {
    for (const n of names) {
      const p = join(at, n);
      const st = statSync(p, { throwIfNoEntry: false });
      if (st !== undefined && st.isDirectory() === dir) return p;
    }
    const up = dirname(at);
    if (up === at) return undefined;
    at = up;
  }
}
