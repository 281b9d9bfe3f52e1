// View logic, kept free of the DOM and of Tauri so it can be tested on its own.
import type { ApprovalRequest, Attempt, AttemptState, AuditEvent, TaskView } from "./types";

/** Groups `berth ls --json` rows into tasks, newest task first, attempts in order. */
export function groupTasks(attempts: Attempt[]): TaskView[] {
  const byTask = new Map<number, TaskView>();
  for (const a of attempts) {
    let t = byTask.get(a.task);
    if (!t) {
      t = { id: a.task, title: a.title ?? `task ${a.task}`, repo: a.repo, attempts: [] };
      byTask.set(a.task, t);
    }
    t.attempts.push(a);
  }
  const tasks = [...byTask.values()].sort((x, y) => y.id - x.id);
  for (const t of tasks) {
    t.attempts.sort((x, y) => Number(x.id.split(".")[1]) - Number(y.id.split(".")[1]));
  }
  return tasks;
}

/** Whether `attempt` has a network request waiting for the user's answer. */
export function waiting(attempt: string, pending: ApprovalRequest[]): boolean {
  return pending.some((q) => q.attempt === attempt);
}

/** The badge a task shows: the most urgent state of its attempts. */
export function taskBadge(t: TaskView, pending: ApprovalRequest[] = []): { label: string; tone: "busy" | "ok" | "bad" | "idle" | "ask" } {
  if (t.attempts.some((a) => waiting(a.id, pending))) return { label: "waiting for approval", tone: "ask" };
  const states = t.attempts.map((a) => a.state);
  if (states.some((s) => s === "booting")) return { label: "booting", tone: "busy" };
  if (states.some((s) => s === "running")) return { label: "running", tone: "busy" };
  if (states.some((s) => s === "failed")) return { label: "failed", tone: "bad" };
  if (t.attempts.some((a) => a.state === "exited" && a.exit_code !== 0)) return { label: "failed", tone: "bad" };
  if (states.every((s) => s === "exited")) return { label: "done", tone: "ok" };
  return { label: states[0] ?? "empty", tone: "idle" };
}

/** What an attempt's badge says, in words that tell the truth: an exit code other than 0
 * is a failure, a stop by the user is not an error, a question waiting is not work. */
export function attemptBadge(a: { state: AttemptState; exit_code: number | null; error: string | null; waiting_input?: boolean }, asking = false): { label: string; tone: "busy" | "ok" | "bad" | "idle" | "ask" } {
  if (asking) return { label: "waiting for approval", tone: "ask" };
  switch (a.state) {
    case "booting": return { label: "booting", tone: "busy" };
    case "running": return a.waiting_input ? { label: "waiting for input", tone: "ask" } : { label: "working", tone: "busy" };
    case "exited": return a.exit_code === 0 ? { label: "done", tone: "ok" } : { label: `failed (exit ${a.exit_code ?? "?"})`, tone: "bad" };
    case "failed": return { label: "failed", tone: "bad" };
    case "stopped": return { label: a.error === "stopped by the user" ? "stopped by you" : "stopped", tone: "idle" };
    default: return { label: a.state, tone: "idle" };
  }
}

/** The comparison's Tests cell: the repo's test command's result, or why there is none. */
export function testCell(r: { state: AttemptState; test_command: string | null; test: { exit_code: number | null; timed_out: boolean } | null }): { label: string; tone: "ok" | "bad" | "idle" | "busy" } {
  if (r.test) {
    if (r.test.exit_code === 0) return { label: "passed", tone: "ok" };
    if (r.test.exit_code != null) return { label: `failed (exit ${r.test.exit_code})`, tone: "bad" };
    return { label: r.test.timed_out ? "timed out" : "interrupted", tone: "bad" };
  }
  if (!r.test_command) return { label: "-", tone: "idle" };
  return r.state === "running" || r.state === "booting" ? { label: "pending", tone: "busy" } : { label: "not run", tone: "idle" };
}

export function stateTone(s: AttemptState): string {
  return s === "running" || s === "booting" ? "busy" : s === "exited" ? "ok" : s === "failed" ? "bad" : "idle";
}

export function age(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

/** Splits a shell-like command line into argv (quotes group, backslash escapes). */
export function splitCommand(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: string | null = null;
  let had = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      had = true;
    } else if (c === "\\" && i + 1 < line.length) {
      cur += line[++i];
      had = true;
    } else if (/\s/.test(c)) {
      if (cur || had) out.push(cur);
      cur = "";
      had = false;
    } else {
      cur += c;
    }
  }
  if (quote) throw new Error("unclosed quote in the command");
  if (cur || had) out.push(cur);
  return out;
}

/** One line of the audit timeline: what happened, and whether to highlight it. */
export function describeEvent(e: AuditEvent): { text: string; denied: boolean } {
  const d = e.data as Record<string, unknown>;
  switch (e.kind) {
    case "egress":
      return {
        text: `${d.decision === "deny" ? "DENIED" : "allowed"} ${d.method} ${d.host}:${d.port}${d.reason ? ` (${d.reason})` : ""}`,
        denied: d.decision === "deny",
      };
    case "secret":
      return {
        text: `${d.decision === "deny" ? "DENIED use of" : "used"} secret ${d.secret}: ${d.method} ${d.host}${d.path ?? ""} → ${d.status}${d.reason ? ` (${d.reason})` : ""}`,
        denied: d.decision === "deny",
      };
    case "command":
      return {
        text: d.phase === "start" ? `ran ${(d.argv as string[] | undefined)?.join(" ") ?? ""}` : `exited ${d.exit_code}`,
        denied: false,
      };
    case "lifecycle":
      return { text: `${d.event}${d.error ? `: ${d.error}` : ""}`, denied: false };
    default:
      return { text: `${e.kind} ${JSON.stringify(d)}`, denied: false };
  }
}

/** An approval question in words (like berth_core::approval_text): a network name, or for
 * `secret:<name>` (never a network question: those are plain host names) a secret's use. */
export function approvalText(host: string, port: number): string {
  return host.startsWith("secret:")
    ? `wants to use your secret ${host.slice(7)} (Berth sends it to its upstream; the VM never sees it)`
    : `wants to reach ${host}:${port}, which is not on its allowlist`;
}

/** Splits a unified diff into files, for the review view. */
export function splitDiff(patch: string): { file: string; lines: string[] }[] {
  const files: { file: string; lines: string[] }[] = [];
  for (const line of patch.split("\n")) {
    const m = /^diff --git a\/(.*) b\/(.*)$/.exec(line);
    if (m) files.push({ file: m[2], lines: [] });
    else if (files.length) files[files.length - 1].lines.push(line);
  }
  return files;
}

/** Per-file counts of a split diff, for the review's file list. */
export function fileStats(files: { file: string; lines: string[] }[]): { file: string; added: number; removed: number }[] {
  return files.map((f) => ({
    file: f.file,
    added: f.lines.filter((l) => l.startsWith("+") && !l.startsWith("+++")).length,
    removed: f.lines.filter((l) => l.startsWith("-") && !l.startsWith("---")).length,
  }));
}

/** The two attempts a task's compare view starts with: the first two, or none. */
export function comparePair(t: TaskView, chosen: [string, string] | null): [string, string] | null {
  const ids = t.attempts.map((a) => a.id);
  if (chosen && ids.includes(chosen[0]) && ids.includes(chosen[1]) && chosen[0] !== chosen[1]) return chosen;
  return ids.length >= 2 ? [ids[0], ids[1]] : null;
}

/** Agent presets of the New agent task dialog: each fills in the command. */
export const PRESETS: { id: string; label: string; command: string }[] = [
  { id: "demo", label: "Demo agent (scripted, no API key)", command: "bash .berth/demo-agent.sh" },
  { id: "shell", label: "Interactive shell", command: "bash -i" },
  { id: "custom", label: "Custom command", command: "" },
];

/** The preset a command line is, or "custom". */
export function presetOf(command: string): string {
  return PRESETS.find((p) => p.command !== "" && p.command === command.trim())?.id ?? "custom";
}

/** How long the proxy waits for an answer before it denies (berth-egress APPROVAL_TIMEOUT). */
export const APPROVAL_TIMEOUT_MS = 60_000;

/** An approval request as the window keeps it: when it arrived. */
export type PendingApproval = ApprovalRequest & { received_ms: number };

/** The requests still worth a banner: one per question, younger than the proxy's timeout,
 * and not of an attempt known to have ended (an attempt the window has not heard of yet, a
 * request that raced the state refresh, keeps its banner). */
export function openApprovals(pending: PendingApproval[], attempts: Attempt[], now: number): PendingApproval[] {
  const ended = new Set(attempts.filter((a) => a.state !== "running" && a.state !== "booting").map((a) => a.id));
  const seen = new Set<string>();
  return pending.filter((q) => {
    const key = `${q.attempt}/${q.id}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return !ended.has(q.attempt) && now - q.received_ms < APPROVAL_TIMEOUT_MS;
  });
}
