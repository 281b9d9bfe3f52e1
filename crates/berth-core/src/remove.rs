//! Deleting attempts. Nothing with unpulled work, and nothing running, is deleted unless a
//! front end passes back the confirmation of exactly what the user agreed to discard: a bare
//! "force" flag cannot reach this code, so a front end that forgets to ask (the app's old
//! `confirm()` that never showed a dialog) is refused here, not trusted.

use berth_db::AttemptId;
use berth_git::Limits;
use serde::Serialize;
use serde_json::json;

use crate::stop::stop_attempt;
use crate::task::{TaskError, audit, unpulled_work};
use crate::{Clock, Store};

/// Why an attempt cannot simply be removed, and what confirming its removal discards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovalBlocker {
    pub attempt: String,
    /// For the user: "1.2 has 3 commit(s) not pulled into /repo".
    pub reason: String,
    /// Whether pulling first would keep the work (unpulled commits, not a running attempt).
    pub pull_keeps_it: bool,
    /// What the user agrees to lose; passed back in [`Removal::Discarding`]. It names the
    /// state the user saw (the unpulled head commit, or the running supervisor), so a
    /// confirmation given for one state does not discard another.
    pub confirm: String,
}

/// How a front end asks for a removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal<'a> {
    /// Remove only if nothing is lost and nothing is running.
    IfNothingIsLost,
    /// The user saw [`RemovalBlocker::reason`] and agreed; the string is its `confirm`.
    Discarding(&'a str),
}

/// Why `id` may not be removed as it is, if anything.
pub fn removal_blocker(
    store: &Store,
    id: AttemptId,
    limits: &Limits,
) -> Result<Option<RemovalBlocker>, TaskError> {
    let rec = store.db()?.attempt(id)?;
    let blocker = |reason: String, pull_keeps_it: bool, what: String| RemovalBlocker {
        attempt: id.to_string(),
        reason,
        pull_keeps_it,
        confirm: format!("discard {id} {what}"),
    };
    if rec.state.is_live() {
        let supervisor = rec.supervisor_pid.unwrap_or(0);
        return Ok(Some(blocker(
            format!(
                "{id} is {}; removing it stops it and loses whatever it has not committed or you have not pulled",
                rec.state
            ),
            false,
            format!("{} supervisor {supervisor}", rec.state),
        )));
    }
    Ok(match unpulled_work(store, &rec, limits) {
        Ok(Some(u)) => Some(blocker(
            format!("{id} has {u} into {}", rec.repo.display()),
            true,
            format!("head {}", u.head),
        )),
        Ok(None) => None,
        Err(e) => Some(blocker(
            format!("{id}: cannot tell whether its work was pulled ({e})"),
            false,
            "unreadable".into(),
        )),
    })
}

/// Removes an attempt: stops it if it runs (when confirmed), deletes its directory and row
/// (its audit events stay), and its task once it has no attempts left. Refuses, changing
/// nothing, when [`removal_blocker`] names a reason and `removal` does not confirm exactly it.
pub fn remove_attempt(
    store: &Store,
    id: AttemptId,
    removal: Removal<'_>,
    limits: &Limits,
    clock: Clock,
) -> Result<(), TaskError> {
    let blocker = removal_blocker(store, id, limits)?;
    if let Some(b) = &blocker {
        match removal {
            Removal::IfNothingIsLost => {
                return Err(TaskError::Refused(format!(
                    "nothing was removed: {}",
                    b.reason
                )));
            }
            Removal::Discarding(c) if c != b.confirm => {
                return Err(TaskError::Refused(format!(
                    "nothing was removed: {id} changed since the removal was confirmed; now: {}",
                    b.reason
                )));
            }
            Removal::Discarding(_) => {
                stop_attempt(store, id, clock)?;
            }
        }
    }
    let dir = store.attempt_dir(id);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| TaskError::Refused(format!("cannot remove {}: {e}", dir.display())))?;
    }
    // Its "Open in editor" checkout goes too (unless it holds the user's own edits), so the
    // user's repo does not keep a worktree that blocks deleting the branch.
    let repo = store.db()?.attempt(id)?.repo;
    let kept = berth_git::remove_checkout(&repo, &format!("berth-{}-{}", id.task, id.n))
        .ok()
        .flatten();
    let mut db = store.db()?;
    audit(
        &mut db,
        clock,
        id,
        "lifecycle",
        json!({
            "event": "removed",
            "force": blocker.is_some(),
            "discarded": blocker.as_ref().map(|b| b.confirm.clone()),
            "checkout_kept": kept,
        }),
    )?;
    db.delete_attempt(id)?;
    db.delete_task_if_empty(id.task)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use berth_db::AttemptState;
    use git2::Repository;

    use super::*;
    use crate::{DataDir, NewTask, prepare_task};

    fn clock() -> u64 {
        1_700_000_000_000
    }

    fn commit_all(repo: &Path, msg: &str) {
        crate::test_repo::commit_files(repo, &[], msg);
    }

    /// A stopped attempt whose workspace has one commit that was never pulled.
    fn attempt_with_unpulled_commit(dir: &Path) -> (Store, AttemptId) {
        let repo = dir.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        Repository::init(&repo).unwrap();
        std::fs::write(repo.join("a.txt"), "a\n").unwrap();
        commit_all(&repo, "init");
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
        // What the agent did in the guest.
        std::fs::write(store.workspace(id).join("b.txt"), "work\n").unwrap();
        commit_all(&store.workspace(id), "the agent's work");
        store
            .db()
            .unwrap()
            .update_attempt(id, |a| a.state = AttemptState::Exited)
            .unwrap();
        (store, id)
    }

    #[test]
    fn removal_of_unpulled_work_without_the_users_confirmation_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, id) = attempt_with_unpulled_commit(dir.path());
        let limits = Limits::default();
        // A front end that forgets to ask (or asks and ignores the answer) gets nowhere.
        let e = remove_attempt(&store, id, Removal::IfNothingIsLost, &limits, clock);
        assert!(matches!(e, Err(TaskError::Refused(m)) if m.contains("not pulled")));
        // "force" without naming what is lost is no confirmation either.
        let e = remove_attempt(&store, id, Removal::Discarding("force"), &limits, clock);
        assert!(matches!(e, Err(TaskError::Refused(m)) if m.contains("changed since")));
        assert!(
            store.workspace(id).join(".git").is_dir(),
            "a refusal removed something"
        );

        let b = removal_blocker(&store, id, &limits)
            .unwrap()
            .expect("a blocker");
        assert!(b.pull_keeps_it);
        remove_attempt(&store, id, Removal::Discarding(&b.confirm), &limits, clock).unwrap();
        assert!(!store.attempt_dir(id).exists());
        let events = store.db().unwrap().audit_events(id).unwrap();
        let removed = events.last().unwrap();
        assert!(removed.data.to_string().contains(&b.confirm), "{removed:?}");
    }

    #[test]
    fn a_confirmation_for_one_head_does_not_discard_newer_work() {
        let dir = tempfile::tempdir().unwrap();
        let (store, id) = attempt_with_unpulled_commit(dir.path());
        let limits = Limits::default();
        let seen = removal_blocker(&store, id, &limits).unwrap().unwrap();
        // The attempt gets more work after the user looked.
        std::fs::write(store.workspace(id).join("c.txt"), "more\n").unwrap();
        commit_all(&store.workspace(id), "more work");
        let e = remove_attempt(
            &store,
            id,
            Removal::Discarding(&seen.confirm),
            &limits,
            clock,
        );
        assert!(matches!(e, Err(TaskError::Refused(_))), "{e:?}");
        assert!(store.workspace(id).join(".git").is_dir());
    }
}
