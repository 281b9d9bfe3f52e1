// The shapes the Rust side sends (src-tauri/src/dto.rs); a test checks them against
// the JSON that `berth ls --json` prints, so they cannot drift silently.

export type AttemptState = "created" | "booting" | "running" | "exited" | "stopped" | "failed";

export interface Attempt {
  id: string;
  task: number;
  title: string | null;
  state: AttemptState;
  repo: string;
  age_s: number;
  /** Seconds it has been running, or ran once it ended. */
  elapsed_s: number;
  /** How virtiofsd confines itself while the VM runs ("namespace", "chroot", "none"). */
  share_sandbox: string | null;
  exit_code: number | null;
  error: string | null;
  branch: string | null;
  files_changed: number | null;
  insertions: number | null;
  deletions: number | null;
  memory_mib: number;
  cpus: number;
  denied_requests: number;
  /** What its open approval questions are about (host and port), while any wait. */
  waiting_for: string[];
  /** Its terminal sits quiet at a prompt; the user is expected to type. */
  waiting_input: boolean;
  /** While it runs, the files it has changed so far (null before the first change). */
  changing: LiveChanges | null;
}

/** Files a running attempt has changed: a count and the latest names (display text only). */
export interface LiveChanges {
  files: number;
  capped: boolean;
  recent: string[];
}

/** One row of a task's comparison (`berth compare TASK --json`, `task_compare`). */
export interface AttemptSummary {
  id: string;
  state: AttemptState;
  exit_code: number | null;
  error: string | null;
  /** From the start of its command to its end (or now, while it runs). */
  seconds: number | null;
  files_changed: number | null;
  insertions: number | null;
  deletions: number | null;
  /** Requests its proxy refused. */
  denied: number;
  /** Requests its gateway sent with one of the user's secrets. */
  secret_uses: number;
  branch: string | null;
  /** Its terminal sits quiet at a prompt; the user is expected to type. */
  waiting_input: boolean;
  /** The repo's test command (its berth.toml's test section when the task was made). */
  test_command: string | null;
  /** How that command ended after the agent's last run; null before it ran. */
  test: TestResult | null;
}

/** The repo's test command's result in one attempt. */
export interface TestResult {
  command: string;
  exit_code: number | null;
  timed_out: boolean;
  interrupted: boolean;
  seconds: number;
}

export interface TaskView {
  id: number;
  title: string;
  repo: string;
  attempts: Attempt[];
}

export interface NewTaskRequest {
  repo: string;
  base: string;
  command: string[];
  attempts: number;
  title: string;
  network: "off" | "allowlist" | "open";
  allow: string[];
  /** Secrets bound to every attempt (`NAME[:approve=each|task|none]...`). */
  secrets: string[];
  /** An agent preset: its command replaces `command`; the title is its prompt. */
  agent?: string;
  interactive?: boolean;
}

export interface AuditEvent {
  seq: number;
  attempt: string;
  ts_ms: number;
  kind: string;
  data: Record<string, unknown>;
}

export interface ApiError {
  message: string;
}

/** The guest asks to reach a name that is not on its allowlist. */
export interface ApprovalRequest {
  attempt: string;
  id: number;
  host: string;
  port: number;
}

/** A repo in the Repos section (`berth repo ls --json`). */
export interface Repo {
  path: string;
  branches: string[];
  error: string | null;
}

/** The repo's berth.toml and the policy attempts would get (src-tauri repo_config). */
export interface RepoConfigPreview {
  repo: string;
  present: boolean;
  sha256: string;
  widens: string[];
  trusted: boolean;
  effective: string;
}

/** Why deleting an attempt would lose something (berth_core::RemovalBlocker). */
export interface RemovalBlocker {
  attempt: string;
  reason: string;
  pull_keeps_it: boolean;
  confirm: string;
}

/** An agent preset (`berth agent ls --json`). */
export interface AgentView {
  name: string;
  label: string;
  package: string;
  version: string;
  secret: string;
  secret_set: boolean;
  headless: string[];
  interactive: string[];
  /** Its files are fetched (at `version`), and where its CLI is installed. */
  fetched: boolean;
  installed: { version: string; on: string; check: string; built_at: number }[];
  /** From the repo's berth.toml, not Berth's presets. */
  custom: boolean;
}

/** A secret's metadata (`berth secret ls --json`); the value never leaves the keyring. */
export interface SecretRecord {
  name: string;
  upstream: string;
  header: string;
  template: string;
  key_env: string;
  url_env: string;
  ca_pem: string | null;
  created_at: number;
  last_used_at: number | null;
}

export interface Settings {
  editor: string | null;
  editor_in_effect: string;
}

export interface DiffResult {
  patch: string;
  files: number;
  insertions: number;
  deletions: number;
}

/** What is being done to a repo's environment or cache, or was last (berth_core::EnvActivity). */
export interface EnvActivity {
  what: string;
  state: "running" | "done" | "failed" | "interrupted";
  pid: number;
  started_at: number;
  finished_at: number | null;
  lines: string[];
  error: string | null;
}

export interface BuiltEnv {
  id: string;
  image: string;
  built_at: number;
  build_seconds: number;
  size: number;
}

export interface CacheView {
  repo: string;
  dir: string;
  generation: number;
  generations: number[];
  size_on_disk: number;
}

/** A repo's environment and cache (`berth env status --json`, the app's repo_env). */
export interface RepoEnvStatus {
  configured: boolean;
  packages: string[];
  setup_steps: number;
  cache_presets: string[];
  built: BuiltEnv | null;
  activity: EnvActivity | null;
  cache: CacheView | null;
  problem: string | null;
}

/** The first-run checklist (`host_checks`): `berth doctor`'s checks and the editor. */
export interface HostChecks {
  checks: { check: string; ok: boolean; detail: string }[];
  editor: string;
  editor_found: boolean;
  image_build: { running: boolean; lines: string[] };
}

/** The warm pool (`pool_status`, `berth pool ls --json`). */
export interface PoolStatus {
  size: number;
  slots: {
    name: string;
    state: string;
    shape: { memory_mib: number; cpus: number; network: boolean; root: PoolLayer | null; cache: PoolLayer | null };
    pid: number;
    attempt: string | null;
    ready_s: number | null;
    image: string;
    made_for: { repo: string; agent: string | null } | null;
  }[];
}

/** A layer a pooled VM boots on besides the image (an environment's, an agent's, a cache generation). */
export interface PoolLayer {
  path: string;
  format: string;
  identity: string;
}
