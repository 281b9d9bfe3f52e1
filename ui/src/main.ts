// The Berth window: tasks on the left, the selected task's attempts side by side with live
// terminals, review (diff, pull as branch) and the audit timeline.
import "@xterm/xterm/css/xterm.css";
import "./styles.css";
import { Terminal } from "@xterm/xterm";
import { api, message } from "./api";
import type { ApprovalRequest, Attempt, TaskView } from "./types";
import { InputQueue } from "./input";
import { age, describeEvent, groupTasks, splitCommand, splitDiff, stateTone, taskBadge } from "./view";

type Child = Node | string | null | undefined | false;
function h(tag: string, attrs: Record<string, unknown> = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (v === true) el.setAttribute(k, "");
    else if (v !== false && v != null) el.setAttribute(k, String(v));
  }
  for (const c of children) if (c) el.append(c);
  return el;
}

const ui = {
  tasks: [] as TaskView[],
  selected: null as number | null,
  focus: null as string | null, // attempt shown in review/audit
  error: "",
  note: "",
  review: null as HTMLElement | null,
  approvals: [] as ApprovalRequest[],
};

/** One terminal per attempt, kept across re-renders and view switches. */
const terminals = new Map<string, { term: Terminal; el: HTMLElement; offset: number; busy: boolean; input: InputQueue }>();

function terminalFor(a: Attempt) {
  let t = terminals.get(a.id);
  if (!t) {
    const el = h("div", { class: "term", "data-attempt": a.id });
    const term = new Terminal({ rows: 18, cols: 80, convertEol: false, fontSize: 12, theme: { background: "#0b1020" } });
    term.open(el);
    const input = new InputQueue((d) => api.input(a.id, d).catch((e) => showError(message(e))));
    term.onData((d) => input.push(d));
    t = { term, el, offset: 0, busy: false, input };
    terminals.set(a.id, t);
  }
  return t;
}

async function pump() {
  for (const task of ui.tasks) {
    for (const a of task.attempts) {
      const t = terminals.get(a.id);
      if (!t || t.busy) continue;
      t.busy = true;
      try {
        for (;;) {
          const chunk = await api.log(a.id, t.offset);
          if (chunk.data.length === 0) break;
          t.term.write(new Uint8Array(chunk.data));
          t.offset = chunk.next;
        }
      } catch (e) {
        showError(message(e));
      } finally {
        t.busy = false;
      }
    }
  }
}

function showError(m: string) {
  ui.error = m;
  ui.note = "";
  render();
}

async function refresh() {
  try {
    ui.tasks = groupTasks(await api.state());
    if (ui.selected == null && ui.tasks.length) ui.selected = ui.tasks[0].id;
    render();
  } catch (e) {
    showError(message(e));
  }
}

function taskList(): HTMLElement {
  const list = h("div", {});
  if (!ui.tasks.length) list.append(h("div", { class: "empty" }, "No tasks yet."));
  for (const t of ui.tasks) {
    const b = taskBadge(t);
    list.append(
      h("div", { class: `task${t.id === ui.selected ? " selected" : ""}`, "data-task": t.id, onclick: () => { ui.selected = t.id; ui.focus = null; ui.review = null; render(); } },
        h("div", {}, h("strong", {}, `${t.id}. ${t.title}`), " ", h("span", { class: `badge ${b.tone}` }, b.label)),
        h("div", { class: "meta" }, `${t.attempts.length} attempt(s) · ${age(t.attempts[0]?.age_s ?? 0)} · ${t.repo}`)));
  }
  return list;
}

function attemptCard(a: Attempt): HTMLElement {
  const t = terminalFor(a);
  const act = (label: string, f: () => Promise<unknown>, enabled = true) =>
    h("button", { disabled: !enabled, onclick: async () => { try { await f(); } catch (e) { showError(message(e)); } } }, label);
  const live = a.state === "running" || a.state === "booting";
  return h("div", { class: "card", "data-attempt-card": a.id },
    h("header", {},
      h("strong", {}, a.id),
      h("span", { class: `badge ${stateTone(a.state)}` }, a.state),
      h("span", { class: "grow" }),
      h("span", { class: "meta" }, `${age(a.age_s)}${a.exit_code != null ? ` · exit ${a.exit_code}` : ""}${a.files_changed != null ? ` · ${a.files_changed} file(s)` : ""}${a.denied_requests ? ` · ${a.denied_requests} denied` : ""}`)),
    t.el,
    a.error ? h("div", { class: "meta bad" }, a.error) : null,
    h("div", { class: "actions" },
      act("Diff", () => showDiff(a.id), !live),
      act("Pull as branch", async () => { ui.note = await api.pull(a.id); ui.error = ""; await refresh(); }, !live),
      act("Audit", () => showAudit(a.id)),
      act("Stop", () => api.stop(a.id), live),
      act("Delete", async () => {
        try { await api.remove(a.id, false); }
        catch (e) { if (confirm(`${message(e)}\n\nDelete anyway?`)) await api.remove(a.id, true); else throw e; }
        terminals.delete(a.id);
        await refresh();
      }, !live)));
}

async function showDiff(id: string) {
  const d = await api.diff(id);
  const box = h("div", { class: "diff", "data-diff": id });
  for (const f of splitDiff(d.patch)) {
    box.append(h("div", { class: "file" }, f.file));
    for (const l of f.lines) box.append(h("div", { class: l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : "" }, l || " "));
  }
  ui.focus = id;
  ui.review = h("div", {}, h("h2", {}, `Review ${id}: ${d.files} file(s), +${d.insertions}/-${d.deletions}`), box);
  render();
}

async function showAudit(id: string) {
  const events = await api.audit(id);
  const box = h("div", { class: "timeline", "data-audit": id });
  for (const e of events) {
    const d = describeEvent(e);
    box.append(h("div", { class: d.denied ? "denied" : "" }, `${new Date(e.ts_ms).toLocaleTimeString()}  ${e.kind}  ${d.text}`));
  }
  ui.focus = id;
  ui.review = h("div", {}, h("h2", {}, `Audit ${id}`), box);
  render();
}

function newTaskDialog(): HTMLDialogElement {
  const repos: string[] = JSON.parse(localStorage.getItem("berth.repos") ?? "[]");
  const field = (label: string, input: HTMLElement) => h("div", {}, h("label", {}, label), input);
  const repo = h("input", { name: "repo", list: "repos", placeholder: "/path/to/repo", value: repos[0] ?? "" }) as HTMLInputElement;
  const base = h("select", { name: "base" }) as HTMLSelectElement;
  const command = h("input", { name: "command", value: "bash .berth/demo-agent.sh" }) as HTMLInputElement;
  const title = h("input", { name: "title", placeholder: "What should the agent do?" }) as HTMLInputElement;
  const attempts = h("input", { name: "attempts", type: "number", min: 1, max: 16, value: 2 }) as HTMLInputElement;
  const network = h("select", { name: "network" }, h("option", { value: "off" }, "off"), h("option", { value: "allowlist" }, "allowlist"), h("option", { value: "open" }, "open")) as HTMLSelectElement;
  const allow = h("input", { name: "allow", placeholder: "example.com, *.example.org:443" }) as HTMLInputElement;
  const err = h("div", {});
  const loadBranches = async () => {
    base.replaceChildren();
    try {
      for (const b of await api.branches(repo.value)) base.append(h("option", { value: b }, b));
      err.replaceChildren();
    } catch (e) {
      err.replaceChildren(h("div", { class: "error" }, message(e)));
    }
  };
  repo.addEventListener("change", loadBranches);
  const dlg = h("dialog", { id: "new-task" },
    h("h1", {}, "New agent task"), err,
    field("Repository", repo), h("datalist", { id: "repos" }, ...repos.map((r) => h("option", { value: r }))),
    h("div", { class: "row" }, field("Base branch", base), field("Attempts", attempts)),
    field("Command or agent preset", command), field("Title / prompt", title),
    h("div", { class: "row" }, field("Network", network), field("Allowlist", allow)),
    h("div", { class: "actions" },
      h("button", { class: "primary", name: "create", onclick: async () => {
        try {
          const ids = await api.newTask({
            repo: repo.value, base: base.value || "HEAD", command: splitCommand(command.value),
            attempts: Number(attempts.value), title: title.value || command.value,
            network: network.value as "off" | "allowlist" | "open",
            allow: allow.value.split(",").map((s) => s.trim()).filter(Boolean),
          });
          localStorage.setItem("berth.repos", JSON.stringify([repo.value, ...repos.filter((r) => r !== repo.value)].slice(0, 10)));
          (dlg as HTMLDialogElement).close();
          ui.selected = Number(ids[0].split(".")[0]);
          ui.note = `started ${ids.join(", ")}`;
          await refresh();
        } catch (e) {
          err.replaceChildren(h("div", { class: "error" }, message(e)));
        }
      } }, "Create"),
      h("button", { onclick: () => (dlg as HTMLDialogElement).close() }, "Cancel"))) as HTMLDialogElement;
  if (repo.value) void loadBranches();
  return dlg;
}

function openNewTask() {
  document.getElementById("new-task")?.remove();
  const d = newTaskDialog();
  document.body.append(d);
  d.showModal();
}

function approvalBanner(q: ApprovalRequest): HTMLElement {
  const answer = (d: "once" | "always" | "deny") => async () => {
    ui.approvals = ui.approvals.filter((x) => !(x.attempt === q.attempt && x.id === q.id));
    try { await api.approve(q.attempt, q.id, d); } catch (e) { showError(message(e)); }
    render();
  };
  return h("div", { class: "approval", role: "alert", "data-approval": `${q.attempt}/${q.id}` },
    h("strong", {}, `Attempt ${q.attempt} wants to reach ${q.host}:${q.port}`), ", which is not on its allowlist. ",
    h("button", { onclick: answer("once") }, "Allow once"), " ",
    h("button", { onclick: answer("always") }, "Always for this task"), " ",
    h("button", { class: "danger", onclick: answer("deny") }, "Deny"));
}

function render() {
  const app = document.getElementById("app")!;
  const task = ui.tasks.find((t) => t.id === ui.selected);
  const main = h("main", {},
    ...ui.approvals.map((q) => approvalBanner(q)),
    ui.error ? h("div", { class: "error", role: "alert" }, ui.error) : null,
    ui.note ? h("div", { class: "note" }, ui.note) : null);
  if (task) {
    main.append(h("h1", {}, `${task.id}. ${task.title}`), h("div", { class: "meta" }, task.repo));
    main.append(h("h2", {}, "Attempts"), h("div", { class: "attempts" }, ...task.attempts.map(attemptCard)));
    if (ui.review && task.attempts.some((a) => a.id === ui.focus)) main.append(ui.review);
  } else {
    main.append(h("div", { class: "empty" }, "Create a task with New agent task (Ctrl+N)."));
  }
  const side = h("aside", {}, h("h1", {}, "Berth"),
    h("button", { class: "primary", id: "new-task-button", onclick: openNewTask }, "New agent task"),
    h("h2", {}, "Tasks"), taskList());
  app.replaceChildren(side, main);
}

document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "n") {
    e.preventDefault();
    openNewTask();
  }
});

render();
void refresh();
void api.onStateChanged(() => void refresh());
void api.onApproval((q) => { ui.approvals.push(q); render(); });
setInterval(() => void pump(), 300);
