//! `berth stop ATTEMPT|TASK` and `berth start ATTEMPT`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use berth_core::{AttemptId, Store, SupervisorClient, check_memory};

use super::supervise::{VmArgs, spawn_supervisor};
use super::target::Target;
use crate::context::{Context, host_memory_mib};

#[derive(clap::Args)]
pub struct StopArgs {
    target: Target,
}

#[derive(clap::Args)]
pub struct StartArgs {
    attempt: AttemptId,
    #[command(flatten)]
    vm: VmArgs,
}

/// Asks the attempt's supervisor to stop and waits for it; kills it if it does not go.
pub fn stop_attempt(ctx: &Context, store: &Store, id: AttemptId) -> Result<bool> {
    let rec = store.db()?.attempt(id)?;
    if !rec.state.is_live() {
        return Ok(false);
    }
    if let Ok(client) = SupervisorClient::connect(&store.socket(id)) {
        let _ = client.stop();
    }
    let gone = |rec: &berth_core::AttemptRecord| match (rec.supervisor_pid, rec.supervisor_start) {
        (Some(pid), Some(start)) => !berth_vm::rundir::process_alive(pid, start),
        _ => true,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gone(&rec) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if !gone(&rec)
        && let Some(pid) = rec.supervisor_pid
    {
        // SAFETY: kill takes plain integers; the pid was checked to be this supervisor.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    }
    ctx.reconcile();
    Ok(true)
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
    let rec = store.db()?.attempt(args.attempt)?;
    if rec.state.is_live() {
        bail!("attempt {} is already {}", args.attempt, rec.state);
    }
    if !store.workspace(args.attempt).is_dir() {
        bail!("attempt {} has no workspace any more", args.attempt);
    }
    check_memory(
        &store,
        rec.memory_mib as u64,
        host_memory_mib(),
        args.vm.max_memory_share,
    )?;
    spawn_supervisor(ctx, args.attempt, &args.vm)?;
    println!(
        "{} booting again on its workspace (was {})",
        args.attempt, rec.state
    );
    Ok(ExitCode::SUCCESS)
}
