//! The Repos section and Settings: thin commands over `berth-core`, like `berth repo` and
//! `berth config`.

use berth_core::{RepoView, add_repo, editor_command, list_repos, remove_repo, set_editor_command};
use serde::Serialize;
use tauri::State;
use tauri_plugin_dialog::DialogExt;

use crate::App;
use crate::commands::{Res, now_ms};

#[tauri::command(async)]
pub fn repos(app: State<'_, App>) -> Res<Vec<RepoView>> {
    list_repos(&app.store).map_err(|e| e.to_string())
}

/// Adds the repository at `path` (or the one containing it); returns its top folder.
#[tauri::command(async)]
pub fn repo_add(app: State<'_, App>, path: String) -> Res<String> {
    if path.trim().is_empty() {
        return Err("pick or type the repository's folder".into());
    }
    add_repo(&app.store, std::path::Path::new(path.trim()), now_ms)
        .map(|p| p.display().to_string())
        .map_err(|e| e.to_string())
}

/// The repo's environment and cache: what its berth.toml asks for, whether it is built,
/// a build or refresh under way (with its last lines), the cache generation.
#[tauri::command(async)]
pub fn repo_env(app: State<'_, App>, path: String) -> Res<berth_core::RepoEnvStatus> {
    let repo = berth_core::repo_root(std::path::Path::new(&path)).map_err(|e| e.to_string())?;
    Ok(berth_core::repo_env_status(&app.store, &repo))
}

/// Builds the repo's environment in the background (`again`: even when built); progress
/// shows through `repo_env`.
#[tauri::command(async)]
pub fn repo_env_build(app: State<'_, App>, path: String, again: bool) -> Res<()> {
    let repo = berth_core::repo_root(std::path::Path::new(&path)).map_err(|e| e.to_string())?;
    berth_core::rebuild_env_in_background(&app.berth, &app.store, &repo, again)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tauri::command(async)]
pub fn repo_remove(app: State<'_, App>, path: String) -> Res<()> {
    remove_repo(&app.store, std::path::Path::new(&path)).map_err(|e| e.to_string())
}

/// The OS folder picker; `None` when the user cancels. Runs off the UI thread (the dialog
/// itself is shown by the event loop).
#[tauri::command(async)]
pub fn pick_folder(handle: tauri::AppHandle) -> Option<String> {
    handle
        .dialog()
        .file()
        .set_title("Add a repository")
        .blocking_pick_folder()
        .and_then(|p| p.into_path().ok())
        .map(|p| p.display().to_string())
}

#[derive(Serialize)]
pub struct Settings {
    /// The user's own editor command, if set.
    editor: Option<String>,
    /// What "Open in editor" runs now (the setting, else $VISUAL, else `code`).
    editor_in_effect: String,
}

#[tauri::command(async)]
pub fn settings(app: State<'_, App>) -> Res<Settings> {
    let visual = std::env::var("VISUAL").ok();
    let editor = app
        .store
        .db()
        .and_then(|db| db.setting(berth_core::EDITOR_SETTING))
        .map_err(|e| e.to_string())?;
    Ok(Settings {
        editor,
        editor_in_effect: editor_command(&app.store, visual.as_deref())
            .map_err(|e| e.to_string())?,
    })
}

/// Saves the editor command (blank: back to the default).
#[tauri::command(async)]
pub fn set_editor(app: State<'_, App>, command: String) -> Res<()> {
    // From the web view: saved, but it runs only after the native confirmation.
    set_editor_command(&app.store, Some(&command), false).map_err(|e| e.to_string())
}
