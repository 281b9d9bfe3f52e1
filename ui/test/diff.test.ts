import { describe, expect, it } from "vitest";
import { fileTree, hunkRows, splitRows } from "../src/diff";

const lines = [
  "index 1..2 100644", "--- a/x.rs", "+++ b/x.rs",
  "@@ -3,4 +3,5 @@ fn main() {", " keep", "-old one", "-old two", "+new one", "+new two", "+new three", " tail",
  "\\ No newline at end of file",
];

describe("hunkRows", () => {
  it("numbers old and new lines from the hunk header", () => {
    const rows = hunkRows(lines);
    expect(rows.filter((r) => r.kind === "meta").length).toBe(4);
    expect(rows.find((r) => r.kind === "hunk")?.text).toContain("@@ -3,4 +3,5 @@");
    const body = rows.filter((r) => r.kind !== "meta" && r.kind !== "hunk");
    expect(body.map((r) => [r.kind, r.old, r.new, r.text])).toEqual([
      ["ctx", 3, 3, "keep"], ["del", 4, null, "old one"], ["del", 5, null, "old two"],
      ["add", null, 4, "new one"], ["add", null, 5, "new two"], ["add", null, 6, "new three"], ["ctx", 6, 7, "tail"],
    ]);
  });
  it("keeps markup as text", () => {
    const rows = hunkRows(["@@ -1 +1 @@", "+<img src=x onerror=alert(1)>"]);
    expect(rows[1].text).toBe("<img src=x onerror=alert(1)>");
  });
});

describe("splitRows", () => {
  it("puts removals beside the additions that replace them", () => {
    const pairs = splitRows(hunkRows(lines).filter((r) => r.kind !== "meta"));
    const shown = pairs.map((p) => [p.left?.text ?? null, p.right?.text ?? null]);
    expect(shown).toEqual([
      ["@@ -3,4 +3,5 @@ fn main() {", "@@ -3,4 +3,5 @@ fn main() {"], ["keep", "keep"],
      ["old one", "new one"], ["old two", "new two"], [null, "new three"], ["tail", "tail"],
    ]);
  });
});

describe("fileTree", () => {
  it("groups files by folder, folders first, one-child folders joined", () => {
    const t = fileTree(["src/app/main.rs", "README.md", "src/app/lib.rs", "docs/a/b/c.md"]);
    expect(t.children.map((c) => c.name)).toEqual(["docs/a/b", "src/app", "README.md"]);
    expect(t.children[1].children.map((c) => [c.name, c.file])).toEqual([["lib.rs", 2], ["main.rs", 0]]);
    expect(t.children[2].file).toBe(1);
  });
});
