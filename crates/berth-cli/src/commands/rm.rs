//! `berth rm ATTEMPT|TASK [--force]`: never deletes unpulled work without --force.

use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_core::{removal_blocker, remove_attempt};

use super::stop::stop_attempt;
use super::target::Target;
use crate::context::{Context, now_ms};

#[derive(clap::Args)]
pub struct Args {
    target: Target,
    /// Delete even attempts whose work was not pulled into the repo.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    limits: super::pull::LimitArgs,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let ids = args.target.attempts(&store.db()?)?;
    // Check everything first: a refusal deletes nothing.
    if !args.force {
        let mut refusals = Vec::new();
        for id in &ids {
            if let Some(why) = removal_blocker(&store, *id, &args.limits.limits())? {
                refusals.push(why);
            }
        }
        if !refusals.is_empty() {
            bail!(
                "nothing was removed:\n  {}\n(--force removes anyway)",
                refusals.join("\n  ")
            );
        }
    }
    for id in &ids {
        stop_attempt(ctx, &store, *id)?;
        remove_attempt(&store, *id, args.force, now_ms)?;
        println!("removed {id}");
    }
    Ok(ExitCode::SUCCESS)
}
