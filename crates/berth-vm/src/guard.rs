//! The guard: a tiny detached process per VM that tears the VM down if its owner dies.
//!
//! The owner holds the write end of the guard's stdin. When the owner exits for any reason,
//! even SIGKILL, the kernel closes that pipe, the guard reads EOF, kills the VM's recorded
//! processes and removes the run directory. The guard runs in its own process group, so a
//! Ctrl-C in the owner's terminal does not reach it.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::VmError;
use crate::rundir::RunDir;

/// The owner's end: dropping it (or dying) lets the guard clean up.
pub struct GuardHandle {
    stdin: Option<ChildStdin>,
    child: Child,
}

impl GuardHandle {
    /// Releases the guard and waits for it to finish its cleanup.
    pub fn release(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Starts `exe ARGS... RUN_DIR` as the guard (the binary routes that to [`run_guard`]).
pub fn spawn_guard(exe: &Path, args: &[&str], run_dir: &RunDir) -> Result<GuardHandle, VmError> {
    let mut child = Command::new(exe)
        .args(args)
        .arg(run_dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| VmError::io("cannot start the VM guard", exe, e))?;
    run_dir.record_pid("guard", child.id())?;
    Ok(GuardHandle {
        stdin: child.stdin.take(),
        child,
    })
}

/// The guard's main: block until the owner is gone, then destroy the run directory.
pub fn run_guard(run_dir: &Path) {
    // SAFETY: ignoring SIGINT/SIGHUP for this process only.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    RunDir::open(run_dir.to_path_buf()).destroy();
    // The owner is gone: if its run directory (and so its record of the group) was deleted
    // first, its group is found by the owner's pid in its name.
    crate::cgroup::remove_abandoned();
}
