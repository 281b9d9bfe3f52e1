//! `berth agent ls|install`: the coding agents Berth has presets for
//! (`provisioning/agents.toml`, and a trusted berth.toml's `[agents.NAME]`), where each is
//! installed and whether the secret it needs is set. `berth run|task new --agent NAME` runs
//! one (installing it first if it is not yet).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use berth_core::host::qemu::Qemu;
use berth_core::{install_agent, list_agents};

use super::supervise::VmArgs;
use crate::context::{Context, now_ms};

#[derive(clap::Subcommand)]
pub enum AgentCommand {
    /// Each agent: its package and version, where it is installed, the secret it needs and
    /// whether it is set.
    Ls {
        /// The repo whose custom agents to list too (default: the current directory's, if
        /// it is one).
        #[arg(long)]
        repo: Option<PathBuf>,
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
    },
    /// Install an agent's CLI: fetched on this machine with your own npm or pip (no package
    /// script runs here), checked against its SHA-512, and installed by a setup VM with no
    /// network on what the repo's attempts boot on (its environment, or the image).
    Install {
        /// The agent (`berth agent ls` lists them).
        name: String,
        /// Another version than the preset's pin; attempts run this one from now on.
        #[arg(long)]
        version: Option<String>,
        /// The repo (default: the current directory's, if it is one; else on the image).
        #[arg(long)]
        repo: Option<PathBuf>,
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        vm: VmArgs,
    },
}

/// `--repo`, else the current directory's repo if there is one.
fn repo_or_cwd(repo: Option<PathBuf>) -> Result<Option<PathBuf>> {
    match repo {
        Some(r) => Ok(Some(berth_core::repo_root(&r)?)),
        None => Ok(berth_core::repo_root(Path::new(".")).ok()),
    }
}

pub fn run(ctx: &Context, cmd: AgentCommand) -> Result<ExitCode> {
    let store = ctx.store();
    match cmd {
        AgentCommand::Ls { repo, json } => {
            let repo = repo_or_cwd(repo)?;
            let agents = list_agents(&store, repo.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&agents)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<10}  {:<12}  {:<40}  {:<22}  INSTALLED",
                "AGENT", "LABEL", "PACKAGE", "SECRET"
            );
            for a in agents {
                let installed: Vec<String> = a
                    .installed
                    .iter()
                    .map(|i| format!("{} on {}", i.version, i.on))
                    .collect();
                println!(
                    "{:<10}  {:<12}  {:<40}  {:<22}  {}",
                    a.name,
                    a.label,
                    format!("{}@{}", a.package, a.version),
                    format!(
                        "{} ({})",
                        a.secret,
                        if a.secret_set { "set" } else { "not set" }
                    ),
                    if installed.is_empty() {
                        "no".to_string()
                    } else {
                        installed.join(", ")
                    }
                );
            }
            println!(
                "\nInstall one with `berth agent install NAME` (or let the first attempt do it); run \
                 one with `berth run --agent NAME --repo R -- \"the prompt\"`."
            );
        }
        AgentCommand::Install {
            name,
            version,
            repo,
            json,
            vm,
        } => {
            let repo = repo_or_cwd(repo)?;
            let settings = ctx.vm_settings(1024, &vm)?;
            let hv = Qemu::new(ctx.qemu_config()?);
            let mut show = |l: &str| eprintln!("{l}");
            let (layer, built) = install_agent(
                &store,
                &hv,
                &settings,
                repo.as_deref(),
                &name,
                version.as_deref(),
                now_ms,
                &mut show,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&layer)?);
            } else if built {
                println!(
                    "{} {} installed on {} ({})",
                    name, layer.version, layer.on, layer.check
                );
            } else {
                println!(
                    "{} {} is installed on {} already",
                    name, layer.version, layer.on
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
