//! Starting an attempt's supervisor as a detached process (the CLI and the app both do).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use berth_db::{AttemptId, AttemptState};
use serde_json::json;

use crate::task::{TaskError, set_state};
use crate::{Clock, Store};

/// VM settings a supervisor boots with (besides what the attempt records).
#[derive(Debug, Clone, Default)]
pub struct SuperviseOptions {
    /// `kvm` or `tcg`; `None` lets the supervisor choose.
    pub accel: Option<String>,
    pub cpus: u32,
    pub boot_timeout_s: u64,
}

/// Starts `<berth> --data-dir D __supervise ID` in its own session (closing the terminal or
/// the app does not reach it), logging to the attempt's supervisor.log, and records the
/// attempt as booting *before* the supervisor exists, so it never races us to say so.
pub fn spawn_supervisor(
    berth: &Path,
    store: &Store,
    id: AttemptId,
    opts: &SuperviseOptions,
    clock: Clock,
) -> Result<u32, TaskError> {
    let log_path = store.supervisor_log(id);
    let refused = |what: &str, e: std::io::Error| TaskError::Refused(format!("{what}: {e}"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| refused(&format!("cannot write {}", log_path.display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| refused("cannot duplicate the log", e))?;
    let mut cmd = Command::new(berth);
    cmd.arg("--data-dir")
        .arg(store.data().root())
        .arg("__supervise")
        .arg(id.to_string())
        .args(["--cpus", &opts.cpus.max(1).to_string()])
        .args(["--boot-timeout", &opts.boot_timeout_s.max(1).to_string()]);
    if let Some(a) = &opts.accel {
        cmd.args(["--accel", a]);
    }
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    // SAFETY: setsid is async-signal-safe; it detaches the child from our terminal session.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut db = store.db()?;
    // One compare-and-set under the database's write lock: of two starts at once, one
    // claims the attempt and the other is refused (they would share one run dir).
    let (rec, claimed) = db.update_attempt(id, |a| {
        if a.state.is_live() {
            return false;
        }
        a.supervisor_pid = None;
        a.supervisor_start = None;
        a.exit_code = None;
        a.state = AttemptState::Booting;
        true
    })?;
    if !claimed {
        return Err(TaskError::Refused(format!(
            "attempt {id} is already {}; it runs once at a time",
            rec.state
        )));
    }
    set_state(&mut db, clock, id, AttemptState::Booting, json!({}))?;
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let error = json!({"error": format!("cannot start the supervisor: {e}")});
            set_state(&mut db, clock, id, AttemptState::Failed, error)?;
            return Err(refused("cannot start the attempt supervisor", e));
        }
    };
    let pid = child.id();
    db.update_attempt(id, |a| {
        a.supervisor_pid = Some(pid);
        a.supervisor_start = berth_vm::rundir::start_time(pid);
    })?;
    // Reap it when it ends, so a long-lived front end (the app) keeps no zombies.
    let mut child = child;
    std::thread::spawn(move || child.wait());
    Ok(pid)
}

/// After a pull into a repo with a `[cache]`: a detached `berth cache refresh` on the pulled
/// commit, so the next attempts start warm on what the user kept (a setup VM fills the new
/// generation; nothing of the attempt's own bytes goes into it). Logs to
/// `<data>/logs/cache-refresh.log`. Returns `None` when the attempt's repo has no cache.
pub fn refresh_cache_after_pull(
    berth: &Path,
    store: &Store,
    id: AttemptId,
    commit: &str,
) -> Result<Option<u32>, TaskError> {
    let rec = store.db()?.attempt(id)?;
    let has_cache = crate::task::attempt_env(&rec)?.is_some_and(|p| p.cache.is_some());
    if !has_cache {
        return Ok(None);
    }
    let logs = store.data().logs();
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&logs)
        .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", logs.display())))?;
    let log_path = logs.join("cache-refresh.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| TaskError::Refused(format!("cannot write {}: {e}", log_path.display())))?;
    let log2 = log
        .try_clone()
        .map_err(|e| TaskError::Refused(format!("cannot duplicate the log: {e}")))?;
    let mut cmd = Command::new(berth);
    cmd.arg("--data-dir")
        .arg(store.data().root())
        .args(["cache", "refresh", "--repo"])
        .arg(&rec.repo)
        .args(["--base", commit])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is async-signal-safe; the refresh outlives the terminal or the app.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| TaskError::Refused(format!("cannot start the cache refresh: {e}")))?;
    let pid = child.id();
    std::thread::spawn(move || child.wait());
    Ok(Some(pid))
}
