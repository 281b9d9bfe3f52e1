//! `berth compare TASK [--json]`: a task's attempts side by side (the app's comparison strip).

use std::process::ExitCode;

use anyhow::Result;
use berth_core::{AttemptSummary, compare_task};

use crate::context::{Context, now_ms};

#[derive(clap::Args)]
pub struct Args {
    /// The task, e.g. 3.
    task: u32,
    /// Machine-readable output: one record per attempt.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let rows = compare_task(&ctx.store(), args.task, now_ms)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8} {:<8} {:>5} {:>7} {:>5} {:>11} {:>6} {:>7}  BRANCH",
        "ATTEMPT", "STATE", "EXIT", "TIME", "FILES", "LINES", "DENIED", "SECRETS"
    );
    for r in &rows {
        println!("{}", row(r));
    }
    println!(
        "\nchoose one:  berth choose ATTEMPT [--merge]   (pulls it, merges it into the branch the \
         task started from, stops the others)"
    );
    Ok(ExitCode::SUCCESS)
}

fn row(r: &AttemptSummary) -> String {
    let dash = || "-".to_string();
    let time = r.seconds.map_or_else(dash, |s| {
        if s >= 60 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{s}s")
        }
    });
    let lines = match (r.insertions, r.deletions) {
        (Some(i), Some(d)) => format!("+{i}/-{d}"),
        _ => dash(),
    };
    format!(
        "{:<8} {:<8} {:>5} {:>7} {:>5} {:>11} {:>6} {:>7}  {}",
        r.id.to_string(),
        r.state.to_string(),
        r.exit_code.map_or_else(dash, |c| c.to_string()),
        time,
        r.files_changed.map_or_else(dash, |f| f.to_string()),
        lines,
        r.denied,
        r.secret_uses,
        r.branch
            .as_deref()
            .map_or_else(dash, |b| berth_core::table_cell(b, 40))
    )
}
