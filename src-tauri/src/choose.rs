//! The comparison strip and "Choose": `berth compare` and `berth choose` for the window.

use berth_core::{AttemptSummary, Merged};
use tauri::State;

use crate::App;
use crate::commands::{Res, now_ms};

/// Every attempt of `task`, side by side.
#[tauri::command(async)]
pub fn task_compare(app: State<'_, App>, task: u32) -> Res<Vec<AttemptSummary>> {
    berth_core::compare_task(&app.store, task, now_ms).map_err(|e| e.to_string())
}

/// Keeps attempt `id` as its task's result (see `berth_core::choose_attempt`); with `merge`,
/// merged into the branch the task started from. Returns what happened, in words.
#[tauri::command(async)]
pub fn attempt_choose(app: State<'_, App>, id: String, merge: bool) -> Res<String> {
    let attempt: berth_core::AttemptId =
        id.parse().map_err(|e: berth_core::DbError| e.to_string())?;
    let chosen = berth_core::choose_attempt(
        &app.store,
        attempt,
        merge.then_some(""),
        &Default::default(),
        now_ms,
    )
    .map_err(|e| e.to_string())?;
    let mut words = match &chosen.pulled.imported {
        Some(i) => {
            // The repo's cache is refreshed on what the user kept (in the background).
            let _ = berth_core::refresh_cache_after_pull(
                &app.berth,
                &app.store,
                attempt,
                &i.head.to_string(),
            );
            format!("chose {id}: branch {}", i.branch)
        }
        None => format!("chose {id}: it changed nothing"),
    };
    if let Some((into, how)) = &chosen.merged {
        words.push_str(&match how {
            Merged::UpToDate => format!("; {into} already had it"),
            Merged::FastForward { .. } => format!("; {into} fast-forwarded to it"),
            Merged::Commit { .. } => format!("; merged into {into} with a merge commit"),
        });
    }
    if !chosen.stopped.is_empty() {
        let ids: Vec<String> = chosen.stopped.iter().map(|a| a.to_string()).collect();
        words.push_str(&format!("; stopped {} (kept on disk)", ids.join(", ")));
    }
    Ok(words)
}

/// A follow-up (`berth prompt`): attempt `id` runs again in its workspace with `prompt`; its
/// earlier work becomes a commit of its own.
#[tauri::command(async)]
pub fn attempt_followup(app: State<'_, App>, id: String, prompt: String) -> Res<String> {
    let attempt: berth_core::AttemptId =
        id.parse().map_err(|e: berth_core::DbError| e.to_string())?;
    let rec = app
        .store
        .db()
        .and_then(|db| db.attempt(attempt))
        .map_err(|e| e.to_string())?;
    berth_core::set_followup(&app.store, attempt, &prompt, now_ms).map_err(|e| e.to_string())?;
    boot(&app, &rec, attempt)?;
    Ok(format!(
        "{id} runs again with your follow-up; its earlier work is a commit of its own"
    ))
}

/// Starting over (`berth retry`): a new attempt of `id`'s task from its base, with `prompt`
/// (empty: the one `id` had); `id` is kept as it is.
#[tauri::command(async)]
pub fn attempt_retry(app: State<'_, App>, id: String, prompt: String) -> Res<String> {
    let attempt: berth_core::AttemptId =
        id.parse().map_err(|e: berth_core::DbError| e.to_string())?;
    let prompt = prompt.trim();
    let retried = berth_core::retry_attempt(
        &app.store,
        attempt,
        (!prompt.is_empty()).then_some(prompt),
        now_ms,
    )
    .map_err(|e| e.to_string())?;
    let new = retried.attempt.id;
    boot(&app, &retried.attempt, new)?;
    Ok(format!(
        "{new} starts over from the task's base ({id} is kept as it is)"
    ))
}

/// `berth start`: boots ended attempt `id` again on its workspace.
#[tauri::command(async)]
pub fn attempt_start(app: State<'_, App>, id: String) -> Res<String> {
    let attempt: berth_core::AttemptId =
        id.parse().map_err(|e: berth_core::DbError| e.to_string())?;
    let rec = berth_core::check_startable(&app.store, attempt).map_err(|e| e.to_string())?;
    boot(&app, &rec, attempt)?;
    Ok(format!(
        "{id} boots again on its workspace (was {})",
        rec.state
    ))
}

/// Spawns the supervisor that boots `attempt` with `rec`'s CPUs.
fn boot(app: &App, rec: &berth_core::AttemptRecord, attempt: berth_core::AttemptId) -> Res<()> {
    let opts = berth_core::SuperviseOptions {
        accel: None,
        cpus: rec.cpus,
        boot_timeout_s: 300,
    };
    berth_core::spawn_supervisor(&app.berth, &app.store, attempt, &opts, now_ms)
        .map_err(|e| e.to_string())?;
    Ok(())
}
