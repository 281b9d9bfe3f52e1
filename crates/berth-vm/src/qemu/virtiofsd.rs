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
/// Without a sandbox (`none`) virtiofsd is the only thing between a guest and the host's
/// files, so that mode is used only when the user opted in (`allow_none`); otherwise a host
/// where neither namespaces nor chroot work gets an error that says so.
///
/// Guest uids are squashed to the share's owner on the host, and the owner appears in the
/// guest as the `agent` user: whatever the guest does, files it creates belong to the user
/// who owns the share, never to root or another account.
pub fn spawn(
    bin: &Path,
    share: &Path,
    dir: &RunDir,
    allow_none: bool,
) -> Result<(Child, Sandbox), VmError> {
    let meta = std::fs::metadata(share).map_err(|e| VmError::io("cannot share", share, e))?;
    if !meta.is_dir() {
        return Err(VmError::Config(format!(
            "{} is not a directory; --share takes a directory",
            share.display()
        )));
    }
    let mut last_error = String::new();
    let modes: &[Sandbox] = if allow_none {
        &[Sandbox::Namespace, Sandbox::Chroot, Sandbox::None]
    } else {
        &[Sandbox::Namespace, Sandbox::Chroot]
    };
    for &sandbox in modes {
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
    let hint = if allow_none {
        String::new()
    } else {
        format!(
            "; virtiofsd could not sandbox itself (user namespaces or chroot), and Berth does \
             not share a folder without a sandbox unless you set {UNSANDBOXED_OPT_IN}=1"
        )
    };
    Err(VmError::Spawn {
        program: "virtiofsd",
        detail: format!("{last_error}{hint}"),
    })
}

/// The environment variable (read by the binaries) that allows `--sandbox=none`.
pub const UNSANDBOXED_OPT_IN: &str = "BERTH_ALLOW_UNSANDBOXED_SHARE";

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A stand-in virtiofsd that, like the real one where user namespaces are restricted,
    /// fails with `namespace` and `chroot` and would serve with `none`.
    fn fake_virtiofsd(dir: &Path) -> std::path::PathBuf {
        let bin = dir.join("virtiofsd");
        let script = format!(
            "#!/bin/sh\necho \"$@\" >> {}/calls\ncase \"$*\" in *--sandbox=none*) ;; *) exit 1 ;; esac\n\
             for a in \"$@\"; do case \"$a\" in --socket-path=*) : > \"${{a#--socket-path=}}\" ;; esac; done\n\
             exec sleep 30\n",
            dir.display()
        );
        std::fs::write(&bin, script).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    #[test]
    fn without_the_users_opt_in_no_share_is_served_unsandboxed() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = fake_virtiofsd(tmp.path());
        let share = tmp.path().join("share");
        std::fs::create_dir(&share).unwrap();
        let dir = RunDir::create(&tmp.path().join("run"), "vm").unwrap();
        let err = spawn(&bin, &share, &dir, false).unwrap_err().to_string();
        assert!(err.contains(UNSANDBOXED_OPT_IN), "{err}");
        let calls = std::fs::read_to_string(tmp.path().join("calls")).unwrap();
        assert!(!calls.contains("--sandbox=none"), "{calls}");

        let (mut child, sandbox) = spawn(&bin, &share, &dir, true).unwrap();
        assert_eq!(sandbox, Sandbox::None);
        let _ = child.kill();
        let _ = child.wait();
    }
}
