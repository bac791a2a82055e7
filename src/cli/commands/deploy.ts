/**
 * `baton deploy FILE...` and `baton pipelines [show NAME]`: register templates in the store (a
 * version per content hash) so the API starts them by name (`POST /api/runs { pipeline }`).
 */
import type { Command } from "commander";
import { UserError } from "../../base/errors.js";
import { deploy, getPipeline, listPipelines, listVersions, planOf, type Deployed } from "../../registry/pipelines.js";
import { openStoreAsync } from "../../store/open.js";
import type { Store } from "../../store/port.js";
import { TemplateError } from "../../template/index.js";

type Globals = () => { db?: string; debug?: boolean };

async function withStore<T>(globals: Globals, f: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStoreAsync(globals().db); // a SQLite path, or postgres://… (--store)
  try {
    return await f(store);
  } finally {
    await store.close();
  }
}

/** Width-padded rows, two spaces apart. */
function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}

/** Register `deploy` and `pipelines` on the program. */
export function registerDeploy(program: Command, globals: Globals): void {
  program
    .command("deploy <files...>")
    .description("register templates in the store (a version per content hash) so the API can start them by name")
    .option("--json", "print one JSON document per file")
    .action(async (files: string[], o: { json?: boolean }) => {
      const by = process.env["USER"] ?? process.env["USERNAME"];
      await withStore(globals, async (store) => {
        const failed: TemplateError[] = [];
        const done: Deployed[] = [];
        for (const file of files) {
          try {
            done.push(await deploy(store, file, by ? { by } : {}));
          } catch (err) {
            if (!(err instanceof TemplateError)) throw err;
            failed.push(err); // like `baton validate`: one line per problem, then the next file
            process.stderr.write(err.message + "\n");
            continue;
          }
          const d = done[done.length - 1]!;
          process.stdout.write(o.json ? JSON.stringify(d) + "\n" : d.created ? `deployed ${d.name} version ${d.version}\n` : `${d.name} version ${d.version} unchanged\n`);
        }
        if (failed.length > 0) {
          const n = failed.reduce((k, e) => k + e.diagnostics.length, 0);
          throw new UserError(`${n} error${n === 1 ? "" : "s"}: ${failed.length} of ${files.length} template${files.length === 1 ? "" : "s"} not deployed`, 1);
        }
      });
    });

  const pipelines = program
    .command("pipelines")
    .description("registered pipelines: name, latest version, versions, deployed at")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      await withStore(globals, async (store) => {
        const list = await listPipelines(store);
        if (o.json) process.stdout.write(JSON.stringify(list, null, 2) + "\n");
        else if (list.length === 0) process.stdout.write("no pipelines registered: register one with `baton deploy FILE`\n");
        else process.stdout.write(table([["NAME", "VERSION", "VERSIONS", "DEPLOYED"], ...list.map((p) => [p.name, p.version, String(p.versions), p.deployed_at])]));
      });
    });

  pipelines
    .command("show <name>")
    .description("a registered pipeline's versions and the inputs it takes")
    .option("--version <v>", "show this version's inputs (default: the latest)")
    .option("--json", "print JSON")
    .action(async (name: string, opts: { version?: string; json?: boolean }, cmd: Command) => {
      // `--json` after the name is parsed by `pipelines` (which has one too): read both.
      const o = { ...opts, json: opts.json === true || cmd.optsWithGlobals<{ json?: boolean }>().json === true };
      await withStore(globals, async (store) => {
        const entry = await getPipeline(store, name, o.version);
        if (entry === undefined) {
          const known = (await listPipelines(store)).map((p) => p.name);
          if (o.version !== undefined && known.includes(name)) throw new UserError(`pipeline '${name}' has no version ${o.version}: see baton pipelines show ${name}`, 1);
          throw new UserError(`no pipeline '${name}' is registered${known.length ? ` (registered: ${known.slice(0, 5).join(", ")}${known.length > 5 ? ", …" : ""})` : ": register it with `baton deploy FILE`"}`, 1);
        }
        const latest = await getPipeline(store, name);
        const versions = await listVersions(store, name);
        const plan = planOf(entry);
        if (o.json) {
          process.stdout.write(JSON.stringify({
            name, latest: latest?.version, version: entry.version, file: entry.file, inputs: plan.inputsSchema,
            versions: versions.map((v) => ({ version: v.version, deployed_at: v.deployed_at, ...(v.by ? { by: v.by } : {}), file: v.file })),
          }, null, 2) + "\n");
          return;
        }
        const lines = [`pipeline ${name}  latest ${latest?.version ?? "?"}`, ""];
        lines.push(table([["VERSION", "DEPLOYED", "BY", "FILE"], ...versions.map((v) => [v.version, v.deployed_at, v.by ?? "", v.file])]).trimEnd(), "");
        const props = Object.entries(plan.inputsSchema.properties);
        const required = new Set(plan.inputsSchema.required ?? []);
        lines.push(`inputs of version ${entry.version}:`);
        if (props.length === 0) lines.push("  (none)");
        for (const [k, s] of props) {
          const sch = s as { type?: unknown; default?: unknown; description?: unknown };
          const type = Array.isArray(sch.type) ? sch.type.join("|") : String(sch.type ?? "any");
          const extra = required.has(k) ? "required" : sch.default !== undefined ? `default ${JSON.stringify(sch.default)}` : "optional";
          lines.push(`  ${k}: ${type} (${extra})${typeof sch.description === "string" ? `  ${sch.description}` : ""}`);
        }
        process.stdout.write(lines.join("\n") + "\n");
      });
    });
}
