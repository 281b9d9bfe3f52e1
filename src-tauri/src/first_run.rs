//! The first-run checklist: what this machine has (`berth doctor --json`, the same checks as
//! the CLI's), building the image in the background with its progress, and the demo repo.

use std::process::{Command, Stdio};

use serde::Serialize;
use tauri::State;

use crate::App;
use crate::commands::{Res, now_ms};

#[derive(Serialize)]
pub struct Check {
    check: String,
    ok: bool,
    detail: String,
}

/// One check per line of `berth doctor`, and the editor "Open in editor" would run.
#[derive(Serialize)]
pub struct HostChecks {
    checks: Vec<Check>,
    editor: String,
    /// The editor's program is on PATH.
    editor_found: bool,
    image_build: berth_core::ImageBuild,
}

#[tauri::command(async)]
pub fn host_checks(app: State<'_, App>) -> Res<HostChecks> {
    let out = Command::new(&app.berth)
        .arg("--data-dir")
        .arg(app.store.data().root())
        .args(["doctor", "--json"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", app.berth.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        format!(
            "`berth doctor` said: {}",
            berth_core::table_cell(String::from_utf8_lossy(&out.stderr).trim(), 300)
        )
    })?;
    let checks = v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| Check {
            check: c["check"].as_str().unwrap_or_default().to_string(),
            ok: c["ok"].as_bool().unwrap_or(false),
            detail: c["detail"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    let editor = berth_core::editor_command(&app.store, None).unwrap_or_default();
    let program = editor
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let editor_found = !program.is_empty()
        && std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|d| d.join(&program).is_file())
                || std::path::Path::new(&program).is_file()
        });
    Ok(HostChecks {
        checks,
        editor,
        editor_found,
        image_build: berth_core::image_build_status(&app.store),
    })
}

/// Starts `berth image build` in the background (the core's; progress read by
/// `host_checks`).
#[tauri::command(async)]
pub fn image_build(app: State<'_, App>) -> Res<String> {
    match berth_core::build_image_in_background(&app.berth, &app.store) {
        Ok(true) => Ok("building the image (a few minutes); progress shows here".into()),
        Ok(false) => Ok("the image is being built already".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The demo repo (made on first use in the data directory), added to the repos.
#[tauri::command(async)]
pub fn demo_repo(app: State<'_, App>) -> Res<String> {
    let (path, _) = berth_core::ensure_demo_repo(&berth_core::demo_repo_dir(&app.store))
        .map_err(|e| e.to_string())?;
    let added = berth_core::add_repo(&app.store, &path, now_ms).map_err(|e| e.to_string())?;
    Ok(added.display().to_string())
}

/// The warm pool as Settings shows it: VMs kept waiting per shape, and those there now.
#[derive(Serialize)]
pub struct PoolStatus {
    size: u32,
    slots: Vec<berth_core::SlotView>,
}

#[tauri::command(async)]
pub fn pool_status(app: State<'_, App>) -> Res<PoolStatus> {
    Ok(PoolStatus {
        size: berth_core::pool_size(&app.store).map_err(|e| e.to_string())?,
        slots: berth_core::list_slots(&app.store).map_err(|e| e.to_string())?,
    })
}

/// Sets the pool's size (`berth pool fill N` for the app's default shape: 512 MiB, 1 CPU, no
/// network; 0 drains it).
#[tauri::command(async)]
pub fn pool_set(app: State<'_, App>, size: u32) -> Res<String> {
    berth_core::set_pool_size(&app.store, size).map_err(|e| e.to_string())?;
    if size == 0 {
        let n = berth_core::drain_pool(&app.store).map_err(|e| e.to_string())?;
        return Ok(format!("the pool is off; drained {n} waiting VM(s)"));
    }
    let shape = berth_core::PoolShape::plain(512, 1, false);
    let n = berth_core::fill_pool(&app.berth, &app.store, &shape).map_err(|e| e.to_string())?;
    Ok(format!("keeping {size} VM(s) waiting; booting {n}"))
}
