//! The attempt loop: a repo goes into N workspaces, each runs in its own VM, each result
//! comes back as a branch.

use std::path::Path;

use berth_db::{AttemptId, AttemptRecord, AttemptState, Db, DbError, TaskRecord};
use berth_git::{CreatedWorkspace, GitError, Imported, Limits};
use berth_proto::{ExecRequest, ExitStatus};
use berth_vm::agent::{AgentError, ExecIo};
use berth_vm::session::{BootOptions, SessionError, VmSession};
use berth_vm::{Accel, Hypervisor, Image, VmSpec};
use serde_json::json;
use thiserror::Error;

use crate::{Clock, Store};

#[derive(Debug, Error)]
pub enum TaskError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Vm(#[from] SessionError),
    #[error("{0}")]
    Refused(String),
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    pub repo: &'a Path,
    pub base_ref: &'a str,
    pub attempts: u32,
    pub title: &'a str,
    pub command: &'a [String],
    pub include_uncommitted: bool,
    pub memory_mib: u32,
    pub policy: berth_egress::Policy,
    /// Boot on the environment the repo's `[env]` asks for (see `env.rs`); `false` boots on
    /// the image alone, whatever the repo asks (benchmarks, tests without VMs).
    pub with_env: bool,
    /// Secrets bound to every attempt (see `secrets::bind_secrets`; each attempt gets its
    /// own phantoms).
    pub secrets: Vec<crate::secrets::SecretUse>,
    /// The coding agent the attempts run (see `agents.rs`): its CLI is installed on the
    /// attempt's root before it boots (`agent_layer.rs`). Its command is `command`.
    pub agent: Option<crate::agents::AgentPreset>,
    /// Guest CPUs per attempt.
    pub cpus: u32,
    /// Commits of the base's history each workspace gets (1: the base alone); see
    /// [`history_depth`].
    pub history: u32,
    /// The user's `--max-*` flags (see limits.rs).
    pub limits: crate::limits::LimitFlags,
}

/// A task with its attempts' workspaces ready to boot.
#[derive(Debug)]
pub struct PreparedTask {
    pub task: TaskRecord,
    pub attempts: Vec<AttemptRecord>,
    /// The user's working tree had uncommitted changes that the attempts do not include.
    pub left_out_uncommitted: bool,
    /// The base has submodules (`.gitmodules`): attempts get their folders empty.
    pub has_submodules: bool,
}

/// Appends a host-side audit event for `id`.
pub fn audit(
    db: &mut Db,
    clock: Clock,
    id: AttemptId,
    kind: &str,
    data: serde_json::Value,
) -> Result<(), DbError> {
    db.audit(id, clock(), kind, &data)
}

pub fn prepare_task(store: &Store, new: &NewTask, clock: Clock) -> Result<PreparedTask, TaskError> {
    // The base is checked before anything is written: a repo with no commits, or a base it
    // does not have, leaves no task, no attempt directory and no added repo behind.
    let base_commit = berth_git::resolve_commit(new.repo, new.base_ref)?;
    let has_submodules = berth_git::files_at(new.repo, base_commit, &[".gitmodules"], 1 << 20)
        .map(|f| !f.is_empty())
        .unwrap_or(false);
    // The environment is planned before anything is written: a refusal leaves no task.
    let env = match new.with_env {
        true => crate::env::plan_env(store, new.repo, new.base_ref)?,
        false => None,
    };
    let env_json = env
        .as_ref()
        .map(|e| serde_json::to_string(e).unwrap_or_default())
        .unwrap_or_default();
    // The repo's test command and limits as they are now: what the agent later writes
    // cannot change them.
    let repo_config = crate::trust::repo_config(store, new.repo)?.config;
    let test_plan = match repo_config.test {
        Some(t) => Some(t.plan().map_err(TaskError::Refused)?),
        None => None,
    };
    let limits = crate::limits::for_new_attempt(store, repo_config.limits.as_ref(), &new.limits)
        .map_err(TaskError::Refused)?;
    let uses = crate::secrets::task_secret_uses(store, new.repo, &new.secrets)?;
    // Checked before anything is written (each attempt binds its own phantoms below).
    crate::secrets::bind_secrets(store, &uses)?;
    let mut db = store.db()?;
    let now = clock() / 1000;
    let mut task = db.insert_task(TaskRecord {
        id: 0,
        title: new.title.to_string(),
        repo: new.repo.to_path_buf(),
        base_ref: new.base_ref.to_string(),
        base: String::new(),
        command: new.command.to_vec(),
        attempts: new.attempts,
        created_at: now,
    })?;
    let mut attempts = Vec::new();
    let mut left_out = false;
    for n in 1..=new.attempts {
        let id = AttemptId { task: task.id, n };
        let dir = store.attempt_dir(id);
        if dir.exists() {
            // Never reuse a directory that might hold someone's unpulled work.
            return Err(TaskError::Refused(format!(
                "{} already exists but the state database has no attempt {id}; move it away \
                 (it may hold work from an earlier berth) and try again",
                dir.display()
            )));
        }
        let made = crate::store::create_private_dir(&dir)
            .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", dir.display())))
            .and_then(|_| {
                Ok(berth_git::create_workspace(
                    new.repo,
                    new.base_ref,
                    &store.workspace(id),
                    new.include_uncommitted,
                    new.history,
                )?)
            });
        let CreatedWorkspace {
            base,
            start,
            left_out_uncommitted,
            pack,
            ..
        } = match made {
            Ok(m) => m,
            Err(e) => {
                // Nothing of a task that could not be made stays behind.
                let _ = std::fs::remove_dir_all(&dir);
                for a in &attempts {
                    let a: &AttemptRecord = a;
                    let _ = std::fs::remove_dir_all(store.attempt_dir(a.id));
                    let _ = db.delete_attempt(a.id);
                }
                let _ = db.delete_task_if_empty(task.id);
                return Err(e);
            }
        };
        left_out |= left_out_uncommitted;
        if let Some(plan) = &test_plan {
            crate::repo_test::save_plan(store, id, plan)
                .map_err(|e| TaskError::Refused(format!("cannot write {}: {e}", dir.display())))?;
        }
        crate::limits::save(store, id, &limits)
            .map_err(|e| TaskError::Refused(format!("cannot write {}: {e}", dir.display())))?;
        if let Some(pack) = &pack {
            // Only a speed-up for collecting: without it, everything is copied.
            let _ = std::fs::write(store.base_pack(id), pack);
        }
        let rec = AttemptRecord {
            id,
            state: AttemptState::Created,
            repo: new.repo.to_path_buf(),
            base: base.to_string(),
            start: start.to_string(),
            command: new.command.to_vec(),
            memory_mib: new.memory_mib,
            exit_code: None,
            error: None,
            branch: None,
            pulled_head: None,
            files_changed: None,
            insertions: None,
            deletions: None,
            supervisor_pid: None,
            supervisor_start: None,
            created_at: now,
            updated_at: now,
            policy: serde_json::to_string(&new.policy).unwrap_or_default(),
            env: env_json.clone(),
            secrets: if uses.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&crate::secrets::bind_secrets(store, &uses)?)
                    .unwrap_or_default()
            },
            agent: new
                .agent
                .as_ref()
                .map(|a| serde_json::to_string(a).unwrap_or_default())
                .unwrap_or_default(),
            cpus: new.cpus.max(1),
        };
        db.save_attempt(&rec)?;
        audit(
            &mut db,
            clock,
            id,
            "lifecycle",
            json!({"event": "created", "repo": new.repo, "base_ref": new.base_ref, "base": rec.base, "command": new.command, "policy": new.policy}),
        )?;
        attempts.push(rec);
    }
    task.base = attempts.first().map(|a| a.base.clone()).unwrap_or_default();
    db.set_task_base(task.id, &task.base)?;
    // The repo shows in the app's Repos section from its first task on.
    db.add_repo(new.repo, now)?;
    Ok(PreparedTask {
        task,
        attempts,
        left_out_uncommitted: left_out,
        has_submodules,
    })
}

/// How attempt VMs are made.
#[derive(Debug, Clone)]
pub struct VmSettings {
    pub image: Image,
    /// What of the host goes into images and environments (its release and apt sources).
    pub host: Vec<u8>,
    /// `qemu-img`, for cache generations.
    pub qemu_img: std::path::PathBuf,
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    pub boot: BootOptions,
}

impl VmSettings {
    pub fn spec(&self, store: &Store, id: AttemptId, network: bool) -> VmSpec {
        VmSpec {
            name: store.vm_name(id),
            image: self.image.clone(),
            share: Some(store.workspace(id)),
            share_is_berths: true,
            memory_mib: self.memory_mib,
            cpus: self.cpus,
            accel: self.accel,
            extra_kernel_args: Vec::new(),
            network,
            root: None,
            cache: None,
            tcg_cache_mib: None,
            private_boot_files: false,
        }
    }
}

/// Marks the attempt failed with `error` (and audits it).
pub fn set_failed(
    db: &mut Db,
    clock: Clock,
    id: AttemptId,
    error: &str,
) -> Result<AttemptRecord, DbError> {
    set_state(
        db,
        clock,
        id,
        AttemptState::Failed,
        json!({ "error": error }),
    )
}

/// Records a state change (and the error, if any) with its audit event.
pub fn set_state(
    db: &mut Db,
    clock: Clock,
    id: AttemptId,
    state: AttemptState,
    detail: serde_json::Value,
) -> Result<AttemptRecord, DbError> {
    let now = clock() / 1000;
    let (rec, ()) = db.update_attempt(id, |a| {
        a.state = state;
        a.updated_at = now;
        if let Some(code) = detail.get("exit_code").and_then(|c| c.as_i64()) {
            a.exit_code = Some(code as i32);
        }
        if let Some(e) = detail.get("error").and_then(|e| e.as_str()) {
            a.error = Some(e.to_string());
        }
        if state.is_live() {
            a.error = None;
        }
    })?;
    let mut data = json!({"event": state.as_str()});
    if let (Some(obj), Some(extra)) = (data.as_object_mut(), detail.as_object()) {
        obj.extend(extra.clone());
    }
    db.audit(id, clock(), "lifecycle", &data)?;
    Ok(rec)
}

/// The request that runs an attempt's command. Its environment names the attempt
/// (`BERTH_ATTEMPT`) and carries the task's prompt (`BERTH_PROMPT`, the title the user
/// gave it), so an agent command can say `claude -p "$BERTH_PROMPT"`.
pub fn attempt_request(
    store: &Store,
    rec: &AttemptRecord,
    prompt: &str,
    pty: Option<berth_proto::WinSize>,
) -> ExecRequest {
    let mut env = vec![
        ("BERTH_ATTEMPT".to_string(), rec.id.to_string()),
        ("BERTH_PROMPT".to_string(), prompt.to_string()),
    ];
    env.extend(crate::egress::proxy_env(&crate::egress::attempt_policy(
        &rec.policy,
    )));
    if let Ok(Some(crate::env::EnvPlan {
        cache: Some(cache), ..
    })) = attempt_env(rec)
    {
        env.extend(crate::env_config::cache_env(&cache.presets));
    }
    // Bound secrets: the phantom where the program expects its key, and the gateway's URL.
    env.extend(crate::secrets::secret_env(
        store,
        &crate::secrets::attempt_secrets(&rec.secrets),
    ));
    ExecRequest {
        argv: rec.command.clone(),
        env,
        cwd: Some("/work".into()),
        user: None,
        pty,
    }
}

/// Starts the attempt's egress proxy (when it has a network) and boots its VM, on its
/// environment (built first if missing, with `progress`); a failure is recorded on the
/// attempt with its reason. The proxy must live as long as the VM.
pub(crate) fn boot_attempt<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    rec: &AttemptRecord,
    clock: Clock,
    approver: Option<berth_egress::Approver>,
    progress: &mut dyn FnMut(&str),
) -> Result<(VmSession<H::Vm>, Option<berth_egress::EgressProxy>), TaskError> {
    let policy = crate::egress::attempt_policy(&rec.policy);
    let uses = crate::secrets::attempt_secrets(&rec.secrets);
    let booted =
        attempt_root(store, hv, settings, rec, clock, progress).and_then(|(root, cache)| {
            // Bound secrets need the gateway, which lives in the proxy: a NIC even when the
            // network policy is off (the proxy then refuses everything else).
            let network = policy.mode != berth_egress::Mode::Off || !uses.is_empty();
            let mut spec = settings.spec(store, rec.id, network);
            spec.root = root;
            spec.cache = cache.map(berth_vm::CacheDisk::Overlay);
            let sink = crate::egress::audit_sink(store, rec.id, clock);
            let secrets = crate::secrets::gateway_bindings(store, &uses)?;
            let policy = berth_egress::Policy {
                max_connections: Some(crate::limits::attempt_limits(store, rec.id).connections),
                ..policy.clone()
            };
            crate::egress::start_proxy(
                &settings.boot.run_root,
                &spec.name,
                &policy,
                sink,
                approver,
                secrets,
            )
            .and_then(|proxy| {
                let mut session = VmSession::boot(hv, &spec, &settings.boot)?;
                // Interception: the guest trusts the attempt's CA before anything runs.
                if let Some(pem) = proxy.as_ref().and_then(|p| p.ca_pem())
                    && let Err(e) = crate::secrets::install_guest_ca(&mut session.agent, pem)
                {
                    session.kill();
                    return Err(e);
                }
                Ok((session, proxy))
            })
        });
    if let Err(e) = &booted {
        let mut db = store.db()?;
        if settings
            .boot
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst))
        {
            // Stopped while booting: what the user asked, not a failure.
            set_state(
                &mut db,
                clock,
                rec.id,
                AttemptState::Stopped,
                json!({"error": crate::STOPPED_BY_USER}),
            )?;
        } else {
            set_failed(&mut db, clock, rec.id, &e.to_string())?;
        }
    }
    booted
}

/// The root layer the attempt boots on (its environment's, built if missing, or `None` for
/// the image's own) and the cache generation its throwaway cache overlay sits on.
#[allow(clippy::type_complexity)]
fn attempt_root<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    rec: &AttemptRecord,
    clock: Clock,
    progress: &mut dyn FnMut(&str),
) -> Result<(Option<berth_vm::RootLayer>, Option<berth_vm::RootLayer>), TaskError> {
    let (root, cache) = env_root(store, hv, settings, rec, clock, progress)?;
    let Some(agent) = attempt_agent(rec)?.filter(|a| !a.fetch.is_empty()) else {
        return Ok((root, cache));
    };
    // The agent's CLI, installed on whatever the attempt would boot on.
    let (base, on) = match root {
        Some(r) => {
            let on = match attempt_env(rec)? {
                Some(p) => format!("environment {}", p.short_id()),
                None => "the environment".into(),
            };
            (r, on)
        }
        None => (
            berth_vm::RootLayer {
                path: settings.image.rootfs(),
                format: "raw",
            },
            "the image".to_string(),
        ),
    };
    let (layer, _) = crate::agent_layer::ensure_agent_layer(
        store,
        hv,
        settings,
        &agent,
        base,
        &on,
        clock() / 1000,
        progress,
    )?;
    Ok((
        Some(berth_vm::RootLayer {
            path: layer.layer,
            format: "qcow2",
        }),
        cache,
    ))
}

/// An attempt's root layer (`None`: the image's) and cache generation.
pub(crate) type BuiltLayers = (Option<berth_vm::RootLayer>, Option<berth_vm::RootLayer>);

/// What [`attempt_root`] would give, if everything it needs is built already (its
/// environment, its cache disk, its agent's layer); `None` when something would have to be
/// built first. Nothing is made.
pub(crate) fn built_layers(
    store: &Store,
    image: &Image,
    rec: &AttemptRecord,
) -> Result<Option<BuiltLayers>, TaskError> {
    let (root, cache) = match attempt_env(rec)? {
        Some(plan) => {
            let id = crate::env::env_id_on(&plan.id, image);
            let Some(env) = crate::env::find_env(store, &id) else {
                return Ok(None);
            };
            let cache = match &plan.cache {
                Some(_) => match crate::cache::peek_generation(store, &plan.repo) {
                    Some(g) => Some(g),
                    None => return Ok(None),
                },
                None => None,
            };
            (Some(env.root_layer()), cache)
        }
        None => (None, None),
    };
    let Some(agent) = attempt_agent(rec)?.filter(|a| !a.fetch.is_empty()) else {
        return Ok(Some((root, cache)));
    };
    let base = root.map_or_else(|| image.rootfs(), |r| r.path);
    Ok(
        crate::agent_layer::find_agent_layer(store, &agent, &base).map(|layer| {
            (
                Some(berth_vm::RootLayer {
                    path: layer.layer,
                    format: "qcow2",
                }),
                cache,
            )
        }),
    )
}

/// The agent the attempt runs, if any.
pub(crate) fn attempt_agent(
    rec: &AttemptRecord,
) -> Result<Option<crate::agents::AgentPreset>, TaskError> {
    record_json(rec, &rec.agent, "agent")
}

/// A JSON column of the attempt's record (empty: none).
fn record_json<T: serde::de::DeserializeOwned>(
    rec: &AttemptRecord,
    text: &str,
    what: &str,
) -> Result<Option<T>, TaskError> {
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some).map_err(|e| {
        TaskError::Refused(format!(
            "attempt {}: its {what} record is unreadable: {e}",
            rec.id
        ))
    })
}

/// The environment's root layer (built if missing) and cache generation, if it has one.
#[allow(clippy::type_complexity)]
fn env_root<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    rec: &AttemptRecord,
    clock: Clock,
    progress: &mut dyn FnMut(&str),
) -> Result<(Option<berth_vm::RootLayer>, Option<berth_vm::RootLayer>), TaskError> {
    let Some(plan) = attempt_env(rec)? else {
        return Ok((None, None));
    };
    let env = crate::env::env_for_boot(store, hv, settings, &plan, clock, progress)?;
    let cache = match &plan.cache {
        Some(c) => Some(crate::cache::current_generation(store, &plan.repo, c.size)?),
        None => None,
    };
    Ok((Some(env.root_layer()), cache))
}

/// The environment planned for the attempt, if any.
pub(crate) fn attempt_env(rec: &AttemptRecord) -> Result<Option<crate::env::EnvPlan>, TaskError> {
    record_json(rec, &rec.env, "environment")
}

/// Boots the attempt's VM on its workspace, runs its command as `agent` in /work in this
/// process, records the exit code, and stops the VM (`berth run`; `berth task new` uses a
/// detached supervisor instead). An interruption stops the VM and keeps the workspace.
/// `approver` answers questions about unlisted names (`None`: denied at once).
pub fn run_attempt<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    id: AttemptId,
    clock: Clock,
    approver: Option<berth_egress::Approver>,
    io: &mut dyn ExecIo,
) -> Result<Option<ExitStatus>, TaskError> {
    let mut db = store.db()?;
    let pid = std::process::id();
    db.update_attempt(id, |a| {
        a.supervisor_pid = Some(pid);
        a.supervisor_start = berth_vm::rundir::start_time(pid);
    })?;
    let rec = set_state(&mut db, clock, id, AttemptState::Booting, json!({}))?;
    let mut progress = |line: &str| io.stderr(format!("[berth] {line}\n").as_bytes());
    let (mut session, _proxy) =
        boot_attempt(store, hv, settings, &rec, clock, approver, &mut progress)?;
    // The pool keeps VMs of this attempt's shape waiting (its environment is built now), for
    // the next attempt, as after a supervised boot.
    if let Ok(exe) = std::env::current_exe() {
        let _ = crate::pool::refill_after(&exe, store, &settings.image, &rec, settings.cpus);
    }
    set_state(&mut db, clock, id, AttemptState::Running, json!({}))?;
    let title = db.task(id.task)?.title;
    if let Some(previous) = crate::followup::take_followup(store, id, &title) {
        let _ = crate::followup::commit_step(&mut session.agent, &previous);
    }
    let prompt = crate::followup::current_prompt(store, id, &title);
    let request = attempt_request(store, &rec, &prompt, None);
    audit(
        &mut db,
        clock,
        id,
        "command",
        json!({"phase": "start", "argv": request.argv, "cwd": request.cwd}),
    )?;
    let run_dir = session.vm.as_ref().and_then(|vm| {
        berth_vm::RunningVm::console_log(vm)
            .parent()
            .map(Path::to_path_buf)
    });
    let watch = run_dir.map(|dir| {
        crate::limits::BackgroundWatch::start(
            crate::limits::LimitWatch::new(store, id, Some(&dir)),
            dir,
        )
    });
    let env = request.env.clone();
    let result = session.agent.exec(request, io);
    if let Some(hit) = watch.and_then(|w| w.finish()) {
        session.kill();
        crate::limits::record_stop(&mut db, clock, id, &hit)?;
        return Ok(None);
    }
    match result {
        Ok(status) => {
            audit(
                &mut db,
                clock,
                id,
                "command",
                json!({"phase": "end", "exit_code": status.shell_code()}),
            )?;
            // The repo's test command judges the attempt, as a supervised attempt's does.
            if let Some(plan) = crate::repo_test::attempt_plan(store, id) {
                let result = run_repo_test(&mut session.agent, &plan, env, status.shell_code(), io);
                audit(
                    &mut db,
                    clock,
                    id,
                    "test",
                    serde_json::to_value(&result).unwrap_or_default(),
                )?;
            }
            session.shutdown();
            set_state(
                &mut db,
                clock,
                id,
                AttemptState::Exited,
                json!({"exit_code": status.shell_code()}),
            )?;
            Ok(Some(status))
        }
        Err(AgentError::Interrupted) => {
            session.shutdown();
            set_state(
                &mut db,
                clock,
                id,
                AttemptState::Stopped,
                json!({"error": "interrupted"}),
            )?;
            Ok(None)
        }
        Err(e) => {
            session.keep_console();
            // The channel broke: if QEMU is gone, why it went is the better answer.
            let error = match session.vm_problem(std::time::Duration::from_secs(2)) {
                Some(problem) => format!("{problem} ({e})"),
                None => e.to_string(),
            };
            session.kill();
            set_failed(&mut db, clock, id, &error)?;
            Err(SessionError::from(e).into())
        }
    }
}

/// `berth run`'s side of the repo's test command: its output with the attempt's, its
/// result audited (`berth compare` and the app read it there).
fn run_repo_test(
    agent: &mut berth_vm::agent::AgentClient,
    plan: &crate::repo_test::TestPlan,
    env: Vec<(String, String)>,
    code: i32,
    io: &mut dyn ExecIo,
) -> crate::repo_test::TestResult {
    let io = std::cell::RefCell::new(io);
    io.borrow_mut().stdout(
        format!(
            "\n[berth] the agent exited with {code}; running the repo's tests: {}\n",
            crate::table_cell(&plan.command, 200)
        )
        .as_bytes(),
    );
    let stop = || io.borrow_mut().interrupted();
    let result = crate::repo_test::run(agent, plan, env, &stop, &mut |data| {
        io.borrow_mut().stdout(data)
    });
    io.borrow_mut()
        .stdout(format!("[berth] tests {}\n", result.words()).as_bytes());
    result
}

/// The outcome of pulling one attempt.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub imported: Option<Imported>,
    pub warnings: Vec<String>,
    /// The branch already was this result (a second pull); nothing was written.
    pub up_to_date: bool,
}

pub(crate) fn oid(s: &str) -> Result<berth_git::Oid, TaskError> {
    berth_git::Oid::from_str(s).map_err(|e| TaskError::Git(GitError::from(e)))
}

/// Collects an attempt's result. The host reads a workspace only while no guest can change
/// it: a running guest could swap a directory for a symlink between two reads and have the
/// host store its files (every front end's diff, compare and pull go through here).
pub(crate) fn collect(
    store: &Store,
    rec: &AttemptRecord,
    limits: &Limits,
) -> Result<berth_git::Collected, TaskError> {
    if rec.state.is_live() {
        return Err(TaskError::Refused(format!(
            "attempt {id} is still {}; Berth reads a workspace only while its guest cannot \
             change it: `berth stop {id}` first, or wait for it to finish",
            rec.state,
            id = rec.id
        )));
    }
    let pack = std::fs::read_to_string(store.base_pack(rec.id)).unwrap_or_default();
    let shared = (!pack.is_empty()).then(|| berth_git::BaseObjects {
        repo: &rec.repo,
        pack: pack.trim(),
    });
    Ok(berth_git::collect(
        &store.workspace(rec.id),
        &store.host_git(rec.id),
        oid(&rec.base)?,
        oid(&rec.start)?,
        &rec.id.to_string(),
        limits,
        rec.updated_at as i64,
        shared,
    )?)
}

/// The user moved the repo of attempt `id`'s task to `repo`: the task and its attempts point
/// there from now on. Refused unless `repo` is a repository that has the task's base commit
/// (the same project, not another one).
pub fn move_attempt_repo(
    store: &Store,
    id: AttemptId,
    repo: &Path,
    clock: Clock,
) -> Result<(), TaskError> {
    let rec = store.db()?.attempt(id)?;
    let root = crate::repos::repo_root(repo)?;
    if root == rec.repo {
        return Ok(());
    }
    if berth_git::resolve_commit(&root, &rec.base).is_err() {
        return Err(TaskError::Refused(format!(
            "{} has no commit {}, the base of {id}: it is not the repo this task was made on",
            root.display(),
            &rec.base[..12.min(rec.base.len())]
        )));
    }
    let mut db = store.db()?;
    db.move_task_repo(id.task, &root)?;
    audit(
        &mut db,
        clock,
        id,
        "lifecycle",
        json!({"event": "repo moved", "from": rec.repo, "to": root}),
    )?;
    Ok(())
}

/// Collects the attempt's result and imports it into its repo as `branch` (default
/// `berth/<task>/<n>`). Refuses to overwrite an existing branch unless `force`.
pub fn pull_attempt(
    store: &Store,
    id: AttemptId,
    branch: Option<&str>,
    force: bool,
    limits: &Limits,
    clock: Clock,
) -> Result<Pulled, TaskError> {
    let mut db = store.db()?;
    let rec = db.attempt(id)?;
    if rec.state.is_live() {
        return Err(TaskError::Refused(format!(
            "attempt {id} is still {}; `berth stop {id}` first, or wait for it to finish",
            rec.state
        )));
    }
    if !rec.repo.join(".git").exists() {
        return Err(TaskError::Refused(format!(
            "the repo {} is not there any more; if it moved, pull with `berth pull {id} --repo \
             NEW_PATH`",
            rec.repo.display()
        )));
    }
    let collected = collect(store, &rec, limits)?;
    let branch = branch
        .map(str::to_string)
        .unwrap_or_else(|| format!("berth/{}/{}", id.task, id.n));
    // The same result pulled again: nothing to do, and no --force needed.
    if let (Some(pulled), Some(was)) = (&rec.pulled_head, &rec.branch)
        && *was == branch
        && !collected.commits.is_empty()
        && berth_git::already_imported(
            &store.host_git(id),
            collected.head,
            &rec.repo,
            &branch,
            oid(pulled)?,
        )?
    {
        let mut warnings = collected.warnings;
        warnings.push(format!(
            "already up to date: {branch} is this attempt's result"
        ));
        return Ok(Pulled {
            imported: Some(berth_git::Imported {
                branch,
                head: oid(pulled)?,
                commits: collected.commits.len(),
                files_changed: rec.files_changed.unwrap_or(0) as usize,
                insertions: rec.insertions.unwrap_or(0) as usize,
                deletions: rec.deletions.unwrap_or(0) as usize,
                replaced: None,
            }),
            warnings,
            up_to_date: true,
        });
    }
    // A newer result of this attempt (after a follow-up) replaces what it put there last:
    // the branch is still exactly that, so nothing of the user's is on it.
    let ours = rec.branch.as_deref() == Some(branch.as_str())
        && rec
            .pulled_head
            .as_deref()
            .and_then(|p| oid(p).ok())
            .is_some_and(|p| berth_git::branch_is_at(&rec.repo, &branch, p));
    let imported = berth_git::import(
        &store.host_git(id),
        &collected,
        &rec.repo,
        &branch,
        force || ours,
        &id.to_string(),
    )?;
    if let Some(i) = &imported {
        db.update_attempt(id, |a| {
            a.branch = Some(i.branch.clone());
            a.pulled_head = Some(i.head.to_string());
            a.files_changed = Some(i.files_changed as u32);
            a.insertions = Some(i.insertions as u32);
            a.deletions = Some(i.deletions as u32);
        })?;
        audit(
            &mut db,
            clock,
            id,
            "pull",
            json!({
                "branch": i.branch,
                "head": i.head.to_string(),
                "commits": i.commits,
                "files_changed": i.files_changed,
                "replaced": i.replaced.as_ref().map(|r| json!({
                    "old": r.old.to_string(),
                    "dropped": r.dropped.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                })),
            }),
        )?;
    }
    Ok(Pulled {
        imported,
        warnings: collected.warnings,
        up_to_date: false,
    })
}

/// The attempt's changes against its base as a unified diff, and (files, +, -); while it
/// runs, as its guest reports them now.
pub fn diff_attempt(
    store: &Store,
    id: AttemptId,
    limits: &Limits,
) -> Result<(String, (usize, usize, usize)), TaskError> {
    let rec = store.db()?.attempt(id)?;
    if rec.state.is_live() {
        // A live guest's own snapshot (see live_diff.rs): the host reads no live workspace.
        return crate::live_diff::live_diff(store, id, &rec.start);
    }
    let collected = collect(store, &rec, limits)?;
    Ok(berth_git::diff_patch(
        &store.host_git(id),
        collected.start,
        collected.head,
    )?)
}

/// Marks live attempts whose supervisor is gone (crashed, killed) as stopped, so listings
/// tell the truth. Returns the attempts it changed.
pub fn reconcile(store: &Store, clock: Clock) -> Result<Vec<AttemptId>, TaskError> {
    // Pooled VMs whose slot process died leave nothing behind either.
    crate::pool::tidy(store);
    let mut db = store.db()?;
    let mut changed = Vec::new();
    for a in db.attempts()? {
        if !a.state.is_live() {
            continue;
        }
        let alive = match (a.supervisor_pid, a.supervisor_start) {
            (Some(pid), Some(start)) => berth_vm::rundir::process_alive(pid, start),
            // Marked booting by a `berth` that is spawning its supervisor right now.
            _ => a.state == AttemptState::Booting && clock() / 1000 < a.updated_at + 30,
        };
        if !alive {
            // Re-check under the write lock: the supervisor may have recorded how the
            // attempt ended between our read and now; that record wins.
            let now = clock() / 1000;
            // Its own last words, when it said why it gave up (no image, a bad record): a
            // failure the user can act on, not a stop that `berth start` would repeat.
            let (state, error) = match supervisor_error(store, a.id) {
                Some(why) => (
                    AttemptState::Failed,
                    format!("its supervisor failed: {why}"),
                ),
                None => (
                    AttemptState::Stopped,
                    "its supervisor died (crashed or was killed); `berth start` boots it again"
                        .to_string(),
                ),
            };
            let (_, marked) = db.update_attempt(a.id, |r| {
                let same = r.state.is_live()
                    && r.supervisor_pid == a.supervisor_pid
                    && r.supervisor_start == a.supervisor_start;
                if same {
                    r.state = state;
                    r.error = Some(error.clone());
                    r.updated_at = now;
                }
                same
            })?;
            if marked {
                let _ = std::fs::remove_file(store.socket(a.id));
                let event = if state == AttemptState::Failed {
                    "failed"
                } else {
                    "stopped"
                };
                audit(
                    &mut db,
                    clock,
                    a.id,
                    "lifecycle",
                    json!({"event": event, "error": error}),
                )?;
                changed.push(a.id);
            }
        }
    }
    Ok(changed)
}

/// The error a dead supervisor printed last (`berth: error: ...` in its log), printable and
/// short; `None` when it said none (it crashed or was killed).
fn supervisor_error(store: &Store, id: AttemptId) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(store.supervisor_log(id)).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(8192))).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("berth: error: "))?;
    Some(crate::display::table_cell(line, 300))
}

/// Refuses an attempt that would push running attempts past `share` of the host's memory.
pub fn check_memory(
    store: &Store,
    want_mib: u64,
    host_total_mib: u64,
    share: f64,
) -> Result<(), TaskError> {
    let running: u64 = store
        .db()?
        .attempts()?
        .iter()
        .filter(|a| a.state.is_live())
        .map(|a| a.memory_mib as u64)
        .sum();
    let limit = (host_total_mib as f64 * share) as u64;
    if running + want_mib > limit {
        return Err(TaskError::Refused(format!(
            "starting {want_mib} MiB of attempts would put running attempts at {} MiB, over {}% of \
             this host's {host_total_mib} MiB ({limit} MiB); stop an attempt, lower --memory, or \
             raise --max-memory-share",
            running + want_mib,
            (share * 100.0).round()
        )));
    }
    Ok(())
}

/// Work in an attempt that no ref of its repo holds yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpulled {
    pub commits: usize,
    /// The attempt's result commit (in its host-side repository).
    pub head: String,
}

impl std::fmt::Display for Unpulled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} commit(s) not pulled", self.commits)
    }
}

/// The attempt's work that its repo does not hold yet (`None`: nothing unpulled).
pub fn unpulled_work(
    store: &Store,
    rec: &AttemptRecord,
    limits: &Limits,
) -> Result<Option<Unpulled>, TaskError> {
    if !store.workspace(rec.id).join(".git").is_dir() {
        return Ok(None);
    }
    let collected = collect(store, rec, limits)?;
    if collected.commits.is_empty() {
        return Ok(None);
    }
    // Work counts as kept only while a ref of the repo holds the pulled commit: after the
    // user deletes the branch the object lingers until `git gc`, but nothing keeps it.
    let pulled_tree = match &rec.pulled_head {
        Some(head) if berth_git::held_by_a_ref(&rec.repo, oid(head)?).unwrap_or(false) => {
            berth_git::tree_of(&rec.repo, oid(head)?).ok()
        }
        _ => None,
    };
    let result_tree = berth_git::tree_of(&store.host_git(rec.id), collected.head)?;
    if pulled_tree == Some(result_tree) {
        return Ok(None);
    }
    Ok(Some(Unpulled {
        commits: collected.commits.len(),
        head: collected.head.to_string(),
    }))
}

#[cfg(test)]
mod reconcile_tests {
    use berth_db::AttemptState;

    use super::*;
    use crate::{DataDir, NewTask, prepare_task};

    fn clock() -> u64 {
        1_700_000_000_000
    }

    /// A running attempt whose supervisor (a process that has exited) left `log`.
    fn orphan(dir: &std::path::Path, log: &str) -> (Store, AttemptId) {
        let repo = dir.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git2::Repository::init(&repo).unwrap();
        std::fs::write(repo.join("a.txt"), "a\n").unwrap();
        crate::test_repo::commit_files(&repo, &[], "init");
        let store = Store::new(DataDir::new(dir.join("data")));
        let command = vec!["true".to_string()];
        let task = prepare_task(
            &store,
            &NewTask {
                repo: &repo,
                base_ref: "HEAD",
                attempts: 1,
                title: "t",
                command: &command,
                include_uncommitted: false,
                memory_mib: 256,
                policy: Default::default(),
                with_env: false,
                secrets: Vec::new(),
                agent: None,
                cpus: 1,
                history: 1,
                limits: Default::default(),
            },
            clock,
        )
        .unwrap();
        let id = task.attempts[0].id;
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let pid = gone.id();
        gone.wait().unwrap();
        store
            .db()
            .unwrap()
            .update_attempt(id, |a| {
                a.state = AttemptState::Running;
                a.supervisor_pid = Some(pid);
                a.supervisor_start = Some(1);
            })
            .unwrap();
        std::fs::write(store.supervisor_log(id), log).unwrap();
        (store, id)
    }

    #[test]
    fn a_supervisor_that_said_why_it_gave_up_leaves_a_failure_saying_so() {
        let d = tempfile::tempdir().unwrap();
        let (store, id) = orphan(
            d.path(),
            "booting\nberth: error: no guest image is built; run `berth image build`\x1b[2J\n",
        );
        assert_eq!(reconcile(&store, clock).unwrap(), [id]);
        let a = store.db().unwrap().attempt(id).unwrap();
        assert_eq!(a.state, AttemptState::Failed);
        let error = a.error.unwrap();
        assert!(error.contains("no guest image is built"), "{error}");
        assert!(!error.contains('\x1b'), "{error:?}");
    }

    #[test]
    fn a_supervisor_that_died_silently_leaves_a_stop() {
        let d = tempfile::tempdir().unwrap();
        let (store, id) = orphan(d.path(), "booting\n");
        reconcile(&store, clock).unwrap();
        let a = store.db().unwrap().attempt(id).unwrap();
        assert_eq!(a.state, AttemptState::Stopped);
        assert!(a.error.unwrap().contains("supervisor died"));
    }
}
