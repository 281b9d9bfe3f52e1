//! `berth stop ATTEMPT|TASK` and `berth start ATTEMPT`.

use anyhow::Result;
use berth_core::{AttemptId, Store, check_memory};
use std::process::ExitCode;

use super::supervise::{VmArgs, spawn_supervisor};
use super::target::Target;
use crate::context::{Context, host_memory_mib, now_ms};

#[derive(clap::Args)]
pub struct StopArgs {
    /// An attempt (e.g. 3.1) or a whole task (e.g. 3).
    target: Target,
}

#[derive(clap::Args)]
pub struct StartArgs {
    /// The attempt, e.g. 3.1.
    attempt: AttemptId,
    #[command(flatten)]
    vm: VmArgs,
}

/// Boots ended attempt `rec` again on its workspace, with its own memory and (unless `vm`
/// gives others) CPUs; `before` runs once the memory check passed, before the boot.
pub fn boot_again(
    ctx: &Context,
    rec: &berth_core::AttemptRecord,
    vm: &VmArgs,
    before: impl FnOnce() -> Result<()>,
) -> Result<()> {
    check_memory(
        &ctx.store(),
        rec.memory_mib as u64,
        host_memory_mib(),
        vm.max_memory_share,
    )?;
    before()?;
    let mut vm = vm.clone();
    vm.cpus = vm.cpus.or(Some(rec.cpus));
    spawn_supervisor(ctx, rec.id, &vm)?;
    Ok(())
}

/// Stops `id` (through the core, which escalates) and tidies up after it.
pub fn stop_attempt(ctx: &Context, store: &Store, id: AttemptId) -> Result<bool> {
    let stopped = berth_core::stop_attempt(store, id, now_ms)?;
    ctx.reconcile();
    Ok(stopped)
}

pub fn stop(ctx: &Context, args: StopArgs) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    for id in args.target.attempts(&store.db()?)? {
        if stop_attempt(ctx, &store, id)? {
            println!("stopped {id}");
        } else {
            println!("{id} was not running");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn start(ctx: &Context, args: StartArgs) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let rec = berth_core::check_startable(&store, args.attempt)?;
    boot_again(ctx, &rec, &args.vm, || Ok(()))?;
    println!(
        "{} booting again on its workspace (was {})",
        args.attempt, rec.state
    );
    Ok(ExitCode::SUCCESS)
}
