//! `berth prompt ATTEMPT -- TEXT`: a follow-up. The attempt's command runs again in its
//! workspace with TEXT as `$BERTH_PROMPT` (an agent preset's prompt); what it did before
//! becomes a commit of its own first, so each prompt's work is one step on its branch.

use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_core::{AttemptId, check_memory, set_followup};

use super::supervise::{VmArgs, spawn_supervisor};
use crate::context::{Context, host_memory_mib, now_ms};

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
    if rec.state.is_live() {
        bail!(
            "attempt {} is still {}; a follow-up runs once it has finished (or type into its \
             terminal: `berth attach {}`)",
            args.attempt,
            rec.state,
            args.attempt
        );
    }
    check_memory(
        &store,
        rec.memory_mib as u64,
        host_memory_mib(),
        args.vm.max_memory_share,
    )?;
    set_followup(&store, args.attempt, &args.text.join(" "), now_ms)?;
    let mut vm = args.vm.clone();
    vm.cpus = vm.cpus.or(Some(rec.cpus));
    spawn_supervisor(ctx, args.attempt, &vm)?;
    println!(
        "{id} runs again with your follow-up; its earlier work becomes a commit of its own \
         (`berth logs -f {id}`, then `berth pull {id}`)",
        id = args.attempt
    );
    Ok(ExitCode::SUCCESS)
}
