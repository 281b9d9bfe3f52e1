// Typed wrappers over the Rust commands in src-tauri/src/commands.rs.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { HostChecks, PoolStatus, ApprovalRequest, Attempt, AttemptSummary, AuditEvent, DiffResult, NewTaskRequest, RemovalBlocker, Repo, RepoConfigPreview, RepoEnvStatus, SecretRecord, Settings, AgentView } from "./types";

export const api = {
  state: () => invoke<Attempt[]>("state"),
  branches: (repo: string) => invoke<string[]>("repo_branches", { repo }),
  /** Whether the scripted demo agent's script is committed in `repo` at `base`. */
  demoApplies: (repo: string, base: string) => invoke<boolean>("repo_demo", { repo, base }),
  newTask: (req: NewTaskRequest) => invoke<string[]>("new_task", { req }),
  /** Output from `offset` on; the log is capped and rotates, so `start` may be 0. */
  log: async (id: string, offset: number) => decodeLogChunk(await invoke<ArrayBuffer>("attempt_log", { id, offset })),
  input: (id: string, data: string) => invoke<void>("attempt_input", { id, data }),
  resize: (id: string, rows: number, cols: number) => invoke<void>("attempt_resize", { id, rows, cols }),
  diff: (id: string) => invoke<DiffResult>("attempt_diff", { id }),
  compare: (a: string, b: string) => invoke<DiffResult>("attempt_compare", { a, b }),
  /** The task's attempts side by side (`berth compare`). */
  compareTask: (task: number) => invoke<AttemptSummary[]>("task_compare", { task }),
  /** Keeps an attempt as the task's result (`berth choose [--merge]`); says what happened. */
  choose: (id: string, merge: boolean) => invoke<string>("attempt_choose", { id, merge }),
  /** A follow-up (`berth prompt`): the attempt runs again in its workspace with `prompt`. */
  followUp: (id: string, prompt: string) => invoke<string>("attempt_followup", { id, prompt }),
  /** `berth retry`: a new attempt of the task from its base with `prompt` (empty: the same). */
  retry: (id: string, prompt: string) => invoke<string>("attempt_retry", { id, prompt }),
  /** `berth start`: boot an ended attempt again on its workspace. */
  start: (id: string) => invoke<string>("attempt_start", { id }),
  /** The first-run checklist (`berth doctor --json`, the editor, an image build under way). */
  hostChecks: () => invoke<HostChecks>("host_checks"),
  /** Starts `berth image build` in the background. */
  buildImage: () => invoke<string>("image_build"),
  /** The bundled demo repo, made on first use and added; its path. */
  demoRepo: () => invoke<string>("demo_repo"),
  /** The warm pool: its size and the VMs waiting or serving. */
  poolStatus: () => invoke<PoolStatus>("pool_status"),
  /** Keeps `size` VMs of the default shape waiting (0 drains the pool). */
  setPool: (size: number) => invoke<string>("pool_set", { size }),
  open: (id: string) => invoke<string>("attempt_open", { id }),
  repos: () => invoke<Repo[]>("repos"),
  addRepo: (path: string) => invoke<string>("repo_add", { path }),
  removeRepo: (path: string) => invoke<void>("repo_remove", { path }),
  repoEnv: (path: string) => invoke<RepoEnvStatus>("repo_env", { path }),
  /** Builds the repo's environment in the background; `again`: even when it is built. */
  buildEnv: (path: string, again: boolean) => invoke<void>("repo_env_build", { path, again }),
  pickFolder: () => invoke<string | null>("pick_folder"),
  settings: () => invoke<Settings>("settings"),
  secrets: () => invoke<SecretRecord[]>("secrets"),
  agents: () => invoke<AgentView[]>("agents"),
  /** Waits for `berth agent install NAME` (minutes the first time); its last line. */
  installAgent: (name: string, repo?: string) => invoke<string>("agent_install", { name, repo: repo ?? null }),
  /** The value goes to the OS keyring; nothing ever sends it back. */
  setSecret: (req: { name: string; upstream: string; header: string; key_env: string; url_env: string; value: string }) =>
    invoke<void>("secret_set", { req }),
  removeSecret: (name: string) => invoke<void>("secret_remove", { name }),
  setEditor: (command: string) => invoke<void>("set_editor", { command }),
  pull: (id: string) => invoke<string>("attempt_pull", { id }),
  stop: (id: string) => invoke<void>("attempt_stop", { id }),
  repoConfig: (repo: string, network: string, allow: string[]) =>
    invoke<RepoConfigPreview>("repo_config", { repo, network, allow }),
  trustRepoConfig: (repo: string, sha256: string) => invoke<RepoConfigPreview>("repo_config_trust", { repo, sha256 }),
  removalCheck: (id: string) => invoke<RemovalBlocker | null>("attempt_removal_check", { id }),
  /** `confirm`: a RemovalBlocker's confirm, after the user agreed to lose what it names. */
  remove: (id: string, confirm: string | null) => invoke<void>("attempt_remove", { id, confirm }),
  audit: (id: string) => invoke<AuditEvent[]>("attempt_audit", { id }),
  approve: (id: string, request: number, decision: "once" | "always" | "deny") =>
    invoke<void>("attempt_approve", { id, request, decision }),
  onStateChanged: (f: () => void): Promise<UnlistenFn> => listen("state-changed", f),
  onApproval: (f: (a: ApprovalRequest) => void): Promise<UnlistenFn> =>
    listen<ApprovalRequest>("approval", (e) => f(e.payload)),
  onApprovalClosed: (f: (a: { attempt: string; id: number }) => void): Promise<UnlistenFn> =>
    listen<{ attempt: string; id: number }>("approval-closed", (e) => f(e.payload)),
};

/** A readable message from whatever a command threw. */
export function message(e: unknown): string {
  if (typeof e === "string") return e;
  if (e instanceof Error) return e.message;
  return JSON.stringify(e);
}

/** attempt_log's raw answer: 8 bytes of little-endian start offset, then the bytes. */
export function decodeLogChunk(buf: ArrayBuffer): { data: Uint8Array; start: number; next: number } {
  const start = Number(new DataView(buf, 0, 8).getBigUint64(0, true));
  const data = new Uint8Array(buf, 8);
  return { data, start, next: start + data.length };
}
