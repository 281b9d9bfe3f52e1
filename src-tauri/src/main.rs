//! The Berth desktop app: thin Tauri commands over `berth-core`, plus a watcher that tells
//! the window whenever the shared state database changes (so tasks made with the CLI show up
//! within a second, and the other way round).
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod choose;
mod commands;
mod first_run;
mod notify;
mod repos;
mod secrets;
mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use berth_core::Store;

/// What every command gets.
pub struct App {
    pub store: Store,
    /// The `berth` binary that runs attempt supervisors.
    pub berth: PathBuf,
    /// Open terminal connections to running attempts, by attempt id.
    pub terminals: Mutex<HashMap<String, berth_core::ClientWriter>>,
}

/// The same data directory as the CLI's (one resolution, in the core).
fn data_dir() -> Result<berth_core::DataDir, String> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    berth_core::DataDir::resolve(None, &|k| std::env::var_os(k), &cwd)
}

/// `berth` next to this binary (installed together), else on PATH.
fn berth_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_BIN") {
        return PathBuf::from(p);
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("berth")));
    match sibling {
        Some(s) if s.is_file() => s,
        _ => PathBuf::from("berth"),
    }
}

fn main() {
    let data = match data_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("berth-app: {e}");
            std::process::exit(1);
        }
    };
    berth_core::use_keyring(berth_core::keyring_for(
        std::env::var("BERTH_KEYRING").ok().as_deref(),
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
    ));
    let app = App {
        store: Store::new(data),
        berth: berth_binary(),
        terminals: Mutex::new(HashMap::new()),
    };
    tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .manage(app)
        .setup(|a| {
            watch::start(a.handle().clone());
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::state,
            commands::repo_branches,
            commands::repo_demo,
            commands::new_task,
            commands::attempt_log,
            commands::attempt_input,
            commands::attempt_resize,
            commands::attempt_diff,
            commands::attempt_pull,
            commands::attempt_stop,
            commands::repo_config,
            commands::repo_config_trust,
            commands::attempt_removal_check,
            commands::attempt_remove,
            commands::attempt_audit,
            commands::attempt_approve,
            commands::attempt_compare,
            commands::attempt_open,
            choose::task_compare,
            choose::attempt_choose,
            choose::attempt_followup,
            choose::attempt_retry,
            choose::attempt_start,
            first_run::host_checks,
            first_run::image_build,
            first_run::demo_repo,
            first_run::pool_status,
            first_run::pool_set,
            repos::repos,
            repos::repo_add,
            repos::repo_remove,
            repos::repo_env,
            repos::repo_env_build,
            secrets::secrets,
            secrets::secret_set,
            secrets::secret_remove,
            commands::agents,
            commands::agent_install,
            repos::pick_folder,
            repos::settings,
            repos::set_editor,
        ])
        .run(tauri::generate_context!())
        .expect("the Berth window could not start");
}
