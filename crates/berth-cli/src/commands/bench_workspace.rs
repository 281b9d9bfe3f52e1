//! `berth bench workspace`: workspace creation on a tiny repo vs one with ~1 GiB of history
//! (with the base alone and with the default history), pull-back time for a typical change on
//! the large one, and what one attempt on a base with a big file stores. Host-side only.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use berth_core::Limits;
use berth_core::bench::{DEFAULT_HISTORY, collect, create_workspace, import};

/// Small files both repos have at their tip, so their checkouts are the same size.
const TIP_FILES: usize = 20;

pub fn run(root: &Path, history_mib: u64, big_mib: u64, runs: u32, json: bool) -> Result<()> {
    let tiny = root.join("tiny");
    let large = root.join("large");
    let big = root.join("big");
    eprintln!(
        "generating a tiny repo, one with {history_mib} MiB of history and one whose tip holds \
         a {big_mib} MiB file (git fast-import)…"
    );
    generate(&tiny, 0)?;
    let started = Instant::now();
    generate(&large, history_mib)?;
    generate_big_tip(&big, big_mib)?;
    eprintln!("  generated in {:.1} s", started.elapsed().as_secs_f64());

    let mut t_tiny = Vec::new();
    let mut t_large = Vec::new();
    let mut t_large_deep = Vec::new();
    let mut t_big = Vec::new();
    for i in 0..runs {
        t_tiny.push(time_create(&tiny, &root.join(format!("ws-tiny-{i}")), 1)?);
        t_large.push(time_create(&large, &root.join(format!("ws-large-{i}")), 1)?);
        let deep = root.join(format!("ws-deep-{i}"));
        t_large_deep.push(time_create(&large, &deep, DEFAULT_HISTORY)?);
        std::fs::remove_dir_all(&deep)?;
        t_big.push(time_create(&big, &root.join(format!("ws-big-{i}")), 1)?);
    }
    let mut t_pull = Vec::new();
    for i in 0..runs {
        let ws = root.join(format!("ws-large-{i}"));
        t_pull.push(time_pull(&large, &ws, root, i)?);
    }
    // What one attempt on the big base stores: its workspace (pack + checkout) and host.git
    // after collecting, with host.git reading the base from the repo, and copying it.
    let ws = root.join("ws-big-0");
    std::fs::write(ws.join("new.txt"), "a new file\n")?;
    let base = git2_head(&big)?;
    let shared_host = root.join("big-shared.git");
    let pack = only_pack(&ws)?;
    let shared = berth_core::bench::BaseObjects {
        repo: &big,
        pack: &pack,
    };
    let t = Instant::now();
    collect(
        &ws,
        &shared_host,
        base,
        base,
        "bench",
        &Limits::default(),
        0,
        Some(shared),
    )?;
    let t_collect_shared = t.elapsed();
    let copied_host = root.join("big-copied.git");
    let t = Instant::now();
    collect(
        &ws,
        &copied_host,
        base,
        base,
        "bench",
        &Limits::default(),
        0,
        None,
    )?;
    let t_collect_copied = t.elapsed();
    let mib = |p: &Path| du(p) as f64 / (1u64 << 20) as f64;
    let (ws_mib, shared_mib, copied_mib) = (mib(&ws), mib(&shared_host), mib(&copied_host));

    let (a, b, deep, bigc, p) = (
        median(&mut t_tiny),
        median(&mut t_large),
        median(&mut t_large_deep),
        median(&mut t_big),
        median(&mut t_pull),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let ratio = b.as_secs_f64() / a.as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "history_mib": history_mib,
                "big_mib": big_mib,
                "runs": runs,
                "create_tiny_ms": ms(a),
                "create_large_ms": ms(b),
                "create_large_default_history_ms": ms(deep),
                "default_history": DEFAULT_HISTORY,
                "ratio": ratio,
                "pull_large_ms": ms(p),
                "create_big_ms": ms(bigc),
                "big_workspace_mib": ws_mib,
                "big_host_git_shared_mib": shared_mib,
                "big_host_git_copied_mib": copied_mib,
                "big_collect_shared_ms": ms(t_collect_shared),
                "big_collect_copied_ms": ms(t_collect_copied),
            })
        );
    } else {
        println!(
            "workspace creation, tiny repo                      median {:>9.1} ms",
            ms(a)
        );
        println!(
            "workspace creation, {history_mib} MiB history, --history 1   median {:>9.1} ms",
            ms(b)
        );
        println!("ratio large/tiny                                          {ratio:>9.2}x");
        println!(
            "workspace creation, {history_mib} MiB history, --history {DEFAULT_HISTORY}  median {:>9.1} ms",
            ms(deep)
        );
        println!(
            "pull-back of a typical change (large)              median {:>9.1} ms",
            ms(p)
        );
        println!(
            "workspace creation, a {big_mib} MiB file at the base   median {:>9.1} ms",
            ms(bigc)
        );
        println!("  its workspace (pack + checkout)                        {ws_mib:>9.1} MiB");
        println!(
            "  host.git after collect, base read from the repo        {shared_mib:>9.1} MiB in {:.1} ms",
            ms(t_collect_shared)
        );
        println!(
            "  host.git after collect, base copied                    {copied_mib:>9.1} MiB in {:.1} ms",
            ms(t_collect_copied)
        );
    }
    Ok(())
}

fn time_create(repo: &Path, dest: &Path, history: u32) -> Result<Duration> {
    let t = Instant::now();
    create_workspace(repo, "main", dest, false, history)?;
    Ok(t.elapsed())
}

/// The pack Berth wrote into a fresh workspace.
fn only_pack(ws: &Path) -> Result<String> {
    for e in std::fs::read_dir(ws.join(".git/objects/pack"))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".pack") {
            return Ok(stem.to_string());
        }
    }
    bail!("no pack in {}", ws.display())
}

/// Bytes in files under `dir`.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Edits two files and adds one in the workspace (what an agent typically leaves), then
/// collects (reading the base from the repo, as Berth does) and imports it as a new branch.
fn time_pull(repo: &Path, ws: &Path, root: &Path, i: u32) -> Result<Duration> {
    let pack = only_pack(ws)?;
    std::fs::write(ws.join("src/file0.txt"), format!("changed by run {i}\n"))?;
    std::fs::write(ws.join("src/file1.txt"), "also changed\n")?;
    std::fs::write(ws.join("src/new.txt"), "a new file\n")?;
    let base = git2_head(repo)?;
    let host = root.join(format!("host-{i}.git"));
    let shared = berth_core::bench::BaseObjects { repo, pack: &pack };
    let t = Instant::now();
    let collected = collect(
        ws,
        &host,
        base,
        base,
        "bench",
        &Limits::default(),
        0,
        Some(shared),
    )?;
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

/// A repo whose only commit holds one incompressible file of `mib` MiB and a small one.
fn generate_big_tip(dir: &Path, mib: u64) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut data = vec![0u8; (mib as usize) << 20];
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for word in data.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        word.copy_from_slice(&seed.to_le_bytes()[..word.len()]);
    }
    std::fs::write(dir.join("big.bin"), &data)?;
    berth_core::init_repo_with_files(dir, &[("README", "big\n", false)], "big base\n")?;
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}
