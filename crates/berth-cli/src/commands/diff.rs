//! `berth diff ATTEMPT`: the attempt's changes against its base.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use berth_core::{AttemptId, diff_attempt};

use crate::context::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The attempt, e.g. 3.1.
    attempt: AttemptId,
    /// Only the summary line.
    #[arg(long)]
    stat: bool,
    #[command(flatten)]
    limits: super::pull::LimitArgs,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let store = ctx.store();
    let (patch, (files, ins, del)) = diff_attempt(&store, args.attempt, &args.limits.limits())?;
    if !args.stat {
        std::io::stdout().lock().write_all(patch.as_bytes())?;
    }
    println!("{files} file(s) changed, +{ins}/-{del}");
    Ok(ExitCode::SUCCESS)
}
