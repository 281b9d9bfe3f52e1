//! `berth rm ATTEMPT|TASK [--force]`: never deletes unpulled work without --force.

use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_core::{audit, unpulled_work};

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
            let rec = store.db()?.attempt(*id)?;
            if rec.state.is_live() {
                refusals.push(format!("{id} is {}; `berth stop {id}` first", rec.state));
                continue;
            }
            match unpulled_work(&store, &rec, &args.limits.limits()) {
                Ok(Some(what)) => {
                    refusals.push(format!("{id} has {what}; `berth pull {id}` first"))
                }
                Ok(None) => {}
                Err(e) => refusals.push(format!(
                    "{id}: cannot tell whether its work was pulled ({e})"
                )),
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
        let dir = store.attempt_dir(*id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let mut db = store.db()?;
        audit(
            &mut db,
            now_ms,
            *id,
            "lifecycle",
            serde_json::json!({"event": "removed", "force": args.force}),
        )?;
        db.delete_attempt(*id)?;
        db.delete_task_if_empty(id.task)?;
        println!("removed {id}");
    }
    Ok(ExitCode::SUCCESS)
}
