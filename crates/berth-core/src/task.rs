//! The attempt loop: a repo goes into N workspaces, each runs in its own VM, each result
//! comes back as a branch.

use std::path::Path;

use berth_git::{CreatedWorkspace, GitError, Imported, Limits};
use berth_proto::{ExecRequest, ExitStatus};
use berth_vm::agent::{AgentError, ExecIo};
use berth_vm::session::{BootOptions, SessionError, VmSession};
use berth_vm::{Accel, Hypervisor, Image, VmSpec};
use thiserror::Error;

use crate::{AttemptId, AttemptRecord, Store, StoreError, TaskRecord};

#[derive(Debug, Error)]
pub enum TaskError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Vm(#[from] SessionError),
    #[error("attempt {0} has not been collected yet and cannot be diffed")]
    NotCollected(AttemptId),
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
    pub now_unix: u64,
}

/// A task with its attempts' workspaces ready to boot.
#[derive(Debug)]
pub struct PreparedTask {
    pub task: TaskRecord,
    pub attempts: Vec<AttemptRecord>,
    /// The user's working tree had uncommitted changes that the attempts do not include.
    pub left_out_uncommitted: bool,
}

pub fn prepare_task(store: &Store, new: &NewTask) -> Result<PreparedTask, TaskError> {
    let repo = new.repo;
    let task = store.new_task(TaskRecord {
        id: 0,
        title: new.title.to_string(),
        repo: repo.to_path_buf(),
        base_ref: new.base_ref.to_string(),
        base: String::new(),
        command: new.command.to_vec(),
        attempts: new.attempts,
        created_at: new.now_unix,
    })?;
    let mut attempts = Vec::new();
    let mut left_out = false;
    for n in 1..=new.attempts {
        let id = AttemptId { task: task.id, n };
        let dir = store.attempt_dir(id).join("work");
        let CreatedWorkspace {
            base,
            start,
            left_out_uncommitted,
            ..
        } = berth_git::create_workspace(repo, new.base_ref, &dir, new.include_uncommitted)?;
        left_out |= left_out_uncommitted;
        let rec = AttemptRecord {
            id,
            repo: repo.to_path_buf(),
            base: base.to_string(),
            start: start.to_string(),
            command: new.command.to_vec(),
            exit_code: None,
            error: None,
            branch: None,
            pulled_head: None,
        };
        store.save_attempt(&rec)?;
        attempts.push(rec);
    }
    let mut task = task;
    task.base = attempts.first().map(|a| a.base.clone()).unwrap_or_default();
    Ok(PreparedTask {
        task,
        attempts,
        left_out_uncommitted: left_out,
    })
}

/// How attempt VMs are made.
#[derive(Debug, Clone)]
pub struct VmSettings {
    pub image: Image,
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    pub boot: BootOptions,
}

/// Boots the attempt's VM on its workspace, runs its command as `agent` in /work, records
/// the exit code, and stops the VM. An interruption (`io.interrupted()`) stops the VM and
/// keeps the workspace.
pub fn run_attempt<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    rec: &mut AttemptRecord,
    io: &mut dyn ExecIo,
) -> Result<Option<ExitStatus>, TaskError> {
    let spec = VmSpec {
        name: format!("attempt-{}-{}", rec.id.task, rec.id.n),
        image: settings.image.clone(),
        share: Some(store.attempt_dir(rec.id).join("work")),
        memory_mib: settings.memory_mib,
        cpus: settings.cpus,
        accel: settings.accel,
        extra_kernel_args: Vec::new(),
    };
    let mut session = match VmSession::boot(hv, &spec, &settings.boot) {
        Ok(s) => s,
        Err(e) => {
            rec.error = Some(e.to_string());
            store.save_attempt(rec)?;
            return Err(e.into());
        }
    };
    let request = ExecRequest {
        argv: rec.command.clone(),
        env: vec![("BERTH_ATTEMPT".into(), rec.id.to_string())],
        cwd: Some("/work".into()),
        user: None,
        pty: None,
    };
    let result = session.agent.exec(request, io);
    match result {
        Ok(status) => {
            session.shutdown();
            rec.exit_code = Some(status.shell_code());
            store.save_attempt(rec)?;
            Ok(Some(status))
        }
        Err(AgentError::Interrupted) => {
            session.shutdown();
            rec.error = Some("interrupted".into());
            store.save_attempt(rec)?;
            Ok(None)
        }
        Err(e) => {
            session.keep_console();
            session.kill();
            rec.error = Some(e.to_string());
            store.save_attempt(rec)?;
            Err(SessionError::from(e).into())
        }
    }
}

/// The outcome of pulling one attempt.
#[derive(Debug)]
pub struct Pulled {
    pub imported: Option<Imported>,
    pub warnings: Vec<String>,
}

/// Collects the attempt's result and imports it into its repo as `branch` (default
/// `berth/<task>/<n>`). Refuses to overwrite an existing branch unless `force`.
pub fn pull_attempt(
    store: &Store,
    id: AttemptId,
    branch: Option<&str>,
    force: bool,
    limits: &Limits,
) -> Result<Pulled, TaskError> {
    let mut rec = store.load_attempt(id)?;
    let dir = store.attempt_dir(id);
    let parse = |s: &str| git2_oid(s);
    let collected = berth_git::collect(
        &dir.join("work"),
        &dir.join("host.git"),
        parse(&rec.base)?,
        parse(&rec.start)?,
        &id.to_string(),
        limits,
    )?;
    let branch = branch
        .map(str::to_string)
        .unwrap_or_else(|| format!("berth/{}/{}", id.task, id.n));
    let imported = berth_git::import(
        &dir.join("host.git"),
        &collected,
        &rec.repo,
        &branch,
        force,
        &id.to_string(),
    )?;
    if let Some(i) = &imported {
        rec.branch = Some(i.branch.clone());
        rec.pulled_head = Some(i.head.to_string());
        store.save_attempt(&rec)?;
    }
    Ok(Pulled {
        imported,
        warnings: collected.warnings,
    })
}

/// The attempt's changes against its base as a unified diff, and (files, +, -).
pub fn diff_attempt(
    store: &Store,
    id: AttemptId,
    limits: &Limits,
) -> Result<(String, (usize, usize, usize)), TaskError> {
    let rec = store.load_attempt(id)?;
    let dir = store.attempt_dir(id);
    let collected = berth_git::collect(
        &dir.join("work"),
        &dir.join("host.git"),
        git2_oid(&rec.base)?,
        git2_oid(&rec.start)?,
        &id.to_string(),
        limits,
    )?;
    Ok(berth_git::diff_patch(
        &dir.join("host.git"),
        collected.base,
        collected.head,
    )?)
}

fn git2_oid(s: &str) -> Result<berth_git::Oid, TaskError> {
    berth_git::Oid::from_str(s).map_err(|e| TaskError::Git(GitError::Git(e)))
}
