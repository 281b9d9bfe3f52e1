//! A task's attempts side by side, and choosing one: the data behind `berth compare`,
//! `berth choose` and the app's comparison strip (front ends add no logic of their own).

use berth_db::{AttemptId, AttemptRecord, AttemptState};
use berth_git::{Limits, Merged};
use serde::Serialize;
use serde_json::json;

use crate::task::{Pulled, TaskError, audit, pull_attempt};
use crate::{Clock, Store};

/// One attempt's row in the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptSummary {
    pub id: AttemptId,
    pub state: AttemptState,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// From the start of its command to its end (or to now while it runs).
    pub seconds: Option<u64>,
    pub files_changed: Option<u32>,
    pub insertions: Option<u32>,
    pub deletions: Option<u32>,
    /// Requests its proxy refused.
    pub denied: usize,
    /// Requests its gateway sent with one of the user's secrets.
    pub secret_uses: usize,
    pub branch: Option<String>,
    /// Its terminal sits quiet at a prompt: the user is expected to type.
    pub waiting_input: bool,
    /// The repo's test command, when the task was made with one (`[test]` in berth.toml).
    pub test_command: Option<String>,
    /// How that command ended after the agent's last run (none: not run yet).
    pub test: Option<crate::repo_test::TestResult>,
}

/// Every attempt of `task`, with what its audit says.
pub fn compare_task(
    store: &Store,
    task: u32,
    clock: Clock,
) -> Result<Vec<AttemptSummary>, TaskError> {
    let db = store.db()?;
    db.task(task)?; // an unknown task is an error, not an empty table
    let mut rows = Vec::new();
    for a in db.task_attempts(task)? {
        let events = db.audit_events(a.id)?;
        let mut started = None;
        let mut ended = None;
        let (mut denied, mut secret_uses) = (0, 0);
        let mut test = None;
        for e in &events {
            match (e.kind.as_str(), e.data["event"].as_str()) {
                ("lifecycle", Some("running")) => {
                    started = Some(e.ts_ms);
                    ended = None;
                    test = None;
                }
                ("lifecycle", Some("exited" | "failed" | "stopped")) => ended = Some(e.ts_ms),
                ("egress", _) if e.data["decision"] == "deny" => denied += 1,
                ("secret", _) => secret_uses += 1,
                ("test", _) => test = serde_json::from_value(e.data.clone()).ok(),
                _ => {}
            }
        }
        let until = ended.or_else(|| a.state.is_live().then(clock));
        let seconds = started.zip(until).map(|(s, e)| e.saturating_sub(s) / 1000);
        let mut row = summary(&a, seconds, denied, secret_uses);
        row.waiting_input = a.state.is_live() && store.waiting_input(a.id);
        row.test_command = crate::repo_test::attempt_plan(store, a.id).map(|p| p.command);
        row.test = test;
        rows.push(row);
    }
    Ok(rows)
}

fn summary(
    a: &AttemptRecord,
    seconds: Option<u64>,
    denied: usize,
    secrets: usize,
) -> AttemptSummary {
    AttemptSummary {
        id: a.id,
        state: a.state,
        exit_code: a.exit_code,
        error: a.error.clone(),
        seconds,
        files_changed: a.files_changed,
        insertions: a.insertions,
        deletions: a.deletions,
        denied,
        secret_uses: secrets,
        branch: a.branch.clone(),
        waiting_input: false,
        test_command: None,
        test: None,
    }
}

/// What choosing did.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub pulled: Pulled,
    /// The branch the result was merged into, and how.
    pub merged: Option<(String, Merged)>,
    /// The task's other attempts that were still running, now stopped (their workspaces
    /// are kept until the user deletes them).
    pub stopped: Vec<AttemptId>,
}

/// Chooses attempt `id` as its task's result: pulls it as its branch, with `merge` merges it
/// into a branch of the repo (`Some("")`: the branch the task started from), and stops the
/// task's other attempts that still run.
pub fn choose_attempt(
    store: &Store,
    id: AttemptId,
    merge: Option<&str>,
    limits: &Limits,
    clock: Clock,
) -> Result<Chosen, TaskError> {
    let (rec, task) = {
        let db = store.db()?;
        let rec = db.attempt(id)?;
        (rec.clone(), db.task(id.task)?)
    };
    if rec.state.is_live() {
        return Err(TaskError::Refused(format!(
            "attempt {id} is still {}; choose it once it has finished (or `berth stop {id}`)",
            rec.state
        )));
    }
    // Where it would be merged is checked before anything is written.
    let into = match merge {
        Some(b) => Some(berth_git::merge_target(
            &rec.repo,
            &task.base_ref,
            crate::task::oid(&rec.base)?,
            b,
        )?),
        None => None,
    };
    let pulled = pull_attempt(store, id, None, false, limits, clock)?;
    let merged = match (&into, &pulled.imported) {
        (Some(branch), Some(imported)) => {
            let message = format!(
                "Merge attempt {id}: {}\n",
                crate::table_cell(&task.title, 72)
            );
            let m = berth_git::merge_into(&rec.repo, branch, imported.head, &message)?;
            Some((branch.clone(), m))
        }
        _ => None,
    };
    let mut stopped = Vec::new();
    for other in store.db()?.task_attempts(id.task)? {
        if other.id != id && crate::stop_attempt(store, other.id, clock)? {
            stopped.push(other.id);
        }
    }
    let mut db = store.db()?;
    audit(
        &mut db,
        clock,
        id,
        "choose",
        json!({
            "branch": pulled.imported.as_ref().map(|i| i.branch.clone()),
            "merged_into": merged.as_ref().map(|(b, _)| b),
            "how": merged.as_ref().map(|(_, m)| match m {
                Merged::UpToDate => "up to date",
                Merged::FastForward { .. } => "fast-forward",
                Merged::Commit { .. } => "merge commit",
            }),
            "stopped": stopped.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        }),
    )?;
    Ok(Chosen {
        pulled,
        merged,
        stopped,
    })
}
