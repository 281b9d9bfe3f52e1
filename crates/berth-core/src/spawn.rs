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
    // A pooled VM of the attempt's shape, if one waits: no boot.
    if let Some(pid) = crate::pool::hand_over(berth, store, id, opts.cpus, clock)? {
        return Ok(pid);
    }
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
    // A stop asked of an earlier run is not one of this run's.
    let _ = std::fs::remove_file(store.stop_request(id));
    // Left by a `berth run` whose handoff never reached a supervisor: this one is attached
    // to, so its command gets a terminal.
    let _ = std::fs::remove_file(store.foreground_marker(id));
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

/// Starts the supervisors of `ids` side by side (a task's attempts): a handoff to a waiting
/// VM, tens of milliseconds mostly spent waiting on the slot, does not wait for the one
/// before it, nor does a cold start. Each result in the order of `ids`: one failing to start
/// does not keep the others from starting.
pub fn spawn_supervisors(
    berth: &Path,
    store: &Store,
    ids: &[AttemptId],
    opts: &SuperviseOptions,
    clock: Clock,
) -> Vec<Result<u32, TaskError>> {
    std::thread::scope(|scope| {
        let started: Vec<_> = ids
            .iter()
            .map(|&id| scope.spawn(move || spawn_supervisor(berth, store, id, opts, clock)))
            .collect();
        started
            .into_iter()
            .zip(ids)
            .map(|(thread, id)| {
                thread.join().unwrap_or_else(|_| {
                    Err(TaskError::Refused(format!(
                        "starting attempt {id}'s supervisor failed unexpectedly"
                    )))
                })
            })
            .collect()
    })
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
    let mut args: Vec<std::ffi::OsString> = vec!["cache".into(), "refresh".into(), "--repo".into()];
    args.push(rec.repo.clone().into_os_string());
    args.extend(["--base".into(), commit.into()]);
    spawn_detached(berth, store, &args, "cache-refresh.log").map(Some)
}

/// The app's Rebuild: a detached `berth env build --rebuild` for `repo` (`--rebuild` only
/// when `again`; else it builds what is missing). Its progress is the repo's environment
/// activity ([`crate::env_activity`]); its output goes to `<data>/logs/env-build.log`.
pub fn rebuild_env_in_background(
    berth: &Path,
    store: &Store,
    repo: &Path,
    again: bool,
) -> Result<u32, TaskError> {
    if let Some(a) = crate::env_activity::env_activity(store, repo)
        && a.state == crate::env_activity::ActivityState::Running
    {
        return Err(TaskError::Refused(format!(
            "{} is already under way for {}",
            a.what,
            repo.display()
        )));
    }
    let mut args: Vec<std::ffi::OsString> = vec!["env".into(), "build".into(), "--repo".into()];
    args.push(repo.as_os_str().to_owned());
    if again {
        args.push("--rebuild".into());
    }
    spawn_detached(berth, store, &args, "env-build.log")
}

/// The app's Install: `berth agent install NAME [--repo R]` as a child, waited for (the app
/// calls this off its UI thread); its last line, or its error's last lines. Its output also
/// goes to `<data>/logs/agent-install.log`.
pub fn install_agent_with_cli(
    berth: &Path,
    store: &Store,
    repo: Option<&Path>,
    name: &str,
) -> Result<String, TaskError> {
    let mut cmd = Command::new(berth);
    cmd.arg("--data-dir")
        .arg(store.data().root())
        .args(["agent", "install", name]);
    if let Some(r) = repo {
        cmd.arg("--repo").arg(r);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TaskError::Refused(format!("cannot run {}: {e}", berth.display())))?;
    let logs = store.data().logs();
    let _ = std::fs::create_dir_all(&logs);
    let mut all = out.stderr.clone();
    all.extend_from_slice(&out.stdout);
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("agent-install.log"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, &all));
    let text = |b: &[u8]| crate::display::escape_controls(&String::from_utf8_lossy(b)).into_owned();
    if out.status.success() {
        return Ok(text(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .to_string());
    }
    let err = text(&out.stderr);
    let tail: Vec<&str> = err.trim().lines().rev().take(8).collect();
    Err(TaskError::Refused(
        tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    ))
}

/// `<berth> --data-dir D ARGS...` in its own session (it outlives the terminal or the app),
/// appending its output to `<data>/logs/<log>`, reaped by a thread.
pub(crate) fn spawn_detached(
    berth: &Path,
    store: &Store,
    args: &[std::ffi::OsString],
    log: &str,
) -> Result<u32, TaskError> {
    let logs = store.data().logs();
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&logs)
        .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", logs.display())))?;
    let log_path = logs.join(log);
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
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is async-signal-safe; the child outlives the terminal or the app.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        TaskError::Refused(format!(
            "cannot start `berth {}`: {e}",
            args[0].to_string_lossy()
        ))
    })?;
    let pid = child.id();
    std::thread::spawn(move || child.wait());
    Ok(pid)
}
