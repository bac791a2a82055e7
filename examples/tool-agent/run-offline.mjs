#!/usr/bin/env node
// Run the tool-using research agent offline: Baton's fake OpenAI server (a real HTTP server on
// 127.0.0.1) plays the model from model-script.json, and `baton run` runs the agent against it.
// Extra arguments go to `baton run` (e.g. --json). Needs `npm run build` first.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const { startFakeOpenAI } = await import(join(root, "dist/testing/index.js"));
const { optionsFromScript } = await import(join(root, "dist/testing/serve.js"));
const fake = await startFakeOpenAI(optionsFromScript(JSON.parse(readFileSync(join(here, "model-script.json"), "utf8"))));
const child = spawn(process.execPath, [join(root, "dist/cli/main.js"), "run", join(here, "research-agent.yaml"), ...process.argv.slice(2)], {
  stdio: "inherit",
  env: { ...process.env, AGENT_MODEL: "openai-compatible:fake-model", AGENT_BASE_URL: fake.url },
});
child.on("exit", async (code) => {
  await fake.close();
  process.stderr.write(`(the fake model answered ${fake.stats.served} requests)\n`);
  process.exit(code ?? 1);
});
