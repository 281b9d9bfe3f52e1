// WCAG contrast of the app's text colours on its panels and the review's tints, in both
// themes, read from the stylesheet itself: a colour change that makes text unreadable fails.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

// Read as a file: vitest hands CSS imports to its CSS pipeline, which yields nothing here.
const css = readFileSync(new URL("../src/styles.css", import.meta.url), "utf8");

function vars(block: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of block.matchAll(/--([a-z-]+):\s*(#[0-9a-f]{6})/gi)) out[m[1]] = m[2];
  return out;
}

function luminance(hex: string): number {
  const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
    .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}

function contrast(a: string, b: string): number {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

it("reads the stylesheet", () => expect(css).toContain("--add-bg"));

const light = vars(css.slice(css.indexOf(":root {"), css.indexOf("}", css.indexOf(":root {"))));
const darkStart = css.indexOf(':root[data-theme="dark"] {');
const dark = { ...light, ...vars(css.slice(darkStart, css.indexOf("}", darkStart))) };
const systemDark = css.slice(css.indexOf("@media (prefers-color-scheme: dark)"), darkStart);

describe.each([["light", light], ["dark", dark]])("%s theme", (_name, v) => {
  it("keeps text at 4.5:1 or more on its panels", () => {
    for (const bg of ["panel", "bg"]) for (const fg of ["fg", "muted", "ok", "bad", "busy", "accent"]) {
      expect(contrast(v[fg], v[bg]), `${fg} on ${bg}`).toBeGreaterThanOrEqual(4.5);
    }
  });
  it("keeps diff text readable on its tints", () => {
    for (const bg of ["add-bg", "del-bg", "hunk-bg"]) for (const fg of ["fg", "muted"]) {
      expect(contrast(v[fg], v[bg]), `${fg} on ${bg}`).toBeGreaterThanOrEqual(4.5);
    }
  });
});

it("the system's dark theme is the same as the chosen one", () => {
  const sys = vars(systemDark);
  for (const [k, val] of Object.entries(vars(css.slice(darkStart, css.indexOf("}", darkStart))))) expect(sys[k], k).toBe(val);
});
