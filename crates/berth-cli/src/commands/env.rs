//! `berth env build|status|ls|rm`: the environments attempts boot on (the repo's `[env]`: Debian
//! packages and setup steps, built once and kept as a read-only disk layer).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_core::host::qemu::Qemu;
use berth_core::{
    ActivityState, EnvOutcome, ensure_env, list_envs, plan_env, remove_env, repo_env_status,
    repo_root,
};

use super::ls::age;
use super::supervise::VmArgs;
use crate::context::{Context, now_ms};

#[derive(clap::Subcommand)]
pub enum EnvCommand {
    /// Build the repo's environment (a no-op when nothing that goes into it changed).
    Build {
        /// The repo (default: the current directory's).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The commit whose lockfiles the setup steps read, and which they run on.
        #[arg(long, default_value = "HEAD")]
        base: String,
        /// Build again even when built: the setup steps run anew (and fill a new cache
        /// generation); the built environment stays until the new one is ready.
        #[arg(long)]
        rebuild: bool,
        /// Machine-readable output (the environment's manifest).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        vm: VmArgs,
    },
    /// What the repo's berth.toml asks for, whether it is built, and what is being done
    /// about it (a build or cache refresh running, or the last one's failure).
    Status {
        /// The repo (default: the current directory's).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The built environments.
    Ls {
        /// Only this repo's.
        #[arg(long)]
        repo: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove a built environment (by id, as `env ls` shows it).
    Rm {
        /// The environment's id, or its first characters (`berth env ls` shows them).
        id: String,
    },
}

pub fn run(ctx: &Context, cmd: EnvCommand) -> Result<ExitCode> {
    let store = ctx.store();
    match cmd {
        EnvCommand::Build {
            repo,
            base,
            rebuild,
            json,
            vm,
        } => {
            let repo = repo_root(&repo)?;
            let Some(plan) = plan_env(&store, &repo, &base)? else {
                bail!(
                    "{} has no [env] in its berth.toml: its attempts boot on the image \
                     (git, a C toolchain, Python with pip and venv). Add one to have more",
                    repo.display()
                );
            };
            let settings = ctx.vm_settings(1024, &vm)?;
            let hv = Qemu::new(ctx.qemu_config()?);
            let host = settings.host.clone();
            let mut show = |l: &str| eprintln!("{l}");
            let (env, outcome) = ensure_env(
                &store, &hv, &settings, &plan, &host, now_ms, &mut show, rebuild,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&env)?);
            } else {
                match outcome {
                    EnvOutcome::UpToDate => {
                        println!("environment {} is up to date", &env.plan.id[..12])
                    }
                    EnvOutcome::Built => println!(
                        "built environment {} in {} s",
                        &env.plan.id[..12],
                        env.build_seconds
                    ),
                }
            }
        }
        EnvCommand::Status { repo, json } => {
            let repo = repo_root(&repo)?;
            let status = repo_env_status(&store, &repo);
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
        }
        EnvCommand::Ls { repo, json } => {
            let only = repo.map(|r| repo_root(&r)).transpose()?;
            let envs: Vec<_> = list_envs(&store)
                .into_iter()
                .filter(|e| only.as_ref().is_none_or(|r| &e.plan.repo == r))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&envs)?);
            } else if envs.is_empty() {
                println!(
                    "no environments yet; a repo with [env] in its berth.toml gets one on \
                          its first task, or with `berth env build`"
                );
            } else {
                let now = now_ms() / 1000;
                println!(
                    "{:<12}  {:>5}  {:>8}  {:<24}  {:>5}  REPO",
                    "ENV", "AGE", "SIZE", "PACKAGES", "STEPS"
                );
                for e in envs {
                    println!(
                        "{:<12}  {:>5}  {:>6}Mi  {:<24}  {:>5}  {}",
                        &e.plan.id[..12],
                        age(now.saturating_sub(e.built_at)),
                        e.size >> 20,
                        truncate(&e.plan.packages.join(","), 24),
                        e.plan.setup.len(),
                        e.plan.repo.display()
                    );
                }
            }
        }
        EnvCommand::Rm { id } => {
            let gone = remove_env(&store, &id)?;
            println!("removed environment {}", &gone.plan.id[..12]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn print_status(s: &berth_core::RepoEnvStatus) {
    if let Some(p) = &s.problem {
        println!("environment: cannot be planned: {p}");
    } else if !s.configured {
        println!("environment: none asked for; attempts boot on the image");
    } else {
        match &s.built {
            Some(b) => println!(
                "environment: {} built {} ago in {} s ({} MiB)",
                b.id,
                age((now_ms() / 1000).saturating_sub(b.built_at)),
                b.build_seconds,
                b.size >> 20
            ),
            None => println!("environment: not built for HEAD yet (the next attempt builds it)"),
        }
        println!(
            "  packages: {}; setup steps: {}; cache presets: {}",
            if s.packages.is_empty() {
                "-".into()
            } else {
                s.packages.join(", ")
            },
            s.setup_steps,
            if s.cache_presets.is_empty() {
                "-".into()
            } else {
                s.cache_presets.join(", ")
            },
        );
    }
    if let Some(c) = &s.cache {
        println!(
            "cache: generation {} ({} MiB on disk)",
            c.generation,
            c.size_on_disk >> 20
        );
    }
    if let Some(a) = &s.activity {
        let state = match a.state {
            ActivityState::Running => "running",
            ActivityState::Done => "done",
            ActivityState::Failed => "failed",
            ActivityState::Interrupted => "interrupted (its process is gone)",
        };
        println!("last: {} — {state}", a.what);
        if let Some(e) = &a.error {
            println!("  {e}");
        } else if a.state == ActivityState::Running
            && let Some(l) = a.lines.last()
        {
            println!("  {l}");
        }
    }
}
