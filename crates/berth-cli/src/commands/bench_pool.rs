//! `berth bench attempts --pool`: time from a new task to the first byte of each attempt's
//! output, pooled against cold, for 1, 4 and 8 attempts; and the host memory an idle pooled
//! VM holds beyond its guest RAM.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use berth_core::{PoolShape, Store};

use super::stop::stop_attempt;
use super::supervise::{VmArgs, spawn_supervisors};
use crate::context::Context;

pub fn run(ctx: &Context, counts: &[u32], memory: u32, json: bool) -> Result<()> {
    let store = ctx.store();
    let before = store.db()?.setting(berth_core::POOL_SETTING)?;
    let repo = ctx.data.root().join(berth_core::random_id("bench-repo")?);
    berth_core::init_repo_with_files(&repo, &[("a.txt", "a\n", false)], "bench\n")?;
    let shape = PoolShape::plain(memory, 1, false);
    let mut rows = Vec::new();
    let mut idle = Vec::new();
    let result = (|| -> Result<()> {
        for &n in counts {
            berth_core::set_pool_size(&store, 0)?;
            berth_core::drain_pool(&store)?;
            let cold = first_bytes(ctx, &store, &repo, n, memory)?;
            berth_core::set_pool_size(&store, n)?;
            berth_core::fill_pool(&ctx.exe, &store, &shape)?;
            wait_ready(&store, n as usize)?;
            std::thread::sleep(Duration::from_secs(3)); // idle, settled
            idle.extend(idle_overheads(ctx, &store)?);
            // No refill while measuring: the boots would share the CPUs with the attempts.
            berth_core::set_pool_size(&store, 0)?;
            let pooled = first_bytes(ctx, &store, &repo, n, memory)?;
            eprintln!(
                "{n} attempt(s): first byte p50 cold {:.0} ms, pooled {:.0} ms",
                p50(&cold),
                p50(&pooled)
            );
            rows.push((n, p50(&cold), p50(&pooled), max(&cold), max(&pooled)));
        }
        Ok(())
    })();
    store
        .db()?
        .set_setting(berth_core::POOL_SETTING, before.as_deref())?;
    berth_core::drain_pool(&store)?;
    let _ = std::fs::remove_dir_all(&repo);
    result?;
    let idle_mib = idle.iter().map(|i| i.0).sum::<f64>() / idle.len().max(1) as f64;
    let code_mib = idle.iter().map(|i| i.1).sum::<f64>() / idle.len().max(1) as f64;
    let tcg_cache = berth_core::pool_tcg_cache(&store);
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(n, c, p, cm, pm)| serde_json::json!({"attempts": n, "cold_p50_ms": c, "pooled_p50_ms": p, "cold_max_ms": cm, "pooled_max_ms": pm}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"first_byte": list, "idle_pooled_vm_overhead_mib": idle_mib, "idle_translated_code_mib": code_mib, "pool_tcg_cache_mib": tcg_cache})
            )?
        );
        return Ok(());
    }
    println!(
        "{:>8}  {:>14}  {:>14}  {:>12}  {:>12}",
        "ATTEMPTS", "COLD p50", "POOLED p50", "COLD max", "POOLED max"
    );
    for (n, c, p, cm, pm) in rows {
        println!("{n:>8}  {c:>11.0} ms  {p:>11.0} ms  {cm:>9.0} ms  {pm:>9.0} ms");
    }
    println!(
        "idle pooled VM: {idle_mib:.1} MiB of host memory beyond its guest RAM (PSS of QEMU, \
         virtiofsd, guard and the slot process), of which {code_mib:.1} MiB is code TCG \
         translated (its cache: {tcg_cache} MiB, `berth config pool-tcg-cache`; none under KVM)"
    );
    Ok(())
}

fn p50(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// Makes a task of `n` attempts that print at once, and returns each one's time from the
/// start of `task new` to the first byte in its output, in ms; then stops them.
fn first_bytes(
    ctx: &Context,
    store: &Store,
    repo: &std::path::Path,
    n: u32,
    memory: u32,
) -> Result<Vec<f64>> {
    let vm = VmArgs {
        accel: None,
        cpus: Some(1),
        boot_timeout: 600,
        max_memory_share: 0.9,
    };
    let command = vec![
        "sh".to_string(),
        "-c".into(),
        "echo first-byte; exec sleep 3600".into(),
    ];
    let started = Instant::now();
    let prepared = super::bench_attempts::bench_task(store, repo, n, memory, &command)?;
    let ids: Vec<_> = prepared.attempts.iter().map(|a| a.id).collect();
    spawn_supervisors(ctx, &ids, &vm)?;
    let mut times: Vec<Option<f64>> = vec![None; prepared.attempts.len()];
    let deadline = Instant::now() + Duration::from_secs(600);
    while times.iter().any(Option::is_none) {
        for (i, a) in prepared.attempts.iter().enumerate() {
            if times[i].is_none()
                && std::fs::metadata(store.output_log(a.id)).is_ok_and(|m| m.len() > 0)
            {
                times[i] = Some(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        if Instant::now() > deadline {
            bail!("attempts printed nothing within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for a in &prepared.attempts {
        stop_attempt(ctx, store, a.id)?;
    }
    Ok(times.into_iter().flatten().collect())
}

fn wait_ready(store: &Store, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while berth_core::list_slots(store)?
        .iter()
        .filter(|s| s.state == "ready")
        .count()
        < n
    {
        if Instant::now() > deadline {
            bail!("the pool did not fill within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// KiB of a process's anonymous executable memory: QEMU's TCG translation cache (the only
/// such mapping QEMU makes; 0 under KVM).
fn translated_kib(pid: u32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut total = 0;
    let mut in_code = false;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first.contains('-') && first.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            let perms = words.next().unwrap_or_default();
            // Anonymous: no path after offset, device and inode.
            in_code = perms == "rwxp" && line.split_whitespace().count() == 5;
        } else if in_code && first == "Pss:" {
            total += words
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// Each ready VM's host memory beyond its guest RAM, MiB, and of it QEMU's translated code.
fn idle_overheads(ctx: &Context, store: &Store) -> Result<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for s in berth_core::list_slots(store)?
        .iter()
        .filter(|s| s.state == "ready")
    {
        let run = ctx.data.run().join(&s.name);
        let mut own = 0;
        for pid in [
            super::bench_attempts::pid_in(&run, "qemu"),
            super::bench_attempts::pid_in(&run, "virtiofsd"),
            super::bench_attempts::pid_in(&run, "guard"),
            Some(s.pid),
        ]
        .into_iter()
        .flatten()
        {
            own += super::bench_attempts::pss_kib(pid).0;
        }
        let code = super::bench_attempts::pid_in(&run, "qemu").map_or(0, translated_kib);
        out.push((own as f64 / 1024.0, code as f64 / 1024.0));
    }
    Ok(out)
}
