//! `berth`: every coding-agent attempt in its own VM.
#![allow(clippy::print_stdout)]

mod commands;
mod context;
mod pipe;
mod terminal;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit code for berth's own failures (as `docker run` does), distinct from the guest
/// command's codes.
pub const BERTH_FAILURE: u8 = 125;

#[derive(Parser)]
#[command(name = "berth", version, about = "Run coding agents in throwaway VMs", long_about = None)]
struct Cli {
    /// Data directory (images, run dirs, logs). Default: $BERTH_DATA_DIR or $XDG_DATA_HOME/berth.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// What is installed, which accelerator VMs get, whether an image is built.
    Doctor(commands::doctor::Args),
    /// Attack Berth from inside real VMs on this machine (files, network, secrets, git,
    /// the agent channel, resources) and print what each attack got: exits 1 if any got
    /// through.
    Selftest(commands::selftest::Args),
    /// Build and list guest images.
    #[command(subcommand)]
    Image(commands::image::ImageCommand),
    /// The environments attempts boot on (the repo's [env]: packages and setup steps).
    #[command(subcommand)]
    Env(commands::env::EnvCommand),
    /// Each repo's cache disk ([cache]: cargo, npm, pip, go caches shared by its attempts).
    #[command(subcommand)]
    Cache(commands::cache::CacheCommand),
    /// Booted VMs waiting for attempts: ls, fill, drain.
    #[command(subcommand)]
    Pool(commands::pool::PoolCommand),
    /// Run a task: N attempts, each in its own VM, each result pulled back as a branch.
    Run(commands::run::Args),
    /// Open the desktop app.
    App,
    /// Create tasks whose attempts run in the background.
    #[command(subcommand)]
    Task(commands::task::TaskCommand),
    /// Tasks and attempts: state, age, exit code, branch, files changed.
    Ls(commands::ls::Args),
    /// The terminal of a running attempt (Ctrl-] detaches; the attempt keeps running).
    Attach(commands::attach::Args),
    /// Run another command in a running attempt.
    Exec(commands::exec::Args),
    /// An attempt's output from the start (-f: then live).
    Logs(commands::logs::Args),
    /// Stop an attempt or every attempt of a task.
    Stop(commands::stop::StopArgs),
    /// Boot a stopped attempt again on its workspace.
    Start(commands::stop::StartArgs),
    /// A follow-up: run a finished attempt's command again in its workspace with a new
    /// prompt ($BERTH_PROMPT); its earlier work becomes a commit of its own.
    Prompt(commands::prompt::Args),
    /// Start over from the task's base in a new attempt of the same task, optionally with a
    /// changed prompt; the attempt it starts over from is kept.
    Retry(commands::retry::Args),
    /// Delete attempts or tasks (refuses while work is not pulled, unless --force).
    Rm(commands::rm::Args),
    /// An attempt's audit timeline.
    Audit(commands::audit::Args),
    /// Bring an attempt's result into its repo as a branch.
    Pull(commands::pull::Args),
    /// Show an attempt's changes against its base.
    Diff(commands::diff::Args),
    /// A task's attempts side by side: state, exit code, time, changes, denials, secrets.
    Compare(commands::compare::Args),
    /// Keep an attempt as the task's result: pull it, merge it if asked, stop the others.
    Choose(commands::choose::Args),
    /// Open an attempt's branch in your editor (pulls it first if needed).
    Open(commands::open::Args),
    /// The repos you work with (the app's Repos section).
    #[command(subcommand)]
    Repo(commands::repo::RepoCommand),
    /// The coding agents Berth has presets for (`--agent NAME` on run and task new).
    #[command(subcommand)]
    Agent(commands::agent::AgentCommand),
    /// Secrets for agents: values in the OS keyring, used through each attempt's gateway.
    #[command(subcommand)]
    Secret(commands::secret::SecretCommand),
    /// Show or change a setting (editor), or trust a repo's berth.toml.
    #[command(after_long_help = commands::config::BERTH_TOML_HELP)]
    Config(commands::config::Args),
    /// Run commands in throwaway VMs.
    #[command(subcommand)]
    Vm(commands::vm::VmCommand),
    /// Measure Berth.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Shell completions for bash, zsh, fish, elvish or powershell, on stdout.
    Completions(commands::completions::CompletionsArgs),
    /// The manual pages (berth.1 on stdout, or every page into --dir).
    Man(commands::completions::ManArgs),
    /// Internal: an attempt's supervisor.
    #[command(name = "__supervise", hide = true)]
    Supervise(commands::supervise::SuperviseArgs),
    /// Internal: one pooled VM's owner.
    #[command(name = "__pool-slot", hide = true)]
    PoolSlot(commands::pool::SlotArgs),
    /// Internal: bridges one guest connection (stdin/stdout) into an egress proxy socket.
    #[command(name = "__bridge", hide = true)]
    Bridge { socket: PathBuf },
    /// Internal: the per-VM cleanup guard.
    #[command(name = "__guard", hide = true)]
    Guard { run_dir: PathBuf },
}

fn main() -> ExitCode {
    // QEMU's jail: before anything else (no threads, nothing parsed but its own words).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == berth_core::host::jail::JAIL_COMMAND)
    {
        return commands::jail::run(&args[2..]);
    }
    pipe::exit_quietly_on_broken_pipe();
    let cli = Cli::parse();
    if let Command::Bridge { socket } = &cli.command {
        return commands::bridge::run(socket);
    }
    // Generated from the definitions alone: they need no data directory.
    let cli = match cli.command {
        Command::Completions(args) => {
            return report(commands::completions::completions(Cli::command(), args));
        }
        Command::Man(args) => return report(commands::completions::man(Cli::command(), args)),
        command => Cli {
            data_dir: cli.data_dir,
            command,
        },
    };
    if let Command::Guard { run_dir } = &cli.command {
        berth_core::host::guard::run_guard(run_dir);
        return ExitCode::SUCCESS;
    }
    init_logging();
    berth_core::use_keyring(context::keyring());
    let ctx = match context::Context::resolve(cli.data_dir) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let result = match cli.command {
        Command::Doctor(args) => commands::doctor::run(&ctx, args),
        Command::Image(cmd) => commands::image::run(&ctx, cmd),
        Command::Env(cmd) => commands::env::run(&ctx, cmd),
        Command::Cache(cmd) => commands::cache::run(&ctx, cmd),
        Command::Pool(cmd) => commands::pool::run(&ctx, cmd),
        Command::Selftest(args) => commands::selftest::run(&ctx, args),
        Command::PoolSlot(args) => commands::pool::slot(&ctx, args),
        Command::Run(args) => commands::run::run(&ctx, args),
        Command::App => commands::app::run(&ctx),
        Command::Task(cmd) => commands::task::run(&ctx, cmd),
        Command::Ls(args) => commands::ls::run(&ctx, args),
        Command::Attach(args) => commands::attach::run(&ctx, args),
        Command::Exec(args) => commands::exec::run(&ctx, args),
        Command::Logs(args) => commands::logs::run(&ctx, args),
        Command::Stop(args) => commands::stop::stop(&ctx, args),
        Command::Start(args) => commands::stop::start(&ctx, args),
        Command::Prompt(args) => commands::prompt::run(&ctx, args),
        Command::Retry(args) => commands::retry::run(&ctx, args),
        Command::Rm(args) => commands::rm::run(&ctx, args),
        Command::Audit(args) => commands::audit::run(&ctx, args),
        Command::Supervise(args) => commands::supervise::run(&ctx, args),
        Command::Pull(args) => commands::pull::run(&ctx, args),
        Command::Diff(args) => commands::diff::run(&ctx, args),
        Command::Compare(args) => commands::compare::run(&ctx, args),
        Command::Choose(args) => commands::choose::run(&ctx, args),
        Command::Open(args) => commands::open::run(&ctx, args),
        Command::Repo(cmd) => commands::repo::run(&ctx, cmd),
        Command::Config(args) => commands::config::run(&ctx, args),
        Command::Secret(cmd) => commands::secret::run(&ctx, cmd),
        Command::Agent(cmd) => commands::agent::run(&ctx, cmd),
        Command::Vm(cmd) => commands::vm::run(&ctx, cmd),
        Command::Bench(cmd) => commands::bench::run(&ctx, cmd),
        Command::Guard { .. }
        | Command::Bridge { .. }
        | Command::Completions(_)
        | Command::Man(_) => unreachable!("handled above"),
    };
    report(result)
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    // Errors can quote a guest's file names or a repo's text: never raw control characters.
    eprintln!(
        "berth: error: {}",
        berth_core::escape_controls(&format!("{e:#}"))
    );
    ExitCode::from(BERTH_FAILURE)
}

/// Logs go to stderr, filtered by `BERTH_LOG` (e.g. `BERTH_LOG=debug`); warnings by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command and every argument a user can see says what it is for (`--help`, the
    /// man pages and the completions are made from these).
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.is_hide_set() || ["help", "version"].contains(&arg.get_id().as_str()) {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.is_hide_set() || sub.get_name() == "help" {
                    continue;
                }
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "berth", &mut missing);
        assert!(missing.is_empty(), "no help for:\n{}", missing.join("\n"));
    }
}
