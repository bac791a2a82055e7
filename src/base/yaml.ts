/**
 * The `yaml` package, loaded on first use (issue 14 item 1): a valid template in the fast subset
 * (template/yaml-fast.ts) never needs it, so `baton validate`/`plan` of one do not load it. `npm run build`
 * bundles it into one file, dist/base/yaml.cjs (scripts/build-yaml.mjs), which loads in a
 * fraction of the time of its 73 CommonJS files; running from src/ (tests), the package itself.
 * @internal
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type * as Yaml from "yaml";

const require = createRequire(import.meta.url);
let lib: typeof Yaml | undefined;

/** The yaml library (its bundled build when there is one). */
export function yamlLib(): typeof Yaml {
  if (lib === undefined) {
    const bundle = new URL("./yaml.cjs", import.meta.url);
    lib = (existsSync(bundle) ? require(fileURLToPath(bundle)) : require("yaml")) as typeof Yaml;
  }
  return lib;
}
