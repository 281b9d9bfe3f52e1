//! `berth pull ATTEMPT`: bring an attempt's result into its repo as a branch.

use std::process::ExitCode;

use anyhow::Result;
use berth_core::Limits;
use berth_core::{AttemptId, pull_attempt};

use crate::context::{Context, now_ms};

#[derive(clap::Args)]
pub struct Args {
    /// The attempt, e.g. 3.1.
    attempt: AttemptId,
    /// Branch name to create (default berth/<task>/<n>).
    #[arg(long)]
    branch: Option<String>,
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
    let pulled = pull_attempt(
        &store,
        args.attempt,
        args.branch.as_deref(),
        args.force,
        &args.limits.limits(),
        now_ms,
    )?;
    if pulled.up_to_date
        && let Some(i) = &pulled.imported
    {
        println!("{} is already up to date as {}", args.attempt, i.branch);
        return Ok(ExitCode::SUCCESS);
    }
    for w in &pulled.warnings {
        eprintln!(
            "berth: attempt {}: {}",
            args.attempt,
            berth_core::escape_controls(w)
        );
    }
    let rec = store.db()?.attempt(args.attempt)?;
    if let Some(i) = &pulled.imported
        && let Some(pid) = berth_core::refresh_cache_after_pull(
            &ctx.exe,
            &store,
            args.attempt,
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
            args.attempt,
            rec.repo.display(),
            i.branch,
            i.commits,
            i.files_changed,
            i.insertions,
            i.deletions
        ),
        None => println!(
            "attempt {} changed nothing; no branch was made",
            args.attempt
        ),
    }
    Ok(ExitCode::SUCCESS)
}
