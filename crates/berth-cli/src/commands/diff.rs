//! `berth diff ATTEMPT [--against OTHER]`: the attempt's changes against its base, or what it
//! did differently from another attempt.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use berth_core::{AttemptId, compare_attempts, diff_attempt, escape_controls};

use crate::context::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The attempt, e.g. 3.1.
    attempt: AttemptId,
    /// Compare with this attempt instead of the base: the diff from OTHER's result to ATTEMPT's.
    #[arg(long, value_name = "OTHER")]
    against: Option<AttemptId>,
    /// Only the summary line.
    #[arg(long)]
    stat: bool,
    /// Machine-readable output: the patch and its counts.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    limits: super::pull::LimitArgs,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let limits = args.limits.limits();
    let live = args.against.is_none() && store.db()?.attempt(args.attempt)?.state.is_live();
    if live {
        eprintln!(
            "{} is still running: these are its changes as its guest's git reports them now              (the host reads the workspace itself once it ends)",
            args.attempt
        );
    }
    let (patch, (files, ins, del)) = match args.against {
        Some(other) => compare_attempts(&store, other, args.attempt, &limits)?,
        None => diff_attempt(&store, args.attempt, &limits)?,
    };
    if args.json {
        let out = serde_json::json!({
            "attempt": args.attempt,
            "against": args.against,
            "live": live,
            "files_changed": files,
            "insertions": ins,
            "deletions": del,
            "patch": if args.stat { None } else { Some(&patch) },
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    if !args.stat {
        // The patch is the guest's text: on a terminal its control characters are shown,
        // not obeyed (ESC sequences, CR overwrites, OSC 52 clipboard writes).
        let shown = if crate::terminal::is_tty(1) {
            escape_controls(&patch)
        } else {
            patch.as_str().into()
        };
        std::io::stdout().lock().write_all(shown.as_bytes())?;
    }
    println!("{files} file(s) changed, +{ins}/-{del}");
    Ok(ExitCode::SUCCESS)
}
