//! Starting over: a new attempt in the same task, from the task's base, with the same
//! command, network, environment, agent and limits, and (optionally) a changed prompt
//! (`berth retry ATTEMPT [-- TEXT]`, the app's "Restart from base"). The attempt it starts
//! over from is left as it is: its work stays until the user deletes it.

use berth_db::{AttemptId, AttemptRecord, AttemptState};
use serde_json::json;

use crate::task::{TaskError, audit};
use crate::{Clock, Store};

/// What a retry made: the new attempt, not started yet (the caller spawns its supervisor).
#[derive(Debug, Clone)]
pub struct Retried {
    pub attempt: AttemptRecord,
    /// The prompt it runs with.
    pub prompt: String,
    /// The original task started from uncommitted changes, which the new attempt does not
    /// have (they were the user's working tree then, not a commit).
    pub without_uncommitted: bool,
}

/// Makes attempt N+1 of `from`'s task, starting from the task's base commit, with `prompt`
/// (none: the prompt `from` ran with last). Audited on both attempts.
pub fn retry_attempt(
    store: &Store,
    from: AttemptId,
    prompt: Option<&str>,
    clock: Clock,
) -> Result<Retried, TaskError> {
    let (src, task, next) = {
        let db = store.db()?;
        let src = db.attempt(from)?;
        let task = db.task(from.task)?;
        let next = db
            .task_attempts(from.task)?
            .iter()
            .map(|a| a.id.n)
            .max()
            .unwrap_or(0)
            + 1;
        (src, task, next)
    };
    let prompt = match prompt.map(str::trim) {
        None | Some("") => crate::followup::current_prompt(store, from, &task.title),
        Some(p) if p.len() > crate::followup::MAX_PROMPT => {
            return Err(TaskError::Refused(format!(
                "the prompt is {} bytes; keep it under {}",
                p.len(),
                crate::followup::MAX_PROMPT
            )));
        }
        Some(p) => p.to_string(),
    };
    // New phantoms for the new attempt: a token is never shared between two attempts.
    let secrets = crate::secrets::attempt_secrets(&src.secrets);
    let secrets = if secrets.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&crate::secrets::bind_secrets(store, &secrets)?).unwrap_or_default()
    };
    let id = AttemptId {
        task: from.task,
        n: next,
    };
    let dir = store.attempt_dir(id);
    if dir.exists() {
        return Err(TaskError::Refused(format!(
            "{} already exists but the state database has no attempt {id}; move it away (it \
             may hold work from an earlier berth) and try again",
            dir.display()
        )));
    }
    crate::store::create_private_dir(&dir)
        .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", dir.display())))?;
    let made = (|| -> Result<AttemptRecord, TaskError> {
        let history = crate::history::history_depth(store)?;
        let ws = berth_git::create_workspace(
            &src.repo,
            &src.base,
            &store.workspace(id),
            false,
            history,
        )?;
        if let Some(pack) = &ws.pack {
            let _ = std::fs::write(store.base_pack(id), pack);
        }
        if let Some(plan) = crate::repo_test::attempt_plan(store, from) {
            crate::repo_test::save_plan(store, id, &plan)
                .map_err(|e| TaskError::Refused(format!("cannot write {}: {e}", dir.display())))?;
        }
        crate::limits::save(store, id, &crate::limits::attempt_limits(store, from))
            .map_err(|e| TaskError::Refused(format!("cannot write {}: {e}", dir.display())))?;
        std::fs::write(dir.join("prompt"), &prompt)
            .map_err(|e| TaskError::Refused(format!("cannot write {}: {e}", dir.display())))?;
        let now = clock() / 1000;
        Ok(AttemptRecord {
            id,
            state: AttemptState::Created,
            base: ws.base.to_string(),
            start: ws.start.to_string(),
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
            secrets,
            ..src.clone()
        })
    })();
    let rec = match made {
        Ok(rec) => rec,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let mut db = store.db()?;
    db.save_attempt(&rec)?;
    audit(
        &mut db,
        clock,
        id,
        "lifecycle",
        json!({"event": "created", "repo": rec.repo, "base": rec.base, "command": rec.command, "retry_of": from.to_string(), "prompt": prompt}),
    )?;
    audit(&mut db, clock, from, "retry", json!({"as": id.to_string()}))?;
    Ok(Retried {
        attempt: rec,
        prompt,
        without_uncommitted: src.start != src.base,
    })
}
