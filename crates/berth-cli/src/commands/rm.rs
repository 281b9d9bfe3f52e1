//! `berth rm ATTEMPT|TASK [--force]`: never deletes unpulled work or a running attempt
//! without --force, and with --force says what it discards.

use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_core::{Removal, removal_blocker, remove_attempt};

use super::target::Target;
use crate::context::{Context, now_ms};

#[derive(clap::Args)]
pub struct Args {
    /// An attempt (e.g. 3.1) or a whole task (e.g. 3).
    target: Target,
    /// Delete even running attempts and attempts whose work was not pulled into the repo.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    limits: super::pull::LimitArgs,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let limits = args.limits.limits();
    let ids = args.target.attempts(&store.db()?)?;
    // Check everything first: a refusal deletes nothing.
    let mut blockers = Vec::new();
    for id in &ids {
        blockers.push(removal_blocker(&store, *id, &limits)?);
    }
    if !args.force {
        let refusals: Vec<&str> = blockers
            .iter()
            .flatten()
            .map(|b| b.reason.as_str())
            .collect();
        if !refusals.is_empty() {
            bail!(
                "nothing was removed:\n  {}\n(pull first, or --force to remove anyway)",
                refusals.join("\n  ")
            );
        }
    }
    for (id, blocker) in ids.iter().zip(&blockers) {
        // --force is the user's confirmation of exactly what was found above.
        let removal = match blocker {
            Some(b) => {
                eprintln!("berth: discarding: {}", b.reason);
                Removal::Discarding(&b.confirm)
            }
            None => Removal::IfNothingIsLost,
        };
        remove_attempt(&store, *id, removal, &limits, now_ms)?;
        println!("removed {id}");
    }
    Ok(ExitCode::SUCCESS)
}
