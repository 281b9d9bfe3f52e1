//! `berth config [KEY [VALUE]]`: user settings, shared with the app's Settings.

use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_core::{EDITOR_SETTING, editor_command, set_editor_command};

use crate::context::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The setting: `editor` (the command "Open in editor" runs; the checkout's path is
    /// appended). Without it, every setting is shown.
    key: Option<String>,
    /// The new value; without it, the current value is shown.
    value: Option<String>,
    /// Clear the setting (back to the default).
    #[arg(long, conflicts_with = "value")]
    unset: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let store = ctx.store();
    let visual = std::env::var("VISUAL").ok();
    match args.key.as_deref() {
        None => println!("editor = {}", editor_command(&store, visual.as_deref())?),
        Some(EDITOR_SETTING) => {
            if args.unset {
                set_editor_command(&store, None)?;
            } else if let Some(v) = &args.value {
                set_editor_command(&store, Some(v))?;
            }
            println!("{}", editor_command(&store, visual.as_deref())?);
        }
        Some(other) => bail!("there is no setting '{other}'; the settings are: editor"),
    }
    Ok(ExitCode::SUCCESS)
}
