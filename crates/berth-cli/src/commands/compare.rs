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
        "{:<8} {:<8} {:>5} {:>7} {:>5} {:>11} {:<10} {:>6} {:>7}  BRANCH",
        "ATTEMPT", "STATE", "EXIT", "TIME", "FILES", "LINES", "TESTS", "DENIED", "SECRETS"
    );
    for r in &rows {
        println!("{}", row(r));
    }
    if let Some(command) = rows.iter().find_map(|r| r.test_command.as_deref()) {
        println!(
            "\ntests: `{}`, run in each attempt after its agent",
            berth_core::table_cell(command, 120)
        );
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
        "{:<8} {:<8} {:>5} {:>7} {:>5} {:>11} {:<10} {:>6} {:>7}  {}",
        r.id.to_string(),
        r.state.to_string(),
        r.exit_code.map_or_else(dash, |c| c.to_string()),
        time,
        r.files_changed.map_or_else(dash, |f| f.to_string()),
        lines,
        tests(r),
        r.denied,
        r.secret_uses,
        r.branch
            .as_deref()
            .map_or_else(dash, |b| berth_core::table_cell(b, 40))
    )
}

/// The TESTS cell: passed, failed (N), timed out, interrupted, pending, or - (no command).
fn tests(r: &AttemptSummary) -> String {
    match (&r.test, &r.test_command) {
        (Some(t), _) if t.passed() => "passed".into(),
        (Some(t), _) => match (t.exit_code, t.timed_out) {
            (Some(n), _) => format!("failed ({n})"),
            (None, true) => "timed out".into(),
            (None, false) => "interrupted".into(),
        },
        (None, Some(_)) if r.state.is_live() => "pending".into(),
        (None, Some(_)) => "not run".into(),
        (None, None) => "-".into(),
    }
}
