//! Kernel limits on a VM's QEMU and everything it starts (its network bridges): a control
//! group of its own with a memory limit (guest RAM, TCG's translation cache and QEMU's own
//! headroom) and a task limit. A QEMU its guest took over cannot take the host's memory or
//! fork it to death, and every process of the VM is found (and killed) through the group.
//!
//! Where: cgroup v2 when Berth runs as root on a unified hierarchy (`/sys/fs/cgroup/berth/`
//! with the memory and pids controllers), else the v1 `memory` and `pids` hierarchies when
//! they are mounted and writable (`/sys/fs/cgroup/{memory,pids}/berth/`). Elsewhere (an
//! ordinary user on a systemd host, whose cgroup is not delegated to it) there is no group and
//! `berth doctor` says so. The jail process joins the group before it drops its privileges
//! and executes QEMU, so QEMU's first allocation is already counted. The group's directories
//! are recorded in the run directory (`cgroups`) and removed with it.

use std::path::{Path, PathBuf};

/// The task limit: QEMU's threads (vCPUs, I/O, its worker pool) and one bridge per guest
/// connection (the proxy refuses connections past the attempt's limit well before this).
pub const PIDS_MAX: u64 = 512;
/// QEMU's own memory beyond guest RAM and the translation cache.
pub const HEADROOM_MIB: u64 = 512;
/// Where a run directory lists its group's directories.
const RECORD: &str = "cgroups";

/// One VM's control group: a directory per hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmCgroup {
    pub dirs: Vec<PathBuf>,
}

/// The hierarchies this host offers Berth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// The unified hierarchy's root (as root only: its children may have controllers).
    V2(PathBuf),
    /// The v1 memory and pids hierarchies' roots.
    V1 { memory: PathBuf, pids: PathBuf },
}

impl Hierarchy {
    /// What this host has, under `root` (`/sys/fs/cgroup`); `None` when Berth cannot make
    /// groups there.
    pub fn detect(root: &Path, is_root: bool) -> Option<Hierarchy> {
        if std::env::var_os("BERTH_NO_CGROUP").is_some() {
            return None;
        }
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).ok();
        if let Some(c) = controllers {
            let has = |n: &str| c.split_whitespace().any(|x| x == n);
            return (is_root && has("memory") && has("pids")).then(|| Hierarchy::V2(root.into()));
        }
        let (memory, pids) = (root.join("memory"), root.join("pids"));
        (memory.join("memory.limit_in_bytes").exists()
            && pids.join("cgroup.procs").exists()
            && writable(&memory)
            && writable(&pids))
        .then_some(Hierarchy::V1 { memory, pids })
    }

    /// Says what this is, for `berth doctor`.
    pub fn describe(&self) -> String {
        match self {
            Hierarchy::V2(_) => "cgroup v2 (memory, pids)".into(),
            Hierarchy::V1 { .. } => "cgroup v1 (memory, pids)".into(),
        }
    }
}

fn writable(dir: &Path) -> bool {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap_or_default();
    // SAFETY: access() reads a NUL-terminated path and nothing else.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", dir.display())),
    }
}

impl VmCgroup {
    /// Makes the group `name` (unique on this host) in `h` with `memory` bytes and `pids`
    /// tasks at most. A failure leaves nothing behind.
    pub fn create(h: &Hierarchy, name: &str, memory: u64, pids: u64) -> Result<VmCgroup, String> {
        match h {
            Hierarchy::V2(root) => {
                let parent = root.join("berth");
                (|| {
                    write(&root.join("cgroup.subtree_control"), "+memory +pids")?;
                    make_dir(&parent)?;
                    write(&parent.join("cgroup.subtree_control"), "+memory +pids")?;
                    let dir = parent.join(name);
                    make_dir(&dir)?;
                    let cg = VmCgroup {
                        dirs: vec![dir.clone()],
                    };
                    let set = write(&dir.join("memory.max"), &memory.to_string())
                        .and_then(|_| write(&dir.join("memory.swap.max"), "0").or(Ok(())))
                        .and_then(|_| write(&dir.join("pids.max"), &pids.to_string()));
                    set.map(|_| cg.clone()).inspect_err(|_| cg.remove())
                })()
            }
            Hierarchy::V1 { memory: m, pids: p } => (|| {
                let (md, pd) = (m.join("berth"), p.join("berth"));
                make_dir(&md)?;
                make_dir(&pd)?;
                let cg = VmCgroup {
                    dirs: vec![md.join(name), pd.join(name)],
                };
                let set = make_dir(&cg.dirs[0])
                    .and_then(|_| make_dir(&cg.dirs[1]))
                    .and_then(|_| {
                        write(
                            &cg.dirs[0].join("memory.limit_in_bytes"),
                            &memory.to_string(),
                        )
                    })
                    .and_then(|_| write(&cg.dirs[1].join("pids.max"), &pids.to_string()));
                set.map(|_| cg.clone()).inspect_err(|_| cg.remove())
            })(),
        }
    }

    /// The files a process writes its pid to, to join the group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Records the group in `run_dir`, so whoever destroys the run directory removes it.
    pub fn record(&self, run_dir: &Path) -> std::io::Result<()> {
        let text: String = self
            .dirs
            .iter()
            .map(|d| format!("{}\n", d.display()))
            .collect();
        std::fs::write(run_dir.join(RECORD), text)
    }

    /// The group recorded in `run_dir`, if any (only directories under a `berth` group).
    pub fn recorded(run_dir: &Path) -> Option<VmCgroup> {
        let text = std::fs::read_to_string(run_dir.join(RECORD)).ok()?;
        let dirs: Vec<PathBuf> = text
            .lines()
            .map(PathBuf::from)
            .filter(|d| {
                d.starts_with("/sys/fs/cgroup")
                    && d.parent().and_then(Path::file_name) == Some("berth".as_ref())
            })
            .collect();
        (!dirs.is_empty()).then_some(VmCgroup { dirs })
    }

    /// How many times the kernel killed a process of the group for its memory limit.
    pub fn oom_kills(&self) -> u64 {
        self.dirs
            .iter()
            .filter_map(|d| {
                std::fs::read_to_string(d.join("memory.events"))
                    .or_else(|_| std::fs::read_to_string(d.join("memory.oom_control")))
                    .ok()
            })
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.strip_prefix("oom_kill "))
                    .filter_map(|n| n.trim().parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// Kills whatever is still in the group (a bridge QEMU left behind) and removes it.
    pub fn remove(&self) {
        for _ in 0..100 {
            let mut left = false;
            for d in &self.dirs {
                let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // SAFETY: kill takes plain integers; the group holds only this VM's
                    // processes.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
                if d.exists() && std::fs::remove_dir(d).is_err() {
                    left = true;
                }
            }
            if !left {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Removes the empty Berth groups whose maker is gone: a group is named
/// `<run dir>-<maker's pid>-<stamp>`, and one whose maker no longer runs and that holds no
/// process serves nobody (its VM's run directory, with the record of it, was deleted under the
/// VM). A group that still holds a process is left to whoever kills that process. Returns how
/// many went.
pub fn remove_abandoned() -> usize {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let Some(h) = Hierarchy::detect(Path::new("/sys/fs/cgroup"), root) else {
        return 0;
    };
    let parents = match &h {
        Hierarchy::V2(r) => vec![r.join("berth")],
        Hierarchy::V1 { memory, pids } => vec![memory.join("berth"), pids.join("berth")],
    };
    let mut removed = 0;
    for parent in parents {
        for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(maker) = maker_pid(&name) else {
                continue;
            };
            let maker_runs =
                Path::new(&format!("/proc/{maker}")).exists() && !crate::rundir::is_zombie(maker);
            let empty = std::fs::read_to_string(entry.path().join("cgroup.procs"))
                .is_ok_and(|p| p.trim().is_empty());
            if !maker_runs && empty && std::fs::remove_dir(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// The pid in a group's name `<run dir>-<pid>-<hex stamp>`.
fn maker_pid(name: &str) -> Option<u32> {
    let mut parts = name.rsplitn(3, '-');
    let stamp = parts.next()?;
    let pid = parts.next()?;
    parts.next().filter(|rest| !rest.is_empty())?;
    u128::from_str_radix(stamp, 16).ok()?;
    pid.parse().ok().filter(|p| *p > 1)
}

/// The memory limit of a VM with `memory_mib` of RAM and a TCG cache of `tcg_cache_mib`
/// (0 under KVM), in bytes.
pub fn memory_limit(memory_mib: u32, tcg_cache_mib: u32) -> u64 {
    (memory_mib as u64 + tcg_cache_mib as u64 + HEADROOM_MIB) << 20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_names_its_maker() {
        assert_eq!(maker_pid("attempt-1-2-4242-18c2f0a9b"), Some(4242));
        assert_eq!(maker_pid("pool-3-77-ff"), Some(77));
        // Not a name Berth makes: left alone.
        for name in [
            "4242-ff",
            "x-4242-zz",
            "x-1-ff",
            "x--ff",
            "x-abc-ff",
            "berth",
        ] {
            assert_eq!(maker_pid(name), None, "{name}");
        }
    }

    #[test]
    fn the_hierarchy_is_the_one_berth_can_use() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Hierarchy::detect(d.path(), true), None);
        std::fs::write(d.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        assert_eq!(
            Hierarchy::detect(d.path(), true),
            Some(Hierarchy::V2(d.path().into()))
        );
        // Not root: the unified hierarchy's root is not Berth's to divide.
        assert_eq!(Hierarchy::detect(d.path(), false), None);
        std::fs::write(d.path().join("cgroup.controllers"), "cpu\n").unwrap();
        assert_eq!(Hierarchy::detect(d.path(), true), None);
    }

    #[test]
    fn only_berth_groups_are_taken_from_a_run_directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(RECORD),
            "/sys/fs/cgroup/memory/berth/vm-1-ab\n/etc\n/sys/fs/cgroup/memory\n",
        )
        .unwrap();
        assert_eq!(
            VmCgroup::recorded(d.path()).unwrap().dirs,
            vec![PathBuf::from("/sys/fs/cgroup/memory/berth/vm-1-ab")]
        );
        assert_eq!(memory_limit(512, 256), (512 + 256 + 512) << 20);
    }
}
