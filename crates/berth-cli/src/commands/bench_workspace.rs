//! `berth bench workspace`: workspace creation on a tiny repo vs one with ~1 GiB of history,
//! and pull-back time for a typical change on the large one. Host-side only; no VM.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use berth_core::Limits;
use berth_core::bench::{DEFAULT_HISTORY, collect, create_workspace, import};

/// Small files both repos have at their tip, so their checkouts are the same size.
const TIP_FILES: usize = 20;

pub fn run(root: &Path, history_mib: u64, runs: u32, json: bool) -> Result<()> {
    let tiny = root.join("tiny");
    let large = root.join("large");
    eprintln!(
        "generating a tiny repo and one with {history_mib} MiB of history (git fast-import)…"
    );
    generate(&tiny, 0)?;
    let started = Instant::now();
    generate(&large, history_mib)?;
    eprintln!("  generated in {:.1} s", started.elapsed().as_secs_f64());

    let mut t_tiny = Vec::new();
    let mut t_large = Vec::new();
    for i in 0..runs {
        t_tiny.push(time_create(&tiny, &root.join(format!("ws-tiny-{i}")))?);
        t_large.push(time_create(&large, &root.join(format!("ws-large-{i}")))?);
    }
    let mut t_pull = Vec::new();
    for i in 0..runs {
        let ws = root.join(format!("ws-large-{i}"));
        t_pull.push(time_pull(&large, &ws, root, i)?);
    }
    let (a, b, p) = (
        median(&mut t_tiny),
        median(&mut t_large),
        median(&mut t_pull),
    );
    let ratio = b.as_secs_f64() / a.as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "history_mib": history_mib,
                "runs": runs,
                "create_tiny_ms": a.as_secs_f64() * 1e3,
                "create_large_ms": b.as_secs_f64() * 1e3,
                "ratio": ratio,
                "pull_large_ms": p.as_secs_f64() * 1e3,
            })
        );
    } else {
        println!(
            "workspace creation, tiny repo          median {:>8.1} ms",
            a.as_secs_f64() * 1e3
        );
        println!(
            "workspace creation, {history_mib} MiB history   median {:>8.1} ms",
            b.as_secs_f64() * 1e3
        );
        println!("ratio large/tiny                       {ratio:>8.2}x");
        println!(
            "pull-back of a typical change (large)  median {:>8.1} ms",
            p.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

fn time_create(repo: &Path, dest: &Path) -> Result<Duration> {
    let t = Instant::now();
    create_workspace(repo, "main", dest, false, DEFAULT_HISTORY)?;
    Ok(t.elapsed())
}

/// Edits two files and adds one in the workspace (what an agent typically leaves), then
/// collects and imports it as a new branch.
fn time_pull(repo: &Path, ws: &Path, root: &Path, i: u32) -> Result<Duration> {
    std::fs::write(ws.join("src/file0.txt"), format!("changed by run {i}\n"))?;
    std::fs::write(ws.join("src/file1.txt"), "also changed\n")?;
    std::fs::write(ws.join("src/new.txt"), "a new file\n")?;
    let base = git2_head(repo)?;
    let host = root.join(format!("host-{i}.git"));
    let t = Instant::now();
    let collected = collect(ws, &host, base, base, "bench", &Limits::default(), 0)?;
    import(
        &host,
        &collected,
        repo,
        &format!("bench/{i}"),
        true,
        "bench",
    )?;
    Ok(t.elapsed())
}

fn git2_head(repo: &Path) -> Result<berth_core::bench::Oid> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "main"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(berth_core::bench::Oid::from_str(text.trim())?)
}

/// A repo whose tip holds `TIP_FILES` small files; with `history_mib > 0`, its history
/// first rewrites a 4 MiB incompressible file that many MiB / 4 times, then deletes it.
fn generate(dir: &Path, history_mib: u64) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let status = Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(dir)
        .status()?;
    if !status.success() {
        bail!("git init failed");
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .context("git fast-import")?;
    let mut w = std::io::BufWriter::new(child.stdin.take().context("stdin")?);
    let mut when = 1_700_000_000u64;
    let commit = |w: &mut dyn Write, when: &mut u64, msg: &str, ops: &str| -> std::io::Result<()> {
        *when += 60;
        write!(
            w,
            "commit refs/heads/main\ncommitter Bench <bench@berth.invalid> {when} +0000\ndata {}\n{msg}\n{ops}\n",
            msg.len() + 1
        )
    };
    let mut ops = String::new();
    for f in 0..TIP_FILES {
        let body = format!("file {f}\n");
        ops.push_str(&format!(
            "M 100644 inline src/file{f}.txt\ndata {}\n{body}",
            body.len()
        ));
    }
    commit(&mut w, &mut when, "tip files", &ops)?;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let chunk = 4usize << 20;
    for i in 0..history_mib / 4 {
        let mut data = vec![0u8; chunk];
        for word in data.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            word.copy_from_slice(&seed.to_le_bytes()[..word.len()]);
        }
        let msg = format!("blob {i}");
        let ops = format!("M 100644 inline data.bin\ndata {chunk}");
        commit(&mut w, &mut when, &msg, &ops)?;
        w.write_all(&data)?;
        w.write_all(b"\n")?;
    }
    if history_mib > 0 {
        commit(&mut w, &mut when, "drop the data", "D data.bin")?;
    }
    drop(w);
    if !child.wait()?.success() {
        bail!("git fast-import failed");
    }
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["checkout", "-q", "-f", "main"])
        .status()?;
    if !status.success() {
        bail!("git checkout failed");
    }
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}
