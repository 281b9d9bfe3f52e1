// The review view's model: a unified patch's hunks as numbered rows, the same rows paired
// side by side, and the changed files as a folder tree. Pure functions (tested in
// test/diff.test.ts); the text is the guest's and is only ever shown as text.

export type RowKind = "hunk" | "add" | "del" | "ctx" | "meta";

export interface Row {
  kind: RowKind;
  /** Line number in the old file (del, ctx) and the new one (add, ctx). */
  old: number | null;
  new: number | null;
  text: string;
}

/** The lines of one file's part of a patch (after its `diff --git` line) as numbered rows. */
export function hunkRows(lines: string[]): Row[] {
  const rows: Row[] = [];
  let o = 0;
  let n = 0;
  let inHunk = false;
  for (const line of lines) {
    const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$/.exec(line);
    if (m) {
      o = Number(m[1]);
      n = Number(m[2]);
      inHunk = true;
      rows.push({ kind: "hunk", old: null, new: null, text: line });
    } else if (!inHunk) {
      if (line) rows.push({ kind: "meta", old: null, new: null, text: line });
    } else if (line.startsWith("+")) {
      rows.push({ kind: "add", old: null, new: n++, text: line.slice(1) });
    } else if (line.startsWith("-")) {
      rows.push({ kind: "del", old: o++, new: null, text: line.slice(1) });
    } else if (line.startsWith(" ")) {
      rows.push({ kind: "ctx", old: o++, new: n++, text: line.slice(1) });
    } else if (line.startsWith("\\")) {
      rows.push({ kind: "meta", old: null, new: null, text: line });
    }
  }
  return rows;
}

/** Rows side by side: context on both sides, a run of removals beside the additions that
 * follow it, hunk headers across. */
export function splitRows(rows: Row[]): { left: Row | null; right: Row | null }[] {
  const out: { left: Row | null; right: Row | null }[] = [];
  let i = 0;
  while (i < rows.length) {
    const r = rows[i];
    if (r.kind === "del" || r.kind === "add") {
      const dels: Row[] = [];
      const adds: Row[] = [];
      while (i < rows.length && rows[i].kind === "del") dels.push(rows[i++]);
      while (i < rows.length && rows[i].kind === "add") adds.push(rows[i++]);
      for (let k = 0; k < Math.max(dels.length, adds.length); k++) out.push({ left: dels[k] ?? null, right: adds[k] ?? null });
    } else {
      out.push({ left: r, right: r });
      i++;
    }
  }
  return out;
}

export interface TreeNode {
  name: string;
  /** The file's index in the patch, for a file; null for a folder. */
  file: number | null;
  children: TreeNode[];
}

/** The changed files as a folder tree (folders first, then files, each by name); a folder
 * with one folder inside is shown as one `a/b` step. */
export function fileTree(paths: string[]): TreeNode {
  const root: TreeNode = { name: "", file: null, children: [] };
  paths.forEach((p, index) => {
    const parts = p.split("/");
    let node = root;
    parts.forEach((part, k) => {
      const last = k === parts.length - 1;
      let next = node.children.find((c) => c.name === part && (c.file === null) === !last);
      if (!next) {
        next = { name: part, file: last ? index : null, children: [] };
        node.children.push(next);
      }
      node = next;
    });
  });
  const tidy = (n: TreeNode): TreeNode => {
    n.children = n.children.map(tidy);
    n.children.sort((a, b) => (a.file === null) === (b.file === null) ? a.name.localeCompare(b.name) : a.file === null ? -1 : 1);
    if (n.file === null && n.name && n.children.length === 1 && n.children[0].file === null) {
      const only = n.children[0];
      return { name: `${n.name}/${only.name}`, file: null, children: only.children };
    }
    return n;
  };
  return tidy(root);
}
