//! `berth app`: opens the desktop app (installed next to `berth`, or on PATH).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};

use crate::context::Context;

pub fn run(ctx: &Context) -> Result<ExitCode> {
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        bail!(
            "no display here (neither DISPLAY nor WAYLAND_DISPLAY is set); use the CLI, e.g. `berth run --demo`"
        );
    }
    let dir = ctx.exe.parent().map(PathBuf::from).unwrap_or_default();
    let app = [dir.join("berth-app"), PathBuf::from("berth-app")]
        .into_iter()
        .find(|p| p.is_file() || p.components().count() == 1)
        .unwrap_or_else(|| PathBuf::from("berth-app"));
    let status = Command::new(&app)
        .env("BERTH_DATA_DIR", ctx.data.root())
        .env("BERTH_BIN", &ctx.exe)
        .status()
        .with_context(|| format!("cannot start {} (build it with `cargo build -p berth-app --features custom-protocol`)", app.display()))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
