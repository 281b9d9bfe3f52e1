// The Berth window: tasks on the left, the selected task's attempts side by side with live
// terminals, review (diff, pull as branch) and the audit timeline.
import "@xterm/xterm/css/xterm.css";
import "./styles.css";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { api, message } from "./api";
import type { Attempt, AttemptSummary, DiffResult, HostChecks, PoolStatus, RemovalBlocker, Repo, RepoConfigPreview, RepoEnvStatus, SecretRecord, Settings, TaskView, AgentView } from "./types";
import { InputQueue } from "./input";
import { fileTree, hunkRows, splitRows, type Row, type TreeNode } from "./diff";
import { APPROVAL_TIMEOUT_MS, PRESETS, type PendingApproval, age, approvalText, attemptBadge, comparePair, openApprovals, describeEvent, fileStats, groupTasks, presetOf, splitCommand, splitDiff, taskBadge, testCell, waiting } from "./view";

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
  /** What the machine has (first-run checklist), from `berth doctor`. */
  checks: null as HostChecks | null,
  pool: null as PoolStatus | null,
  /** The attempt whose terminal fills the view, if one does. */
  maximized: null as string | null,
  sidebarHidden: localStorage.getItem("berth.sidebar") === "hidden",
  /** The review's layout (kept across runs) and the files folded in it. */
  diffMode: (localStorage.getItem("berth.diffMode") === "split" ? "split" : "unified") as "unified" | "split",
  collapsed: new Set<string>(),
  approvals: [] as PendingApproval[],
  repos: [] as Repo[],
  envs: {} as Record<string, RepoEnvStatus>,
  secrets: [] as SecretRecord[],
  agents: [] as AgentView[],
  settings: null as Settings | null,
  compare: null as [string, string] | null,
  /** The selected task's comparison, from the core (`task_compare`). */
  strip: [] as AttemptSummary[],
  /** Whether Choose also merges into the branch the task started from. */
  mergeOnChoose: true,
};

/** One terminal per attempt, kept across re-renders and view switches. */
const terminals = new Map<string, { term: Terminal; el: HTMLElement; offset: number; busy: boolean; input: InputQueue; fit: FitAddon; sent: string }>();

function terminalFor(a: Attempt) {
  let t = terminals.get(a.id);
  if (!t) {
    // In the Tab order as one stop (Enter types into it); the terminal itself is reached only
    // from here or by a click, so Tab through the page never gets caught in it.
    const el = h("div", { class: "term", "data-attempt": a.id, tabindex: "0", role: "group", "aria-label": `Terminal of ${a.id}: Enter to type, Shift+Escape to leave` });
    const term = new Terminal({ rows: 18, cols: 80, convertEol: false, fontSize: 12, theme: { background: "#0b1020" } });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    if (term.textarea) term.textarea.tabIndex = -1;
    el.addEventListener("keydown", (e) => {
      if (e.target === el && e.key === "Enter") { e.preventDefault(); term.focus(); }
    });
    // Tab and Escape belong to the program in the terminal while it has focus (shells
    // complete, editors leave insert mode); Shift+Escape gives the focus back to the page.
    term.attachCustomKeyEventHandler((e) => {
      if (e.type === "keydown" && e.key === "Escape" && e.shiftKey) {
        term.blur();
        el.focus();
        return false;
      }
      return true;
    });
    const input = new InputQueue((d) => api.input(a.id, d).catch((e) => showError(message(e))));
    term.onData((d) => input.push(d));
    t = { term, el, offset: 0, busy: false, input, fit, sent: "" };
    terminals.set(a.id, t);
  }
  return t;
}

/** Fits each shown terminal to its card and tells running attempts their new PTY size. */
function fitTerminals() {
  for (const task of ui.tasks) {
    for (const a of task.attempts) {
      const t = terminals.get(a.id);
      if (!t || !t.el.isConnected) continue;
      try { t.fit.fit(); } catch { continue; }
      const size = `${t.term.rows}x${t.term.cols}`;
      if (a.state === "running" && size !== t.sent) {
        t.sent = size;
        // A stopped attempt has no PTY to resize: that is not an error worth showing.
        api.resize(a.id, t.term.rows, t.term.cols).catch(() => { t.sent = ""; });
      }
    }
  }
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
          t.term.write(chunk.data);
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
    const [attempts, repos, settings, secrets] = await Promise.all([api.state(), api.repos(), api.settings(), api.secrets().catch(() => [] as SecretRecord[])]);
    ui.secrets = secrets;
    ui.agents = await api.agents().catch(() => [] as AgentView[]);
    ui.tasks = groupTasks(attempts);
    ui.approvals = openApprovals(ui.approvals, attempts, Date.now());
    ui.repos = repos;
    ui.settings = settings;
    ui.pool = await api.poolStatus().catch(() => null);
    await refreshEnvs();
    if (ui.selected == null && ui.tasks.length) ui.selected = ui.tasks[0].id;
    ui.strip = ui.selected != null ? await api.compareTask(ui.selected).catch(() => [] as AttemptSummary[]) : [];
    render();
  } catch (e) {
    showError(message(e));
  }
}

/** Every repo's environment state (asked of the core; no VM work in the app). */
async function refreshEnvs() {
  const entries = await Promise.all(ui.repos.map(async (r) =>
    [r.path, await api.repoEnv(r.path).catch((e): RepoEnvStatus => ({
      configured: true, packages: [], setup_steps: 0, cache_presets: [], built: null, activity: null, cache: null, problem: message(e),
    }))] as const));
  ui.envs = Object.fromEntries(entries);
}

function selectTask(id: number) {
  ui.selected = id; ui.focus = null; ui.review = null; ui.maximized = null; ui.error = ""; ui.note = "";
  render();
  void refresh();
}

function taskList(): HTMLElement {
  const list = h("div", {});
  if (!ui.tasks.length) list.append(h("div", { class: "empty" }, "No tasks yet."));
  for (const t of ui.tasks) {
    const b = taskBadge(t, ui.approvals);
    list.append(
      h("div", { class: `task${t.id === ui.selected ? " selected" : ""}`, "data-task": t.id, tabindex: "0", role: "button", "aria-current": t.id === ui.selected ? "true" : null,
        onclick: () => selectTask(t.id),
        onkeydown: (e: KeyboardEvent) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); selectTask(t.id); } } },
        h("div", {}, h("strong", {}, `${t.id}. ${t.title}`), " ", h("span", { class: `badge ${b.tone}` }, b.label)),
        h("div", { class: "meta" }, `${t.attempts.length} attempt(s) · ${age(t.attempts[0]?.age_s ?? 0)} · ${t.repo}`)));
  }
  return list;
}

async function addRepo(path: string | null) {
  if (path == null) return; // the picker was cancelled
  try {
    const added = await api.addRepo(path);
    ui.note = `added ${added}`;
    ui.error = "";
    await refresh();
  } catch (e) {
    showError(message(e));
  }
}

// Inputs outside the dialog are made once and moved into each render, so what the user is
// typing survives the re-renders that state changes cause.
const repoPathInput = h("input", { name: "repo-path", placeholder: "or type a folder path" }) as HTMLInputElement;
const editorInput = h("input", { name: "editor" }) as HTMLInputElement;
let editorDirty = false;
let settingsOpen = false;
editorInput.addEventListener("input", () => { editorDirty = true; });

function repoList(): HTMLElement {
  const list = h("div", { class: "repos" });
  if (!ui.repos.length) list.append(h("div", { class: "meta" }, "No repos yet: add one to make tasks on it."));
  for (const r of ui.repos) {
    list.append(h("div", { class: "repo", "data-repo": r.path },
      h("div", { class: "repo-head" }, h("a", { class: "path", href: "#", title: `New agent task on ${r.path}`, onclick: (e: Event) => { e.preventDefault(); openNewTask(r.path); } }, r.path),
        h("button", { class: "small", title: "Forget this repo (its tasks and branches stay)", "aria-label": `Forget ${r.path}`, onclick: async () => { try { await api.removeRepo(r.path); await refresh(); } catch (e) { showError(message(e)); } } }, "×")),
      r.error ? h("div", { class: "meta bad" }, r.error)
        : h("div", { class: "branches" }, ...r.branches.map((b) => h("span", { class: "chip" }, b))),
      envBlock(r.path)));
  }
  list.append(h("div", { class: "actions" },
    h("button", { name: "pick-repo", onclick: async () => addRepo(await api.pickFolder().catch((e) => { showError(message(e)); return null; })) }, "Add repo…")),
    h("form", { class: "inline", onsubmit: (e: Event) => { e.preventDefault(); void addRepo(repoPathInput.value).then(() => { if (!ui.error) repoPathInput.value = ""; }); } }, repoPathInput, h("button", { name: "add-repo" }, "Add")));
  return list;
}

/** The repo's environment: built or not, a build or refresh under way with its last lines,
 * the last one's failure with its output, the cache generation; Build / Rebuild. */
function envBlock(path: string): HTMLElement | null {
  const s = ui.envs[path];
  if (!s) return null;
  const a = s.activity;
  const running = a?.state === "running";
  const lines: (HTMLElement | null)[] = [];
  if (s.problem) lines.push(h("div", { class: "meta bad" }, `Environment: ${s.problem}`));
  else if (!s.configured) lines.push(h("div", { class: "meta" }, "Environment: the base image (git, a C toolchain, Python). Add [env] to berth.toml for more."));
  else {
    const what = `${s.packages.length ? s.packages.join(", ") : "no extra packages"} · ${s.setup_steps} setup step(s)`;
    lines.push(h("div", { class: "meta" }, s.built
      ? `Environment ${s.built.id}: built ${age(Math.max(0, Math.floor(Date.now() / 1000) - s.built.built_at))} ago in ${s.built.build_seconds} s · ${mib(s.built.size)} · ${what}`
      : `Environment: not built yet; the first task builds it · ${what}`));
  }
  if (s.cache) lines.push(h("div", { class: "meta" }, `Cache (${s.cache_presets.join(", ") || "disk"}): generation ${s.cache.generation} · ${mib(s.cache.size_on_disk)}`));
  if (a && running) {
    lines.push(h("div", { class: "meta busy" }, `${a.what}…`), h("pre", { class: "env-log" }, a.lines.slice(-6).join("\n")));
  } else if (a && (a.state === "failed" || a.state === "interrupted")) {
    lines.push(h("div", { class: "meta bad" }, a.state === "failed" ? `${a.what} failed:` : `${a.what} was interrupted (its process is gone)`),
      a.error ? h("pre", { class: "env-log" }, a.error) : null);
  }
  const buildable = s.configured && !s.problem;
  return h("div", { class: "env", "data-env": path, "data-env-state": a?.state ?? "" }, ...lines,
    buildable ? h("div", { class: "actions" },
      h("button", { class: "small", name: "env-build", disabled: running, title: s.built ? "Run the setup steps again (new cache generation); the built environment stays until the new one is ready" : "Build the environment now instead of on the first task",
        onclick: async () => { try { await api.buildEnv(path, !!s.built); ui.note = `building the environment of ${path}`; ui.error = ""; envPoll = 15; } catch (e) { showError(message(e)); } } },
      s.built ? "Rebuild" : "Build")) : null);
}

function mib(bytes: number): string {
  return bytes >= 1 << 30 ? `${(bytes / (1 << 30)).toFixed(1)} GiB` : `${Math.round(bytes / (1 << 20))} MiB`;
}

/** Seconds left of polling the environments after a build was asked for (its process
 * starts a moment later); while any activity runs, polling goes on by itself. */
let envPoll = 0;

/** Light or dark as Settings says (default: the system's). */
function applyTheme() {
  const t = localStorage.getItem("berth.theme");
  if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}

function settingsPanel(): HTMLElement {
  const s = ui.settings;
  if (!editorDirty) editorInput.value = s?.editor ?? "";
  editorInput.placeholder = s?.editor_in_effect ?? "code";
  return h("details", { class: "settings", open: settingsOpen, ontoggle: (e: Event) => { settingsOpen = (e.target as HTMLDetailsElement).open; } }, h("summary", {}, "Settings"),
    h("label", {}, "Editor command (the checkout's folder is added at the end)"),
    h("form", { class: "inline", onsubmit: async (e: Event) => {
      e.preventDefault();
      try { await api.setEditor(editorInput.value); editorDirty = false; ui.note = "editor saved"; ui.error = ""; await refresh(); } catch (err) { showError(message(err)); }
    } }, editorInput, h("button", { name: "save-editor" }, "Save")),
    h("div", { class: "meta" }, `"Open in editor" runs: ${s?.editor_in_effect ?? "code"}`),
    h("label", {}, "Theme"),
    (() => {
      const sel = h("select", { name: "theme", onchange: (e: Event) => { localStorage.setItem("berth.theme", (e.target as HTMLSelectElement).value); applyTheme(); } },
        ...[["system", "As the system"], ["light", "Light"], ["dark", "Dark"]].map(([v, l]) => h("option", { value: v }, l))) as HTMLSelectElement;
      sel.value = localStorage.getItem("berth.theme") ?? "system";
      return sel;
    })(),
    poolPart(),
    secretsPart(),
    agentsPart());
}

/** Settings → Warm pool: booted VMs waiting, so attempts start without a boot. */
function poolPart(): HTMLElement {
  const p = ui.pool;
  const size = h("input", { type: "number", name: "pool-size", min: 0, max: 16, value: String(p?.size ?? 0), style: "width:5em" }) as HTMLInputElement;
  const waiting = p ? p.slots.filter((s) => s.state === "ready").length : 0;
  return h("div", { class: "pool", "data-pool": "" },
    h("label", {}, "Warm pool: VMs kept booted per kind of attempt (512 MiB, 1 CPU, no network; and each repo's environment and agent once one of its attempts ran); 0 turns it off"),
    h("form", { class: "inline", onsubmit: async (e: Event) => {
      e.preventDefault();
      try { ui.note = await api.setPool(Number(size.value)); ui.error = ""; ui.pool = await api.poolStatus(); render(); } catch (err) { showError(message(err)); }
    } }, size, h("button", { name: "save-pool" }, "Save")),
    h("div", { class: "meta" }, p ? `${waiting} waiting · ${p.slots.filter((s) => s.state === "booting").length} booting · ${p.slots.filter((s) => s.state === "serving").length} serving` : ""));
}

/** Agents being installed (by name): the Install button waits on `berth agent install`. */
const installing = new Set<string>();

/** Settings → Agents: each preset, where its CLI is installed, and an Install button (on the
 * image; a repo with an environment gets it on its environment at its first attempt). */
function agentsPart(): HTMLElement {
  const list = h("div", { class: "agents" });
  for (const a of ui.agents) {
    const where = a.installed.length ? a.installed.map((i) => `${i.version} on ${i.on}`).join(", ") : "not installed";
    const busy = installing.has(a.name);
    list.append(h("div", { class: "agent", "data-agent": a.name },
      h("strong", {}, a.label), " ",
      h("span", { class: "meta" }, `${a.package}@${a.version} · ${busy ? "installing (fetching, then a setup VM with no network)…" : where} · secret ${a.secret} ${a.secret_set ? "set" : "not set"}`),
      h("button", { class: "small", name: "install-agent", disabled: busy, title: `Install ${a.label}'s CLI`, onclick: async () => {
        installing.add(a.name);
        render();
        try { const line = await api.installAgent(a.name); ui.note = line || `${a.label} installed`; ui.error = ""; } catch (e) { showError(message(e)); }
        installing.delete(a.name);
        await refresh();
      } }, a.installed.length ? "Reinstall" : "Install")));
  }
  return h("div", { class: "agents-part" }, h("label", {}, "Agents"), list);
}

// The secret form's inputs live across re-renders (like the editor's); the value field is
// cleared as soon as it was handed over, and nothing ever fills it back.
const secretInputs = {
  name: h("input", { name: "secret-name", placeholder: "anthropic" }) as HTMLInputElement,
  upstream: h("input", { name: "secret-upstream", placeholder: "https://api.example.com" }) as HTMLInputElement,
  header: h("input", { name: "secret-header", placeholder: "x-api-key  or  Authorization: Bearer {}" }) as HTMLInputElement,
  keyEnv: h("input", { name: "secret-key-env", placeholder: "ANTHROPIC_API_KEY (optional)" }) as HTMLInputElement,
  urlEnv: h("input", { name: "secret-url-env", placeholder: "ANTHROPIC_BASE_URL (optional)" }) as HTMLInputElement,
  value: h("input", { name: "secret-value", type: "password", autocomplete: "off", placeholder: "the value (typed once, never shown)" }) as HTMLInputElement,
};

/** Settings → Secrets: what is stored (never a value), add one, remove one. */
function secretsPart(): HTMLElement {
  const list = h("div", { class: "secrets" });
  if (!ui.secrets.length) list.append(h("div", { class: "meta" }, "No secrets. An attempt uses one through its own gateway; the VM never sees the value."));
  for (const s of ui.secrets) {
    list.append(h("div", { class: "secret", "data-secret": s.name },
      h("strong", {}, s.name), " ", h("span", { class: "meta" }, `${s.header} → ${s.upstream} · ${s.last_used_at ? `used ${age(Math.max(0, Math.floor(Date.now() / 1000) - s.last_used_at))} ago` : "never used"}`),
      h("button", { class: "small", title: `Remove ${s.name} from the keyring`, onclick: async () => { try { await api.removeSecret(s.name); ui.note = `removed secret ${s.name}`; ui.error = ""; await refresh(); } catch (e) { showError(message(e)); } } }, "×")));
  }
  const i = secretInputs;
  return h("div", { class: "secrets-part" }, h("label", {}, "Secrets (kept in your OS keyring)"), list,
    h("form", { class: "secret-form", onsubmit: async (e: Event) => {
      e.preventDefault();
      const value = i.value.value;
      i.value.value = "";
      try {
        await api.setSecret({ name: i.name.value.trim(), upstream: i.upstream.value.trim(), header: i.header.value.trim(), key_env: i.keyEnv.value.trim(), url_env: i.urlEnv.value.trim(), value });
        ui.note = `stored secret ${i.name.value.trim()}`;
        ui.error = "";
        for (const k of ["name", "upstream", "header", "keyEnv", "urlEnv"] as const) i[k].value = "";
        await refresh();
      } catch (err) { showError(message(err)); }
    } }, i.name, i.upstream, i.header, i.keyEnv, i.urlEnv, i.value, h("button", { name: "add-secret" }, "Add secret")));
}

/** On a booting attempt's card: its repo's environment build, if one runs (the attempt
 * waits for it). */
function envNote(a: Attempt): HTMLElement | null {
  const act = ui.envs[a.repo]?.activity;
  if (a.state !== "booting" || act?.state !== "running") return null;
  return h("div", { class: "meta busy", "data-env-progress": a.id }, `${act.what}: ${act.lines[act.lines.length - 1] ?? "starting"}`);
}

function attemptCard(a: Attempt): HTMLElement {
  const t = terminalFor(a);
  const act = (label: string, f: () => Promise<unknown>, enabled = true) =>
    h("button", { disabled: !enabled, onclick: async () => { try { await f(); } catch (e) { showError(message(e)); } } }, label);
  const live = a.state === "running" || a.state === "booting";
  const ended = a.state === "exited" || a.state === "stopped" || a.state === "failed";
  const badge = attemptBadge(a, waiting(a.id, ui.approvals));
  const big = ui.maximized === a.id;
  return h("div", { class: `card${big ? " maximized" : ""}`, "data-attempt-card": a.id },
    h("header", {},
      h("strong", {}, a.id),
      h("span", { class: `badge ${badge.tone}`, "data-state": a.state }, badge.label),
      h("span", { class: "grow" }),
      h("button", { class: "small", name: "maximize", "aria-pressed": String(big), title: big ? "Back to all attempts (Escape)" : "Fill the window with this terminal (Shift+Escape leaves a terminal)",
        onclick: () => { ui.maximized = big ? null : a.id; render(); } }, big ? "Restore" : "Maximise"),
      h("span", { class: "meta", title: `created ${age(a.age_s)} ago` },
        // A live attempt's time ticks (see the interval below) without re-rendering the card.
        live ? h("span", { "data-since": String(Date.now() - a.elapsed_s * 1000) }, age(a.elapsed_s)) : `${ended ? "ran " : ""}${age(a.elapsed_s)}`,
        `${a.exit_code != null ? ` · exit ${a.exit_code}` : ""}${a.files_changed != null ? ` · ${a.files_changed} file(s)` : ""}${a.denied_requests ? ` · ${a.denied_requests} denied` : ""}`)),
    envNote(a),
    live && a.changing ? h("div", { class: "meta", "data-changing": a.id, title: a.changing.recent.join("\n") },
      `changing ${a.changing.files}${a.changing.capped ? "+" : ""} file${a.changing.files === 1 ? "" : "s"}: ${a.changing.recent.slice(0, 3).join(", ")}`) : null,
    t.el,
    a.share_sandbox === "none" ? h("div", { class: "meta bad" }, "its folder is shared without a sandbox (you allowed it)") : null,
    a.error ? h("div", { class: a.state === "stopped" && a.error === "stopped by the user" ? "meta" : "meta bad" }, a.error) : null,
    h("div", { class: "actions" },
      act("Diff", () => showDiff(a.id), a.state !== "booting"),
      a.branch
        // Pulled already: the branch is there (`berth pull --force` replaces it after more work).
        ? act(`Pulled as ${a.branch}`, async () => undefined, false)
        : act("Pull as branch", async () => { ui.note = await api.pull(a.id); ui.error = ""; await refresh(); }, !live),
      act("Open in editor", async () => { ui.note = await api.open(a.id); ui.error = ""; await refresh(); }, !live),
      act("Audit", () => showAudit(a.id)),
      act("Follow up", async () => openFollowUp(a.id), ended),
      act("Start", async () => { ui.note = await api.start(a.id); ui.error = ""; await refresh(); }, ended),
      act("Stop", () => api.stop(a.id), live),
      act("Delete", async () => {
        // The core refuses to lose work unless the user confirmed exactly what is lost: ask
        // first, in the app's own dialog (the webview's confirm() is no yes/no here).
        const blocker = await api.removalCheck(a.id);
        if (blocker) { openDeleteDialog(blocker); return; }
        await api.remove(a.id, null);
        terminals.delete(a.id);
        await refresh();
      }, !live)));
}

/** Follow up: a new prompt for a finished attempt, run in its workspace (its earlier work
 * becomes a commit of its own). Enter sends, Escape closes. */
function openFollowUp(id: string) {
  document.getElementById("follow-up")?.remove();
  const err = h("div", {});
  const text = h("input", { name: "follow-up-text", placeholder: "what to do next, e.g. now add a test for it" }) as HTMLInputElement;
  const close = () => { dlg.close(); dlg.remove(); };
  const dlg = h("dialog", { id: "follow-up", "data-attempt": id },
    h("h1", {}, `Follow up on ${id}`),
    h("p", { class: "meta" }, "Run again: its command runs again in the same workspace with this as its prompt; what it did so far becomes a commit of its own. Restart from base: a new attempt of the task starts over from the base with this prompt; this one is kept."),
    err,
    h("form", { onsubmit: async (e: Event) => {
      e.preventDefault();
      try { ui.note = await api.followUp(id, text.value); ui.error = ""; close(); await refresh(); }
      catch (x) { err.replaceChildren(h("div", { class: "error" }, message(x))); }
    } }, text, h("div", { class: "actions" },
      h("button", { class: "primary", name: "send-follow-up" }, "Run again"),
      h("button", { type: "button", name: "restart-from-base", onclick: async () => {
        try { ui.note = await api.retry(id, text.value); ui.error = ""; close(); await refresh(); }
        catch (x) { err.replaceChildren(h("div", { class: "error" }, message(x))); }
      } }, "Restart from base"),
      h("button", { type: "button", name: "cancel", onclick: close }, "Cancel")))) as HTMLDialogElement;
  document.body.append(dlg);
  dlg.showModal();
  text.focus();
}

/** Delete an attempt that would lose work: pull and delete, delete anyway, or cancel. */
function openDeleteDialog(b: RemovalBlocker) {
  document.getElementById("delete-attempt")?.remove();
  const err = h("div", {});
  const close = () => { dlg.close(); dlg.remove(); };
  const run = (f: () => Promise<void>) => async () => {
    try { await f(); close(); terminals.delete(b.attempt); await refresh(); }
    catch (e) { err.replaceChildren(h("div", { class: "error" }, message(e))); }
  };
  const dlg = h("dialog", { id: "delete-attempt", "data-attempt": b.attempt },
    h("h1", {}, `Delete attempt ${b.attempt}?`), err,
    h("p", { class: "reason" }, b.reason),
    h("div", { class: "actions" },
      b.pull_keeps_it
        ? h("button", { class: "primary", name: "pull-delete", onclick: run(async () => {
          ui.note = await api.pull(b.attempt);
          await api.remove(b.attempt, null);
        }) }, "Pull and delete")
        : null,
      h("button", { class: "danger", name: "delete-anyway", onclick: run(() => api.remove(b.attempt, b.confirm)) }, "Delete anyway"),
      h("button", { name: "cancel", onclick: close }, "Cancel"))) as HTMLDialogElement;
  document.body.append(dlg);
  dlg.showModal();
}

/** A review pane: a file tree beside the changed files, each collapsible, unified or split
 * side by side (the choice is kept), tinted rows with line numbers. The patch is the
 * guest's text: shown as text only. */
function diffView(title: string, d: DiffResult, attrs: Record<string, string>): HTMLElement {
  const files = splitDiff(d.patch);
  const stats = fileStats(files);
  const split = ui.diffMode === "split";
  const sections = files.map((f, i) => {
    const rows = hunkRows(f.lines);
    const num = (n: number | null) => h("td", { class: "num" }, n != null ? String(n) : "");
    const text = (r: Row | null) => h("td", { class: r && (r.kind === "add" || r.kind === "del") ? r.kind : "" }, r ? (r.kind === "hunk" || r.kind === "meta" ? r.text : r.text || " ") : "");
    const body = split
      ? splitRows(rows.filter((r) => r.kind !== "meta")).map((p) => p.left?.kind === "hunk"
        ? h("tr", { class: "hunk" }, h("td", { colspan: "4" }, p.left.text))
        : h("tr", {}, num(p.left?.old ?? null), text(p.left), num(p.right?.new ?? null), text(p.right)))
      : rows.map((r) => r.kind === "hunk" || r.kind === "meta"
        ? h("tr", { class: r.kind }, h("td", { colspan: "3" }, r.text))
        : h("tr", { class: r.kind }, num(r.old), num(r.new), h("td", {}, `${r.kind === "add" ? "+" : r.kind === "del" ? "-" : " "}${r.text}`)));
    const cols = split ? [h("col", { style: "width:4.5em" }), h("col", {}), h("col", { style: "width:4.5em" }), h("col", {})] : [h("col", { style: "width:4.5em" }), h("col", { style: "width:4.5em" }), h("col", {})];
    const det = h("details", { class: "diff-file", id: `diff-file-${i}`, "data-file": f.file },
      h("summary", {}, f.file, " ", h("span", { class: "ok" }, `+${stats[i].added}`), " ", h("span", { class: "bad" }, `-${stats[i].removed}`)),
      h("table", { class: "hunks" }, h("colgroup", {}, ...cols), h("tbody", {}, ...body))) as HTMLDetailsElement;
    det.open = !ui.collapsed.has(f.file);
    det.addEventListener("toggle", () => { if (det.open) ui.collapsed.delete(f.file); else ui.collapsed.add(f.file); });
    return det;
  });
  const treeList = (n: TreeNode): HTMLElement => h("ul", {}, ...n.children.map((c) => c.file === null
    ? h("li", {}, h("span", { class: "dir" }, `${c.name}/`), treeList(c))
    : h("li", {}, h("a", { href: `#diff-file-${c.file}`, onclick: (e: Event) => {
      e.preventDefault();
      const det = sections[c.file!] as HTMLDetailsElement;
      det.open = true;
      det.scrollIntoView({ block: "start" });
      (det.querySelector("summary") as HTMLElement | null)?.focus();
    } }, c.name), " ", h("span", { class: "ok" }, `+${stats[c.file!].added}`), " ", h("span", { class: "bad" }, `-${stats[c.file!].removed}`))));
  const mode = (m: "unified" | "split", label: string) => h("button", { class: "small", name: `diff-${m}`, "aria-pressed": String(ui.diffMode === m), onclick: () => {
    ui.diffMode = m; localStorage.setItem("berth.diffMode", m); rerenderReview();
  } }, label);
  const all = (open: boolean, label: string) => h("button", { class: "small", name: open ? "expand-all" : "collapse-all", onclick: () => {
    for (const f of files) { if (open) ui.collapsed.delete(f.file); else ui.collapsed.add(f.file); }
    rerenderReview();
  } }, label);
  const box = h("div", { class: "diff-files", ...attrs }, ...sections);
  if (!files.length) box.append(h("div", { class: "meta" }, "No differences."));
  return h("div", { "data-review": "" }, h("h2", {}, `${title}: ${d.files} file(s), +${d.insertions}/-${d.deletions}`),
    h("div", { class: "review-bar", role: "toolbar", "aria-label": "Review" }, mode("unified", "Unified"), mode("split", "Split"), all(false, "Collapse all"), all(true, "Expand all")),
    h("div", { class: "review" }, h("nav", { class: "tree", "aria-label": "Changed files" }, treeList(fileTree(files.map((f) => f.file)))), box));
}

/** Draws the open review again (a mode or a fold changed). */
let rerenderReview = () => {};

async function showDiff(id: string) {
  const d = await api.diff(id);
  const live = ui.tasks.some((t) => t.attempts.some((a) => a.id === id && (a.state === "running" || a.state === "booting")));
  ui.focus = id;
  // While it runs, its guest's own snapshot of its changes (the host reads no live workspace).
  const title = live ? `Review ${id} (still running: its changes as its guest reports them now)` : `Review ${id}`;
  rerenderReview = () => { ui.review = diffView(title, d, { "data-diff": id }); render(); };
  rerenderReview();
}

async function showCompare(a: string, b: string) {
  const d = await api.compare(a, b);
  ui.focus = a;
  ui.compare = [a, b];
  rerenderReview = () => { ui.review = diffView(`What ${b} did differently from ${a}`, d, { "data-compare": `${a}/${b}` }); render(); };
  rerenderReview();
}

/** One row per attempt of the task (from the core's `task_compare`), each with Choose: pull
 * it, merge it into the task's branch if asked (never over the user's changes), stop the
 * others. */
function comparisonStrip(t: TaskView): HTMLElement | null {
  const rows = ui.strip.filter((r) => r.id.split(".")[0] === String(t.id));
  if (rows.length < 2) return null;
  const cell = (v: string, cls = "") => h("td", { class: cls }, v);
  const merge = h("input", { type: "checkbox", name: "merge-on-choose", checked: ui.mergeOnChoose,
    onchange: (e: Event) => { ui.mergeOnChoose = (e.target as HTMLInputElement).checked; } });
  const table = h("table", { class: "strip", "data-strip": String(t.id) },
    h("thead", {}, h("tr", {}, ...["Attempt", "State", "Exit", "Time", "Files", "Lines", "Tests", "Denied", "Secrets", ""].map((x) => h("th", {}, x)))),
    h("tbody", {}, ...rows.map((r) => {
      const b = attemptBadge(r);
      const live = r.state === "running" || r.state === "booting";
      return h("tr", { "data-strip-row": r.id },
        cell(r.id),
        h("td", {}, h("span", { class: `badge ${b.tone}` }, b.label)),
        cell(r.exit_code != null ? String(r.exit_code) : "-"),
        cell(r.seconds != null ? age(r.seconds) : "-"),
        cell(r.files_changed != null ? String(r.files_changed) : "-"),
        cell(r.insertions != null ? `+${r.insertions}/-${r.deletions ?? 0}` : "-"),
        (() => { const c = testCell(r); return h("td", { class: c.tone === "bad" ? "bad" : "", "data-test-result": c.label, title: r.test_command ? `the repo's tests: ${r.test_command}` : "no test command (a [test] section in berth.toml)" }, c.label); })(),
        cell(String(r.denied), r.denied ? "bad" : ""),
        cell(String(r.secret_uses)),
        h("td", {}, h("button", { class: "small", name: "choose", disabled: live, title: live ? "Choose it once it has finished" : `Keep ${r.id} as the result${ui.mergeOnChoose ? " and merge it" : ""}; the other attempts stop`,
          onclick: async () => {
            try { ui.note = await api.choose(r.id, ui.mergeOnChoose); ui.error = ""; await refresh(); } catch (e) { showError(message(e)); }
          } }, "Choose")));
    })));
  return h("div", { class: "strip-box" }, h("div", { class: "strip-scroll" }, table),
    h("label", { class: "strip-merge meta" }, merge, "Choose also merges into the branch the task started from (never over your uncommitted changes)"));
}

function compareBar(t: TaskView): HTMLElement | null {
  const pair = comparePair(t, ui.compare);
  if (!pair) return null;
  const pick = (name: string, value: string) =>
    h("select", { name }, ...t.attempts.map((x) => { const o = h("option", { value: x.id }, x.id) as HTMLOptionElement; o.selected = x.id === value; return o; })) as HTMLSelectElement;
  const left = pick("compare-a", pair[0]);
  const right = pick("compare-b", pair[1]);
  const keep = () => { ui.compare = [left.value, right.value]; };
  left.addEventListener("change", keep);
  right.addEventListener("change", keep);
  return h("div", { class: "compare" }, "Compare ", left, " with ", right, " ",
    h("button", { name: "compare", onclick: async () => { try { await showCompare(left.value, right.value); } catch (e) { showError(message(e)); } } }, "Compare"));
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

function newTaskDialog(presetRepo?: string): HTMLDialogElement {
  const repos = ui.repos.map((r) => r.path);
  const field = (label: string, input: HTMLElement) => h("div", {}, h("label", {}, label), input);
  const repo = h("input", { name: "repo", list: "repos", placeholder: "/path/to/repo", value: presetRepo ?? repos[0] ?? "" }) as HTMLInputElement;
  const base = h("select", { name: "base" }) as HTMLSelectElement;
  const command = h("input", { name: "command", value: PRESETS[0].command, placeholder: "e.g. sh -c 'my-agent \"$BERTH_PROMPT\"'" }) as HTMLInputElement;
  const preset = h("select", { name: "preset" }, ...PRESETS.map((p) => h("option", { value: p.id }, p.label)),
    ...ui.agents.map((a) => h("option", { value: `agent:${a.name}` }, `${a.label}${a.secret_set ? "" : ` (set the ${a.secret} secret first)`}`))) as HTMLSelectElement;
  // An agent preset runs the agent's own command with the prompt; its key stays on the host.
  const interactive = h("input", { type: "checkbox", name: "interactive" }) as HTMLInputElement;
  const agentOf = () => (preset.value.startsWith("agent:") ? preset.value.slice(6) : null);
  const agentNote = h("div", { class: "meta" });
  const showAgent = () => {
    const a = ui.agents.find((x) => x.name === agentOf());
    command.disabled = !!a;
    if (a) command.value = (interactive.checked ? a.interactive : a.headless).join(" ");
    agentNote.textContent = a ? `Runs ${a.label} (${a.package}@${a.version}) ${interactive.checked ? "in its own terminal UI" : "headless with the prompt"}; its ${a.secret} key is used through each attempt's gateway, never inside the VM.` : "";
  };
  interactive.addEventListener("change", showAgent);
  preset.addEventListener("change", showAgent);
  preset.addEventListener("change", () => {
    if (agentOf()) return;
    const p = PRESETS.find((x) => x.id === preset.value);
    if (p && p.command) command.value = p.command;
    else command.focus();
  });
  command.addEventListener("input", () => { preset.value = presetOf(command.value); });
  const title = h("input", { name: "title", placeholder: "What should the agent do?" }) as HTMLInputElement;
  const attempts = h("input", { name: "attempts", type: "number", min: 1, max: 16, value: 2 }) as HTMLInputElement;
  const network = h("select", { name: "network" }, h("option", { value: "off" }, "off"), h("option", { value: "allowlist" }, "allowlist"), h("option", { value: "open" }, "open")) as HTMLSelectElement;
  const allow = h("input", { name: "allow", placeholder: "example.com, *.example.org:443" }) as HTMLInputElement;
  // Secrets to bind: each attempt gets its own token for its own gateway.
  const secretBoxes = ui.secrets.map((s) => h("input", { type: "checkbox", name: "bind-secret", value: s.name }) as HTMLInputElement);
  const err = h("div", {});
  // The scripted demo only where its script is committed (elsewhere it would exit 127).
  const demoNote = h("div", { class: "meta", "data-demo-note": "" });
  const checkDemo = async () => {
    const applies = await api.demoApplies(repo.value, base.value || "HEAD").catch(() => false);
    const demo = preset.querySelector("option[value=demo]") as HTMLOptionElement | null;
    if (demo) { demo.disabled = !applies; demo.hidden = !applies; }
    if (!applies && preset.value === "demo") {
      preset.value = "custom";
      command.value = "";
    }
    demoNote.textContent = applies ? "" : "This repo has no scripted demo agent: pick an agent preset (Settings → Agents installs one) or type the command each attempt runs, e.g. a shell.";
  };
  const loadBranches = async () => {
    base.replaceChildren();
    try {
      for (const b of await api.branches(repo.value)) base.append(h("option", { value: b }, b));
      await checkDemo();
      err.replaceChildren();
    } catch (e) {
      err.replaceChildren(h("div", { class: "error" }, message(e)));
    }
  };
  repo.addEventListener("change", loadBranches);
  base.addEventListener("change", () => void checkDemo());
  const dlg = h("dialog", { id: "new-task" },
    h("h1", {}, "New agent task"), err,
    field("Repository", repo), h("datalist", { id: "repos" }, ...repos.map((r) => h("option", { value: r }))),
    h("div", { class: "row" }, field("Base branch", base), field("Attempts", attempts)),
    h("div", { class: "row" }, field("Agent preset", preset), field("Command", command)), demoNote,
    agentNote, h("label", { class: "chip" }, interactive, " interactive (the agent's own terminal UI)"),
    field("Prompt (the task's title; the command sees it as $BERTH_PROMPT)", title),
    h("div", { class: "row" }, field("Network", network), field("Allowlist", allow)),
    ui.secrets.length ? field("Secrets (used through each attempt's gateway; the VM gets a token worthless elsewhere)",
      h("div", { class: "chips" }, ...ui.secrets.map((s, k) => h("label", { class: "chip" }, secretBoxes[k], ` ${s.name}`)))) : null,
    h("div", { class: "actions" },
      h("button", { class: "primary", name: "create", onclick: async () => {
        try {
          const allowList = allow.value.split(",").map((s) => s.trim()).filter(Boolean);
          // The repo's berth.toml is the repo's word, not the user's: what in it widens a
          // guest's reach needs the user's trust of exactly this content first.
          const cfg = await api.repoConfig(repo.value, network.value, allowList);
          if (cfg.widens.length && !cfg.trusted && !(await askTrust(cfg))) return;
          const ids = await api.newTask({
            repo: repo.value, base: base.value || "HEAD", command: splitCommand(command.value),
            attempts: Number(attempts.value), title: title.value || (agentOf() ? "" : command.value),
            network: network.value as "off" | "allowlist" | "open",
            allow: allowList,
            secrets: secretBoxes.filter((b) => b.checked).map((b) => b.value),
            agent: agentOf() ?? undefined,
            interactive: interactive.checked,
          });
          (dlg as HTMLDialogElement).close();
          ui.selected = Number(ids[0].split(".")[0]);
          ui.note = `started ${ids.join(", ")}`;
          await refresh();
        } catch (e) {
          err.replaceChildren(h("div", { class: "error" }, message(e)));
        }
      } }, "Create"),
      h("button", { onclick: () => (dlg as HTMLDialogElement).close() }, "Cancel"))) as HTMLDialogElement;
  // Enter in any of its fields creates the task, as in every dialog of the app.
  dlg.addEventListener("keydown", (e) => {
    const t = e.target;
    if (e.key === "Enter" && t instanceof HTMLInputElement && t.type !== "checkbox") {
      e.preventDefault();
      (dlg.querySelector("button[name=create]") as HTMLButtonElement | null)?.click();
    }
  });
  if (repo.value) void loadBranches();
  return dlg;
}

/** Shows what the repo's berth.toml asks for and the effective policy; resolves to whether
 * the user trusted it (Trust) or not (Cancel). */
function askTrust(cfg: RepoConfigPreview): Promise<boolean> {
  document.getElementById("trust-config")?.remove();
  return new Promise((resolve) => {
    const err = h("div", {});
    const done = (v: boolean) => { dlg.close(); dlg.remove(); resolve(v); };
    const dlg = h("dialog", { id: "trust-config" },
      h("h1", {}, "Trust this repo's berth.toml?"), err,
      h("p", {}, `${cfg.repo}/berth.toml asks for more than Berth gives a guest by default. It comes from the repo, and an agent can write it (a pulled branch is the next task's base).`),
      h("ul", { class: "widens" }, ...cfg.widens.map((w) => h("li", {}, w))),
      h("p", {}, "With it, these attempts get: ", h("strong", { class: "effective" }, cfg.effective)),
      h("p", { class: "meta" }, `Trust covers this exact content (sha256 ${cfg.sha256.slice(0, 12)}…); a changed file asks again.`),
      h("div", { class: "actions" },
        h("button", { class: "primary", name: "trust", onclick: async () => {
          try { await api.trustRepoConfig(cfg.repo, cfg.sha256); done(true); }
          catch (e) { err.replaceChildren(h("div", { class: "error" }, message(e))); }
        } }, "Trust and create"),
        h("button", { name: "cancel", onclick: () => done(false) }, "Cancel"))) as HTMLDialogElement;
    dlg.addEventListener("cancel", () => resolve(false));
    document.body.append(dlg);
    dlg.showModal();
  });
}

function openNewTask(repo?: string) {
  document.getElementById("new-task")?.remove();
  const d = newTaskDialog(repo);
  document.body.append(d);
  d.showModal();
}

function approvalBanner(q: PendingApproval): HTMLElement {
  const answer = (d: "once" | "always" | "deny") => async () => {
    ui.approvals = ui.approvals.filter((x) => !(x.attempt === q.attempt && x.id === q.id));
    try { await api.approve(q.attempt, q.id, d); } catch (e) { showError(message(e)); }
    render();
  };
  return h("div", { class: "approval", role: "alert", "data-approval": `${q.attempt}/${q.id}` },
    h("strong", {}, `Attempt ${q.attempt} ${approvalText(q.host, q.port)}`), ". ",
    h("span", { class: "meta", "data-deadline": String(q.received_ms + APPROVAL_TIMEOUT_MS) }, secondsLeft(q.received_ms + APPROVAL_TIMEOUT_MS)), " ",
    h("button", { onclick: answer("once") }, "Allow once"), " ",
    h("button", { onclick: answer("always") }, "Always for this task"), " ",
    h("button", { class: "danger", onclick: answer("deny") }, "Deny"));
}

function render() {
  // A re-render (any state change) must not take the keyboard or the scroll position away
  // from the user: the terminal or input they type in is moved (as the new view is built,
  // so note it first), not rebuilt; give its focus back and keep both panes' scroll.
  const focused = document.activeElement;
  const focusKey = focused instanceof HTMLElement ? keyOf(focused) : null;
  const scrolled = [document.querySelector("main")?.scrollTop ?? 0, document.querySelector("aside")?.scrollTop ?? 0];
  const app = document.getElementById("app")!;
  const task = ui.tasks.find((t) => t.id === ui.selected);
  const main = h("main", {},
    ...ui.approvals.map((q) => approvalBanner(q)),
    ui.error ? h("div", { class: "error", role: "alert" }, ui.error) : null,
    ui.note ? h("div", { class: "note" }, ui.note) : null);
  if (task) {
    main.append(h("div", { class: "task-head" }, h("h1", {}, `${task.id}. ${task.title}`), h("span", { class: "grow" }), ...taskActions(task)),
      h("div", { class: "meta" }, task.repo));
    main.append(h("h2", {}, "Attempts"));
    const strip = comparisonStrip(task);
    if (strip && !ui.maximized) main.append(strip);
    const shown = task.attempts.filter((a) => !ui.maximized || a.id === ui.maximized);
    main.append(h("div", { class: `attempts${ui.maximized ? " one" : ""}` }, ...(shown.length ? shown : task.attempts).map(attemptCard)));
    const bar = compareBar(task);
    if (bar) main.append(bar);
    if (ui.review && task.attempts.some((a) => a.id === ui.focus)) main.append(ui.review);
  }
  if (!task || !ui.tasks.length) {
    main.append(checklist());
    if (!task) main.append(h("div", { class: "empty" }, "Create a task with New agent task (Ctrl+N)."));
  }
  const side = h("aside", { "aria-label": "Repos and tasks", hidden: ui.sidebarHidden }, h("div", { class: "side-head" }, h("h1", {}, "Berth"), h("span", { class: "grow" }), sidebarToggle()),
    h("button", { class: "primary", id: "new-task-button", onclick: () => openNewTask() }, "New agent task"),
    h("h2", {}, "Repos"), repoList(),
    h("h2", {}, "Tasks"), taskList(),
    settingsPanel());
  app.classList.toggle("no-side", ui.sidebarHidden);
  if (ui.sidebarHidden) main.prepend(h("div", { class: "side-head" }, sidebarToggle()));
  app.replaceChildren(side, main);
  main.scrollTop = scrolled[0];
  side.scrollTop = scrolled[1];
  if (focused instanceof HTMLElement && focused !== document.body && focused.isConnected && document.activeElement !== focused) {
    focused.focus({ preventScroll: true });
  } else if (focused instanceof HTMLElement && !focused.isConnected && focusKey) {
    // A rebuilt button or link: the keyboard stays on its twin in the new view.
    twin(focusKey)?.focus({ preventScroll: true });
  }
  requestAnimationFrame(fitTerminals);
}

/** Where a focused control is, in words that survive a re-render: the card, row or item it
 * belongs to, and its tag, name and label. */
interface FocusKey { scope: string; tag: string; name: string | null; label: string }
const SCOPES = ["data-attempt-card", "data-strip-row", "data-task", "data-repo", "data-check", "data-diff", "data-agent"];

function keyOf(el: HTMLElement): FocusKey | null {
  for (const attr of SCOPES) {
    const holder = el.closest(`[${attr}]`);
    if (holder) return { scope: `[${attr}="${CSS.escape(holder.getAttribute(attr) ?? "")}"]`, tag: el.tagName.toLowerCase(), name: el.getAttribute("name"), label: el.textContent ?? "" };
  }
  const name = el.getAttribute("name");
  return name ? { scope: "body", tag: el.tagName.toLowerCase(), name, label: el.textContent ?? "" } : null;
}

function twin(k: FocusKey): HTMLElement | null {
  const all = Array.from(document.querySelectorAll<HTMLElement>(`${k.scope} ${k.tag}`));
  return all.find((e) => e.getAttribute("name") === k.name && (e.textContent ?? "") === k.label) ?? null;
}

document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "n") {
    e.preventDefault();
    openNewTask();
  } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "b") {
    e.preventDefault();
    toggleSidebar();
  } else if (e.key === "Escape" && !e.shiftKey && ui.maximized && !document.querySelector("dialog[open]") && !(document.activeElement?.closest(".term"))) {
    ui.maximized = null;
    render();
  }
});

function toggleSidebar() {
  ui.sidebarHidden = !ui.sidebarHidden;
  localStorage.setItem("berth.sidebar", ui.sidebarHidden ? "hidden" : "shown");
  render();
  requestAnimationFrame(fitTerminals);
}

function sidebarToggle(): HTMLElement {
  return h("button", { class: "small", name: "toggle-sidebar", "aria-expanded": String(!ui.sidebarHidden), title: "Ctrl+B", onclick: toggleSidebar },
    ui.sidebarHidden ? "Show sidebar" : "Hide sidebar");
}

/** Stop every live attempt of the task; delete the task (asking, per attempt with work that
 * is not pulled, in the app's own dialog). */
function taskActions(t: TaskView): HTMLElement[] {
  const live = t.attempts.filter((a) => a.state === "running" || a.state === "booting");
  return [
    h("button", { name: "stop-task", disabled: !live.length, onclick: async () => {
      try { for (const a of live) await api.stop(a.id); ui.note = `stopped ${live.map((a) => a.id).join(", ")}`; ui.error = ""; await refresh(); } catch (e) { showError(message(e)); }
    } }, "Stop all"),
    h("button", { class: "danger", name: "delete-task", disabled: !!live.length, title: live.length ? "Stop its attempts first" : "Delete every attempt of this task", onclick: async () => {
      try {
        for (const a of t.attempts) {
          const blocker = await api.removalCheck(a.id);
          // Work that is not pulled: the same question as the card's Delete, one at a time.
          if (blocker) { openDeleteDialog(blocker); return; }
          await api.remove(a.id, null);
          terminals.delete(a.id);
        }
        ui.note = `deleted task ${t.id}`; ui.error = ""; ui.selected = null;
        await refresh();
      } catch (e) { showError(message(e)); }
    } }, "Delete task"),
  ];
}

/** First run: what this machine has, with the fix for what it lacks; Build image and Try
 * the demo. */
function checklist(): HTMLElement {
  const c = ui.checks;
  const box = h("section", { class: "checklist", "aria-label": "Getting started" }, h("h2", {}, "Getting started"));
  if (!c) return box.appendChild(h("div", { class: "meta" }, "Checking this machine…")).parentElement!;
  const find = (name: string) => c.checks.find((x) => x.check === name);
  const row = (ok: boolean, what: string, detail: string, action: HTMLElement | null = null) =>
    h("div", { class: "check", "data-check": what, "data-ok": String(ok) },
      h("span", { class: ok ? "ok" : "bad", "aria-label": ok ? "ready" : "missing" }, ok ? "✓" : "✗"), " ", h("strong", {}, what), " ", h("span", { class: "meta" }, detail), " ", action);
  const image = find("image");
  const building = c.image_build.running;
  box.append(row(!!image?.ok, "Image", building ? "building…" : image?.detail ?? "not checked",
    image?.ok ? null : h("button", { class: "small primary", name: "build-image", disabled: building, onclick: async () => {
      try { ui.note = await api.buildImage(); ui.error = ""; await refreshChecks(); } catch (e) { showError(message(e)); }
    } }, building ? "Building…" : "Build image")));
  if (building || (!image?.ok && c.image_build.lines.length)) box.append(h("pre", { class: "env-log", "data-image-log": "" }, c.image_build.lines.join("\n")));
  const accel = find("accelerator");
  box.append(row(true, "Accelerator", accel?.detail ?? "unknown"));
  const fs = find("virtiofsd");
  box.append(row(!!fs?.ok, "virtiofsd", fs?.detail ?? "not checked"));
  box.append(row(c.editor_found, "Editor", c.editor_found ? c.editor : `${c.editor || "none"} is not on PATH: set one in Settings`));
  for (const x of c.checks.filter((x) => !x.ok && !["image", "virtiofsd"].includes(x.check))) box.append(row(false, x.check, x.detail));
  box.append(h("div", { class: "actions" }, h("button", { class: "primary", name: "try-demo", disabled: !image?.ok, title: image?.ok ? "A small repo with a failing test and a scripted agent: no API key needed" : "Build the image first",
    onclick: async () => {
      try { const path = await api.demoRepo(); await refresh(); openNewTask(path); } catch (e) { showError(message(e)); }
    } }, "Try the demo")));
  return box;
}

async function refreshChecks() {
  ui.checks = await api.hostChecks().catch((e) => { showError(message(e)); return null; });
  render();
}

applyTheme();
render();
void refresh();
void refreshChecks();
// While the image builds, its progress shows in the checklist.
setInterval(() => { if (ui.checks?.image_build.running && !ui.tasks.length) void refreshChecks(); }, 2000);
void api.onStateChanged(() => void refresh());
void api.onApproval((q) => {
  const all = ui.tasks.flatMap((t) => t.attempts);
  ui.approvals = openApprovals([...ui.approvals, { ...q, received_ms: Date.now() }], all, Date.now());
  render();
});
void api.onApprovalClosed((c) => {
  ui.approvals = ui.approvals.filter((q) => !(q.attempt === c.attempt && q.id === c.id));
  render();
});
setInterval(() => {
  // From the start (or deadline) each element carries: the shown time never drifts.
  for (const el of Array.from(document.querySelectorAll<HTMLElement>("[data-since]"))) {
    el.textContent = age(Math.max(0, Math.floor((Date.now() - Number(el.dataset.since)) / 1000)));
  }
  for (const el of Array.from(document.querySelectorAll<HTMLElement>("[data-deadline]"))) {
    el.textContent = secondsLeft(Number(el.dataset.deadline));
  }
}, 1000);

function secondsLeft(deadline: number): string {
  return `denied by itself in ${Math.max(0, Math.ceil((deadline - Date.now()) / 1000))} s`;
}
// Banners of questions the proxy stopped waiting for go away by themselves.
setInterval(() => {
  const left = openApprovals(ui.approvals, ui.tasks.flatMap((t) => t.attempts), Date.now());
  if (left.length !== ui.approvals.length) { ui.approvals = left; render(); }
}, 1000);
setInterval(() => void pump(), 300);
// Environment builds write their progress outside the database: poll while one runs.
setInterval(() => {
  const running = Object.values(ui.envs).some((e) => e.activity?.state === "running");
  if (!running && envPoll <= 0) return;
  envPoll = Math.max(0, envPoll - 1);
  void refreshEnvs().then(render);
}, 1000);
window.addEventListener("resize", () => fitTerminals());
