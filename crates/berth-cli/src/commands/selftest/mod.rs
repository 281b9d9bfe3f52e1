//! `berth selftest`: boots real VMs on this machine and attacks Berth from inside them (the
//! guest half is `guest.py`, run as the guest's ordinary user, as an agent is), then judges
//! every attack from the host's own evidence: its loopback traps, its files, the audit, the
//! processes and memory it sees. Prints a table; exits 1 if any attack got through.
//!
//! Everything happens in a data directory of its own under `<data>/selftest/` (the user's
//! tasks, secrets and audit are not touched; only the image is shared, read-only) and on the
//! host's loopback.

mod attacks;
mod evidence;
mod traps;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::context::Context;

/// The guest's attacker, shipped inside the binary.
const GUEST_SCRIPT: &str = include_str!("guest.py");

#[derive(clap::Args)]
pub struct Args {
    /// Machine-readable result: every attack with what should happen, what happened and
    /// whether it was stopped.
    #[arg(long)]
    json: bool,
    /// Keep the selftest's data directory (its tasks, logs and audit) for a look afterwards.
    #[arg(long)]
    keep: bool,
}

/// One selftest run's own Berth: a data directory, its repo, and how to call `berth` on it.
pub struct Bench {
    pub exe: PathBuf,
    pub dir: PathBuf,
    pub data: PathBuf,
    pub repo: PathBuf,
    pub canary: String,
}

impl Bench {
    pub fn berth(&self) -> Command {
        let mut c = Command::new(&self.exe);
        c.arg("--data-dir")
            .arg(&self.data)
            // Every host process of the selftest's attempts carries this; the guest must
            // never find it.
            .env("BERTH_SELFTEST_CANARY", &self.canary)
            .stdin(Stdio::null());
        c
    }

    pub fn out(&self, args: &[&str]) -> Output {
        self.berth().args(args).output().unwrap_or_else(|e| Output {
            status: std::os::unix::process::ExitStatusExt::from_raw(125 << 8),
            stdout: Vec::new(),
            stderr: e.to_string().into_bytes(),
        })
    }

    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let o = self.out(args);
        if !o.status.success() {
            bail!(
                "berth {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// A new task of one attempt; returns its id (`N.1`).
    pub fn task(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["task", "new", "--json", "--repo"];
        let repo = self.repo.to_string_lossy().into_owned();
        all.push(&repo);
        all.extend_from_slice(args);
        let v: Value = serde_json::from_str(&self.ok(&all)?)?;
        v["attempts"][0]
            .as_str()
            .map(str::to_string)
            .context("task new said no attempt")
    }

    pub fn attempt(&self, id: &str) -> Value {
        let ls = self.ok(&["ls", "--json"]).unwrap_or_default();
        serde_json::from_str::<Value>(&ls)
            .ok()
            .and_then(|v| v.as_array()?.iter().find(|a| a["id"] == id).cloned())
            .unwrap_or(Value::Null)
    }

    pub fn logs(&self, id: &str) -> String {
        String::from_utf8_lossy(&self.out(&["logs", id]).stdout).into_owned()
    }

    /// Waits for `id` to end (or `limit` to pass); its record.
    pub fn wait_ended(&self, id: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let a = self.attempt(id);
            let live = matches!(a["state"].as_str(), Some("created" | "booting" | "running"));
            if !live || started.elapsed() > limit {
                return a;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits until `id`'s output holds `needle`.
    pub fn wait_output(&self, id: &str, needle: &str, limit: Duration) -> Result<String> {
        let started = Instant::now();
        loop {
            let logs = self.logs(id);
            if logs.contains(needle) {
                return Ok(logs);
            }
            let a = self.attempt(id);
            if !matches!(a["state"].as_str(), Some("created" | "booting" | "running")) {
                bail!("attempt {id} ended before it was ready: {a}\n{logs}");
            }
            if started.elapsed() > limit {
                bail!("attempt {id} was not ready after {limit:?}:\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    ctx.image().context(
        "the selftest boots the image Berth uses: build it first with `berth image build`",
    )?;
    let dir = ctx
        .data
        .root()
        .join("selftest")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    berth_core::create_private_dir(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let result = (|| {
        let bench = setup(ctx, &dir)?;
        let progress = |s: &str| {
            if !args.json {
                eprintln!("berth selftest: {s}");
            }
        };
        let evidence = evidence::gather(&bench, &progress);
        // Nothing of the selftest keeps running, whatever happened.
        for a in serde_json::from_str::<Value>(&bench.ok(&["ls", "--json"]).unwrap_or_default())
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
        {
            if let Some(id) = a["id"].as_str() {
                let _ = bench.out(&["stop", id]);
            }
        }
        let _ = bench.out(&["secret", "rm", "selftest"]);
        evidence
    })();
    let evidence = match result {
        Ok(e) => e,
        Err(e) => {
            if !args.keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e);
        }
    };
    let verdicts = attacks::judge(&evidence);
    for p in &evidence.problems {
        eprintln!("berth selftest: {}", berth_core::escape_controls(p));
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let breaches = verdicts.iter().filter(|v| v.outcome == "BREACH").count();
    let unknown = verdicts.iter().filter(|v| v.outcome == "not run").count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&verdicts)?);
    } else {
        print!("{}", attacks::table(&verdicts));
        println!(
            "\n{} attacks: {} stopped, {} got through, {} could not run{}",
            verdicts.len(),
            verdicts.len() - breaches - unknown,
            breaches,
            unknown,
            if args.keep {
                format!(" (kept: {})", dir.display())
            } else {
                String::new()
            }
        );
    }
    Ok(if breaches > 0 {
        ExitCode::from(1)
    } else if unknown > 0 {
        ExitCode::from(crate::BERTH_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

/// The selftest's own data directory (sharing the user's built image), its repo with the
/// guest's script and its settings, and its secret.
fn setup(ctx: &Context, dir: &Path) -> Result<Bench> {
    let data = dir.join("data");
    berth_core::create_private_dir(&data)?;
    std::os::unix::fs::symlink(ctx.data.images(), data.join("images"))
        .context("cannot share the image with the selftest")?;
    let bench = Bench {
        exe: ctx.exe.clone(),
        dir: dir.to_path_buf(),
        data,
        repo: dir.join("repo"),
        canary: evidence::token("canary"),
    };
    Ok(bench)
}

/// Writes the repo the attempts start from: the guest's script and its settings.
pub fn write_repo(bench: &Bench, config: &Value) -> Result<()> {
    let config = serde_json::to_string_pretty(config)?;
    berth_core::init_repo_with_files(
        &bench.repo,
        &[
            ("attack.py", GUEST_SCRIPT, false),
            ("config.json", &config, false),
        ],
        "berth selftest",
    )?;
    Ok(())
}
