//! `berth bench boot`: how long until the agent answers, against the floor.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use berth_core::host::qemu::Qemu;
use berth_core::host::session::{BootOptions, VmSession};
use berth_core::host::{Accel, VmSpec, accel, floor};
use clap::Subcommand;

use crate::context::{Context, host_cpu};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Time from `berth vm run` start until the guest agent answers, next to the floor.
    Boot {
        /// Boots of each kind.
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// Force the accelerator (default: kvm where it is fast, else tcg).
        #[arg(long)]
        accel: Option<Accel>,
        /// Guest memory, MiB.
        #[arg(long, default_value_t = 512)]
        memory: u32,
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
    },
    /// Throughput and added latency through the egress proxy vs direct, on loopback.
    Egress {
        /// MiB per download.
        #[arg(long, default_value_t = 512)]
        size_mib: u64,
        /// Small requests for the latency median.
        #[arg(long, default_value_t = 500)]
        requests: u32,
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
    },
    /// Time to bring up 1, 4 and 8 idle attempts, and host memory per attempt.
    Attempts {
        /// Guest memory per attempt, MiB.
        #[arg(long, default_value_t = 512)]
        memory: u32,
        /// Pooled against cold: time from a new task to each attempt's first output byte,
        /// and an idle pooled VM's host memory (drains the pool first and after).
        #[arg(long)]
        pool: bool,
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
    },
    /// An environment: cold and no-op build, agent-ready time on it vs the bare image, sizes.
    Env {
        /// The Debian package the environment adds.
        #[arg(long, default_value = "jq")]
        package: String,
        /// Boots of each kind.
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
    },
    /// Under TCG: a code-heavy workload (Python, a C compile, git) run again and again in a
    /// VM with each translation cache size: what a smaller cache (a pooled VM's
    /// `pool-tcg-cache`) costs the commands that run in it.
    TcgCache {
        /// Cache sizes to compare, MiB.
        #[arg(long, value_delimiter = ',', default_values_t = [16, 32, 64, 256])]
        sizes: Vec<u32>,
        /// Runs of the workload per VM (the first is reported apart).
        #[arg(long, default_value_t = 6)]
        runs: u32,
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
    },
    /// Workspace creation on a tiny repo vs one with a large history, and pull-back time.
    Workspace {
        /// MiB of history in the large repo.
        #[arg(long, default_value_t = 1024)]
        history_mib: u64,
        /// MiB of the one file at the base of the big-file repo.
        #[arg(long, default_value_t = 200)]
        big_mib: u64,
        /// How many runs to measure.
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Context, cmd: BenchCommand) -> Result<ExitCode> {
    let (runs, accel, memory, json) = match cmd {
        BenchCommand::Boot {
            runs,
            accel,
            memory,
            json,
        } => (runs, accel, memory, json),
        BenchCommand::Egress {
            size_mib,
            requests,
            json,
        } => {
            super::bench_egress::run(size_mib, requests.max(1), json)?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCommand::Attempts { memory, pool, json } => {
            ctx.reconcile();
            if pool {
                super::bench_pool::run(ctx, &[1, 4, 8], memory, json)?;
                return Ok(ExitCode::SUCCESS);
            }
            super::bench_attempts::run(ctx, &[1, 4, 8], memory, json)?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCommand::Env {
            package,
            runs,
            json,
        } => {
            ctx.reconcile();
            let root = tempdir(ctx, "bench-env")?;
            let result = super::bench_env::run(ctx, &root, &package, runs.max(1), json);
            let _ = std::fs::remove_dir_all(&root);
            result?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCommand::TcgCache { sizes, runs, json } => {
            ctx.reconcile();
            super::bench_tcg::run(ctx, &sizes, runs, json)?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCommand::Workspace {
            history_mib,
            big_mib,
            runs,
            json,
        } => {
            if runs == 0 {
                bail!("--runs must be at least 1");
            }
            let root = tempdir(ctx, "bench-ws")?;
            let result = super::bench_workspace::run(&root, history_mib, big_mib, runs, json);
            let _ = std::fs::remove_dir_all(&root);
            result?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    ctx.reconcile();
    let image = ctx.image()?;
    let host = host_cpu();
    let choice = accel::choose(&host, accel);
    let config = ctx.qemu_config()?;
    let hv = Qemu::new(config.clone());
    let share = tempdir(ctx, "bench-share")?;
    let opts = BootOptions {
        run_root: ctx.data.run(),
        logs_dir: ctx.data.logs(),
        owner_pid: std::process::id(),
        boot_timeout: Duration::from_secs(120),
        cancel: None,
    };

    let mut berth = Vec::new();
    for i in 0..runs {
        let spec = VmSpec {
            name: berth_core::random_id("bench")?,
            image: image.clone(),
            share: Some(share.clone()),
            share_is_berths: false,
            memory_mib: memory,
            cpus: 1,
            accel: choice.accel,
            extra_kernel_args: Vec::new(),
            network: false,
            root: None,
            cache: None,
            tcg_cache_mib: None,
            private_boot_files: false,
        };
        let session = VmSession::boot(&hv, &spec, &opts)?;
        eprintln!(
            "berth boot {}/{runs}: {:.3} s",
            i + 1,
            session.boot_time.as_secs_f64()
        );
        berth.push(session.boot_time);
        session.shutdown();
    }

    let floor_img = share.join("floor.cpio");
    floor::write_floor_initramfs(std::path::Path::new("/bin/busybox"), &floor_img)?;
    let mut floor_times = Vec::new();
    for i in 0..runs {
        let t = floor::boot_floor(
            &config.qemu,
            &image.kernel(),
            &floor_img,
            choice.accel,
            config.tsc_khz,
            memory,
        )?;
        eprintln!("floor boot {}/{runs}: {:.3} s", i + 1, t.as_secs_f64());
        floor_times.push(t);
    }
    let _ = std::fs::remove_dir_all(&share);

    let b = median(&mut berth);
    let f = median(&mut floor_times);
    let ratio = b.as_secs_f64() / f.as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "accel": choice.accel,
                "runs": runs,
                "berth_median_s": b.as_secs_f64(),
                "floor_median_s": f.as_secs_f64(),
                "ratio": ratio,
            })
        );
    } else {
        println!("accelerator: {}", choice.reason);
        println!(
            "berth vm run -> agent ready   median {:.3} s  ({runs} runs)",
            b.as_secs_f64()
        );
        println!(
            "floor (busybox, poweroff)     median {:.3} s  ({runs} runs)",
            f.as_secs_f64()
        );
        println!("ratio                         {ratio:.2}x");
    }
    Ok(ExitCode::SUCCESS)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn tempdir(ctx: &Context, prefix: &str) -> Result<std::path::PathBuf> {
    let dir = ctx.data.root().join(berth_core::random_id(prefix)?);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
