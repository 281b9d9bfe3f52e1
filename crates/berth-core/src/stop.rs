//! Stopping an attempt, with escalation, for every front end: ask its supervisor, wait,
//! then kill the supervisor (checked by pid and start time) if it does not go.

use std::time::{Duration, Instant};

use berth_db::{AttemptId, AttemptRecord};

use crate::task::{TaskError, reconcile};
use crate::{Clock, Store, SupervisorClient};

/// How long a supervisor gets to stop its VM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// Stops `id` if it is live and waits until its supervisor is gone. Returns whether it was
/// live. The state database is reconciled afterwards, so the attempt reads as stopped.
pub fn stop_attempt(store: &Store, id: AttemptId, clock: Clock) -> Result<bool, TaskError> {
    let rec = store.db()?.attempt(id)?;
    if !rec.state.is_live() {
        return Ok(false);
    }
    let supervised = match SupervisorClient::connect(&store.socket(id)) {
        Ok(client) => {
            let _ = client.stop();
            true
        }
        Err(_) => false,
    };
    if !supervised && !supervisor_gone(&rec) {
        // A `berth run` process runs it (no socket): ask it, through a file it watches, to
        // stop this attempt only; it records the stop and goes on with its others.
        let _ = std::fs::write(store.stop_request(id), b"");
    }
    let stopped = |store: &Store| {
        store
            .db()
            .and_then(|db| db.attempt(id))
            .is_ok_and(|a| !a.state.is_live())
    };
    // A supervisor records the stop, then reads the workspace's changes into the attempt's
    // host repository, then exits: `stop` returns once it has exited, so a `pull` right after
    // never meets that repository locked. A `berth run` process goes on with its other
    // attempts, so there the record is what counts.
    let ended = |store: &Store| supervisor_gone(&rec) || (!supervised && stopped(store));
    let deadline = Instant::now() + STOP_GRACE;
    while !ended(store) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if !supervised && ended(store) {
        // The `berth run` process stopped it and keeps running for its other attempts.
        let _ = std::fs::remove_file(store.stop_request(id));
        reconcile(store, clock)?;
        return Ok(true);
    }
    // Killed only if it has not even recorded the stop: one that has is finishing its
    // bookkeeping (a large workspace's changes), which a kill would leave half done.
    if !supervisor_gone(&rec)
        && !stopped(store)
        && let Some(pid) = rec.supervisor_pid
    {
        // SAFETY: kill takes plain integers; supervisor_gone checked the pid's start time, so
        // the pid is still this attempt's supervisor.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    }
    reconcile(store, clock)?;
    berth_vm::rundir::reap_orphans(&store.data().run());
    Ok(true)
}

fn supervisor_gone(rec: &AttemptRecord) -> bool {
    match (rec.supervisor_pid, rec.supervisor_start) {
        (Some(pid), Some(start)) => !berth_vm::rundir::process_alive(pid, start),
        _ => true,
    }
}
