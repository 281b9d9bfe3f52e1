//! `berth choose ATTEMPT [--merge [--into BRANCH]]`: the task's result: pull it, merge it if
//! asked (fast-forward or a merge commit; never over a checkout with your changes, never with
//! conflicts), and stop the task's other attempts (their workspaces are kept).

use std::process::ExitCode;

use anyhow::Result;
use berth_core::{AttemptId, Merged, choose_attempt};

use super::pull::LimitArgs;
use crate::context::{Context, now_ms};

#[derive(clap::Args)]
pub struct Args {
    /// The attempt to keep, e.g. 3.2.
    attempt: AttemptId,
    /// Also merge it into the branch the task started from (or --into's).
    #[arg(long)]
    merge: bool,
    /// With --merge: the branch to merge into.
    #[arg(long, value_name = "BRANCH", requires = "merge")]
    into: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let merge = args.merge.then(|| args.into.clone().unwrap_or_default());
    let chosen = choose_attempt(
        &ctx.store(),
        args.attempt,
        merge.as_deref(),
        &args.limits.limits(),
        now_ms,
    )?;
    if let Some(i) = &chosen.pulled.imported {
        // The repo's cache is refreshed on what the user kept (in the background).
        let _ = berth_core::refresh_cache_after_pull(
            &ctx.exe,
            &ctx.store(),
            args.attempt,
            &i.head.to_string(),
        );
    }
    let branch = chosen.pulled.imported.as_ref().map(|i| i.branch.clone());
    let how = chosen.merged.as_ref().map(|(into, m)| {
        let how = match m {
            Merged::UpToDate => "already contained it".to_string(),
            Merged::FastForward { to, .. } => format!("fast-forwarded to {}", short(to)),
            Merged::Commit { commit, .. } => format!("merge commit {}", short(commit)),
        };
        (into.clone(), how)
    });
    if args.json {
        let v = serde_json::json!({
            "attempt": args.attempt,
            "branch": branch,
            "merged_into": how.as_ref().map(|(b, _)| b),
            "how": how.as_ref().map(|(_, h)| h),
            "stopped": chosen.stopped,
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    for w in &chosen.pulled.warnings {
        eprintln!("berth: {w}");
    }
    match &branch {
        Some(b) => println!("chose {}: its result is branch {b}", args.attempt),
        None => println!(
            "chose {}: it changed nothing, so there is no branch",
            args.attempt
        ),
    }
    if let Some((into, how)) = &how {
        println!("merged into {into}: {how}");
    } else if args.merge && branch.is_none() {
        println!("nothing to merge");
    }
    if !chosen.stopped.is_empty() {
        let ids: Vec<String> = chosen.stopped.iter().map(|a| a.to_string()).collect();
        println!(
            "stopped {} (workspaces kept: `berth rm` them when done)",
            ids.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn short(oid: &berth_core::bench::Oid) -> String {
    oid.to_string()[..12].to_string()
}
