//! Iterating on an attempt: a follow-up prompt runs its command again in the same workspace
//! (`berth prompt ATTEMPT TEXT`, the app's Follow up). The prompt reaches the command as
//! `$BERTH_PROMPT`, as the task's title did; what the earlier runs left is committed in the
//! guest first, so each prompt's work is a commit of its own on the attempt's branch.
//!
//! Two host-side files in the attempt's directory (never in the workspace): `prompt`, the
//! prompt in effect (absent: the task's title), and `followup`, the one waiting for the next
//! boot, which takes it.

use std::path::PathBuf;

use berth_db::AttemptId;
use serde_json::json;

use crate::task::{TaskError, audit};
use crate::{Clock, Store};

/// The longest follow-up prompt, in bytes.
pub const MAX_PROMPT: usize = 64 * 1024;

fn prompt_file(store: &Store, id: AttemptId) -> PathBuf {
    store.attempt_dir(id).join("prompt")
}

fn followup_file(store: &Store, id: AttemptId) -> PathBuf {
    store.attempt_dir(id).join("followup")
}

/// The prompt attempt `id`'s command gets now: its latest follow-up, else `title`.
pub(crate) fn current_prompt(store: &Store, id: AttemptId, title: &str) -> String {
    std::fs::read_to_string(prompt_file(store, id)).unwrap_or_else(|_| title.to_string())
}

/// Asks ended attempt `id` to run again in its workspace with `prompt`; the caller boots it
/// (its supervisor takes the prompt). Audited.
pub fn set_followup(
    store: &Store,
    id: AttemptId,
    prompt: &str,
    clock: Clock,
) -> Result<(), TaskError> {
    let mut db = store.db()?;
    let rec = db.attempt(id)?;
    if rec.state.is_live() {
        return Err(TaskError::Refused(format!(
            "attempt {id} is still {}; a follow-up runs once it has finished (or type into its \
             terminal: `berth attach {id}`)",
            rec.state
        )));
    }
    let prompt = prompt.trim();
    if prompt.is_empty() {
        return Err(TaskError::Refused("say what the follow-up asks for".into()));
    }
    if prompt.len() > MAX_PROMPT {
        return Err(TaskError::Refused(format!(
            "the follow-up is {} bytes; keep it under {MAX_PROMPT}",
            prompt.len()
        )));
    }
    if !store.workspace(id).is_dir() {
        return Err(TaskError::Refused(format!(
            "attempt {id} has no workspace any more"
        )));
    }
    let path = followup_file(store, id);
    std::fs::write(&path, prompt)
        .map_err(|e| TaskError::Refused(format!("cannot write {}: {e}", path.display())))?;
    audit(&mut db, clock, id, "prompt", json!({"follow_up": prompt}))?;
    Ok(())
}

/// At boot: the follow-up waiting, if any, becomes the prompt in effect. Returns the prompt
/// the earlier runs answered (to name their step's commit) when there was one.
pub(crate) fn take_followup(store: &Store, id: AttemptId, title: &str) -> Option<String> {
    let next = std::fs::read_to_string(followup_file(store, id)).ok()?;
    let previous = current_prompt(store, id, title);
    std::fs::write(prompt_file(store, id), next).ok()?;
    let _ = std::fs::remove_file(followup_file(store, id));
    Some(previous)
}

/// In the booted guest, as `agent` in /work: commits what the earlier runs left (if
/// anything), named after the prompt they answered. The guest's own git, on the guest's side:
/// the host never runs git on a workspace.
pub(crate) fn commit_step(
    agent: &mut berth_vm::agent::AgentClient,
    previous: &str,
) -> Result<(), TaskError> {
    struct Quiet;
    impl berth_vm::agent::ExecIo for Quiet {
        fn stdout(&mut self, _: &[u8]) {}
        fn stderr(&mut self, _: &[u8]) {}
        fn error(&mut self, _: &str) {}
    }
    let subject = crate::table_cell(previous, 72);
    let script = "git add -A && { git diff --cached --quiet || git commit -q -m \"$BERTH_STEP\"; }";
    agent
        .exec(
            berth_proto::ExecRequest {
                argv: vec!["sh".into(), "-c".into(), script.into()],
                env: vec![("BERTH_STEP".into(), format!("Berth: {subject}"))],
                cwd: Some("/work".into()),
                user: None,
                pty: None,
            },
            &mut Quiet,
        )
        .map_err(|e| TaskError::Refused(format!("cannot commit the earlier work: {e}")))?;
    Ok(())
}

/// Whether ended attempt `id` can boot again on its workspace (`berth start`, the app's
/// Start): not live, its workspace still there.
pub fn check_startable(store: &Store, id: AttemptId) -> Result<berth_db::AttemptRecord, TaskError> {
    let rec = store.db()?.attempt(id)?;
    if rec.state.is_live() {
        return Err(TaskError::Refused(format!(
            "attempt {id} is already {}",
            rec.state
        )));
    }
    if !store.workspace(id).is_dir() {
        return Err(TaskError::Refused(format!(
            "attempt {id} has no workspace any more"
        )));
    }
    Ok(rec)
}
