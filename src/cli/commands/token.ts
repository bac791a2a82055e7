/**
 * `baton token create|list|revoke` (see the README, "API tokens"): the scoped tokens `baton ui`
 * accepts, kept in the run store (`--db`, `--store`) by hash only.
 */
import type { Command } from "commander";
import { createToken, listTokens, parseScopes, revokeToken, SCOPES, type Scope, type TokenInfo } from "../../auth/tokens.js";
import { UserError } from "../../base/errors.js";
import { parseDuration } from "../../expr/duration.js";
import { openStoreAsync } from "../../store/open.js";
import type { Store } from "../../store/port.js";

const collect = (value: string, prev: string[]): string[] => [...prev, value];

async function withStore<T>(spec: string | undefined, use: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStoreAsync(spec); // a SQLite path, or postgres://… (--store)
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

function scopesOf(values: readonly string[]): Scope[] {
  try {
    return parseScopes(values.join(","));
  } catch (err) {
    throw new UserError(`--scope: ${(err as Error).message}`, 2);
  }
}

function expiresOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    throw new UserError(`--expires must be a duration like 90d, 12h or 30m, got '${text}'`, 2);
  }
  if (!(ms > 0)) throw new UserError(`--expires must be longer than 0, got '${text}'`, 2);
  return ms;
}

/** One line of `token list`. */
function row(t: TokenInfo, now: number): string {
  const expires = t.expires_at === undefined ? "never" : `${t.expires_at}${Date.parse(t.expires_at) <= now ? " (expired)" : ""}`;
  return `${t.id.padEnd(12)} ${t.name.padEnd(20)} ${t.scopes.join(",").padEnd(20)} ${t.created_at.padEnd(24)} ${expires}`;
}

/** Register `token` (create, list, revoke) on the program. */
export function registerToken(program: Command, globals: () => { db?: string }): void {
  const token = program.command("token").description(`scoped API tokens for \`baton ui\` (${SCOPES.join(", ")}), stored hashed in the run store`);

  token
    .command("create")
    .description("create a token and print it once (stdout: the token only)")
    .requiredOption("--name <name>", "a label shown in listings and in 403 messages")
    .requiredOption("--scope <scopes>", `comma-separated, repeatable: ${SCOPES.join(", ")} (admin implies all; run and approve imply read)`, collect, [])
    .option("--expires <duration>", "lifetime, e.g. 90d, 12h (default: never)")
    .option("--json", "print { id, token, name, scopes, created_at, expires_at? }")
    .action(async (o: { name: string; scope: string[]; expires?: string; json?: boolean }) => {
      const scopes = scopesOf(o.scope);
      const expiresInMs = expiresOf(o.expires);
      const created = await withStore(globals().db, async (store) => {
        try {
          return await createToken(store, { name: o.name, scopes, ...(expiresInMs !== undefined ? { expiresInMs } : {}) });
        } catch (err) {
          if (err instanceof TypeError) throw new UserError(err.message, 2);
          throw err;
        }
      });
      const { hash: _hash, ...info } = created.record;
      process.stdout.write(o.json ? JSON.stringify({ ...info, token: created.token }, null, 2) + "\n" : created.token + "\n");
      const until = info.expires_at === undefined ? "does not expire" : `expires ${info.expires_at}`;
      process.stderr.write(`token ${info.id} (${info.name}, scopes ${info.scopes.join(",")}, ${until}): it is shown only once, store it now; send it as 'Authorization: Bearer TOKEN'; revoke it with \`baton token revoke ${info.id}\`\n`);
    });

  token
    .command("list")
    .description("the tokens: id, name, scopes, created, expires (never the token or its hash)")
    .option("--json", "print a JSON list")
    .action(async (o: { json?: boolean }) => {
      const list = await withStore(globals().db, listTokens);
      if (o.json) {
        process.stdout.write(JSON.stringify(list, null, 2) + "\n");
        return;
      }
      if (list.length === 0) {
        process.stderr.write("no tokens: `baton ui` on loopback lets local requests through; create one with `baton token create --name NAME --scope read`\n");
        return;
      }
      const now = Date.now();
      process.stdout.write(`${"ID".padEnd(12)} ${"NAME".padEnd(20)} ${"SCOPES".padEnd(20)} ${"CREATED".padEnd(24)} EXPIRES\n`);
      for (const t of list) process.stdout.write(row(t, now) + "\n");
    });

  token
    .command("revoke <id>")
    .description("revoke a token: servers sharing the store refuse it within a second")
    .action(async (id: string) => {
      const gone = await withStore(globals().db, (store) => revokeToken(store, id));
      if (!gone) throw new UserError(`no token '${id}': see \`baton token list\` for the ids`, 1);
      process.stderr.write(`revoked token ${id}\n`);
    });
}
