//! `berth ls`: tasks and attempts as they really are.

use std::process::ExitCode;

use anyhow::Result;

use crate::context::{Context, now_ms};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let db = store.db()?;
    let tasks = db.tasks()?;
    let attempts = db.attempts()?;
    let now = now_ms() / 1000;
    if args.json {
        let list: Vec<_> = attempts
            .iter()
            .map(|a| {
                let title = tasks
                    .iter()
                    .find(|t| t.id == a.id.task)
                    .map(|t| t.title.clone());
                serde_json::json!({
                    "id": a.id,
                    "task": a.id.task,
                    "title": title,
                    "state": a.state,
                    "repo": a.repo,
                    "age_s": now.saturating_sub(a.created_at),
                    "elapsed_s": a.elapsed_s(now),
                    "share_sandbox": store.share_sandbox(a.id),
                    "exit_code": a.exit_code,
                    "error": a.error,
                    "branch": a.branch,
                    "files_changed": a.files_changed,
                    "insertions": a.insertions,
                    "deletions": a.deletions,
                    "memory_mib": a.memory_mib,
                    "denied_requests": db.denied_requests(a.id).unwrap_or(0),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if attempts.is_empty() {
        println!("no tasks yet; `berth task new --repo PATH -- CMD` or `berth run --demo`");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8} {:<8} {:>5} {:>5}  {:<14} {:>5} {:>6}  {:<9}  TITLE",
        "ATTEMPT", "STATE", "AGE", "EXIT", "BRANCH", "FILES", "DENIED", "SHARE"
    );
    for a in &attempts {
        let title = tasks
            .iter()
            .find(|t| t.id == a.id.task)
            .map(|t| t.title.as_str())
            .unwrap_or("");
        println!(
            "{:<8} {:<8} {:>5} {:>5}  {:<14} {:>5} {:>6}  {:<9}  {}",
            a.id.to_string(),
            a.state.as_str(),
            age(now.saturating_sub(a.created_at)),
            a.exit_code.map(|c| c.to_string()).unwrap_or("-".into()),
            a.branch.clone().unwrap_or("-".into()),
            a.files_changed.map(|f| f.to_string()).unwrap_or("-".into()),
            db.denied_requests(a.id).unwrap_or(0),
            store.share_sandbox(a.id).unwrap_or_else(|| "-".into()),
            berth_core::table_cell(title, 60)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
