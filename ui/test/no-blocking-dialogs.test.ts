/// <reference types="vite/client" />
import { describe, expect, it } from "vitest";

// In the Tauri webview, window.confirm/alert/prompt are not the synchronous yes/no they are in
// a browser: `if (confirm(...))` passed without any dialog and force-deleted unpulled work.
// Every question goes through the app's own <dialog>s instead.
const sources = import.meta.glob("../src/*.ts", { query: "?raw", import: "default", eager: true }) as Record<string, string>;

describe("front end", () => {
  it("reads every source file", () => {
    expect(Object.keys(sources)).toContain("../src/main.ts");
  });

  it("never uses the webview's confirm, alert or prompt", () => {
    const offenders: string[] = [];
    for (const [file, text] of Object.entries(sources)) {
      text.split("\n").forEach((line, i) => {
        const code = line.replace(/\/\/.*$/, "").replace(/"(?:[^"\\]|\\.)*"|`(?:[^`\\]|\\.)*`/g, '""');
        if (/(^|[^\w.])(window\.)?(confirm|alert|prompt)\s*\(/.test(code)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(offenders).toEqual([]);
  });
});
