//! `berth ls`: tasks and attempts as they really are.

use std::process::ExitCode;

use anyhow::Result;

use crate::context::{Context, now_ms};

#[derive(clap::Args)]
pub struct Args {
    /// Machine-readable output (JSON).
    #[arg(long)]
    json: bool,
    /// Only attempts in these states (repeatable): created, booting, running, exited,
    /// failed, stopped; `live` means booting or running.
    #[arg(long, value_name = "STATE")]
    state: Vec<String>,
    /// Only this task's attempts.
    #[arg(long, value_name = "N")]
    task: Option<u32>,
    /// Only attempts on this repo (a folder inside it counts).
    #[arg(long, value_name = "PATH")]
    repo: Option<std::path::PathBuf>,
}

const STATES: &[&str] = &[
    "created", "booting", "running", "exited", "failed", "stopped", "live",
];

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let db = store.db()?;
    let tasks = db.tasks()?;
    if let Some(bad) = args.state.iter().find(|s| !STATES.contains(&s.as_str())) {
        anyhow::bail!("--state {bad}: one of {}", STATES.join(", "));
    }
    if let Some(t) = args.task
        && !tasks.iter().any(|x| x.id == t)
    {
        anyhow::bail!("no task {t}; `berth ls` lists them");
    }
    let repo = args
        .repo
        .as_deref()
        .map(berth_core::repo_root)
        .transpose()?;
    let attempts: Vec<_> = db
        .attempts()?
        .into_iter()
        .filter(|a| args.task.is_none_or(|t| a.id.task == t))
        .filter(|a| repo.as_ref().is_none_or(|r| &a.repo == r))
        .filter(|a| {
            args.state.is_empty()
                || args
                    .state
                    .iter()
                    .any(|s| s == a.state.as_str() || (s == "live" && a.state.is_live()))
        })
        .collect();
    let filtered = !args.state.is_empty() || args.task.is_some() || repo.is_some();
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
                    "cpus": a.cpus,
                    "denied_requests": db.denied_requests(a.id).unwrap_or(0),
                    // Names an approval question waits on (an attached `berth attach` or the
                    // app answers it).
                    "waiting_for": if a.state.is_live() { store.waiting_for(a.id) } else { Vec::new() },
                    // Its terminal sits quiet at a prompt: the user is expected to type.
                    "waiting_input": a.state.is_live() && store.waiting_input(a.id),
                    // While it runs: the files it has changed so far (count, latest names).
                    "changing": if a.state.is_live() { berth_core::live_changes(&store, a.id) } else { None },
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if attempts.is_empty() && filtered {
        println!("no attempt matches");
        return Ok(ExitCode::SUCCESS);
    }
    if attempts.is_empty() {
        println!("no tasks yet; `berth task new --repo PATH -- CMD` or `berth run --demo`");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8} {:<8} {:>5} {:>5}  {:<14} {:>5} {:>6}  {:<9}  {:<16}  {:<30}  ERROR",
        "ATTEMPT", "STATE", "AGE", "EXIT", "BRANCH", "FILES", "DENIED", "SHARE", "REPO", "TITLE"
    );
    for a in &attempts {
        let title = tasks
            .iter()
            .find(|t| t.id == a.id.task)
            .map(|t| t.title.as_str())
            .unwrap_or("");
        let repo_name = a
            .repo
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "{:<8} {:<8} {:>5} {:>5}  {:<14} {:>5} {:>6}  {:<9}  {:<16}  {:<30}  {}",
            a.id.to_string(),
            if a.state.is_live() && !store.waiting_for(a.id).is_empty() {
                "waiting"
            } else if a.state.is_live() && store.waiting_input(a.id) {
                "input"
            } else {
                a.state.as_str()
            },
            age(now.saturating_sub(a.created_at)),
            a.exit_code.map(|c| c.to_string()).unwrap_or("-".into()),
            a.branch.clone().unwrap_or("-".into()),
            a.files_changed.map(|f| f.to_string()).unwrap_or("-".into()),
            db.denied_requests(a.id).unwrap_or(0),
            store.share_sandbox(a.id).unwrap_or_else(|| "-".into()),
            berth_core::table_cell(&repo_name, 16),
            berth_core::table_cell(title, 30),
            berth_core::table_cell(a.error.as_deref().unwrap_or("-"), 60)
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
