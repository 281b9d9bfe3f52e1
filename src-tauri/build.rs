//! Tauri's build step, with the app's command list: Tauri then checks every call from the
//! web view against the capabilities (`capabilities/default.json`), so the window can call
//! exactly these commands and no other. Keep in step with `generate_handler!` in main.rs
//! (a test checks).

const COMMANDS: &[&str] = &[
    "state",
    "repo_branches",
    "repo_demo",
    "new_task",
    "attempt_log",
    "attempt_input",
    "attempt_resize",
    "attempt_diff",
    "attempt_pull",
    "attempt_stop",
    "repo_config",
    "repo_config_trust",
    "attempt_removal_check",
    "attempt_remove",
    "attempt_audit",
    "attempt_approve",
    "attempt_compare",
    "attempt_open",
    "task_compare",
    "attempt_choose",
    "attempt_followup",
    "attempt_retry",
    "attempt_start",
    "host_checks",
    "image_build",
    "demo_repo",
    "pool_status",
    "pool_set",
    "repos",
    "repo_add",
    "repo_remove",
    "repo_env",
    "repo_env_build",
    "secrets",
    "secret_set",
    "secret_remove",
    "agents",
    "agent_install",
    "pick_folder",
    "settings",
    "set_editor",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri-build failed");
}
