import { describe, expect, it } from "vitest";
import { InputQueue } from "../src/input";

describe("terminal input", () => {
  it("delivers keystrokes in order even when sends finish out of order", async () => {
    const delivered: string[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const q = new InputQueue(async (d) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, Math.random() * 5));
      delivered.push(d);
      inFlight--;
    });
    const typed = "echo typed-$((6*7))\r";
    for (const c of typed) {
      q.push(c);
      await new Promise((r) => setTimeout(r, Math.random() * 2));
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(delivered.join("")).toBe(typed);
    expect(maxInFlight).toBe(1);
  });
});

import { decodeLogChunk } from "../src/api";

describe("attempt_log's binary answer", () => {
  it("reads the start offset and the raw bytes, ESC and all", () => {
    const buf = new ArrayBuffer(8 + 3);
    new DataView(buf).setBigUint64(0, 4096n, true);
    new Uint8Array(buf, 8).set([0x1b, 0x5b, 0x41]);
    const c = decodeLogChunk(buf);
    expect(c.start).toBe(4096);
    expect(Array.from(c.data)).toEqual([0x1b, 0x5b, 0x41]);
    expect(c.next).toBe(4099);
  });
});
