//! Reviewing results: what an attempt changed, and comparing two attempts of a task.

use berth_db::AttemptId;
use berth_git::Limits;

use crate::Store;
use crate::task::{TaskError, collect, diff_attempt};

/// What attempt `b` did differently from attempt `a`: the unified diff from `a`'s result to
/// `b`'s, and (files, +, -). Both are collected first, exactly as a diff or pull would.
pub fn compare_attempts(
    store: &Store,
    a: AttemptId,
    b: AttemptId,
    limits: &Limits,
) -> Result<(String, (usize, usize, usize)), TaskError> {
    if a == b {
        return Err(TaskError::Refused(format!(
            "pick two different attempts to compare (both are {a})"
        )));
    }
    let db = store.db()?;
    let (ra, rb) = (db.attempt(a)?, db.attempt(b)?);
    if ra.repo != rb.repo {
        return Err(TaskError::Refused(format!(
            "{a} and {b} work on different repos ({} and {}); compare attempts of one repo",
            ra.repo.display(),
            rb.repo.display()
        )));
    }
    let ca = collect(store, &ra, limits)?;
    let cb = collect(store, &rb, limits)?;
    Ok(berth_git::diff_between(
        &store.host_git(a),
        ca.head,
        &store.host_git(b),
        cb.head,
    )?)
}

/// Records how many files and lines a finished attempt changed, so lists show it before the
/// attempt is pulled (a pull records its own numbers, which this never overwrites). A result
/// that cannot be collected (over a limit, tampered with) records nothing here; pulling it
/// reports why.
pub(crate) fn record_changes(store: &Store, id: AttemptId) -> Result<(), TaskError> {
    let (_, (files, insertions, deletions)) = diff_attempt(store, id, &Limits::default())?;
    store.db()?.update_attempt(id, |a| {
        if a.branch.is_none() {
            a.files_changed = Some(files as u32);
            a.insertions = Some(insertions as u32);
            a.deletions = Some(deletions as u32);
        }
    })?;
    Ok(())
}
