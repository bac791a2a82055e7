/** Headless Chromium (Debian's, never downloaded) through playwright-core, and the built web app. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const SHOTS = resolve("test-results/ui");
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];

/** Launch Chromium with a fresh profile; fails (never skips) when it is not installed. */
export async function launch(): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is missing at ${CHROMIUM}: install Debian's chromium package (apt-get install chromium). The UI tests use it through playwright-core and never download a browser.`);
  }
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "baton-chromium-")), {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1,
  });
}

function newest(dir: string): number {
  let t = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, f.name);
    t = Math.max(t, f.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Build dist/ui when it is missing or older than the client sources or the build script. */
export function ensureBuilt(): void {
  const app = resolve("dist/ui/app.js");
  const sources = Math.max(newest(resolve("src/ui/client")), statSync(resolve("scripts/build-ui.mjs")).mtimeMs);
  const fresh = ["app.js", "index.html", "app.css", "elk-worker.js"].every((f) => existsSync(resolve("dist/ui", f))) && statSync(app).mtimeMs >= sources;
  if (fresh) return;
  const r = spawnSync(process.execPath, ["scripts/build-ui.mjs", "--no-typecheck"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`node scripts/build-ui.mjs failed:\n${r.stdout}${r.stderr}`);
}
