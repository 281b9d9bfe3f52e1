//! How much of the base's history an attempt's workspace gets: the user's setting
//! (`berth config history N`; the app's tasks use it too), or `--history N` for one task.
//!
//! Only the user sets it, never the repo's `berth.toml`: older commits can hold what was
//! deleted since (a key committed once), so a repo must not be able to widen what the guest
//! sees of it.

use crate::{Store, TaskError};

/// The settings key.
pub const HISTORY_SETTING: &str = "history";

/// The most commits a workspace may be asked to carry (creation walks and packs them all).
pub const MAX_HISTORY: u32 = 100_000;

/// Checks a depth the user typed.
pub fn check_history(n: u32) -> Result<u32, TaskError> {
    if (1..=MAX_HISTORY).contains(&n) {
        Ok(n)
    } else {
        Err(TaskError::Refused(format!(
            "history {n}: give 1 (the base commit alone) to {MAX_HISTORY} commits"
        )))
    }
}

/// The user's default depth: the setting, else [`berth_git::DEFAULT_HISTORY`].
pub fn history_depth(store: &Store) -> Result<u32, TaskError> {
    let db = store.db()?;
    match db.setting(HISTORY_SETTING)? {
        Some(v) => v
            .trim()
            .parse::<u32>()
            .map_err(|_| TaskError::Refused(format!("the history setting {v:?} is not a number")))
            .and_then(check_history),
        None => Ok(berth_git::DEFAULT_HISTORY),
    }
}

/// Sets (or with `None` clears) the user's default depth.
pub fn set_history_depth(store: &Store, n: Option<u32>) -> Result<(), TaskError> {
    let value = n.map(check_history).transpose()?.map(|n| n.to_string());
    store.db()?.set_setting(HISTORY_SETTING, value.as_deref())?;
    Ok(())
}
