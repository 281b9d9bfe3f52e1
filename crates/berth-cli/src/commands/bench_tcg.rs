//! `berth bench tcg-cache`: how fast a guest runs code-heavy commands with TCG translation
//! caches of several sizes (a pooled VM's is `berth config pool-tcg-cache`): the same
//! workload run again and again in one VM, the first run (nothing translated yet) apart from
//! the later ones (what a cache that holds the workload's code no longer retranslates).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use berth_core::host::agent::ExecIo;
use berth_core::host::qemu::Qemu;
use berth_core::host::session::{BootOptions, VmSession};
use berth_core::host::{Accel, VmSpec};

use crate::context::Context;

/// Code a coding agent's commands run through: Python importing much of its standard
/// library, a C compile, git making a commit; every binary of it in the default image.
const WORKLOAD: &str = "set -e; cd /tmp; rm -rf r; \
    python3 -c 'import json, email.parser, http.client, asyncio, unittest, argparse, decimal, \
    sqlite3, xml.dom.minidom, logging.handlers, urllib.request, subprocess, tarfile, zipfile, csv'; \
    printf 'int main(void) { return 0; }\\n' > a.c; gcc -O1 a.c -o a; \
    git init -q r; cd r; echo x > f; git add f; \
    git -c user.email=b@b -c user.name=b commit -qm m";

pub fn run(ctx: &Context, sizes: &[u32], runs: u32, json: bool) -> Result<()> {
    if runs < 2 {
        bail!("--runs must be at least 2 (the first run is reported apart)");
    }
    let image = ctx.image()?;
    let hv = Qemu::new(ctx.qemu_config()?);
    let opts = BootOptions {
        run_root: ctx.data.run(),
        logs_dir: ctx.data.logs(),
        owner_pid: std::process::id(),
        boot_timeout: Duration::from_secs(300),
        cancel: None,
    };
    let mut rows = Vec::new();
    for &mib in sizes {
        let spec = VmSpec {
            name: berth_core::random_id("bench")?,
            image: image.clone(),
            share: None,
            share_is_berths: false,
            memory_mib: 1024,
            cpus: 1,
            accel: Accel::Tcg,
            extra_kernel_args: Vec::new(),
            network: false,
            root: None,
            cache: None,
            tcg_cache_mib: Some(mib),
            private_boot_files: false,
        };
        let mut session = VmSession::boot(&hv, &spec, &opts)?;
        let mut times = Vec::new();
        for i in 0..runs {
            let started = Instant::now();
            let mut out = Captured::default();
            let status = session.agent.exec(
                berth_core::ExecRequest {
                    argv: vec!["sh".into(), "-c".into(), WORKLOAD.into()],
                    env: Vec::new(),
                    cwd: None,
                    user: None,
                    pty: None,
                },
                &mut out,
            );
            let took = started.elapsed().as_secs_f64();
            match status {
                Ok(s) if s.shell_code() == 0 => {}
                other => {
                    session.shutdown();
                    bail!(
                        "the workload failed in the guest ({other:?}): {}",
                        String::from_utf8_lossy(&out.0)
                    );
                }
            }
            eprintln!("tb-size {mib} MiB, run {}/{runs}: {took:.2} s", i + 1);
            times.push(took);
        }
        session.shutdown();
        let first = times[0];
        let mut later = times[1..].to_vec();
        later.sort_by(f64::total_cmp);
        rows.push((mib, first, later[later.len() / 2]));
    }
    let base = rows.iter().map(|r| r.2).fold(f64::INFINITY, f64::min);
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(
                |(m, f, l)| serde_json::json!({"tcg_cache_mib": m, "first_s": f, "later_p50_s": l}),
            )
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "{:>10}  {:>9}  {:>10}  {:>8}",
        "TCG CACHE", "FIRST", "LATER p50", "vs BEST"
    );
    for (m, f, l) in rows {
        println!("{:>6} MiB  {f:>7.2} s  {l:>8.2} s  {:>7.2}x", m, l / base);
    }
    Ok(())
}

/// What the workload printed (shown only if it fails).
#[derive(Default)]
struct Captured(Vec<u8>);

impl ExecIo for Captured {
    fn stdout(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
    }
    fn stderr(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
    }
    fn error(&mut self, message: &str) {
        self.0.extend_from_slice(message.as_bytes());
    }
}
