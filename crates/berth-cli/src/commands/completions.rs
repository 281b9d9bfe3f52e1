//! `berth completions SHELL` and `berth man`: shell completions and manual pages generated
//! from the same clap definitions the CLI parses with, so they never drift from it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap_complete::Shell;

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell. E.g. `berth completions bash >
    /// ~/.local/share/bash-completion/completions/berth`.
    shell: Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// Write berth.1 and one page per command (berth-run.1, ...) into this directory;
    /// without it, berth.1 goes to stdout (`berth man | man -l -`).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// `cmd` without its hidden (internal) subcommands, which the generators would list.
fn public(cmd: &clap::Command) -> clap::Command {
    let mut fresh = clap::Command::new(cmd.get_name().to_string())
        .args(cmd.get_arguments().cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(public),
        );
    if let Some(about) = cmd.get_about() {
        fresh = fresh.about(about.clone());
    }
    if let Some(about) = cmd.get_long_about() {
        fresh = fresh.long_about(about.clone());
    }
    if let Some(after) = cmd.get_after_long_help() {
        fresh = fresh.after_long_help(after.clone());
    }
    if let Some(v) = cmd.get_version() {
        fresh = fresh.version(v.to_string());
    }
    fresh
}

pub fn completions(cmd: clap::Command, args: CompletionsArgs) -> Result<ExitCode> {
    let mut cmd = public(&cmd);
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "berth", &mut script);
    out(&script)
}

/// Writes `bytes` to stdout; a closed pipe ends berth like other tools (141).
fn out(bytes: &[u8]) -> Result<ExitCode> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|_| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::from(141)),
        other => {
            other?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn man(cmd: clap::Command, args: ManArgs) -> Result<ExitCode> {
    let cmd = public(&cmd);
    match args.dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            return out(&page);
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("cannot write the pages into {}", dir.display()))?;
            println!("wrote the manual pages into {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
