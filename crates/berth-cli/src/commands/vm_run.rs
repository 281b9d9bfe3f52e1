//! `berth vm run`: boot, run one command as `agent` in /work, stream it, tear down.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use berth_core::host::agent::{AgentError, ExecControl, ExecIo};
use berth_core::host::image::ImageStore;
use berth_core::host::qemu::Qemu;
use berth_core::host::session::{BootOptions, SessionError, VmSession};
use berth_core::host::{Accel, VmSpec, accel};
use berth_core::{ExecRequest, WinSize};

use crate::context::{Context, host_cpu};
use crate::{BERTH_FAILURE, terminal};

#[derive(clap::Args)]
pub struct Args {
    /// Host directory shared read-write at /work in the guest.
    #[arg(long, value_name = "DIR")]
    share: Option<PathBuf>,
    /// Force the accelerator (default: kvm where it is fast, else tcg).
    #[arg(long)]
    accel: Option<Accel>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(64..=65536))]
    memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    cpus: u32,
    /// Image recipe to boot (the newest build of it).
    #[arg(long, default_value = "default")]
    image: String,
    /// Extra environment for the command, KEY=VALUE.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory in the guest.
    #[arg(short, long, default_value = "/work")]
    workdir: String,
    /// Forward this terminal's stdin to the command.
    #[arg(short, long)]
    interactive: bool,
    /// Run the command under a pseudo-terminal (with -i: an interactive shell).
    #[arg(short, long)]
    tty: bool,
    /// Seconds to wait for the guest to boot (1-3600).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    boot_timeout: u64,
    /// Seconds of silence after which a running guest counts as hung.
    #[arg(long, default_value_t = 30)]
    hang_timeout: u64,
    /// Extra kernel command-line argument (repeatable; for debugging images).
    #[arg(long = "kernel-arg", value_name = "ARG", hide = true)]
    kernel_args: Vec<String>,
    /// MiB of translated code TCG may cache (for measuring; default 256).
    #[arg(long, value_name = "MIB", hide = true, value_parser = clap::value_parser!(u32).range(1..=4096))]
    tcg_cache: Option<u32>,
    /// Print boot progress on stderr even when it is not a terminal.
    #[arg(short, long)]
    verbose: bool,
    #[command(flatten)]
    net: super::net::NetArgs,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let mut env = parse_env(&args.env)?;
    let share = match &args.share {
        Some(s) => Some(
            s.canonicalize()
                .with_context(|| format!("cannot share {}", s.display()))?,
        ),
        None => None,
    };
    let policy = args.net.policy(&ctx.store(), None)?;
    // What the machine cannot give is refused before anything boots.
    let host_cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as u32;
    if args.cpus > host_cpus {
        anyhow::bail!("--cpus {}: this machine has {host_cpus} CPU(s)", args.cpus);
    }
    berth_core::check_memory(
        &ctx.store(),
        args.memory as u64,
        crate::context::host_memory_mib(),
        0.9,
    )?;
    let image = ImageStore::new(ctx.data.images()).latest(&args.image)?;
    crate::context::warn_slow_kvm(args.accel);
    let choice = accel::choose(&host_cpu(), args.accel);
    let say = args.verbose || terminal::is_tty(2);
    let name = berth_core::random_id("vm")?;
    if say {
        eprintln!(
            "berth: booting {name} ({}, {} MiB, {} CPU) from {}",
            choice.accel,
            args.memory,
            args.cpus,
            image.id()
        );
    }
    let spec = VmSpec {
        name,
        image,
        share,
        share_is_berths: false,
        memory_mib: args.memory,
        cpus: args.cpus,
        accel: choice.accel,
        extra_kernel_args: args.kernel_args.clone(),
        network: policy.mode != berth_core::Mode::Off,
        root: None,
        cache: None,
        tcg_cache_mib: args.tcg_cache,
        private_boot_files: false,
    };
    // Requests are reported on stderr as they are decided (a plain VM has no audit log).
    let _proxy = berth_core::start_proxy(
        &ctx.data.run(),
        &spec.name,
        &policy,
        std::sync::Arc::new(|ev: berth_core::EgressEvent| {
            if ev.decision == "deny" {
                eprintln!(
                    "berth: egress denied {} {}:{} ({})",
                    ev.method,
                    ev.host,
                    ev.port,
                    ev.reason.unwrap_or_default()
                );
            }
        }),
        None,
        Vec::new(),
    )?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let winch = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGWINCH, winch.clone())?;

    let hv = Qemu::new(ctx.qemu_config()?);
    let opts = BootOptions {
        run_root: ctx.data.run(),
        logs_dir: ctx.data.logs(),
        owner_pid: std::process::id(),
        boot_timeout: Duration::from_secs(args.boot_timeout),
        cancel: None,
    };
    let mut session = match VmSession::boot(&hv, &spec, &opts) {
        Ok(s) => s,
        Err(e) => bail!("{}", explain(e)),
    };
    session
        .agent
        .set_unresponsive_after(Duration::from_secs(args.hang_timeout));
    if say {
        eprintln!(
            "berth: guest ready in {:.1} s",
            session.boot_time.as_secs_f64()
        );
    }
    if stop.load(Ordering::SeqCst) {
        session.shutdown();
        return Ok(ExitCode::from(130));
    }

    let pty = (args.tty).then(|| {
        let (rows, cols) = terminal::size(1).unwrap_or((24, 80));
        WinSize { rows, cols }
    });
    let request = ExecRequest {
        argv: args.command.clone(),
        env: {
            env.extend(berth_core::proxy_env(&policy));
            env
        },
        cwd: Some(args.workdir.clone()),
        user: None,
        pty,
    };
    let exec = match session.agent.start(request) {
        Ok(e) => e,
        Err(e) => {
            session.kill();
            bail!("{}", explain(e.into()));
        }
    };
    let _raw = (args.tty && args.interactive && terminal::is_tty(0))
        .then(terminal::RawMode::enable)
        .flatten();
    if args.interactive {
        forward_stdin(exec.clone());
    } else {
        let _ = exec.close_stdin();
    }
    let mut io = StdIo {
        stop: stop.clone(),
        winch,
        exec: exec.clone(),
    };
    let result = session.agent.wait(&exec, &mut io);
    drop(_raw);
    match result {
        Ok(status) => {
            session.shutdown();
            Ok(ExitCode::from(status.shell_code().clamp(0, 255) as u8))
        }
        Err(AgentError::Interrupted) => {
            if say {
                eprintln!("berth: interrupted; stopping the VM");
            }
            session.shutdown();
            Ok(ExitCode::from(130))
        }
        Err(e) => {
            session.keep_console();
            session.kill();
            eprintln!("berth: error: {}", explain(e.into()));
            Ok(ExitCode::from(BERTH_FAILURE))
        }
    }
}

fn explain(e: SessionError) -> String {
    e.to_string()
}

fn parse_env(pairs: &[String]) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("--env takes KEY=VALUE, got '{p}'"),
        })
        .collect()
}

fn forward_stdin(exec: ExecControl) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        let mut stdin = std::io::stdin().lock();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if exec.stdin(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = exec.close_stdin();
    });
}

struct StdIo {
    stop: Arc<AtomicBool>,
    winch: Arc<AtomicBool>,
    exec: ExecControl,
}

impl ExecIo for StdIo {
    fn stdout(&mut self, data: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(data).and_then(|_| out.flush());
    }
    fn stderr(&mut self, data: &[u8]) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(data).and_then(|_| err.flush());
    }
    fn error(&mut self, message: &str) {
        eprintln!("[guest agent: {}]", berth_core::escape_controls(message));
    }
    fn interrupted(&mut self) -> bool {
        if self.winch.swap(false, Ordering::SeqCst)
            && let Some((rows, cols)) = terminal::size(1)
        {
            let _ = self.exec.resize(rows, cols);
        }
        self.stop.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_pairs_need_a_key_and_an_equals_sign() {
        let ok = parse_env(&["A=1".into(), "B=x=y".into(), "C=".into()]).unwrap();
        assert_eq!(ok[1], ("B".into(), "x=y".into()));
        assert!(parse_env(&["=1".into()]).is_err());
        assert!(parse_env(&["NOEQ".into()]).is_err());
    }
}
