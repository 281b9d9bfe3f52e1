//! One directory per VM holding everything of that VM: sockets, logs, pid files, the disk
//! overlay. Removing the directory (after killing the recorded pids) is the whole teardown.
//!
//! ```text
//! <run>/<vm>/owner          pid and start time of the process that owns the VM
//! <run>/<vm>/qemu.pid       pid of QEMU          <run>/<vm>/virtiofsd.pid  pid of virtiofsd
//! <run>/<vm>/guard.pid      pid of the guard that cleans up if the owner dies
//! <run>/<vm>/qmp.sock       QMP control socket   <run>/<vm>/agent.sock     guest agent channel
//! <run>/<vm>/virtiofs.sock  vhost-user socket    <run>/<vm>/overlay.qcow2  copy-on-write root disk
//! <run>/<vm>/console.log    guest serial console, capped (console.log.1: its older half)
//! <run>/<vm>/console.sock   where QEMU sends the console (Berth listens and caps it)
//! <run>/<vm>/qemu.log       QEMU's stderr
//! <run>/<vm>/virtiofsd.log  virtiofsd's stderr   <run>/<vm>/sandbox        virtiofsd sandbox mode used
//! <run>/<vm>/egress.sock    the egress proxy (only with networking on)
//! ```

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::VmError;

/// Unix socket paths are limited to 108 bytes including the NUL.
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

/// Refuses a run directory that is not a real directory of ours, readable by us alone.
fn check_ours(path: &Path) -> Result<(), VmError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| VmError::io("cannot inspect run directory", path, e))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let why = if meta.file_type().is_symlink() {
        "is a symlink".to_string()
    } else if !meta.is_dir() {
        "is not a directory".to_string()
    } else if meta.uid() != me {
        format!("belongs to uid {}, not {me}", meta.uid())
    } else if meta.mode() & 0o077 != 0 {
        format!("has mode {:o}; Berth makes them 0700", meta.mode() & 0o777)
    } else {
        return Ok(());
    };
    Err(VmError::Config(format!(
        "refusing the run directory {}: it {why}; remove it if it is not in use",
        path.display()
    )))
}

impl RunDir {
    /// Creates `<root>/<name>` (mode 0700), or opens it if it exists.
    pub fn create(root: &Path, name: &str) -> Result<RunDir, VmError> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(VmError::Config(format!("invalid VM name '{name}'")));
        }
        let path = root.join(name);
        let longest = path.join("virtiofs.sock");
        if longest.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(VmError::Config(format!(
                "the run directory {} is too deep for unix socket paths (limit {MAX_SOCKET_PATH} \
                 bytes); use a shorter data directory",
                path.display()
            )));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| VmError::io("cannot create run directory", root, e))?;
        // The VM's own directory: made here (not recursively, 0700), or one this user made
        // before (the proxy's socket goes in first). Anything else found there (a symlink,
        // another owner's directory, an open mode) is refused, never used.
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => check_ours(&path)?,
            Err(e) => return Err(VmError::io("cannot create run directory", &path, e)),
        }
        Ok(RunDir { path })
    }

    pub fn open(path: PathBuf) -> RunDir {
        RunDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn qmp_socket(&self) -> PathBuf {
        self.path.join("qmp.sock")
    }
    pub fn agent_socket(&self) -> PathBuf {
        self.path.join("agent.sock")
    }
    pub fn virtiofs_socket(&self) -> PathBuf {
        self.path.join("virtiofs.sock")
    }
    /// Where the attempt's egress proxy listens (the guest's connections are bridged here).
    pub fn egress_socket(&self) -> PathBuf {
        self.path.join("egress.sock")
    }
    pub fn overlay(&self) -> PathBuf {
        self.path.join("overlay.qcow2")
    }
    /// The VM's own copy of the image's kernel (see `VmSpec::private_boot_files`).
    pub fn boot_kernel(&self) -> PathBuf {
        self.path.join("vmlinux.boot")
    }
    /// The VM's own copy of the image's initrd.
    pub fn boot_initrd(&self) -> PathBuf {
        self.path.join("initrd.boot")
    }
    /// The attempt's throwaway overlay on its cache generation.
    pub fn cache_overlay(&self) -> PathBuf {
        self.path.join("cache.qcow2")
    }
    pub fn console_log(&self) -> PathBuf {
        self.path.join("console.log")
    }
    pub fn console_socket(&self) -> PathBuf {
        self.path.join("console.sock")
    }
    pub fn log(&self, process: &str) -> PathBuf {
        self.path.join(format!("{process}.log"))
    }

    /// Records that `process` has `pid`, so a guard or a later cleanup can kill it.
    pub fn record_pid(&self, process: &str, pid: u32) -> Result<(), VmError> {
        // Written aside and renamed into place: a reader (a guard, a cleanup, a test) sees
        // the whole line or no file, never an empty one.
        let p = self.path.join(format!("{process}.pid"));
        let tmp = self.path.join(format!(".{process}.pid.tmp"));
        let line = format!("{pid} {}\n", start_time(pid).unwrap_or(0));
        std::fs::write(&tmp, line).map_err(|e| VmError::io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| VmError::io("cannot write", &p, e))
    }

    /// SIGKILLs every recorded process that is still the same process (pid and start time
    /// match), then removes the directory. Safe to call any number of times.
    pub fn destroy(&self) {
        for process in ["qemu", "virtiofsd", "owner"] {
            if process == "owner" {
                continue; // never kill the owner: it is the CLI, or already dead
            }
            if let Some(pid) = self.live_pid(process) {
                // SAFETY: kill takes plain integers; the pid was checked to be ours.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
                wait_gone(pid);
            }
        }
        // QEMU's control group, with anything QEMU left in it (a bridge).
        if let Some(cg) = crate::cgroup::VmCgroup::recorded(&self.path) {
            cg.remove();
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }

    /// The pid recorded for `process` if that very process still runs (a zombie does not).
    pub fn live_pid(&self, process: &str) -> Option<u32> {
        let text = std::fs::read_to_string(self.path.join(format!("{process}.pid"))).ok()?;
        let mut parts = text.split_whitespace();
        let pid: u32 = parts.next()?.parse().ok()?;
        let started: u64 = parts.next()?.parse().ok()?;
        (pid > 1 && start_time(pid) == Some(started) && !is_zombie(pid)).then_some(pid)
    }

    /// Whether the owning process is gone (crashed or killed without cleaning up).
    pub fn is_orphaned(&self) -> bool {
        self.path.join("owner.pid").exists() && self.live_pid("owner").is_none()
    }
}

/// Removes run directories whose owner died, killing what they recorded. Returns them.
pub fn reap_orphans(root: &Path) -> Vec<PathBuf> {
    let mut reaped = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return reaped;
    };
    for entry in entries.flatten() {
        let dir = RunDir::open(entry.path());
        if dir.is_orphaned() && dir.live_pid("guard").is_none() {
            dir.destroy();
            reaped.push(entry.path());
        }
    }
    crate::cgroup::remove_abandoned();
    reaped
}

/// Whether `pid` is alive and is the process that started at `start` (not a reused pid,
/// not a zombie).
pub fn process_alive(pid: u32, start: u64) -> bool {
    pid > 1 && start_time(pid) == Some(start) && !is_zombie(pid)
}

/// Field 22 of /proc/PID/stat: start time in clock ticks since boot.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and ')'; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` exists only as a zombie (dead, waiting for its parent to reap it).
pub(crate) fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        == Some("Z")
}

/// Waits briefly for a killed process to disappear (it may be a zombie of another parent).
fn wait_gone(pid: u32) {
    for _ in 0..200 {
        let exists = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !exists || is_zombie(pid) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_or_open_run_dir_is_refused_never_used() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join("vm1")).unwrap();
        let err = RunDir::create(root.path(), "vm1")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("symlink"), "{err}");
        std::fs::create_dir(root.path().join("vm2")).unwrap();
        std::fs::set_permissions(
            root.path().join("vm2"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let err = RunDir::create(root.path(), "vm2")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("mode"), "{err}");
        // Its own, made before (the proxy's socket goes in first): fine, and 0700.
        let d = RunDir::create(root.path(), "vm3").unwrap();
        RunDir::create(root.path(), "vm3").unwrap();
        let mode = std::fs::metadata(d.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn names_that_escape_the_run_root_are_refused() {
        let d = tempfile::tempdir().unwrap();
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(RunDir::create(d.path(), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_too_deep_run_root_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("x".repeat(100));
        let err = RunDir::create(&deep, "vm-1").unwrap_err().to_string();
        assert!(err.contains("too deep"), "{err}");
    }

    #[test]
    fn a_dead_owner_makes_the_dir_an_orphan_and_a_reused_pid_does_not_count() {
        let d = tempfile::tempdir().unwrap();
        let dir = RunDir::create(d.path(), "vm-1").unwrap();
        // Our own pid with a wrong start time: the "same pid, other process" case.
        std::fs::write(
            dir.path().join("owner.pid"),
            format!("{} 1\n", std::process::id()),
        )
        .unwrap();
        assert!(dir.is_orphaned());
        assert_eq!(reap_orphans(d.path()).len(), 1);
        assert!(!dir.path().exists());

        let live = RunDir::create(d.path(), "vm-2").unwrap();
        live.record_pid("owner", std::process::id()).unwrap();
        assert!(!live.is_orphaned());
        assert!(reap_orphans(d.path()).is_empty());
    }
}
