//! `berth vm ...`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::context::Context;

#[derive(Subcommand)]
pub enum VmCommand {
    /// Boot a throwaway VM, run one command in it, tear everything down.
    Run(super::vm_run::Args),
}

pub fn run(ctx: &Context, cmd: VmCommand) -> Result<ExitCode> {
    match cmd {
        VmCommand::Run(args) => super::vm_run::run(ctx, args),
    }
}
