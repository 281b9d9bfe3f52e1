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
