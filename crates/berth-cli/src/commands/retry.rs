//! `berth retry ATTEMPT [-- TEXT]`: start over from the task's base in a new attempt of the
//! same task (same command, network, environment, agent and limits), with a changed prompt
//! when TEXT is given. The attempt it starts over from is left as it is.

use std::process::ExitCode;

use anyhow::Result;
use berth_core::{AttemptId, check_memory, retry_attempt};

use super::supervise::{VmArgs, spawn_supervisor};
use crate::context::{Context, host_memory_mib, now_ms};

#[derive(clap::Args)]
pub struct Args {
    /// The attempt to start over from, e.g. 3.1 (it is kept; running, it keeps running).
    attempt: AttemptId,
    /// The prompt the new attempt gets ($BERTH_PROMPT); without one, the last one it had.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    text: Vec<String>,
    /// Machine-readable output: the new attempt.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vm: VmArgs,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let src = store.db()?.attempt(args.attempt)?;
    check_memory(
        &store,
        src.memory_mib as u64,
        host_memory_mib(),
        args.vm.max_memory_share,
    )?;
    let text = args.text.join(" ");
    let retried = retry_attempt(
        &store,
        args.attempt,
        (!text.trim().is_empty()).then_some(text.as_str()),
        now_ms,
    )?;
    let id = retried.attempt.id;
    let mut vm = args.vm.clone();
    vm.cpus = vm.cpus.or(Some(src.cpus));
    spawn_supervisor(ctx, id, &vm)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "attempt": id.to_string(),
                "retry_of": args.attempt.to_string(),
                "prompt": retried.prompt,
                "without_uncommitted": retried.without_uncommitted,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{id} starts over from the task's base ({} kept as it is); `berth attach {id}`, then \
         `berth compare {}`",
        args.attempt, id.task
    );
    if retried.without_uncommitted {
        println!(
            "note: the task started from your uncommitted changes; {id} starts from the commit \
             under them"
        );
    }
    Ok(ExitCode::SUCCESS)
}
