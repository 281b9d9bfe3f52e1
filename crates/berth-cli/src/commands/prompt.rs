//! `berth prompt ATTEMPT -- TEXT`: a follow-up. The attempt's command runs again in its
//! workspace with TEXT as `$BERTH_PROMPT` (an agent preset's prompt); what it did before
//! becomes a commit of its own first, so each prompt's work is one step on its branch.

use std::process::ExitCode;

use anyhow::Result;
use berth_core::{AttemptId, set_followup};

use super::supervise::VmArgs;
use crate::context::{Context, now_ms};

#[derive(clap::Args)]
pub struct Args {
    /// The attempt, e.g. 3.1 (finished: a running one is typed to with `berth attach`).
    attempt: AttemptId,
    /// What to ask for next.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    text: Vec<String>,
    #[command(flatten)]
    vm: VmArgs,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let rec = store.db()?.attempt(args.attempt)?;
    // The core refuses a live attempt, an empty or oversized prompt, a lost workspace.
    super::stop::boot_again(ctx, &rec, &args.vm, || {
        Ok(set_followup(
            &store,
            args.attempt,
            &args.text.join(" "),
            now_ms,
        )?)
    })?;
    println!(
        "{id} runs again with your follow-up; its earlier work becomes a commit of its own \
         (`berth logs -f {id}`, then `berth pull {id}`)",
        id = args.attempt
    );
    Ok(ExitCode::SUCCESS)
}
