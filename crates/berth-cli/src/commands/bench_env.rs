//! `berth bench env`: what an environment costs and saves. Builds one for a scratch repo
//! (packages + a setup step that fills the cache disk), then measures a no-op rebuild, the
//! time until the agent answers on the environment (with its cache disk) vs on the bare
//! image, and the environment's and cache's size on disk.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use berth_core::host::qemu::Qemu;
use berth_core::host::session::VmSession;
use berth_core::host::{CacheDisk, RootLayer, VmSpec};
use berth_core::{EnvOutcome, ensure_env, init_repo_with_files, plan_env, remove_env};

use super::supervise::VmArgs;
use crate::context::{Context, now_ms};

pub fn run(ctx: &Context, root: &Path, package: &str, runs: u32, json: bool) -> Result<()> {
    let repo = root.join("repo");
    // A setup step unique to this run: the environment is built cold (the package layer may
    // come from the cache of an earlier run; the report says which).
    let marker = berth_core::random_id("bench")?;
    let toml = format!(
        "[env]\npackages = [\"{package}\"]\nsetup = [\"mkdir -p $PIP_CACHE_DIR && head -c 64M /dev/urandom > $PIP_CACHE_DIR/{marker}\"]\n\
         [cache]\npresets = [\"pip\"]\nsize = \"1GiB\"\n"
    );
    init_repo_with_files(&repo, &[("berth.toml", &toml, false)], "bench\n")?;
    let store = ctx.store();
    let repo = berth_core::repo_root(&repo)?;
    // The scratch repo is the user's own (made just now): trusted as it is.
    let plan = plan_env(&store, &repo, "HEAD")?.expect("the bench repo has an [env]");
    let vm = VmArgs {
        accel: None,
        cpus: Some(1),
        boot_timeout: 120,
        max_memory_share: 0.75,
    };
    let settings = ctx.vm_settings(512, &vm)?;
    let hv = Qemu::new(ctx.qemu_config()?);
    let host = settings.host.clone();
    let mut packages_cached = false;
    let t = Instant::now();
    let mut show = |l: &str| {
        if l.contains("packages: cached") {
            packages_cached = true;
        }
        eprintln!("{l}");
    };
    let (env, _) = ensure_env(
        &store, &hv, &settings, &plan, &host, now_ms, &mut show, false,
    )?;
    let cold = t.elapsed();
    let t = Instant::now();
    let (_, outcome) = ensure_env(
        &store,
        &hv,
        &settings,
        &plan,
        &host,
        now_ms,
        &mut |_| {},
        false,
    )?;
    let noop = t.elapsed();
    assert_eq!(outcome, EnvOutcome::UpToDate);

    let generation = berth_core::current_cache_generation(&store, &repo, 1 << 30)?;
    let boot = |root: Option<RootLayer>, cache: Option<CacheDisk>| -> Result<Duration> {
        let spec = VmSpec {
            name: berth_core::random_id("bench")?,
            image: settings.image.clone(),
            share: None,
            share_is_berths: false,
            memory_mib: settings.memory_mib,
            cpus: 1,
            accel: settings.accel,
            extra_kernel_args: Vec::new(),
            network: false,
            root,
            cache,
            tcg_cache_mib: None,
            private_boot_files: false,
        };
        let session = VmSession::boot(&hv, &spec, &settings.boot)?;
        let t = session.boot_time;
        session.shutdown();
        Ok(t)
    };
    let layer = RootLayer {
        path: env.layer.clone(),
        format: if env.layer_format == "qcow2" {
            "qcow2"
        } else {
            "raw"
        },
    };
    let (mut bare, mut on_env) = (Vec::new(), Vec::new());
    for i in 0..runs {
        bare.push(boot(None, None)?);
        on_env.push(boot(
            Some(layer.clone()),
            Some(CacheDisk::Overlay(generation.clone())),
        )?);
        eprintln!(
            "boot {}/{runs}: bare {:.3} s, on the environment {:.3} s",
            i + 1,
            bare[i as usize].as_secs_f64(),
            on_env[i as usize].as_secs_f64()
        );
    }
    let (b, e) = (median(&mut bare), median(&mut on_env));
    let cache_bytes = berth_core::cache_disk_usage(&store, &repo);
    let _ = remove_env(&store, &env.plan.id);
    let _ = berth_core::remove_cache(&store, &repo);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "env_build_cold_s": cold.as_secs_f64(),
                "env_packages_layer_cached": packages_cached,
                "env_build_noop_s": noop.as_secs_f64(),
                "boot_bare_median_s": b.as_secs_f64(),
                "boot_on_env_median_s": e.as_secs_f64(),
                "ratio": e.as_secs_f64() / b.as_secs_f64(),
                "env_bytes": env.size,
                "cache_bytes": cache_bytes,
                "runs": runs,
            })
        );
    } else {
        println!(
            "environment build, cold           {:.1} s (package layer {})",
            cold.as_secs_f64(),
            if packages_cached {
                "from the cache"
            } else {
                "built"
            }
        );
        println!(
            "environment build, nothing changed {:.3} s",
            noop.as_secs_f64()
        );
        println!(
            "agent ready: bare image           median {:.3} s ({runs} runs)",
            b.as_secs_f64()
        );
        println!(
            "agent ready: environment + cache  median {:.3} s  ({:.2}x)",
            e.as_secs_f64(),
            e.as_secs_f64() / b.as_secs_f64()
        );
        println!(
            "environment on disk                {} KiB (its own layer; the package layer is shared)",
            env.size >> 10
        );
        println!(
            "cache disk on disk                 {} MiB",
            cache_bytes >> 20
        );
    }
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}
