//! `berth pull ATTEMPT`: bring an attempt's result into its repo as a branch.

use std::process::ExitCode;

use anyhow::Result;
use berth_core::Limits;
use berth_core::{AttemptId, pull_attempt};

use crate::context::{Context, now_ms};

#[derive(clap::Args)]
pub struct Args {
    /// An attempt (e.g. 3.1), or a task (e.g. 3): each of its attempts that changed something.
    target: super::target::Target,
    /// Branch name to create (default berth/<task>/<n>; only for one attempt).
    #[arg(long)]
    branch: Option<String>,
    /// Machine-readable output: per attempt, its branch, head and counts, or its error.
    #[arg(long)]
    json: bool,
    /// The repo moved: pull into it here (it must have the task's base commit); the task
    /// points there from now on.
    #[arg(long, value_name = "PATH")]
    repo: Option<std::path::PathBuf>,
    /// Replace the branch if it exists (never one that is checked out; says which commits
    /// it takes off the branch).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Caps on what a pull may bring back.
#[derive(clap::Args, Clone)]
pub struct LimitArgs {
    /// Largest file an attempt may bring back, in bytes.
    #[arg(long, default_value_t = Limits::default().max_blob_bytes, value_name = "BYTES")]
    max_file_size: u64,
    /// Largest total of new objects an attempt may bring back, in bytes.
    #[arg(long, default_value_t = Limits::default().max_total_bytes, value_name = "BYTES")]
    max_total_size: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_blob_bytes: self.max_file_size,
            max_total_bytes: self.max_total_size,
            ..Limits::default()
        }
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let ids = args.target.attempts(&store.db()?)?;
    if let Some(repo) = &args.repo {
        berth_core::move_attempt_repo(&store, ids[0], repo, now_ms)?;
    }
    if ids.len() > 1 && args.branch.is_some() {
        anyhow::bail!(
            "--branch names one branch: pull one attempt with it, e.g. {}",
            ids[0]
        );
    }
    let mut results = Vec::new();
    let mut failed = false;
    for id in ids {
        match pull_one(ctx, &store, id, &args) {
            Ok(v) => results.push(v),
            Err(e) if args.target.is_task() => {
                failed = true;
                if !args.json {
                    eprintln!("berth: attempt {id} was not pulled: {e:#}");
                }
                results.push(serde_json::json!({"attempt": id, "error": format!("{e:#}")}));
            }
            Err(e) => return Err(e),
        }
    }
    if args.json {
        let out = match (args.target.is_task(), results.as_slice()) {
            (false, [one]) => one.clone(),
            _ => serde_json::Value::Array(results),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(if failed {
        ExitCode::from(crate::BERTH_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

/// Pulls one attempt, saying what happened (unless `--json`); its JSON record.
fn pull_one(
    ctx: &Context,
    store: &berth_core::Store,
    attempt: AttemptId,
    args: &Args,
) -> Result<serde_json::Value> {
    let pulled = pull_attempt(
        store,
        attempt,
        args.branch.as_deref(),
        args.force,
        &args.limits.limits(),
        now_ms,
    )?;
    let record = serde_json::json!({
        "attempt": attempt,
        "branch": pulled.imported.as_ref().map(|i| &i.branch),
        "head": pulled.imported.as_ref().map(|i| i.head.to_string()),
        "commits": pulled.imported.as_ref().map(|i| i.commits),
        "files_changed": pulled.imported.as_ref().map(|i| i.files_changed),
        "insertions": pulled.imported.as_ref().map(|i| i.insertions),
        "deletions": pulled.imported.as_ref().map(|i| i.deletions),
        "up_to_date": pulled.up_to_date,
        "warnings": pulled.warnings,
    });
    let say = !args.json;
    if pulled.up_to_date
        && let Some(i) = &pulled.imported
    {
        if say {
            println!("{attempt} is already up to date as {}", i.branch);
        }
        return Ok(record);
    }
    if !say {
        if let Some(i) = &pulled.imported {
            berth_core::refresh_cache_after_pull(&ctx.exe, store, attempt, &i.head.to_string())?;
        }
        return Ok(record);
    }
    let args_attempt = attempt;
    for w in &pulled.warnings {
        eprintln!(
            "berth: attempt {}: {}",
            args_attempt,
            berth_core::escape_controls(w)
        );
    }
    let rec = store.db()?.attempt(args_attempt)?;
    if let Some(i) = &pulled.imported
        && let Some(pid) = berth_core::refresh_cache_after_pull(
            &ctx.exe,
            store,
            args_attempt,
            &i.head.to_string(),
        )?
    {
        eprintln!(
            "berth: refreshing the repo's cache on {} in the background (pid {pid}; \
             `berth cache ls` shows the new generation)",
            i.branch
        );
    }
    if let Some(r) = pulled.imported.as_ref().and_then(|i| i.replaced.as_ref()) {
        let branch = pulled
            .imported
            .as_ref()
            .map(|i| i.branch.as_str())
            .unwrap_or("");
        if r.dropped.is_empty() {
            eprintln!(
                "berth: moved {branch} forward from {:.12}",
                r.old.to_string()
            );
        } else {
            let ids: Vec<String> = r.dropped.iter().map(|c| format!("{c:.12}")).collect();
            eprintln!(
                "berth: --force took {} commit(s) off {branch}: {} (it pointed at {old}; \
                 `git branch <name> {old}` keeps them)",
                r.dropped.len(),
                ids.join(" "),
                old = r.old
            );
        }
    }
    match pulled.imported {
        Some(i) => println!(
            "pulled {} into {} as {} ({} commit(s), {} file(s), +{}/-{})",
            args_attempt,
            rec.repo.display(),
            i.branch,
            i.commits,
            i.files_changed,
            i.insertions,
            i.deletions
        ),
        None => println!(
            "attempt {} changed nothing; no branch was made",
            args_attempt
        ),
    }
    Ok(record)
}
