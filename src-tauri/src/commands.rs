//! The app's commands: each takes the app state, calls `berth-core`, and maps errors to a
//! message the UI shows as is. All run off the UI thread (`async`).

use berth_core::{AttemptId, NewTask, SuperviseOptions, SupervisorClient};
use berth_core::{Message, WinSize};
use serde::{Deserialize, Serialize};
use tauri::State;

use crate::App;

pub type Res<T> = Result<T, String>;

fn id(s: &str) -> Res<AttemptId> {
    s.parse().map_err(|e: berth_core::DbError| e.to_string())
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One attempt, in the same shape as `berth ls --json`.
#[derive(Serialize)]
pub struct AttemptDto {
    id: String,
    task: u32,
    title: Option<String>,
    state: String,
    repo: String,
    age_s: u64,
    elapsed_s: u64,
    share_sandbox: Option<String>,
    exit_code: Option<i32>,
    error: Option<String>,
    branch: Option<String>,
    files_changed: Option<u32>,
    insertions: Option<u32>,
    deletions: Option<u32>,
    memory_mib: u32,
    cpus: u32,
    denied_requests: u64,
    waiting_for: Vec<String>,
    waiting_input: bool,
    changing: Option<berth_core::LiveChanges>,
}

#[tauri::command(async)]
pub fn state(app: State<'_, App>) -> Res<Vec<AttemptDto>> {
    let _ = berth_core::reconcile(&app.store, now_ms);
    let db = app.store.db().map_err(|e| e.to_string())?;
    let tasks = db.tasks().map_err(|e| e.to_string())?;
    let now = now_ms() / 1000;
    let attempts = db.attempts().map_err(|e| e.to_string())?;
    Ok(attempts
        .into_iter()
        .map(|a| AttemptDto {
            id: a.id.to_string(),
            task: a.id.task,
            title: tasks
                .iter()
                .find(|t| t.id == a.id.task)
                .map(|t| t.title.clone()),
            state: a.state.to_string(),
            repo: a.repo.display().to_string(),
            age_s: now.saturating_sub(a.created_at),
            elapsed_s: a.elapsed_s(now),
            share_sandbox: app.store.share_sandbox(a.id),
            exit_code: a.exit_code,
            error: a.error.clone(),
            branch: a.branch.clone(),
            files_changed: a.files_changed,
            insertions: a.insertions,
            deletions: a.deletions,
            memory_mib: a.memory_mib,
            cpus: a.cpus,
            denied_requests: db.denied_requests(a.id).unwrap_or(0),
            waiting_for: if a.state.is_live() {
                app.store.waiting_for(a.id)
            } else {
                Vec::new()
            },
            waiting_input: a.state.is_live() && app.store.waiting_input(a.id),
            changing: if a.state.is_live() {
                berth_core::live_changes(&app.store, a.id)
            } else {
                None
            },
        })
        .collect())
}

#[tauri::command(async)]
pub fn repo_branches(repo: String) -> Res<Vec<String>> {
    berth_core::branches(std::path::Path::new(&repo)).map_err(|e| e.to_string())
}

/// Whether the scripted demo agent applies to `repo` at `base` (its script is committed
/// there): the New agent task dialog offers the demo preset only then.
#[tauri::command(async)]
pub fn repo_demo(repo: String, base: String) -> bool {
    berth_core::demo_applies(std::path::Path::new(&repo), &base)
}

#[derive(Deserialize)]
pub struct NewTaskRequest {
    repo: String,
    base: String,
    command: Vec<String>,
    attempts: u32,
    title: String,
    network: String,
    allow: Vec<String>,
    /// Secrets to bind (`NAME[:approve=..][:ttl=..][:max-requests=..]`).
    #[serde(default)]
    secrets: Vec<String>,
    /// An agent preset (`berth agent ls`): its command replaces `command`, the title is the
    /// prompt, and its secret is bound.
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    interactive: bool,
}

/// The agent presets, with whether each one's secret is set.
#[tauri::command(async)]
pub fn agents(app: State<'_, App>) -> Res<Vec<berth_core::AgentView>> {
    berth_core::list_agents(&app.store, None).map_err(|e| e.to_string())
}

/// Installs an agent's CLI (`berth agent install`, as a child this call waits for, off the
/// UI thread) on what `repo`'s attempts boot on, or on the image.
#[tauri::command(async)]
pub fn agent_install(app: State<'_, App>, name: String, repo: Option<String>) -> Res<String> {
    let repo = match repo.filter(|r| !r.is_empty()) {
        Some(r) => {
            Some(berth_core::repo_root(std::path::Path::new(&r)).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    berth_core::install_agent_with_cli(&app.berth, &app.store, repo.as_deref(), &name)
        .map_err(|e| e.to_string())
}

#[tauri::command(async)]
pub fn new_task(app: State<'_, App>, req: NewTaskRequest) -> Res<Vec<String>> {
    let mut secrets: Vec<berth_core::SecretUse> = req
        .secrets
        .iter()
        .map(|s| berth_core::parse_secret_spec(s))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let repo = berth_core::repo_root(std::path::Path::new(&req.repo))
        .map_err(|e| format!("cannot open the repo {}: {e}", req.repo))?;
    let (command, agent) = match &req.agent {
        Some(name) => {
            let preset = berth_core::resolve_agent(&app.store, Some(&repo), name)
                .map_err(|e| e.to_string())?;
            let (command, secret) = berth_core::agent_command(&app.store, &preset, req.interactive)
                .map_err(|e| e.to_string())?;
            if req.title.trim().is_empty() && !req.interactive {
                return Err(format!("say what {} should do (the prompt)", preset.label));
            }
            if !secrets.iter().any(|s| s.name == secret.name) {
                secrets.push(secret);
            }
            (command, Some(preset))
        }
        None => (req.command.clone(), None),
    };
    if command.is_empty() {
        return Err("say what each attempt runs".into());
    }
    if !(1..=16).contains(&req.attempts) {
        return Err("attempts must be between 1 and 16".into());
    }
    let mode: berth_core::Mode = req.network.parse()?;
    // The repo's berth.toml counts only as far as the user trusted it (the dialog asks).
    let mut policy = berth_core::repo_policy(&app.store, &repo, Some(mode), &req.allow, &[], None)
        .map_err(|e| e.to_string())?;
    if let Some(a) = &agent {
        policy = berth_core::with_agent_allow(policy, a).map_err(|e| e.to_string())?;
    }
    let env_memory = berth_core::env_memory(&app.store, &repo).map_err(|e| e.to_string())?;
    let memory_mib = berth_core::attempt_memory(
        None,
        env_memory,
        agent.as_ref().map_or(0, |a| a.memory),
        512,
    );
    // As the CLI: what the machine cannot hold (a repo's [env] memory included) is refused.
    berth_core::check_memory(
        &app.store,
        memory_mib as u64 * req.attempts as u64,
        berth_core::host_memory_mib(),
        0.75,
    )
    .map_err(|e| e.to_string())?;
    let prepared = berth_core::prepare_task(
        &app.store,
        &NewTask {
            repo: &repo,
            base_ref: &req.base,
            attempts: req.attempts,
            title: &req.title,
            command: &command,
            include_uncommitted: false,
            // What the repo's environment asks, at least what the agent needs (opencode
            // more than the default).
            memory_mib,
            policy,
            with_env: true,
            secrets,
            agent,
            cpus: 1,
            history: berth_core::history_depth(&app.store).map_err(|e| e.to_string())?,
            limits: Default::default(),
        },
        now_ms,
    )
    .map_err(|e| e.to_string())?;
    let opts = SuperviseOptions {
        accel: None,
        cpus: 1,
        boot_timeout_s: 300,
    };
    let ids: Vec<_> = prepared.attempts.iter().map(|a| a.id).collect();
    for started in berth_core::spawn_supervisors(&app.berth, &app.store, &ids, &opts, now_ms) {
        started.map_err(|e| e.to_string())?;
    }
    Ok(prepared.attempts.iter().map(|a| a.id.to_string()).collect())
}

/// The attempt's terminal output from `offset` on (at most 256 KiB per call), as raw bytes
/// (no JSON number array): 8 bytes of little-endian start offset (the offset asked for, or
/// 0 when the capped log rotated past it), then the output.
#[tauri::command(async)]
pub fn attempt_log(app: State<'_, App>, id: String, offset: u64) -> Res<tauri::ipc::Response> {
    let path = app.store.output_log(self::id(&id)?);
    let chunk = berth_core::read_log_from(&path, offset, 256 * 1024).map_err(|e| e.to_string())?;
    let mut body = Vec::with_capacity(8 + chunk.data.len());
    body.extend_from_slice(&chunk.start.to_le_bytes());
    body.extend_from_slice(&chunk.data);
    Ok(tauri::ipc::Response::new(body))
}

/// An approval request from a running attempt, for the window's banner.
#[derive(Clone, Serialize)]
pub struct ApprovalEvent {
    attempt: String,
    id: u32,
    host: String,
    port: u16,
}

/// A question that needs no answer any more.
#[derive(Clone, Serialize)]
pub struct ApprovalClosedEvent {
    attempt: String,
    id: u32,
}

/// The app's connection to a running attempt (made on first use, or by the watcher for
/// every running attempt so approval requests reach the window).
pub fn terminal(app: &App, handle: &tauri::AppHandle, id: &str) -> Res<berth_core::ClientWriter> {
    let mut terms = app.terminals.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = terms.get(id) {
        return Ok(w.clone());
    }
    let socket = app.store.socket(self::id(id)?);
    let client = SupervisorClient::connect(&socket).map_err(|e| e.to_string())?;
    client.attach(None).map_err(|e| e.to_string())?;
    let writer = client.writer();
    // Output is read from the log; this connection carries input and approval requests.
    let handle = handle.clone();
    let attempt = id.to_string();
    std::thread::spawn(move || {
        let mut c = client;
        while let Ok(msg) = c.recv() {
            match msg {
                Message::ApprovalRequest { id, host, port } => {
                    crate::notify::show(crate::notify::approval_notice(&attempt, &host, port));
                    let ev = ApprovalEvent {
                        attempt: attempt.clone(),
                        id,
                        host,
                        port,
                    };
                    let _ = tauri::Emitter::emit(&handle, "approval", ev);
                }
                // Answered in another window or terminal, or expired: drop the banner.
                Message::ApprovalClosed { id, .. } => {
                    let ev = ApprovalClosedEvent {
                        attempt: attempt.clone(),
                        id,
                    };
                    let _ = tauri::Emitter::emit(&handle, "approval-closed", ev);
                }
                _ => {}
            }
        }
        let app = tauri::Manager::state::<App>(&handle);
        app.terminals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&attempt);
    });
    terms.insert(id.to_string(), writer.clone());
    Ok(writer)
}

/// Keystrokes from the attempt's terminal view.
#[tauri::command(async)]
pub fn attempt_input(
    app: State<'_, App>,
    handle: tauri::AppHandle,
    id: String,
    data: String,
) -> Res<()> {
    let w = terminal(&app, &handle, &id)?;
    if w.send(&Message::Stdin {
        id: 0,
        data: data.into_bytes(),
    })
    .is_err()
    {
        app.terminals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        return Err(format!("attempt {id} is not running"));
    }
    Ok(())
}

#[tauri::command(async)]
pub fn attempt_resize(
    app: State<'_, App>,
    handle: tauri::AppHandle,
    id: String,
    rows: u16,
    cols: u16,
) -> Res<()> {
    let w = terminal(&app, &handle, &id)?;
    w.send(&Message::Resize {
        id: 0,
        size: WinSize { rows, cols },
    })
    .map_err(|e| e.to_string())
}

#[derive(Serialize)]
pub struct DiffDto {
    patch: String,
    files: usize,
    insertions: usize,
    deletions: usize,
}

type Diff = (String, (usize, usize, usize));

impl From<Diff> for DiffDto {
    fn from((patch, (files, insertions, deletions)): Diff) -> Self {
        DiffDto {
            patch,
            files,
            insertions,
            deletions,
        }
    }
}

#[tauri::command(async)]
pub fn attempt_diff(app: State<'_, App>, id: String) -> Res<DiffDto> {
    berth_core::diff_attempt(&app.store, self::id(&id)?, &Default::default())
        .map(DiffDto::from)
        .map_err(|e| e.to_string())
}

/// What attempt `b` did differently from attempt `a`.
#[tauri::command(async)]
pub fn attempt_compare(app: State<'_, App>, a: String, b: String) -> Res<DiffDto> {
    berth_core::compare_attempts(&app.store, id(&a)?, id(&b)?, &Default::default())
        .map(DiffDto::from)
        .map_err(|e| e.to_string())
}

/// Opens the attempt's branch in the user's editor (pulling it first if needed).
#[tauri::command(async)]
pub fn attempt_open(handle: tauri::AppHandle, app: State<'_, App>, id: String) -> Res<String> {
    use tauri_plugin_dialog::{DialogExt, MessageDialogButtons, MessageDialogKind};
    // A command saved from the web view runs only after the user confirms it in a native
    // dialog, which the web view cannot draw or answer.
    if let Some(cmd) =
        berth_core::editor_needing_confirmation(&app.store).map_err(|e| e.to_string())?
    {
        let yes = handle
            .dialog()
            .message(format!(
                "\"Open in editor\" will run this command, saved in Berth's Settings:\n\n{}\n\nRun it now and from now on?",
                berth_core::escape_controls(&cmd)
            ))
            .title("Run a new editor command?")
            .kind(MessageDialogKind::Warning)
            .buttons(MessageDialogButtons::OkCancelCustom("Run it".into(), "Cancel".into()))
            .blocking_show();
        if !yes {
            return Err(format!(
                "not opened: the editor command `{cmd}` was not confirmed"
            ));
        }
        berth_core::confirm_editor_command(&app.store, &cmd).map_err(|e| e.to_string())?;
    }
    let visual = std::env::var("VISUAL").ok();
    let opened = berth_core::open_in_editor(
        &app.store,
        self::id(&id)?,
        visual.as_deref(),
        std::env::var_os("PATH").as_deref(),
        &Default::default(),
        now_ms,
        false,
    )
    .map_err(|e| e.to_string())?;
    Ok(format!(
        "opened {} ({}) with {}",
        opened.branch,
        opened.path.display(),
        opened.argv[0]
    ))
}

#[tauri::command(async)]
pub fn attempt_pull(app: State<'_, App>, id: String) -> Res<String> {
    let attempt = self::id(&id)?;
    let pulled = berth_core::pull_attempt(
        &app.store,
        attempt,
        None,
        false,
        &Default::default(),
        now_ms,
    )
    .map_err(|e| e.to_string())?;
    if let Some(i) = &pulled.imported {
        // The repo's cache is refreshed on what the user kept (in the background).
        let _ = berth_core::refresh_cache_after_pull(
            &app.berth,
            &app.store,
            attempt,
            &i.head.to_string(),
        );
    }
    Ok(match pulled.imported {
        Some(i) => format!(
            "pulled {id} as {} ({} file(s), +{}/-{})",
            i.branch, i.files_changed, i.insertions, i.deletions
        ),
        None => format!("attempt {id} changed nothing"),
    })
}

/// The repo's berth.toml: what it asks for, whether the user trusted this content, and the
/// policy attempts would get with it and the dialog's `network` and `allow`.
#[derive(serde::Serialize)]
pub struct RepoConfigPreview {
    #[serde(flatten)]
    view: berth_core::RepoConfigView,
    effective: String,
}

#[tauri::command(async)]
pub fn repo_config(
    app: State<'_, App>,
    repo: String,
    network: String,
    allow: Vec<String>,
) -> Res<RepoConfigPreview> {
    let repo = berth_core::repo_root(std::path::Path::new(&repo)).map_err(|e| e.to_string())?;
    let view = berth_core::repo_config(&app.store, &repo).map_err(|e| e.to_string())?;
    let mode: berth_core::Mode = network.parse()?;
    let effective = view
        .config
        .policy(Some(mode), &allow, &[], None)
        .map(|p| berth_core::describe_policy(&p))
        .unwrap_or_else(|e| e);
    Ok(RepoConfigPreview { view, effective })
}

/// Trusts the repo's berth.toml, if it still has the content the dialog showed (`sha256`).
#[tauri::command(async)]
pub fn repo_config_trust(
    app: State<'_, App>,
    repo: String,
    sha256: String,
) -> Res<berth_core::RepoConfigView> {
    let repo = berth_core::repo_root(std::path::Path::new(&repo)).map_err(|e| e.to_string())?;
    berth_core::trust_repo_config(&app.store, &repo, Some(&sha256)).map_err(|e| e.to_string())
}

#[tauri::command(async)]
pub fn attempt_stop(app: State<'_, App>, id: String) -> Res<()> {
    berth_core::stop_attempt(&app.store, self::id(&id)?, now_ms)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Why deleting the attempt would lose something (unpulled commits, a running VM), or `None`.
/// The Delete dialog shows the reason; "Delete anyway" passes `confirm` back.
#[tauri::command(async)]
pub fn attempt_removal_check(
    app: State<'_, App>,
    id: String,
) -> Res<Option<berth_core::RemovalBlocker>> {
    berth_core::removal_blocker(&app.store, self::id(&id)?, &Default::default())
        .map_err(|e| e.to_string())
}

/// Deletes an attempt. Without `confirm` the core refuses anything that would lose work;
/// with it, only exactly what the user confirmed in the dialog is discarded.
#[tauri::command(async)]
pub fn attempt_remove(app: State<'_, App>, id: String, confirm: Option<String>) -> Res<()> {
    let removal = match &confirm {
        Some(c) => berth_core::Removal::Discarding(c),
        None => berth_core::Removal::IfNothingIsLost,
    };
    berth_core::remove_attempt(
        &app.store,
        self::id(&id)?,
        removal,
        &Default::default(),
        now_ms,
    )
    .map_err(|e| e.to_string())
}

#[tauri::command(async)]
pub fn attempt_audit(app: State<'_, App>, id: String) -> Res<Vec<berth_core::AuditEvent>> {
    let db = app.store.db().map_err(|e| e.to_string())?;
    db.audit_events(self::id(&id)?).map_err(|e| e.to_string())
}

/// The user's answer in the approval banner: `once`, `always` or `deny`.
#[tauri::command(async)]
pub fn attempt_approve(
    app: State<'_, App>,
    handle: tauri::AppHandle,
    id: String,
    request: u32,
    decision: String,
) -> Res<()> {
    if !matches!(decision.as_str(), "once" | "always" | "deny") {
        return Err(format!("'{decision}' is not once, always or deny"));
    }
    let w = terminal(&app, &handle, &id)?;
    w.send(&Message::Approve {
        id: request,
        decision,
    })
    .map_err(|e| e.to_string())
}
