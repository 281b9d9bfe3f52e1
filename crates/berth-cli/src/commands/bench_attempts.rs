//! `berth bench attempts`: time to bring up 1, 4 and 8 idle attempts, and the host memory
//! each costs beyond the guest RAM it touched.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use berth_core::{AttemptState, NewTask, Store, prepare_task};

use super::stop::stop_attempt;
use super::supervise::{VmArgs, spawn_supervisor};
use crate::context::{Context, now_ms};

/// Memory of one process from /proc/PID/smaps_rollup, in KiB: (private + fair share of
/// shared file pages, guest RAM). PSS splits pages shared between processes (QEMU's binary,
/// the kernel image every VM maps) among them, so N attempts are not charged N times.
pub(super) fn pss_kib(pid: u32) -> (u64, u64) {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        rollup
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("Pss_Anon:") + field("Pss_File:"), field("Pss_Shmem:"))
}

pub(super) fn pid_in(run: &Path, name: &str) -> Option<u32> {
    std::fs::read_to_string(run.join(format!("{name}.pid")))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn run(ctx: &Context, counts: &[u32], memory: u32, json: bool) -> Result<()> {
    let store = ctx.store();
    let repo = ctx.data.root().join(berth_core::random_id("bench-repo")?);
    berth_core::init_repo_with_files(&repo, &[("a.txt", "a\n", false)], "bench\n")?;
    let vm = VmArgs {
        accel: None,
        cpus: Some(1),
        boot_timeout: 600,
        max_memory_share: 0.9,
    };
    let mut rows = Vec::new();
    for &n in counts {
        let command = vec!["sleep".to_string(), "3600".to_string()];
        let started = Instant::now();
        let prepared = bench_task(&store, &repo, n, memory, &command)?;
        for a in &prepared.attempts {
            spawn_supervisor(ctx, a.id, &vm)?;
        }
        wait_running(
            &store,
            &prepared.attempts.iter().map(|a| a.id).collect::<Vec<_>>(),
        )?;
        let up = started.elapsed();
        std::thread::sleep(Duration::from_secs(3)); // let them settle to idle
        let mut overheads = Vec::new();
        let mut guest = Vec::new();
        for a in &prepared.attempts {
            let run = ctx
                .data
                .run()
                .join(format!("attempt-{}-{}", a.id.task, a.id.n));
            let rec = store.db()?.attempt(a.id)?;
            let mut own = 0;
            let mut shared = 0;
            for pid in [
                pid_in(&run, "qemu"),
                pid_in(&run, "virtiofsd"),
                pid_in(&run, "guard"),
                rec.supervisor_pid,
            ]
            .into_iter()
            .flatten()
            {
                let (o, s) = pss_kib(pid);
                own += o;
                shared += s;
            }
            overheads.push(own);
            guest.push(shared);
        }
        for a in &prepared.attempts {
            stop_attempt(ctx, &store, a.id)?;
        }
        let avg = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64 / 1024.0;
        rows.push((n, up, avg(&overheads), avg(&guest)));
        eprintln!(
            "{n} attempt(s): all running after {:.1} s",
            up.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&repo);
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(n, up, o, g)| serde_json::json!({"attempts": n, "bring_up_s": up.as_secs_f64(), "overhead_mib_per_attempt": o, "guest_ram_touched_mib": g}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        println!(
            "{:>8}  {:>12}  {:>26}  {:>20}",
            "ATTEMPTS", "BRING-UP", "HOST OVERHEAD / ATTEMPT", "GUEST RAM TOUCHED"
        );
        for (n, up, o, g) in rows {
            println!(
                "{n:>8}  {:>10.1} s  {o:>22.1} MiB  {g:>16.1} MiB",
                up.as_secs_f64()
            );
        }
        println!("(overhead: PSS of QEMU, virtiofsd, supervisor and guard, without the guest RAM)");
    }
    Ok(())
}

/// A task of `n` attempts of `command` on `repo`, no network, one commit of history.
pub(super) fn bench_task(
    store: &Store,
    repo: &Path,
    n: u32,
    memory: u32,
    command: &[String],
) -> Result<berth_core::PreparedTask> {
    Ok(prepare_task(
        store,
        &NewTask {
            repo,
            base_ref: "HEAD",
            attempts: n,
            title: "bench",
            command,
            include_uncommitted: false,
            memory_mib: memory,
            policy: berth_core::Policy::default(),
            with_env: false,
            secrets: Vec::new(),
            agent: None,
            cpus: 1,
            history: 1,
            limits: Default::default(),
        },
        now_ms,
    )?)
}

fn wait_running(store: &Store, ids: &[berth_core::AttemptId]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let db = store.db()?;
        let mut all = true;
        for id in ids {
            let a = db.attempt(*id)?;
            match a.state {
                AttemptState::Running => {}
                AttemptState::Booting | AttemptState::Created => all = false,
                other => bail!(
                    "attempt {id} ended up {other}: {}",
                    a.error.unwrap_or_default()
                ),
            }
        }
        if all {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("attempts did not all reach running within 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
