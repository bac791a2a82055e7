/**
 * An ESM resolve hook (registered with `module.register` by run.ts, so it runs on Node's loader
 * thread): `import "baton"` / `import "baton/testing"` that Node's own resolution cannot find
 * resolves to the running Baton's package. Everything else (and a project's own `baton`) is
 * left to the next resolver.
 */

let targets: Readonly<Record<string, string>> = {};

/** `data` of `module.register`: specifier → file URL. */
export function initialize(data: Readonly<Record<string, string>> | undefined): void {
  targets = data ?? {};
}

interface ResolveResult {
  readonly url: string;
  readonly format?: string | null;
  readonly shortCircuit?: boolean;
}

export async function resolve(specifier: string, context: unknown, nextResolve: (specifier: string, context?: unknown) => Promise<ResolveResult>): Promise<ResolveResult> {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const url = Object.hasOwn(targets, specifier) ? targets[specifier] : undefined;
    if (url !== undefined && (err as { code?: string }).code === "ERR_MODULE_NOT_FOUND") return { url, format: "module", shortCircuit: true };
    throw err;
  }
}
