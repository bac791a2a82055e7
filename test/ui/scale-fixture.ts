/**
 * Runs for the UI-at-scale tests and bench (issue 15.5), written as templates into a temp
 * directory and run by the real runtime: a long chain whose stages 10–12 a route sends back
 * twice (three visits each), a 50-item for_each with failing items, a run that fails with a
 * multi-line error, a run that sleeps an hour.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const id = (i: number): string => `s${String(i).padStart(3, "0")}`;

/** A chain of `n` value stages; `s012` routes back to `s010` twice. */
export function chainTemplate(n: number): string {
  const lines = ["baton: 1", `name: chain-${n}`, "stages:", `  ${id(0)}: { value: "1" }`];
  for (let i = 1; i < n; i++) {
    if (i === 12 && n > 12) {
      lines.push(`  ${id(i)}:`, `    value: "${id(i - 1)} + 1"`, "    routes:", `      - { when: "true", goto: ${id(10)}, max: 2 }`);
    } else lines.push(`  ${id(i)}: { value: "${id(i - 1)} + 1" }`);
  }
  lines.push(`output: ${id(n - 1)}`);
  return `${lines.join("\n")}\n`;
}

/** Write the scale templates into a fresh directory; returns their paths. */
export function writeScaleTemplates(): { dir: string; chain: string; chain5: string; forEach: string; fails: string; sleeps: string } {
  const dir = mkdtempSync(join(tmpdir(), "baton-ui-scale-"));
  writeFileSync(join(dir, "chain.yaml"), chainTemplate(200));
  writeFileSync(join(dir, "chain5.yaml"), chainTemplate(5));
  writeFileSync(join(dir, "items.mjs"), [
    "export async function check({ input: { n } }) {",
    "  if (n % 10 === 3) throw new Error(`item ${n} is odd`);",
    "  return { n, ok: true };",
    "}",
    "export async function broken() {",
    "  throw new Error('disk full: /var/tmp/report.json\\nat write (report.mjs:12)\\nat main (report.mjs:40)');",
    "}",
    "",
  ].join("\n"));
  writeFileSync(join(dir, "for-each.yaml"), [
    "baton: 1", "name: for-each-50", "stages:",
    '  items: { value: "[0..49]" }',
    "  check:",
    "    for_each: items",
    "    as: n",
    "    run: ./items.mjs#check",
    '    input: { n: "{{ n }}" }',
    "    on_error: continue",
    '  report: { value: "$count(check)" }',
    "output: report", "",
  ].join("\n"));
  writeFileSync(join(dir, "fails.yaml"), [
    "baton: 1", "name: fails", "stages:",
    '  prepare: { value: "1" }',
    "  write: { needs: [prepare], run: ./items.mjs#broken }",
    "output: write", "",
  ].join("\n"));
  writeFileSync(join(dir, "sleeps.yaml"), ["baton: 1", "name: sleeps", "stages:", "  nap: { sleep: 1h }", '  after: { needs: [nap], value: "1" }', "output: after", ""].join("\n"));
  return { dir, chain: join(dir, "chain.yaml"), chain5: join(dir, "chain5.yaml"), forEach: join(dir, "for-each.yaml"), fails: join(dir, "fails.yaml"), sleeps: join(dir, "sleeps.yaml") };
}
