//! What an environment build needs from the host: one builder per environment at a time,
//! and enough free disk before it starts.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::task::TaskError;

/// An exclusive `flock` on `<envs>/<id12>.lock`, held while one process builds an
/// environment (the attempts of one task start together); released when dropped or when the
/// process dies.
pub(crate) struct EnvLock {
    _held: File,
}

impl EnvLock {
    /// `what` names what the other process is doing, for the waiting line.
    pub(crate) fn take(
        envs: &Path,
        id: &str,
        what: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<EnvLock, TaskError> {
        let path = envs.join(format!("{}.lock", &id[..12]));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| TaskError::Refused(format!("cannot open {}: {e}", path.display())))?;
        // SAFETY: flock on a descriptor we own; LOCK_NB only asks whether it would block.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            progress(&format!("      another process is {what}; waiting for it"));
            // SAFETY: as above, now waiting.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(TaskError::Refused(format!(
                    "cannot lock {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                )));
            }
        }
        Ok(EnvLock { _held: file })
    }
}

/// Refuses, before anything is written, when `dir`'s file system has less than `need` bytes
/// free for an unprivileged writer.
pub(crate) fn check_free_space(dir: &Path, need: u64) -> Result<(), TaskError> {
    let free = free_bytes(dir).map_err(|e| {
        TaskError::Refused(format!(
            "cannot tell the free space of {}: {e}",
            dir.display()
        ))
    })?;
    if free < need {
        return Err(TaskError::Refused(format!(
            "building an environment needs at least {} MiB free in {}, which has {} MiB; free \
             some space (`berth env rm` removes old environments)",
            need >> 20,
            dir.display(),
            free >> 20
        )));
    }
    Ok(())
}

/// Bytes the files directly in `dir` take on disk (sparse files count what is written).
pub(crate) fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.blocks() * 512)
        .sum()
}

fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: statvfs is plain data filled through a valid pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_that_would_not_fit_is_refused_before_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_free_space(dir.path(), u64::MAX).unwrap_err();
        assert!(e.to_string().contains("needs at least"), "{e}");
        check_free_space(dir.path(), 1).unwrap();
    }
}
