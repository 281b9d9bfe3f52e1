//! `berth open ATTEMPT`: the user's editor on a checkout of the attempt's branch.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use berth_core::{AttemptId, open_in_editor};

use crate::context::{Context, now_ms};

#[derive(clap::Args)]
pub struct Args {
    /// The attempt, e.g. 3.1.
    attempt: AttemptId,
    #[command(flatten)]
    limits: super::pull::LimitArgs,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let visual = std::env::var("VISUAL").ok();
    let opened = open_in_editor(
        &ctx.store(),
        args.attempt,
        visual.as_deref(),
        std::env::var_os("PATH").as_deref(),
        &args.limits.limits(),
        now_ms,
        std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
    )?;
    let done = if opened.waited { "edited" } else { "opened" };
    println!(
        "{done} {} (branch {}) with {}",
        opened.path.display(),
        opened.branch,
        opened.argv.join(" ")
    );
    Ok(ExitCode::SUCCESS)
}
