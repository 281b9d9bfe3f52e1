import { describe, expect, it } from "vitest";
import { APPROVAL_TIMEOUT_MS, PRESETS, age, approvalText, attemptBadge, comparePair, openApprovals, describeEvent, fileStats, groupTasks, presetOf, splitCommand, splitDiff, taskBadge, testCell } from "../src/view";
import type { Attempt } from "../src/types";

function attempt(id: string, state: Attempt["state"], exit: number | null = null): Attempt {
  return {
    id, task: Number(id.split(".")[0]), title: "Fix it", state, repo: "/r", age_s: 5, elapsed_s: 4, share_sandbox: null,
    exit_code: exit, error: null, branch: null, files_changed: null, insertions: null,
    deletions: null, memory_mib: 512, cpus: 1, denied_requests: 0, waiting_for: [], waiting_input: false, changing: null,
  };
}

describe("tasks", () => {
  it("groups attempts by task, newest task first, attempts in order", () => {
    const tasks = groupTasks([attempt("1.2", "exited", 0), attempt("2.1", "running"), attempt("1.1", "exited", 0)]);
    expect(tasks.map((t) => t.id)).toEqual([2, 1]);
    expect(tasks[1].attempts.map((a) => a.id)).toEqual(["1.1", "1.2"]);
  });

  it("shows the most urgent state as the task's badge", () => {
    const [t] = groupTasks([attempt("1.1", "exited", 0), attempt("1.2", "running")]);
    expect(taskBadge(t)).toEqual({ label: "running", tone: "busy" });
    const [done] = groupTasks([attempt("3.1", "exited", 0)]);
    expect(taskBadge(done).label).toBe("done");
    const [bad] = groupTasks([attempt("4.1", "exited", 2)]);
    expect(taskBadge(bad).label).toBe("failed");
  });

  it("puts a pending approval above every other state", () => {
    const [t] = groupTasks([attempt("5.1", "running"), attempt("5.2", "exited", 0)]);
    const q = { attempt: "5.1", id: 1, host: "other.test", port: 80 };
    expect(taskBadge(t, [q])).toEqual({ label: "waiting for approval", tone: "ask" });
    expect(taskBadge(t, [{ ...q, attempt: "6.1" }]).label).toBe("running");
  });

  it("picks the attempts to compare, keeping a valid choice", () => {
    const [t] = groupTasks([attempt("7.1", "exited", 0), attempt("7.2", "exited", 0), attempt("7.3", "exited", 0)]);
    expect(comparePair(t, null)).toEqual(["7.1", "7.2"]);
    expect(comparePair(t, ["7.3", "7.1"])).toEqual(["7.3", "7.1"]);
    expect(comparePair(t, ["7.3", "7.3"])).toEqual(["7.1", "7.2"]);
    expect(comparePair(t, ["9.1", "7.1"])).toEqual(["7.1", "7.2"]);
    const [one] = groupTasks([attempt("8.1", "exited", 0)]);
    expect(comparePair(one, null)).toBeNull();
  });

  it("keeps one banner per open question, until its attempt ends or the proxy gives up", () => {
    const attempts = [attempt("9.1", "running"), attempt("9.2", "exited", 0)];
    const q = { attempt: "9.1", id: 1, host: "other.test", port: 80, received_ms: 1000 };
    const open = openApprovals([q, { ...q, received_ms: 2000 }, { ...q, attempt: "9.2" }, { ...q, id: 2 }, { ...q, attempt: "9.3" }], attempts, 5000);
    // 9.2 has ended; 9.3 is not in the list yet (the request raced the refresh) and stays.
    expect(open.map((x) => `${x.attempt}/${x.id}@${x.received_ms}`)).toEqual(["9.1/1@1000", "9.1/2@1000", "9.3/1@1000"]);
    expect(openApprovals([q], attempts, 1000 + APPROVAL_TIMEOUT_MS)).toEqual([]);
  });

  it("formats ages", () => {
    expect([age(5), age(120), age(7200), age(172800)]).toEqual(["5s", "2m", "2h", "2d"]);
  });
});

describe("commands", () => {
  it("knows which preset a command is", () => {
    expect(presetOf(PRESETS[0].command)).toBe("demo");
    expect(presetOf("  bash -i ")).toBe("shell");
    expect(presetOf("make test")).toBe("custom");
    expect(presetOf("")).toBe("custom");
  });

  it("splits like a shell", () => {
    expect(splitCommand(`bash .berth/demo-agent.sh`)).toEqual(["bash", ".berth/demo-agent.sh"]);
    expect(splitCommand(`sh -c 'echo "hi there"; exit 3'`)).toEqual(["sh", "-c", `echo "hi there"; exit 3`]);
    expect(splitCommand(`a "" b\\ c`)).toEqual(["a", "", "b c"]);
    expect(() => splitCommand(`echo 'oops`)).toThrow(/unclosed/);
  });
});

describe("review and audit", () => {
  it("splits a patch into files", () => {
    const files = splitDiff("diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n-a\n+b\ndiff --git a/y b/y\n+c");
    expect(files.map((f) => f.file)).toEqual(["x.py", "y"]);
    expect(files[0].lines).toContain("+b");
  });

  it("counts each file's added and removed lines", () => {
    const files = splitDiff("diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1,2 @@\n-a\n+b\n+c\n");
    expect(fileStats(files)).toEqual([{ file: "x.py", added: 2, removed: 1 }]);
  });

  it("highlights denied requests", () => {
    const e = describeEvent({ seq: 1, attempt: "1.1", ts_ms: 0, kind: "egress", data: { decision: "deny", method: "GET", host: "evil.test", port: 80, reason: "not on the allowlist" } });
    expect(e.denied).toBe(true);
    expect(e.text).toContain("DENIED GET evil.test:80");
  });

  it("says whether a question is about a network name or a secret", () => {
    expect(approvalText("evil.test", 443)).toBe("wants to reach evil.test:443, which is not on its allowlist");
    expect(approvalText("secret:anthropic", 443)).toContain("wants to use your secret anthropic");
  });

  it("describes a secret's use by name, path and status (the event holds no value)", () => {
    const ok = describeEvent({ seq: 2, attempt: "1.1", ts_ms: 0, kind: "secret", data: { decision: "allow", secret: "anthropic", method: "POST", host: "api.test", path: "/v1/messages", status: 200 } });
    expect(ok.text).toBe("used secret anthropic: POST api.test/v1/messages → 200");
    expect(ok.denied).toBe(false);
    const no = describeEvent({ seq: 3, attempt: "1.1", ts_ms: 0, kind: "secret", data: { decision: "deny", secret: "anthropic", method: "GET", host: "api.test", path: "/x", status: 401, reason: "wrong token" } });
    expect(no.denied).toBe(true);
    expect(no.text).toContain("DENIED use of secret anthropic");
  });
});

describe("attempt badges tell the truth", () => {
  const a = (state: Attempt["state"], exit_code: number | null = null, error: string | null = null) => ({ state, exit_code, error });
  it("an exit code other than 0 is a failure, with its code", () => {
    expect(attemptBadge(a("exited", 0))).toEqual({ label: "done", tone: "ok" });
    for (const code of [1, 2, 127]) expect(attemptBadge(a("exited", code))).toEqual({ label: `failed (exit ${code})`, tone: "bad" });
  });
  it("says who stopped it, and that a question waits", () => {
    expect(attemptBadge(a("stopped", null, "stopped by the user")).label).toBe("stopped by you");
    expect(attemptBadge(a("stopped", null, "its supervisor died")).label).toBe("stopped");
    expect(attemptBadge(a("running"), true)).toEqual({ label: "waiting for approval", tone: "ask" });
    expect(attemptBadge(a("running")).label).toBe("working");
    expect(attemptBadge({ ...a("running"), waiting_input: true })).toEqual({ label: "waiting for input", tone: "ask" });
    expect(attemptBadge(a("failed")).tone).toBe("bad");
  });
});

describe("testCell", () => {
  const r = (state: "running" | "exited", test_command: string | null, test: { exit_code: number | null; timed_out: boolean } | null) => ({ state, test_command, test });
  it("says what the repo's tests said", () => {
    expect(testCell(r("exited", "make test", { exit_code: 0, timed_out: false }))).toEqual({ label: "passed", tone: "ok" });
    expect(testCell(r("exited", "make test", { exit_code: 2, timed_out: false }))).toEqual({ label: "failed (exit 2)", tone: "bad" });
    expect(testCell(r("exited", "make test", { exit_code: null, timed_out: true }))).toEqual({ label: "timed out", tone: "bad" });
  });
  it("tells pending from not configured", () => {
    expect(testCell(r("running", "make test", null)).label).toBe("pending");
    expect(testCell(r("exited", "make test", null)).label).toBe("not run");
    expect(testCell(r("exited", null, null)).label).toBe("-");
  });
});
