/** The per-user UI token file (src/auth/local-token.ts): where it lives, its rights, what is refused. */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadLocalToken, localTokenPath } from "../../src/auth/local-token.js";

const temp = () => mkdtempSync(join(tmpdir(), "baton-local-token-"));

describe("localTokenPath", () => {
  it("is $XDG_CONFIG_HOME/baton/ui-token, else ~/.config/baton/ui-token (a relative XDG_CONFIG_HOME is ignored)", () => {
    expect(localTokenPath({ XDG_CONFIG_HOME: "/x/cfg", HOME: "/h" })).toBe("/x/cfg/baton/ui-token");
    expect(localTokenPath({ HOME: "/h" })).toBe("/h/.config/baton/ui-token");
    expect(localTokenPath({ XDG_CONFIG_HOME: "rel", HOME: "/h" })).toBe("/h/.config/baton/ui-token");
  });
});

describe("loadLocalToken", () => {
  it("writes 32 random bytes once (0600, directory 0700) and reads the same token back", () => {
    const file = join(temp(), "cfg", "baton", "ui-token");
    const made = loadLocalToken(file);
    expect(made).toMatchObject({ file, created: true });
    expect(made.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(made.token, "base64url")).toHaveLength(32);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(file, "..")).mode & 0o777).toBe(0o700);
    expect(loadLocalToken(file)).toEqual({ token: made.token, file, created: false });
    expect(loadLocalToken(join(temp(), "ui-token")).token).not.toBe(made.token);
  });

  it("refuses a file others can read or a non-token, and a directory others can write", () => {
    const dir = temp();
    const file = join(dir, "ui-token");
    writeFileSync(file, "x".repeat(40));
    chmodSync(file, 0o604);
    expect(() => loadLocalToken(file)).toThrow(`can be read by other users (mode 604): restrict it with \`chmod 600 ${file}\``);
    chmodSync(file, 0o600);
    expect(loadLocalToken(file).token).toBe("x".repeat(40));
    writeFileSync(file, "short");
    expect(() => loadLocalToken(file)).toThrow(/does not hold a UI token .*remove it and Baton writes a new one/);
    writeFileSync(file, "two words here and more\n");
    expect(() => loadLocalToken(file)).toThrow(/does not hold a UI token/);
    // A symlink is followed, and the file it points at is what is checked.
    const target = join(dir, "elsewhere");
    writeFileSync(target, "y".repeat(40));
    chmodSync(target, 0o644);
    symlinkSync(target, join(dir, "link"));
    expect(() => loadLocalToken(join(dir, "link"))).toThrow(/mode 644/);

    const open = join(dir, "shared");
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(() => loadLocalToken(join(open, "ui-token"))).toThrow(`can be written by other users (mode 777): restrict it with \`chmod 700 ${open}\``);
  });

  it("never overwrites an existing token, and leaves no temporary file behind", () => {
    const dir = temp();
    const file = join(dir, "ui-token");
    const a = loadLocalToken(file);
    expect(loadLocalToken(file).token).toBe(a.token);
    expect(readFileSync(file, "utf8")).toBe(`${a.token}\n`);
    expect(readdirSync(dir)).toEqual(["ui-token"]);
  });
});
