//! `berth pool ls|fill|drain`: booted VMs waiting for attempts (see berth-core's pool.rs),
//! and `__pool-slot`, the process that owns one.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use berth_core::host::qemu::Qemu;
use berth_core::{
    PoolShape, SlotPlan, drain_pool, fill_pool, list_slots, pool_budget, pool_size, run_slot,
    set_pool_budget, set_pool_size,
};

use super::supervise::VmArgs;
use super::task_args::DEFAULT_MEMORY;
use crate::context::{Context, now_ms};

#[derive(clap::Subcommand)]
pub enum PoolCommand {
    /// The pooled VMs: booting, ready, or serving an attempt.
    Ls {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Keep SIZE booted VMs of a shape waiting (the setting stays: after each handoff a new
    /// one boots). Attempts of that memory, CPUs and network on the image take one instead
    /// of booting; for attempts with an environment, a cache or an agent, the pool keeps
    /// SIZE of their shape waiting once one of them has started.
    Fill {
        /// VMs per shape (default: the pool's size, or 1 when it is off).
        size: Option<u32>,
        /// Guest memory, MiB (an attempt's `--memory`).
        #[arg(long, default_value_t = DEFAULT_MEMORY)]
        memory: u32,
        /// vCPUs (an attempt's `--cpus`).
        #[arg(long, default_value_t = 1)]
        cpus: u32,
        /// For attempts with a network (any mode but off, or a bound secret).
        #[arg(long)]
        network: bool,
        /// MiB of guest memory all waiting VMs may hold, kept as a setting (default: a
        /// quarter of this machine's memory); waiting VMs past it leave within a second.
        #[arg(long, value_name = "MIB")]
        budget: Option<u64>,
        /// Under TCG: MiB of translated code each pooled VM may keep, kept as a setting
        /// (`pool-tcg-cache`, 8-256; default 256, an attempt's). Smaller holds less host
        /// memory while a VM waits, but the attempt it serves runs slower.
        #[arg(long, value_name = "MIB")]
        tcg_cache: Option<u32>,
    },
    /// Stop every waiting VM (those serving attempts are attempts now); with --off, also set
    /// the pool's size to 0 so nothing refills it.
    Drain {
        /// Also set the pool's size to 0 (nothing boots again until `berth pool fill`).
        #[arg(long)]
        off: bool,
    },
}

pub fn run(ctx: &Context, cmd: PoolCommand) -> Result<ExitCode> {
    let store = ctx.store();
    match cmd {
        PoolCommand::Ls { json } => {
            let slots = list_slots(&store)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&slots)?);
                return Ok(ExitCode::SUCCESS);
            }
            let size = pool_size(&store)?;
            let set = store.db()?.setting(berth_core::POOL_SETTING)?.is_some();
            println!(
                "pool size per shape: {size}{}; memory for waiting VMs: {} MiB",
                if set { "" } else { " (this machine's default)" },
                pool_budget(&store)
            );
            if slots.is_empty() {
                println!("no pooled VMs (`berth pool fill` boots some)");
            }
            for s in slots {
                println!(
                    "{:<14} {:<8} {:>5} MiB {} CPU network {:<3} {} {}",
                    s.name,
                    s.state,
                    s.shape.memory_mib,
                    s.shape.cpus,
                    if s.shape.network { "on" } else { "off" },
                    describe_layers(&s.shape),
                    s.attempt
                        .map(|a| format!("attempt {a}"))
                        .unwrap_or_default()
                );
            }
        }
        PoolCommand::Fill {
            size,
            memory,
            cpus,
            network,
            budget,
            tcg_cache,
        } => {
            if let Some(b) = budget {
                set_pool_budget(&store, Some(b))?;
            }
            if let Some(m) = tcg_cache {
                berth_core::set_pool_tcg_cache(&store, Some(m))?;
            }
            let vm = VmArgs {
                accel: None,
                cpus: Some(cpus),
                boot_timeout: 120,
                max_memory_share: 0.75,
            };
            vm.check_cpus()?;
            berth_core::check_memory(
                &store,
                memory as u64,
                crate::context::host_memory_mib(),
                vm.max_memory_share,
            )?;
            let size = size.unwrap_or(pool_size(&store)?.max(1));
            set_pool_size(&store, size)?;
            let shape = PoolShape::plain(memory, cpus, network);
            let n = fill_pool(&ctx.exe, &store, &shape)?;
            println!(
                "pool of {size} per shape; booting {n} more ({memory} MiB, {cpus} CPU, network {}); \
                 `berth pool ls` shows them",
                if network { "on" } else { "off" }
            );
        }
        PoolCommand::Drain { off } => {
            if off {
                set_pool_size(&store, 0)?;
            }
            let n = drain_pool(&store)?;
            println!("drained {n} pooled VM(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a pooled VM boots on, for `pool ls`: the image's root or a layer, and a cache.
fn describe_layers(shape: &PoolShape) -> String {
    let name = |l: &berth_core::PoolLayer| {
        let p = &l.path;
        let dir = p.parent().and_then(|d| d.file_name());
        match dir {
            Some(d) => format!(
                "{}/{}",
                d.to_string_lossy(),
                p.file_name().unwrap_or_default().to_string_lossy()
            ),
            None => p.display().to_string(),
        }
    };
    let root = shape.root.as_ref().map_or("image".into(), &name);
    match &shape.cache {
        Some(c) => format!("on {root}, cache {}", name(c)),
        None => format!("on {root}"),
    }
}

#[derive(clap::Args)]
pub struct SlotArgs {
    /// The slot's name, shape and whose attempts it is made for (JSON, from the pool filler).
    #[arg(long)]
    plan: String,
}

/// `__pool-slot`: boots one pooled VM and waits for its attempt (then supervises it).
pub fn slot(ctx: &Context, args: SlotArgs) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    // SAFETY: ignoring terminal signals for this process only; it outlives the terminal.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let plan: SlotPlan = serde_json::from_str(&args.plan)
        .map_err(|e| anyhow::anyhow!("--plan is not a pool slot's plan: {e}"))?;
    let vm = VmArgs {
        accel: None,
        cpus: Some(plan.shape.cpus),
        boot_timeout: 120,
        max_memory_share: 0.75,
    };
    let settings = ctx.vm_settings(plan.shape.memory_mib, &vm)?;
    let hv = Qemu::new(ctx.qemu_config()?);
    eprintln!(
        "pool slot {} (pid {}) booting",
        plan.name,
        std::process::id()
    );
    match run_slot(&ctx.exe, &ctx.store(), &hv, &settings, plan, now_ms, stop)? {
        Some(state) => eprintln!("pool slot served its attempt: {state}"),
        None => eprintln!("pool slot drained"),
    }
    Ok(ExitCode::SUCCESS)
}
