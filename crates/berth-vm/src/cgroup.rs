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
    /// The v1 memory and pids hierarchies' roots, and the cpu one's where it is writable.
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: Option<PathBuf>,
    },
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
        let (memory, pids, cpu) = (root.join("memory"), root.join("pids"), root.join("cpu"));
        let cpu = (cpu.join("cpu.cfs_quota_us").exists() && writable(&cpu)).then_some(cpu);
        (memory.join("memory.limit_in_bytes").exists()
            && pids.join("cgroup.procs").exists()
            && writable(&memory)
            && writable(&pids))
        .then_some(Hierarchy::V1 { memory, pids, cpu })
    }

    /// Whether groups here can have a CPU limit.
    pub fn has_cpu(&self) -> bool {
        match self {
            Hierarchy::V2(root) => std::fs::read_to_string(root.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|x| x == "cpu")),
            Hierarchy::V1 { cpu, .. } => cpu.is_some(),
        }
    }

    /// Says what this is, for `berth doctor`.
    pub fn describe(&self) -> String {
        let version = match self {
            Hierarchy::V2(_) => "v2",
            Hierarchy::V1 { .. } => "v1",
        };
        let cpu = if self.has_cpu() { ", cpu" } else { "" };
        format!("cgroup {version} (memory, pids{cpu})")
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

/// What a group may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// Bytes of memory.
    pub memory: u64,
    /// Tasks (processes and threads).
    pub pids: u64,
    /// CPU time, in thousandths of a CPU (per 100 ms period), where the host has the CPU
    /// controller; `None`: no CPU limit.
    pub cpu_millis: Option<u64>,
}

/// The CFS period the CPU quota is counted in, microseconds.
const CPU_PERIOD_US: u64 = 100_000;

impl GroupLimits {
    /// A VM's: its guest memory + TCG's translation cache + QEMU's headroom, [`PIDS_MAX`]
    /// tasks, and its vCPUs + one CPU (QEMU's main loop and I/O threads, its bridges).
    pub fn for_vm(memory_mib: u32, tcg_cache_mib: u32, cpus: u32) -> GroupLimits {
        GroupLimits {
            memory: memory_limit(memory_mib, tcg_cache_mib),
            pids: PIDS_MAX,
            cpu_millis: Some((cpus as u64 + 1) * 1000),
        }
    }

    fn cpu_quota_us(&self) -> Option<u64> {
        self.cpu_millis
            .map(|m| (m * CPU_PERIOD_US / 1000).max(1000))
    }
}

impl VmCgroup {
    /// Makes the group `name` (unique on this host) in `h` with `limits`. The CPU limit is
    /// set where the host has the CPU controller and skipped where it has not. A failure
    /// leaves nothing behind.
    pub fn create(h: &Hierarchy, name: &str, limits: GroupLimits) -> Result<VmCgroup, String> {
        let cg = match h {
            Hierarchy::V2(root) => {
                let parent = root.join("berth");
                write(&root.join("cgroup.subtree_control"), "+memory +pids")?;
                make_dir(&parent)?;
                write(&parent.join("cgroup.subtree_control"), "+memory +pids")?;
                // The CPU controller where the host has it (the limit is then set below).
                if limits.cpu_millis.is_some() && h.has_cpu() {
                    let _ = write(&root.join("cgroup.subtree_control"), "+cpu")
                        .and_then(|_| write(&parent.join("cgroup.subtree_control"), "+cpu"));
                }
                VmCgroup {
                    dirs: vec![parent.join(name)],
                }
            }
            Hierarchy::V1 { memory, pids, cpu } => {
                let mut dirs = vec![memory.join("berth"), pids.join("berth")];
                if let Some(c) = cpu.as_ref().filter(|_| limits.cpu_millis.is_some()) {
                    dirs.push(c.join("berth"));
                }
                for d in &dirs {
                    make_dir(d)?;
                }
                VmCgroup {
                    dirs: dirs.iter().map(|d| d.join(name)).collect(),
                }
            }
        };
        let set = || -> Result<(), String> {
            for d in &cg.dirs {
                make_dir(d)?;
            }
            for d in &cg.dirs {
                if d.join("memory.max").exists() {
                    write(&d.join("memory.max"), &limits.memory.to_string())?;
                    let _ = write(&d.join("memory.swap.max"), "0");
                }
                if d.join("memory.limit_in_bytes").exists() {
                    write(&d.join("memory.limit_in_bytes"), &limits.memory.to_string())?;
                }
                if d.join("pids.max").exists() {
                    write(&d.join("pids.max"), &limits.pids.to_string())?;
                }
                if let Some(quota) = limits.cpu_quota_us() {
                    if d.join("cpu.max").exists() {
                        write(&d.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                    }
                    if d.join("cpu.cfs_quota_us").exists() {
                        write(&d.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                        write(&d.join("cpu.cfs_quota_us"), &quota.to_string())?;
                    }
                }
            }
            // Every limit asked for is in place, or the group is not used.
            let has = |f: &str| cg.dirs.iter().any(|d| d.join(f).exists());
            if !(has("memory.max") || has("memory.limit_in_bytes")) || !has("pids.max") {
                return Err("the group has no memory or pids limit".into());
            }
            Ok(())
        };
        set().map(|_| cg.clone()).inspect_err(|_| cg.remove())
    }

    /// How many periods the kernel held the group back for its CPU limit (0 without one).
    pub fn cpu_throttled(&self) -> u64 {
        self.counter(&["cpu.stat"], "nr_throttled ")
    }

    /// The sum of the `key` lines of the first of `files` each directory has.
    fn counter(&self, files: &[&str], key: &str) -> u64 {
        self.dirs
            .iter()
            .filter_map(|d| {
                files
                    .iter()
                    .find_map(|f| std::fs::read_to_string(d.join(f)).ok())
            })
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.strip_prefix(key))
                    .filter_map(|n| n.trim().parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
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
        self.counter(&["memory.events", "memory.oom_control"], "oom_kill ")
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
        Hierarchy::V1 { memory, pids, cpu } => [Some(memory), Some(pids), cpu.as_ref()]
            .into_iter()
            .flatten()
            .map(|r| r.join("berth"))
            .collect(),
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

    /// The v2 files and what goes in them, on a stand-in tree (this machine's kernel binds
    /// memory and pids to v1, so the unified hierarchy cannot be tried for real here).
    #[test]
    fn a_v2_group_gets_its_memory_pids_and_cpu_limits() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        let group = root.join("berth/vm-1-7-ab");
        std::fs::create_dir_all(&group).unwrap();
        for f in ["memory.max", "memory.swap.max", "pids.max", "cpu.max"] {
            std::fs::write(group.join(f), "max\n").unwrap();
        }
        let h = Hierarchy::detect(root, true).unwrap();
        assert!(h.has_cpu());
        assert_eq!(h.describe(), "cgroup v2 (memory, pids, cpu)");
        let cg = VmCgroup::create(&h, "vm-1-7-ab", GroupLimits::for_vm(512, 256, 2)).unwrap();
        assert_eq!(cg.dirs, vec![group.clone()]);
        let read = |f: &str| std::fs::read_to_string(group.join(f)).unwrap();
        assert_eq!(read("memory.max"), ((512u64 + 256 + 512) << 20).to_string());
        assert_eq!(read("memory.swap.max"), "0");
        assert_eq!(read("pids.max"), PIDS_MAX.to_string());
        // Two vCPUs + one: 300 ms of every 100 ms period.
        assert_eq!(read("cpu.max"), "300000 100000");
        // A tree without a pids limit to set is refused.
        std::fs::remove_file(group.join("pids.max")).unwrap();
        assert!(VmCgroup::create(&h, "vm-1-7-ab", GroupLimits::for_vm(512, 0, 1)).is_err());
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
