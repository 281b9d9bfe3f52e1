//! Starting attempt supervisors (detached), and the supervisor process's own main.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context as _, Result};
use berth_core::{AttemptId, AttemptState, VmSettings, set_state, supervise};
use berth_vm::image::ImageStore;
use berth_vm::qemu::Qemu;
use berth_vm::session::BootOptions;
use berth_vm::{Accel, accel};

use crate::context::{Context, host_cpu, now_ms};

/// VM settings an attempt's supervisor boots with.
#[derive(clap::Args, Clone, Debug)]
pub struct VmArgs {
    /// Force the accelerator (default: kvm where it is fast, else tcg).
    #[arg(long)]
    pub accel: Option<Accel>,
    /// Guest CPUs per attempt.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub cpus: u32,
    /// Seconds to wait for a guest to boot.
    #[arg(long, default_value_t = 120)]
    pub boot_timeout: u64,
    /// Refuse to start attempts that would take running attempts past this share of the
    /// host's memory.
    #[arg(long, default_value_t = 0.75)]
    pub max_memory_share: f64,
}

/// Starts `berth __supervise ID` in its own session (so closing the terminal or the app does
/// not reach it), logging to the attempt's supervisor.log, and records it as booting.
pub fn spawn_supervisor(ctx: &Context, id: AttemptId, vm: &VmArgs) -> Result<u32> {
    let store = ctx.store();
    let log_path = store.supervisor_log(id);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let mut cmd = Command::new(&ctx.exe);
    cmd.arg("--data-dir")
        .arg(ctx.data.root())
        .arg("__supervise")
        .arg(id.to_string())
        .args(["--cpus", &vm.cpus.to_string()])
        .args(["--boot-timeout", &vm.boot_timeout.to_string()]);
    if let Some(a) = vm.accel {
        cmd.args(["--accel", &a.to_string()]);
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; it detaches the child from our terminal session.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    // Booting before the supervisor exists, so it never races us to say so.
    let mut db = store.db()?;
    db.update_attempt(id, |a| {
        a.supervisor_pid = None;
        a.supervisor_start = None;
        a.exit_code = None;
    })?;
    set_state(
        &mut db,
        now_ms,
        id,
        AttemptState::Booting,
        serde_json::json!({}),
    )?;
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let error = serde_json::json!({"error": e.to_string()});
            set_state(&mut db, now_ms, id, AttemptState::Failed, error)?;
            return Err(e).context("cannot start the attempt supervisor");
        }
    };
    let pid = child.id();
    db.update_attempt(id, |a| {
        a.supervisor_pid = Some(pid);
        a.supervisor_start = berth_vm::rundir::start_time(pid);
    })?;
    Ok(pid)
}

/// `berth __supervise ID`: the supervisor process.
#[derive(clap::Args)]
pub struct SuperviseArgs {
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
    let settings = VmSettings {
        image: ImageStore::new(ctx.data.images()).latest("default")?,
        accel: accel::choose(&host_cpu(), args.vm.accel).accel,
        memory_mib: rec.memory_mib,
        cpus: args.vm.cpus,
        boot: BootOptions {
            run_root: ctx.data.run(),
            logs_dir: ctx.data.logs(),
            owner_pid: std::process::id(),
            boot_timeout: Duration::from_secs(args.vm.boot_timeout),
        },
    };
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
