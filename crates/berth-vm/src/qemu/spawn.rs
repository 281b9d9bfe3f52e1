//! How the hypervisor's helper processes are started.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Puts the child in its own process group (a Ctrl-C in the user's terminal reaches only
/// `berth`, which then tears down in order) and has the kernel SIGKILL it if the thread that
/// spawned it dies, so a killed `berth` never leaves a VM running.
pub fn detach_from_terminal(cmd: &mut Command) {
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            Ok(())
        });
    }
}
