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
///
/// With `as_uid` (Berth runs as root and the share is its own), the share is first given to
/// that uid ([`crate::share_owner`]) and virtiofsd runs as it, in its own user namespace
/// sandbox, as it does for an ordinary user; if that sandbox cannot be made, virtiofsd runs as
/// root as below (the share stays the uid's).
pub fn spawn(
    bin: &Path,
    share: &Path,
    dir: &RunDir,
    allow_none: bool,
    as_uid: Option<u32>,
) -> Result<(Child, Sandbox), VmError> {
    let meta = std::fs::metadata(share).map_err(|e| VmError::io("cannot share", share, e))?;
    if !meta.is_dir() {
        return Err(VmError::Config(format!(
            "{} is not a directory; --share takes a directory",
            share.display()
        )));
    }
    if let Some(uid) = as_uid {
        let served = crate::share_owner::own_tree(share, uid, uid)
            .map_err(|e| format!("cannot give the share to it: {e}"))
            .and_then(|_| unprivileged::spawn(bin, share, dir, uid));
        match served {
            Ok(child) => return Ok((child, Sandbox::Namespace)),
            Err(e) => tracing::warn!("virtiofsd as uid {uid}: {e}; it runs as root instead"),
        }
    }
    let meta = std::fs::metadata(share).map_err(|e| VmError::io("cannot share", share, e))?;
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
            .arg("--log-level=warn")
            .args(common_args(meta.uid(), meta.gid()))
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

/// The cache policy and the translation of ids: guest uids are squashed to the share's
/// owner on the host, and the owner appears in the guest as the `agent` user.
fn common_args(uid: u32, gid: u32) -> Vec<String> {
    vec![
        "--cache=auto".into(),
        format!("--translate-uid=squash-guest:0:{uid}:4294967295"),
        format!("--translate-gid=squash-guest:0:{gid}:4294967295"),
        format!("--translate-uid=host:{uid}:{GUEST_AGENT_ID}:1"),
        format!("--translate-gid=host:{gid}:{GUEST_AGENT_ID}:1"),
    ]
}

/// virtiofsd as an unprivileged uid (Berth being root). That uid cannot reach the run
/// directory, the share or the virtiofsd binary by their paths (under root's 0700 home), so
/// Berth hands it all three open: the listening socket as fd 3 (`--fd`), the share as its
/// working directory (`--shared-dir=.`) and the binary as a file it executes (`fexecve`).
mod unprivileged {
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixListener;
    use std::os::unix::process::CommandExt;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::super::spawn::detach_from_terminal;
    use crate::RunDir;

    /// An argument and environment vector for `fexecve`, made before the fork (the child
    /// may not allocate between fork and exec).
    struct Exec {
        argv: Vec<*const libc::c_char>,
        envp: Vec<*const libc::c_char>,
        _strings: Vec<std::ffi::CString>,
    }

    // SAFETY: the pointers point into `_strings`, which the struct owns and never changes;
    // only the forked child reads them.
    unsafe impl Send for Exec {}
    // SAFETY: as above; nothing writes through the pointers.
    unsafe impl Sync for Exec {}

    impl Exec {
        fn new(bin: &Path, args: &[String]) -> Result<Exec, String> {
            let c = |b: &[u8]| std::ffi::CString::new(b).map_err(|e| e.to_string());
            let mut strings = vec![c(bin.as_os_str().as_encoded_bytes())?];
            for a in args {
                strings.push(c(a.as_bytes())?);
            }
            let argc = strings.len();
            for (k, v) in std::env::vars_os() {
                let mut kv = k.into_encoded_bytes();
                kv.push(b'=');
                kv.extend_from_slice(v.as_encoded_bytes());
                if let Ok(s) = c(&kv) {
                    strings.push(s);
                }
            }
            let ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
            let mut argv = ptrs[..argc].to_vec();
            argv.push(std::ptr::null());
            let mut envp = ptrs[argc..].to_vec();
            envp.push(std::ptr::null());
            Ok(Exec {
                argv,
                envp,
                _strings: strings,
            })
        }
    }

    /// What virtiofsd logs once its sandbox is up and it waits for QEMU.
    const READY: &str = "Waiting for vhost-user socket connection";

    pub fn spawn(bin: &Path, share: &Path, dir: &RunDir, uid: u32) -> Result<Child, String> {
        let socket = dir.virtiofs_socket();
        let _ = std::fs::remove_file(&socket);
        let listener =
            UnixListener::bind(&socket).map_err(|e| format!("{}: {e}", socket.display()))?;
        let log_path = dir.log("virtiofsd");
        let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let share_c = std::ffi::CString::new(share.as_os_str().as_encoded_bytes())
            .map_err(|e| e.to_string())?;
        let fd = listener.as_raw_fd();
        let program = File::open(bin).map_err(|e| format!("{}: {e}", bin.display()))?;
        let args: Vec<String> = ["--fd=3", "--shared-dir=.", "--sandbox=namespace"]
            .into_iter()
            .map(String::from)
            .chain(["--log-level=info".to_string()])
            .chain(super::common_args(uid, uid))
            .collect();
        let exec = Exec::new(bin, &args)?;
        let program_fd = program.as_raw_fd();
        let mut cmd = Command::new(bin);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        detach_from_terminal(&mut cmd);
        // SAFETY: only async-signal-safe syscalls on the child's own state; every result is
        // checked and a failure ends the spawn with its error.
        unsafe {
            cmd.pre_exec(move || {
                // The whole struct is moved in (not its fields, which are not Send).
                let exec = &exec;
                let fail = || Err(std::io::Error::last_os_error());
                // dup2 onto itself would keep the close-on-exec flag: cleared by hand then.
                let passed = if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, 3)
                };
                if passed < 0 || libc::chdir(share_c.as_ptr()) != 0 {
                    return fail();
                }
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(uid, uid, uid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    return fail();
                }
                // The uid change cleared the parent-death signal.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                // The binary by its open file: this uid may not reach its path.
                libc::fexecve(program_fd, exec.argv.as_ptr(), exec.envp.as_ptr());
                fail()
            });
        }
        let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
        // Only virtiofsd holds the socket now: if it dies, QEMU's connection fails instead
        // of waiting on a listener nobody serves.
        drop(listener);
        drop(program);
        dir.record_pid("virtiofsd", child.id())
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains(READY) {
                let _ = std::fs::write(dir.path().join("sandbox"), "namespace");
                return Ok(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("it exited ({status}): {}", text.trim()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("its sandbox was not up after 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
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
        let err = spawn(&bin, &share, &dir, false, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(UNSANDBOXED_OPT_IN), "{err}");
        let calls = std::fs::read_to_string(tmp.path().join("calls")).unwrap();
        assert!(!calls.contains("--sandbox=none"), "{calls}");

        let (mut child, sandbox) = spawn(&bin, &share, &dir, true, None).unwrap();
        assert_eq!(sandbox, Sandbox::None);
        let _ = child.kill();
        let _ = child.wait();
    }
}
