//! Starting attempt supervisors (detached), and the supervisor process's own main.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use berth_core::host::Accel;
use berth_core::host::qemu::Qemu;
use berth_core::{AttemptId, SuperviseOptions, supervise};

use crate::context::{Context, now_ms};

/// VM settings an attempt's supervisor boots with.
#[derive(clap::Args, Clone, Debug)]
pub struct VmArgs {
    /// Force the accelerator (default: kvm where it is fast, else tcg).
    #[arg(long)]
    pub accel: Option<Accel>,
    /// Guest CPUs per attempt (default 1; `berth start` keeps the attempt's own).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub cpus: Option<u32>,
    /// Seconds to wait for a guest to boot (1-3600).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub boot_timeout: u64,
    /// Refuse to start attempts that would take running attempts past this share of the
    /// host's memory (more than 0, at most 1).
    #[arg(long, default_value_t = 0.75, value_parser = memory_share)]
    pub max_memory_share: f64,
}

fn memory_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a share of memory: a number above 0 and at most 1, e.g. 0.75"
        )),
    }
}

impl VmArgs {
    /// Refuses more guest CPUs than this machine has: a VM with more vCPUs than host CPUs
    /// only gets slower.
    pub fn check_cpus(&self) -> anyhow::Result<()> {
        let host = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as u32;
        if self.cpus() > host {
            anyhow::bail!(
                "--cpus {}: this machine has {host} CPU(s); give an attempt at most {host}",
                self.cpus()
            );
        }
        Ok(())
    }

    pub fn cpus(&self) -> u32 {
        self.cpus.unwrap_or(1)
    }
}

/// What a supervisor boots with, from the command's VM flags (checked).
fn supervise_options(vm: &VmArgs) -> Result<SuperviseOptions> {
    vm.check_cpus()?;
    Ok(SuperviseOptions {
        accel: vm.accel.map(|a| a.to_string()),
        cpus: vm.cpus(),
        boot_timeout_s: vm.boot_timeout,
    })
}

/// Starts the attempt's supervisor (see `berth_core::spawn_supervisor`).
pub fn spawn_supervisor(ctx: &Context, id: AttemptId, vm: &VmArgs) -> Result<u32> {
    let opts = supervise_options(vm)?;
    Ok(berth_core::spawn_supervisor(
        &ctx.exe,
        &ctx.store(),
        id,
        &opts,
        now_ms,
    )?)
}

/// Starts the supervisors of `ids` side by side (see `berth_core::spawn_supervisors`); the
/// first failure is the error, after every attempt that could start has.
pub fn spawn_supervisors(ctx: &Context, ids: &[AttemptId], vm: &VmArgs) -> Result<()> {
    let opts = supervise_options(vm)?;
    let store = ctx.store();
    for started in berth_core::spawn_supervisors(&ctx.exe, &store, ids, &opts, now_ms) {
        started?;
    }
    Ok(())
}

/// `berth __supervise ID`: the supervisor process.
#[derive(clap::Args)]
pub struct SuperviseArgs {
    /// The attempt, e.g. 3.1.
    attempt: AttemptId,
    #[command(flatten)]
    vm: VmArgs,
}

pub fn run(ctx: &Context, args: SuperviseArgs) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    // SAFETY: ignoring terminal signals for this process only; it outlives the terminal.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let store = ctx.store();
    let rec = store.db()?.attempt(args.attempt)?;
    let settings = ctx.vm_settings(rec.memory_mib, &args.vm)?;
    let hv = Qemu::new(ctx.qemu_config()?);
    eprintln!(
        "supervisor for {} (pid {}) starting",
        args.attempt,
        std::process::id()
    );
    let state = supervise(&store, &hv, &settings, args.attempt, now_ms, stop)?;
    eprintln!("supervisor for {} done: {state}", args.attempt);
    Ok(ExitCode::SUCCESS)
}
