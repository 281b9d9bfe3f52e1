//! `berth repo add|ls|rm`: the repos you work with (the same list as the app's Repos).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use berth_core::{add_repo, list_repos, remove_repo};

use crate::context::{Context, now_ms};

#[derive(clap::Subcommand)]
pub enum RepoCommand {
    /// Add the git repository at PATH (any folder inside it works).
    Add {
        /// The repository's folder (a folder inside it counts).
        path: PathBuf,
    },
    /// The repos and their branches.
    Ls {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Forget a repo (its tasks and branches stay).
    Rm {
        /// The repository's folder, as `berth repo ls` shows it.
        path: PathBuf,
    },
}

pub fn run(ctx: &Context, cmd: RepoCommand) -> Result<ExitCode> {
    let store = ctx.store();
    match cmd {
        RepoCommand::Add { path } => {
            let added = add_repo(&store, &path, now_ms)?;
            println!("added {}", added.display());
        }
        RepoCommand::Rm { path } => {
            remove_repo(&store, &path)?;
            println!("removed {}", path.display());
        }
        RepoCommand::Ls { json } => {
            let repos = list_repos(&store)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&repos)?);
            } else if repos.is_empty() {
                println!("no repos yet; `berth repo add PATH` adds one");
            }
            if !json {
                for r in repos {
                    match r.error {
                        Some(e) => println!("{}  ({e})", r.path.display()),
                        None => println!("{}  [{}]", r.path.display(), r.branches.join(", ")),
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
