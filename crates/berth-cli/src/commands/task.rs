//! `berth task new`: create a task and boot its attempts in the background.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_core::{NewTask, check_memory, prepare_task};
use clap::Subcommand;

use super::supervise::{VmArgs, spawn_supervisors};
use crate::context::{Context, host_memory_mib, now_ms};

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Create a task and start its attempts; returns at once with their ids.
    New(NewArgs),
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// The git repository to work on (default: the one the current directory is in).
    #[arg(long, value_name = "PATH", default_value = ".")]
    repo: PathBuf,
    #[command(flatten)]
    task: super::task_args::TaskArgs,
    #[command(flatten)]
    vm: VmArgs,
    #[command(flatten)]
    net: super::net::NetArgs,
    /// Machine-readable output (JSON).
    #[arg(long)]
    json: bool,
    /// The command each attempt runs in /work, under a terminal (`berth attach` to it).
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub fn run(ctx: &Context, cmd: TaskCommand) -> Result<ExitCode> {
    let TaskCommand::New(args) = cmd;
    ctx.reconcile();
    // What the machine cannot give is refused before anything is made.
    args.vm.check_cpus()?;
    // A folder inside a repo means that repo, as for `berth repo add` and git itself.
    let repo = berth_core::repo_root(&args.repo)?;
    if args.command.is_empty() {
        bail!("say what each attempt runs after `--`");
    }
    ctx.image()?;
    let store = ctx.store();
    let planned = args.task.plan(&store, &repo, &args.command)?;
    let policy = planned.policy(args.net.policy(&store, Some(&repo))?)?;
    // What the attempts may reach, from the flags and the trusted berth.toml.
    eprintln!("berth: {}", berth_core::describe_policy(&policy));
    let memory = args.task.memory(
        planned.agent.as_ref(),
        berth_core::env_memory(&store, &repo)?,
    );
    check_memory(
        &store,
        memory as u64 * args.task.attempts as u64,
        host_memory_mib(),
        args.vm.max_memory_share,
    )?;
    let title = planned
        .title
        .clone()
        .unwrap_or_else(|| super::run::default_title(&planned.command));
    let prepared = prepare_task(
        &store,
        &NewTask {
            repo: &repo,
            base_ref: &args.task.base,
            attempts: args.task.attempts,
            title: &title,
            command: &planned.command,
            include_uncommitted: args.task.include_uncommitted,
            memory_mib: memory,
            policy,
            with_env: true,
            secrets: planned.secrets,
            agent: planned.agent,
            cpus: args.vm.cpus(),
            history: args.task.history(&store)?,
            limits: args.task.limit_flags(),
        },
        now_ms,
    )?;
    let started: Vec<_> = prepared.attempts.iter().map(|a| a.id).collect();
    spawn_supervisors(ctx, &started, &args.vm)?;
    let ids: Vec<String> = prepared.attempts.iter().map(|a| a.id.to_string()).collect();
    if args.json {
        println!(
            "{}",
            serde_json::json!({"task": prepared.task.id, "title": prepared.task.title, "attempts": ids})
        );
    } else {
        println!(
            "task {}: attempts {} booting",
            prepared.task.id,
            ids.join(" ")
        );
        let hints = [
            ("berth ls".to_string(), "watch them"),
            (
                format!("berth attach {}", ids[0]),
                "its terminal (Ctrl-] detaches)",
            ),
            (format!("berth logs -f {}", ids[0]), "its output"),
            (
                format!("berth exec -it {} -- bash", ids[0]),
                "a shell beside it",
            ),
        ];
        let width = hints.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
        for (cmd, what) in hints {
            println!("  {cmd:<width$}   {what}");
        }
    }
    if prepared.has_submodules {
        eprintln!(
            "berth: note: the repo has submodules (.gitmodules); attempts do not get them: \
             their folders are empty in the guest"
        );
    }
    if prepared.left_out_uncommitted {
        eprintln!(
            "berth: note: the repo has uncommitted changes; the attempts start from {} without \
             them (pass --include-uncommitted to include them)",
            args.task.base
        );
    }
    Ok(ExitCode::SUCCESS)
}
