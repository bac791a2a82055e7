/**
 * The shell command blocks of README.md, as the README test runs them (issue 15.6).
 *
 * A block is a fenced block tagged `sh`, `bash`, `shell` or `console`. It runs unless the line
 * right before its fence (blank lines aside) is `<!-- not-run: REASON -->`. In a block, a
 * command line ending in `# exit code N…` must exit with N (every other command must exit 0).
 * A `console` block is a transcript: its `$ ` lines (and their `\` continuations) are the
 * commands, every other line is output and is not run.
 */

export interface ReadmeBlock {
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly lang: string;
  /** The lines between the fences. */
  readonly text: string;
  /** The reason given by `<!-- not-run: REASON -->`, when the block is not run. */
  readonly notRun?: string;
}

const SHELL = new Set(["sh", "bash", "shell", "console"]);

/** Every fenced shell block of a Markdown text, in order. */
export function shellBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split("\n");
  const out: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```\s*([A-Za-z]*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    if (end >= lines.length) throw new Error(`README.md:${i + 1}: a code fence that is never closed`);
    const lang = open[1]!.toLowerCase();
    if (SHELL.has(lang)) {
      let prev = i - 1;
      while (prev >= 0 && lines[prev]!.trim() === "") prev--;
      const marker = prev >= 0 ? /^<!--\s*not-run:\s*(.+?)\s*-->\s*$/.exec(lines[prev]!) : null;
      out.push({ line: i + 1, lang, text: lines.slice(i + 1, end).join("\n"), ...(marker ? { notRun: marker[1]! } : {}) });
    }
    i = end;
  }
  return out;
}

/** A command line's expected exit code from a trailing `# exit code N` comment (0 without one). */
export function expectedExit(line: string): { command: string; code: number } {
  const m = /\s#\s*exit code (\d+)\b.*$/.exec(line);
  return m ? { command: line.slice(0, m.index), code: Number(m[1]) } : { command: line, code: 0 };
}

/**
 * The block as a bash script: each `# exit code N` line checks its code; any other failing
 * command stops the block (`set -e`, `pipefail`) naming its README line. One script line per
 * README line, so `$LINENO + offset` is the README line.
 */
/** The lines of a block that run: all of them, or for a `console` transcript its `$ ` commands (output lines blanked, so line numbers stay). */
export function commandLines(block: ReadmeBlock): string[] {
  const lines = block.text.split("\n");
  if (block.lang !== "console") return lines;
  let continued = false;
  return lines.map((l) => {
    const run = continued || l.startsWith("$ ");
    const text = run ? l.replace(/^\$ /, "") : "";
    continued = run && l.endsWith("\\");
    return text;
  });
}

export function blockScript(block: ReadmeBlock): string {
  const offset = block.line; // script line k (1-based, after the prelude line) = README line block.line + k
  const body = commandLines(block).map((l, k) => {
    const { command, code } = expectedExit(l);
    if (command === l) return l;
    const at = block.line + k + 1;
    return `set +e; ${command}; __rc=$?; set -e; if [ "$__rc" != ${code} ]; then echo "README.md:${at}: exit code $__rc, the README says ${code}" >&2; exit 1; fi`;
  });
  const prelude = `set -eo pipefail; trap '__rc=$?; case $- in *e*) echo "README.md:$((LINENO + ${offset - 1})): exit code $__rc from: $BASH_COMMAND" >&2 ;; esac' ERR`;
  return [prelude, ...body].join("\n") + "\n";
}

/** The `baton` commands of a block: their subcommand words and the `--flags` they use. */
export function batonCommands(text: string): { line: string; words: string[]; flags: string[] }[] {
  const joined = text.replace(/\\\n/g, " ").split("\n");
  const out: { line: string; words: string[]; flags: string[] }[] = [];
  for (const raw of joined) {
    const line = raw.replace(/^\$\s+/, "").replace(/\s#.*$/, "").trim();
    if (line === "" || line.startsWith("#")) continue;
    for (const part of line.split(/;|&&|\|\|/)) {
      const toks = part.trim().split(/\s+/);
      let i = 0;
      while (i < toks.length && /^[A-Z_][A-Z0-9_]*=/.test(toks[i]!)) i++;
      if (toks[i] !== "baton") continue;
      const words: string[] = [];
      const flags: string[] = [];
      for (const t of toks.slice(i + 1)) {
        if (t.startsWith("--")) flags.push(t.replace(/=.*$/, ""));
        else if (flags.length === 0 && /^[a-z][a-z-]*$/.test(t) && words.length < 2) words.push(t);
      }
      out.push({ line, words, flags });
    }
  }
  return out;
}
