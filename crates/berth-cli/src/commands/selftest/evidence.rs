//! The selftest's runs, and what the host saw of each: it starts the attempts (a neighbour,
//! the attacker, three that exhaust a resource, two hostile agents), then collects the
//! evidence `attacks.rs` judges. A step that cannot run is recorded, never skipped silently.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::Bench;
use super::traps::{Allowed, TcpTrap, UdpTrap};

const MIB: u64 = 1 << 20;
/// The guest's tree is this deep (the import refuses more than 2048 levels).
const DEEP_TREE: u32 = 2100;
/// What the exhausting attempt may keep of its output, and what it prints.
pub const OUTPUT_LIMIT: u64 = 4 * MIB;
const FLOOD: u64 = 24 * MIB;
/// Guest memory of the exhausting attempt.
pub const EXHAUST_MEMORY: u64 = 384;

/// A tree entry: its mode and its blob's bytes.
pub type LinkEntry = (i32, Vec<u8>);

/// A hostile agent run (`berth vm run` with the guest's PID 1 replaced).
#[derive(Debug, Default)]
pub struct FrameRun {
    pub code: Option<i32>,
    pub stderr: String,
    pub peak_rss_kib: u64,
    pub secs: f64,
    pub hung: bool,
}

/// Everything the host observed.
#[derive(Debug, Default)]
pub struct Evidence {
    /// The attacker's reports, by attack.
    pub guest: BTreeMap<String, Value>,
    /// Steps that failed to run, with why.
    pub problems: Vec<String>,
    pub trap_hits: u64,
    pub udp_hits: u64,
    pub upstream_hits: u64,
    /// Request heads the allowed server got.
    pub allowed_seen: String,
    pub host_token: String,
    pub host_marker: PathBuf,
    pub canary: String,
    pub secret_value: String,
    pub neighbour_token: String,
    pub neighbour_phantom: String,
    /// This host's machine id, hostname and boot id.
    pub host_ids: Vec<String>,
    pub attacker_output: String,
    pub attacker_audit: Vec<Value>,
    /// What Berth itself prints about the attacker for a terminal: `berth audit ID` and
    /// `berth ls` (guest-chosen text in them must arrive escaped).
    pub attacker_shown: String,
    pub attacker_state: Value,
    pub neighbour_pull: Value,
    pub attacker_pull: Value,
    pub dotgit_pull: Value,
    /// Files under the host directory hooks, filters and configs would touch.
    pub host_dir_files: Vec<String>,
    pub user_git_unchanged: bool,
    /// The pulled `escape-link` entry: its mode and bytes.
    pub symlink_entry: Option<LinkEntry>,
    /// Whether any pulled blob holds the host's token.
    pub pulled_blob_holds_token: bool,
    pub fill_share: Value,
    pub fill_share_audit: Vec<Value>,
    pub fill_disk: Value,
    pub fill_disk_audit: Vec<Value>,
    pub exhaust: Value,
    pub exhaust_output: String,
    pub output_kept: u64,
    /// The exhausting attempt's QEMU: its peak resident memory and its TCG cache (MiB).
    pub exhaust_qemu_peak_mib: Option<u64>,
    pub exhaust_tcg_mib: u64,
    pub procs_at_bomb: usize,
    pub procs_peak_bomb: usize,
    pub bomb_stop: Option<Result<f64, String>>,
    /// The neighbour's QEMU asked to open its own overlay, and the host's marker file.
    pub qemu_open_inside: String,
    pub qemu_open_outside: String,
    pub frames_length: FrameRun,
    pub frames_garbage: FrameRun,
    /// The setuid file the attacker made in /work, on the host: its owner and mode.
    pub share_setuid: Option<(u32, u32)>,
    /// The uid Berth runs as.
    pub berth_uid: u32,
}

impl Evidence {
    fn problem(&mut self, step: &str, e: impl std::fmt::Display) {
        self.problems.push(format!("{step}: {e}"));
    }
}

pub fn token(prefix: &str) -> String {
    let mut b = [0u8; 12];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    format!(
        "{prefix}-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

pub fn gather(bench: &Bench, progress: &dyn Fn(&str)) -> Result<Evidence> {
    let trap = TcpTrap::start()?;
    let upstream = TcpTrap::start()?;
    let udp = UdpTrap::start()?;
    let allowed = Allowed::start()?;
    let host_dir = bench.dir.join("host");
    berth_core::create_private_dir(&host_dir)?;
    let mut ev = Evidence {
        host_token: token("host-secret"),
        host_marker: bench.dir.join(token("berth-selftest-host")),
        canary: bench.canary.clone(),
        secret_value: token("sk-selftest"),
        neighbour_token: token("neighbour-secret"),
        host_ids: host_ids(),
        ..Default::default()
    };
    std::fs::write(&ev.host_marker, &ev.host_token)?;
    let neighbour_marker = token("berth-selftest-neighbour");
    let host_ips: Vec<String> = berth_core::host_interface_addresses()
        .into_iter()
        .filter(|ip| !ip.is_loopback())
        .map(|ip| ip.to_string())
        .collect();
    super::write_repo(
        bench,
        &json!({
            "host_marker": ev.host_marker,
            "host_dir": host_dir,
            "neighbour_marker": neighbour_marker,
            "neighbour_token": ev.neighbour_token,
            "trap_port": trap.port,
            "good_port": allowed.port,
            "udp_port": udp.port,
            "upstream_port": upstream.port,
            "host_ips": host_ips,
            "exfil_label": token("x").replace("x-", ""),
            "deep_tree": DEEP_TREE,
            "flood_bytes": FLOOD,
        }),
    )?;
    let set = bench
        .berth()
        .args(["secret", "set", "selftest", "--header", "x-api-key"])
        .args(["--key-env", "API_KEY", "--url-env", "API_URL", "--upstream"])
        .arg(format!("https://localhost:{}/base", upstream.port))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .map(|mut i| i.write_all(ev.secret_value.as_bytes()));
            c.wait_with_output()
        })?;
    if !set.status.success() {
        bail!(
            "cannot keep the selftest's secret in this machine's keyring: {}",
            String::from_utf8_lossy(&set.stderr).trim()
        );
    }

    // The neighbour: another attempt with a secret, a marker in its workspace, a tree too
    // deep to import, and a policy of its own.
    progress("booting the neighbour attempt");
    let good = allowed.port.to_string();
    let neighbour = bench.task(&[
        "--title",
        "selftest neighbour",
        "--network",
        "allowlist",
        "--allow",
        &format!("neighbour.selftest:{good}"),
        "--resolve",
        "neighbour.selftest=127.0.0.1",
        "--secret",
        "selftest",
        "--",
        "python3",
        "attack.py",
        "neighbour",
    ])?;
    let logs = bench.wait_output(&neighbour, "NEIGHBOUR-READY", Duration::from_secs(600))?;
    ev.neighbour_phantom = logs
        .lines()
        .find_map(|l| l.trim().strip_prefix("PHANTOM="))
        .unwrap_or_default()
        .to_string();
    allowed.set_phantom(&ev.neighbour_phantom);
    // A QEMU its guest took over could ask for any file: asked over its own monitor, the
    // neighbour's QEMU must be refused a host file by its jail.
    let run = bench
        .data
        .join("run")
        .join(format!("attempt-{}", neighbour.replace('.', "-")));
    ev.qemu_open_inside = qmp_open(&run.join("qmp.sock"), "inside", &run.join("overlay.qcow2"));
    ev.qemu_open_outside = qmp_open(&run.join("qmp.sock"), "outside", &ev.host_marker);

    progress("running the attacks from inside a second attempt");
    let t = trap.port.to_string();
    let attacker = bench.task(&[
        "--title",
        "selftest attacker",
        "--network",
        "allowlist",
        "--allow",
        &format!("allowed.selftest:{good}"),
        "--resolve",
        "allowed.selftest=127.0.0.1",
        "--allow",
        &format!("localhost.localdomain:{t}"),
        "--allow",
        &format!("ip6-localhost:{t}"),
        "--allow",
        &format!("localhost:{t}"),
        "--secret",
        "selftest",
        "--",
        "python3",
        "attack.py",
        "attacker",
    ])?;
    ev.attacker_state = bench.wait_ended(&attacker, Duration::from_secs(900));
    ev.attacker_output = bench.logs(&attacker);
    for line in ev.attacker_output.lines() {
        // The report is the line's end (a guest's escapes may come before it).
        if let Some(j) = line.rfind("@@ {").map(|i| line[i + 3..].trim())
            && let Ok(v) = serde_json::from_str::<Value>(j)
            && let Some(name) = v["attack"].as_str()
        {
            ev.guest.insert(name.to_string(), v.clone());
        }
    }
    if !ev.attacker_output.contains("ATTACKER-DONE") {
        let state = ev.attacker_state.clone();
        ev.problem("the attacker", format!("did not finish: {state}"));
    }
    ev.attacker_audit = audit(bench, &attacker);
    {
        use std::os::unix::fs::MetadataExt;
        let probe = bench
            .data
            .join(format!("attempts/{attacker}/work/setuid-probe"));
        ev.share_setuid = std::fs::symlink_metadata(probe)
            .ok()
            .map(|m| (m.uid(), m.mode()));
        // SAFETY: geteuid cannot fail.
        ev.berth_uid = unsafe { libc::geteuid() };
    }
    for args in [vec!["audit", attacker.as_str()], vec!["ls"]] {
        if let Ok(text) = bench.ok(&args) {
            ev.attacker_shown.push_str(&text);
        }
    }
    let _ = bench.out(&["stop", &neighbour]);
    bench.wait_ended(&neighbour, Duration::from_secs(60));

    progress("pulling the hostile results");
    let git_before = user_git_state(&bench.repo);
    ev.neighbour_pull = pull(bench, &neighbour);
    ev.attacker_pull = pull(bench, &attacker);
    ev.user_git_unchanged = user_git_state(&bench.repo) == git_before;
    if let Some(branch) = ev.attacker_pull["branch"].as_str() {
        match pulled_entries(&bench.repo, branch, &ev.host_token) {
            Ok((link, holds)) => {
                ev.symlink_entry = link;
                ev.pulled_blob_holds_token = holds;
            }
            Err(e) => ev.problem("reading the pulled branch", e),
        }
    }

    progress("filling the share, the disk and the output; memory and a fork bomb");
    let fill_share = bench.task(&[
        "--title",
        "selftest fill share",
        "--max-workspace",
        "32MiB",
        "--",
        "sh",
        "-c",
        "dd if=/dev/zero of=fill bs=1M count=600 2>/dev/null; echo FILLED",
    ])?;
    let fill_disk = bench.task(&[
        "--title",
        "selftest fill disk",
        "--max-disk",
        "160MiB",
        "--",
        "sh",
        "-c",
        "python3 attack.py dotgit; dd if=/dev/zero of=$HOME/fill bs=1M count=2000 2>/dev/null; \
         sync; echo FILLED",
    ])?;
    let exhaust = bench.task(&[
        "--title",
        "selftest exhaust",
        "--max-output",
        &format!("{OUTPUT_LIMIT}"),
        "--memory",
        &EXHAUST_MEMORY.to_string(),
        "--",
        "python3",
        "attack.py",
        "exhaust",
    ])?;
    watch_bomb(bench, &exhaust, &mut ev);
    ev.exhaust = bench.wait_ended(&exhaust, Duration::from_secs(120));
    ev.exhaust_output = bench.logs(&exhaust);
    let attempt_dir = bench.data.join("attempts").join(&exhaust);
    ev.output_kept = ["output.log", "output.log.1"]
        .iter()
        .filter_map(|f| std::fs::metadata(attempt_dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    ev.fill_share = bench.wait_ended(&fill_share, Duration::from_secs(600));
    ev.fill_share_audit = audit(bench, &fill_share);
    ev.fill_disk = bench.wait_ended(&fill_disk, Duration::from_secs(600));
    ev.fill_disk_audit = audit(bench, &fill_disk);
    ev.dotgit_pull = pull(bench, &fill_disk);
    ev.host_dir_files = std::fs::read_dir(&host_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();

    progress("hostile guest agents (a 4 GiB frame, garbage)");
    ev.frames_length = hostile_agent(
        bench,
        "length",
        "while true; do printf '\\xff\\xff\\xff\\xff' > $port; sleep 0.2; done",
    );
    ev.frames_garbage = hostile_agent(
        bench,
        "garbage",
        "while true; do head -c 65536 /dev/urandom > $port; done",
    );
    ev.trap_hits = trap.hits();
    ev.udp_hits = udp.hits();
    ev.upstream_hits = upstream.hits();
    ev.allowed_seen = allowed.seen();
    Ok(ev)
}

/// While the exhausting attempt floods, eats memory and forks: the host's processes of the
/// selftest and its QEMU's peak memory; then a stop must end it.
fn watch_bomb(bench: &Bench, id: &str, ev: &mut Evidence) {
    let vm = format!("attempt-{}", id.replace('.', "-"));
    let data = bench.data.to_string_lossy().into_owned();
    let own = format!("attempts/{id}/");
    let supervise = format!("__supervise {id}");
    let started = Instant::now();
    let mut bomb_at: Option<Instant> = None;
    let mut last_log = Instant::now() - Duration::from_secs(10);
    while started.elapsed() < Duration::from_secs(600) {
        // This attempt's host processes alone (the others boot and end meanwhile).
        let procs: Vec<_> = selftest_processes(&data)
            .into_iter()
            .filter(|(_, c)| c.contains(&vm) || c.contains(&own) || c.ends_with(&supervise))
            .collect();
        if let Some(q) = procs
            .iter()
            .find(|(_, c)| c.contains("qemu") && c.contains(&vm))
        {
            if let Some(mib) = peak_rss_mib(q.0) {
                ev.exhaust_qemu_peak_mib = Some(ev.exhaust_qemu_peak_mib.unwrap_or(0).max(mib));
            }
            ev.exhaust_tcg_mib = tcg_cache_mib(&q.1);
        }
        match bomb_at {
            None => {
                if last_log.elapsed() >= Duration::from_secs(2) {
                    last_log = Instant::now();
                    let logs = bench.logs(id);
                    if logs.contains("BOMB-STARTED") {
                        bomb_at = Some(Instant::now());
                        ev.procs_at_bomb = procs.len();
                    } else if !matches!(
                        bench.attempt(id)["state"].as_str(),
                        Some("created" | "booting" | "running")
                    ) {
                        ev.problem("the fork bomb", "the attempt ended before its bomb started");
                        return;
                    }
                }
            }
            Some(at) => {
                ev.procs_peak_bomb = ev.procs_peak_bomb.max(procs.len());
                if at.elapsed() >= Duration::from_secs(15) {
                    let t = Instant::now();
                    let out = bench.out(&["stop", id]);
                    let ended = bench.wait_ended(id, Duration::from_secs(60));
                    ev.bomb_stop = Some(if out.status.success() && ended["state"] == "stopped" {
                        Ok(t.elapsed().as_secs_f64())
                    } else {
                        Err(format!(
                            "{} {}",
                            String::from_utf8_lossy(&out.stderr).trim(),
                            ended
                        ))
                    });
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    ev.problem("the fork bomb", "the attempt never got as far as its bomb");
}

/// Host processes working for the selftest's data directory (not the `berth` calls the
/// selftest itself makes to look).
fn selftest_processes(data: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let after = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
        let mut f = after.split(' ');
        let state = f.next().unwrap_or("");
        let ppid: u32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if pid != me && ppid != me && state != "Z" && cmd.contains(data) {
            found.push((pid, cmd));
        }
    }
    found
}

fn peak_rss_mib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// QEMU's TCG translation cache (`tb-size=N`), 0 under KVM.
fn tcg_cache_mib(cmdline: &str) -> u64 {
    cmdline
        .split("tb-size=")
        .nth(1)
        .and_then(|r| {
            r.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn audit(bench: &Bench, id: &str) -> Vec<Value> {
    bench
        .ok(&["audit", id, "--json"])
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// `berth pull ID --json`: the attempt's entry (its branch, or its error).
fn pull(bench: &Bench, id: &str) -> Value {
    let o = bench.out(&["pull", id, "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let entry = v
        .as_array()
        .and_then(|a| a.first().cloned())
        .unwrap_or(v.clone());
    if entry.is_null() {
        json!({"error": String::from_utf8_lossy(&o.stderr).trim()})
    } else {
        entry
    }
}

/// The user's repo's own configuration and hooks, to compare before and after a pull.
fn user_git_state(repo: &Path) -> Vec<(String, Vec<u8>)> {
    let git = repo.join(".git");
    let mut state = vec![(
        "config".to_string(),
        std::fs::read(git.join("config")).unwrap_or_default(),
    )];
    for dir in ["hooks", "info"] {
        let mut names: Vec<_> = std::fs::read_dir(git.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        for p in names {
            state.push((
                p.to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap_or_default(),
            ));
        }
    }
    state
}

/// The pulled branch's `escape-link` entry, and whether any blob on it holds `token`.
fn pulled_entries(repo: &Path, branch: &str, token: &str) -> Result<(Option<LinkEntry>, bool)> {
    let r = git2::Repository::open(repo)?;
    let tree = r
        .revparse_single(&format!("refs/heads/{branch}"))?
        .peel_to_commit()?
        .tree()?;
    let link = match tree.get_name("escape-link") {
        Some(e) => Some((
            e.filemode(),
            r.find_blob(e.id())
                .context("the link's blob")?
                .content()
                .to_vec(),
        )),
        None => None,
    };
    let mut holds = false;
    tree.walk(git2::TreeWalkMode::PreOrder, |_, e| {
        if let Ok(b) = r.find_blob(e.id())
            && b.content()
                .windows(token.len())
                .any(|w| w == token.as_bytes())
        {
            holds = true;
        }
        git2::TreeWalkResult::Ok
    })?;
    Ok((link, holds))
}

/// A guest whose PID 1 speaks garbage on the agent port (root in a guest can always
/// arrange that): `berth vm run` must end with a clear error, in bounded memory.
fn hostile_agent(bench: &Bench, name: &str, body: &str) -> FrameRun {
    let share = bench.dir.join(format!("hostile-{name}"));
    let script = format!(
        "#!/bin/bash\nfor d in /sys/class/virtio-ports/*; do\n  [ \"$(cat $d/name)\" = \
         org.berth.agent.0 ] && port=/dev/${{d##*/}}\ndone\n{body}\n"
    );
    let made = std::fs::create_dir_all(&share).and_then(|_| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(share.join("evil.sh"), script)?;
        std::fs::set_permissions(
            share.join("evil.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
    });
    let mut run = FrameRun::default();
    if let Err(e) = made {
        run.stderr = e.to_string();
        return run;
    }
    let child = bench
        .berth()
        .args(["vm", "run", "--share"])
        .arg(&share)
        .args(["--kernel-arg", "berth.init=/work/evil.sh", "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            run.stderr = e.to_string();
            return run;
        }
    };
    let started = Instant::now();
    loop {
        if let Some(mib) = peak_rss_kib(child.id()) {
            run.peak_rss_kib = run.peak_rss_kib.max(mib);
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if started.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            run.hung = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    run.secs = started.elapsed().as_secs_f64();
    if let Ok(out) = child.wait_with_output() {
        run.code = out.status.code();
        run.stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    run
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    peak_rss_mib(pid).map(|m| m * 1024)
}

/// This host's identity as a guest might try to read it.
fn host_ids() -> Vec<String> {
    [
        "/etc/machine-id",
        "/proc/sys/kernel/hostname",
        "/proc/sys/kernel/random/boot_id",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .map(|s| s.trim().to_string())
    .filter(|s| s.len() >= 6)
    .collect()
}

/// Asks a VM's QEMU, over its monitor, to open `file` read-only; its answer.
fn qmp_open(socket: &Path, node: &str, file: &Path) -> String {
    use std::io::{BufRead, BufReader, Write};
    let talk = || -> std::io::Result<String> {
        let s = std::os::unix::net::UnixStream::connect(socket)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut r = BufReader::new(s.try_clone()?);
        let mut w = s;
        let mut line = String::new();
        r.read_line(&mut line)?;
        writeln!(w, r#"{{"execute":"qmp_capabilities"}}"#)?;
        line.clear();
        r.read_line(&mut line)?;
        let cmd = json!({"execute": "blockdev-add", "arguments": {
            "driver": "file", "node-name": node, "filename": file, "read-only": true}});
        writeln!(w, "{cmd}")?;
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 || !line.contains("\"event\"") {
                return Ok(line.trim().to_string());
            }
        }
    };
    talk().unwrap_or_else(|e| format!("no monitor: {e}"))
}
