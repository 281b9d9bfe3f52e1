//! virtiofsd: serves the /work share to one VM, confined to the shared directory.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::spawn::detach_from_terminal;
use crate::{RunDir, VmError};

/// The guest user that runs commands (see vm-images/default/rootfs.sh).
const GUEST_AGENT_ID: u32 = 1000;

/// virtiofsd's isolation of itself, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    /// New mount, pid, net and user namespaces with the share as its root.
    Namespace,
    /// chroot into the share (needs root).
    Chroot,
    /// No sandbox: only the path checks inside virtiofsd.
    None,
}

impl Sandbox {
    pub fn as_str(self) -> &'static str {
        match self {
            Sandbox::Namespace => "namespace",
            Sandbox::Chroot => "chroot",
            Sandbox::None => "none",
        }
    }
}

/// Starts virtiofsd on `share`, trying sandboxes strongest first, and waits for its socket.
///
/// Guest uids are squashed to the share's owner on the host, and the owner appears in the
/// guest as the `agent` user: whatever the guest does, files it creates belong to the user
/// who owns the share, never to root or another account.
pub fn spawn(bin: &Path, share: &Path, dir: &RunDir) -> Result<(Child, Sandbox), VmError> {
    let meta = std::fs::metadata(share).map_err(|e| VmError::io("cannot share", share, e))?;
    if !meta.is_dir() {
        return Err(VmError::Config(format!(
            "{} is not a directory; --share takes a directory",
            share.display()
        )));
    }
    let mut last_error = String::new();
    for sandbox in [Sandbox::Namespace, Sandbox::Chroot, Sandbox::None] {
        let _ = std::fs::remove_file(dir.virtiofs_socket());
        let log_path = dir.log("virtiofsd");
        let log =
            File::create(&log_path).map_err(|e| VmError::io("cannot create", &log_path, e))?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--socket-path={}", dir.virtiofs_socket().display()))
            .arg(format!("--shared-dir={}", share.display()))
            .arg(format!("--sandbox={}", sandbox.as_str()))
            .arg("--cache=auto")
            .arg("--log-level=warn")
            .arg(format!(
                "--translate-uid=squash-guest:0:{}:4294967295",
                meta.uid()
            ))
            .arg(format!(
                "--translate-gid=squash-guest:0:{}:4294967295",
                meta.gid()
            ))
            .arg(format!(
                "--translate-uid=host:{}:{GUEST_AGENT_ID}:1",
                meta.uid()
            ))
            .arg(format!(
                "--translate-gid=host:{}:{GUEST_AGENT_ID}:1",
                meta.gid()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        detach_from_terminal(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| VmError::Spawn {
            program: "virtiofsd",
            detail: format!(
                "{}: {e}; install it with `cargo install virtiofsd`",
                bin.display()
            ),
        })?;
        dir.record_pid("virtiofsd", child.id())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if dir.virtiofs_socket().exists() {
                std::fs::write(dir.path().join("sandbox"), sandbox.as_str())
                    .map_err(|e| VmError::io("cannot write", dir.path(), e))?;
                return Ok((child, sandbox));
            }
            if let Ok(Some(status)) = child.try_wait() {
                last_error = format!(
                    "sandbox {} failed ({status}): {}",
                    sandbox.as_str(),
                    std::fs::read_to_string(&log_path)
                        .unwrap_or_default()
                        .trim()
                );
                tracing::warn!("{last_error}");
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                last_error = format!("no socket after 10 s with sandbox {}", sandbox.as_str());
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Err(VmError::Spawn {
        program: "virtiofsd",
        detail: last_error,
    })
}
