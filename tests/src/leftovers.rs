//! Proof that a VM left nothing behind: no process, socket, overlay or run directory.

use std::path::Path;
use std::time::{Duration, Instant};

/// Processes whose command line mentions `needle` (e.g. a test's data dir), and those whose
/// working directory is under it with their descendants (virtiofsd as a VM's uid is handed its
/// share as its working directory; its sandboxed child has none), with their pids.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    // pid, parent, command line, whether it matches by itself
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let after = state
            .rfind(')')
            .map(|i| &state[i + 1..])
            .unwrap_or_default();
        let mut fields = after.split_whitespace();
        if fields.next() == Some("Z") {
            continue;
        }
        let parent: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        let by_name = cmdline.contains(needle);
        let by_cwd = cwd.to_string_lossy().starts_with(needle);
        all.push((pid, parent, cmdline, by_name, by_cwd));
    }
    let mut under: std::collections::HashSet<u32> =
        all.iter().filter(|p| p.4).map(|p| p.0).collect();
    loop {
        let more: Vec<u32> = all
            .iter()
            .filter(|p| !under.contains(&p.0) && under.contains(&p.1))
            .map(|p| p.0)
            .collect();
        if more.is_empty() {
            break;
        }
        under.extend(more);
    }
    all.into_iter()
        .filter(|p| p.3 || under.contains(&p.0))
        .map(|p| (p.0, p.2))
        .collect()
}

/// What is left of VMs under a data directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub processes: Vec<String>,
    pub run_entries: Vec<String>,
}

impl Leftovers {
    pub fn of(data_dir: &Path, share: Option<&Path>) -> Leftovers {
        let mut processes: Vec<String> = processes_mentioning(&data_dir.display().to_string())
            .into_iter()
            .map(|(pid, c)| format!("{pid}: {c}"))
            .collect();
        if let Some(s) = share {
            processes.extend(
                processes_mentioning(&s.display().to_string())
                    .into_iter()
                    .map(|(pid, c)| format!("{pid}: {c}")),
            );
        }
        let run_entries = std::fs::read_dir(data_dir.join("run"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().display().to_string())
            .collect();
        Leftovers {
            processes,
            run_entries,
        }
    }

    pub fn is_clean(&self) -> bool {
        self.processes.is_empty() && self.run_entries.is_empty()
    }
}

/// Polls `cond` every 50 ms for up to `limit`; returns whether it became true.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Peak resident memory (VmHWM) of a live process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `cmd` with `input` on its stdin; its output.
pub fn output_with_stdin(cmd: &mut std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
