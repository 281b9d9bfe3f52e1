//! `berth cache ls|refresh|rm`: each repo's cache disk (`[cache]` in its berth.toml), a
//! chain of generations only setup VMs write; attempts get throwaway overlays on it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_core::host::qemu::Qemu;
use berth_core::{list_caches, plan_env, refresh_cache, remove_cache, repo_root};

use super::supervise::VmArgs;
use crate::context::{Context, now_ms};

#[derive(clap::Subcommand)]
pub enum CacheCommand {
    /// Every repo's cache disk: its current generation and size on disk.
    Ls {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run the repo's setup steps again in a setup VM, making a new generation.
    Refresh {
        /// The repo (default: the current directory's).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The commit the setup steps run on.
        #[arg(long, default_value = "HEAD")]
        base: String,
        #[command(flatten)]
        vm: VmArgs,
    },
    /// Remove the repo's cache disk (the next environment build starts it empty).
    Rm {
        /// The repo (default: the current directory's).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
}

pub fn run(ctx: &Context, cmd: CacheCommand) -> Result<ExitCode> {
    let store = ctx.store();
    match cmd {
        CacheCommand::Ls { json } => {
            let caches = list_caches(&store);
            if json {
                println!("{}", serde_json::to_string_pretty(&caches)?);
            } else if caches.is_empty() {
                println!("no cache disks yet; [cache] in a repo's berth.toml makes one");
            } else {
                println!("{:>4}  {:>8}  REPO", "GEN", "ON DISK");
                for c in caches {
                    println!(
                        "{:>4}  {:>6}Mi  {}",
                        c.generation,
                        c.size_on_disk >> 20,
                        c.repo.display()
                    );
                }
            }
        }
        CacheCommand::Refresh { repo, base, vm } => {
            let repo = repo_root(&repo)?;
            let Some(plan) = plan_env(&store, &repo, &base)? else {
                bail!(
                    "{} has no [env] or [cache] in its berth.toml",
                    repo.display()
                );
            };
            let qemu = ctx.qemu_config()?;
            let settings = ctx.vm_settings(1024, &vm)?;
            refresh_cache(
                &store,
                &Qemu::new(qemu),
                &settings,
                &plan,
                now_ms,
                &mut |l| {
                    eprintln!("{l}");
                },
            )?;
            println!("refreshed the cache of {}", repo.display());
        }
        CacheCommand::Rm { repo } => {
            let repo = repo_root(&repo)?;
            remove_cache(&store, &repo)?;
            println!("removed the cache of {}", repo.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
