//! Settings → Secrets: thin commands over `berth-core`, like `berth secret`. A value comes
//! in once (typed into a password field) and goes straight to the OS keyring; nothing here
//! ever sends one back to the window.

use berth_core::{NewSecret, SecretRecord, list_secrets, remove_secret, set_secret};
use serde::Deserialize;
use tauri::State;

use crate::App;
use crate::commands::{Res, now_ms};

#[tauri::command(async)]
pub fn secrets(app: State<'_, App>) -> Res<Vec<SecretRecord>> {
    list_secrets(&app.store).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
pub struct SecretRequest {
    name: String,
    upstream: String,
    header: String,
    key_env: Option<String>,
    url_env: Option<String>,
    value: String,
}

#[tauri::command(async)]
pub fn secret_set(app: State<'_, App>, req: SecretRequest) -> Res<()> {
    let blank = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (key_env, url_env) = (blank(&req.key_env), blank(&req.url_env));
    set_secret(
        &app.store,
        &NewSecret {
            name: req.name.trim(),
            upstream: req.upstream.trim(),
            header: req.header.trim(),
            key_env: key_env.as_deref(),
            url_env: url_env.as_deref(),
            ca_pem: None,
        },
        &req.value,
        now_ms() / 1000,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[tauri::command(async)]
pub fn secret_remove(app: State<'_, App>, name: String) -> Res<()> {
    remove_secret(&app.store, &name).map_err(|e| e.to_string())
}
