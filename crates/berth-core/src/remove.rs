//! Deleting attempts: never unpulled work without `force`.

use berth_db::AttemptId;
use berth_git::Limits;
use serde_json::json;

use crate::task::{TaskError, audit, unpulled_work};
use crate::{Clock, Store};

/// Why `id` may not be removed without force, if anything.
pub fn removal_blocker(
    store: &Store,
    id: AttemptId,
    limits: &Limits,
) -> Result<Option<String>, TaskError> {
    let rec = store.db()?.attempt(id)?;
    if rec.state.is_live() {
        return Ok(Some(format!("{id} is {}; stop it first", rec.state)));
    }
    Ok(match unpulled_work(store, &rec, limits) {
        Ok(Some(what)) => Some(format!("{id} has {what}; pull it first")),
        Ok(None) => None,
        Err(e) => Some(format!(
            "{id}: cannot tell whether its work was pulled ({e})"
        )),
    })
}

/// Deletes a stopped attempt's directory and row (its audit events stay), and its task once
/// it has no attempts left. The caller checks [`removal_blocker`] unless forced.
pub fn remove_attempt(
    store: &Store,
    id: AttemptId,
    force: bool,
    clock: Clock,
) -> Result<(), TaskError> {
    let dir = store.attempt_dir(id);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| TaskError::Refused(format!("cannot remove {}: {e}", dir.display())))?;
    }
    let mut db = store.db()?;
    audit(
        &mut db,
        clock,
        id,
        "lifecycle",
        json!({"event": "removed", "force": force}),
    )?;
    db.delete_attempt(id)?;
    db.delete_task_if_empty(id.task)?;
    Ok(())
}
