//! What one attempt may take from the host: its workspace on disk, its VM's disk overlays,
//! its output log and its connections through the proxy (each one a host process: QEMU
//! starts one network bridge per guest connection). Defaults are sized for the machine;
//! `--max-*` flags set them; `berth.toml`'s `[limits]` may only lower them (a repo is
//! written by agents: it must not give the next attempt more of the host).
//!
//! ```toml
//! [limits]
//! workspace = "2GiB"      # the attempt's /work on the host
//! disk = "4GiB"           # its root and cache overlays together
//! output = "64MiB"        # output kept (the newest half in output.log)
//! connections = 64        # at once through its proxy
//! ```
//!
//! The supervisor measures while the attempt runs ([`LimitWatch`]); reaching a limit stops
//! that attempt alone (state `stopped`, its reason, a `limit` audit event); its workspace is
//! kept. So is the host: an attempt is also stopped when the file system under the data
//! directory falls below [`HOST_FLOOR`] free.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_db::AttemptId;
use serde::{Deserialize, Serialize};

use crate::Store;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// The host's own floor: attempts stop before the data directory's file system has less.
pub const HOST_FLOOR: u64 = GIB;
/// Files (and folders) a workspace may hold, whatever their size.
pub const MAX_FILES: u64 = 2_000_000;
/// Connections at once through one attempt's proxy, by default.
pub const DEFAULT_CONNECTIONS: u32 = 128;

/// `[limits]` in `berth.toml`, as written.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub workspace: Option<String>,
    pub disk: Option<String>,
    pub output: Option<String>,
    pub connections: Option<u32>,
}

/// What the user asked for with flags (bytes; `None`: the default or the repo's lower one).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LimitFlags {
    pub workspace: Option<u64>,
    pub disk: Option<u64>,
    pub output: Option<u64>,
    pub connections: Option<u32>,
}

/// One attempt's limits, fixed when it is made (`attempts/<id>/limits.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptLimits {
    pub workspace: u64,
    pub disk: u64,
    pub output: u64,
    pub connections: u32,
}

impl AttemptLimits {
    /// The defaults for a data directory whose file system has `available` bytes free: a
    /// quarter of it for a workspace (1 to 50 GiB) and for the overlays (2 to 20 GiB).
    pub fn defaults(available: u64) -> AttemptLimits {
        AttemptLimits {
            workspace: (available / 4).clamp(GIB, 50 * GIB),
            disk: (available / 4).clamp(2 * GIB, 20 * GIB),
            output: 64 * MIB,
            connections: DEFAULT_CONNECTIONS,
        }
    }

    /// For a new attempt: each flag wins; else the repo's value if it is lower than the
    /// default; a repo asking for more than the default is refused (only the user widens).
    pub fn resolve(
        defaults: AttemptLimits,
        repo: Option<&LimitsConfig>,
        flags: &LimitFlags,
    ) -> Result<AttemptLimits, String> {
        let repo = repo.cloned().unwrap_or_default();
        let size = |name: &str, s: &Option<String>, default: u64| -> Result<u64, String> {
            let Some(s) = s else { return Ok(default) };
            let v = berth_egress::parse_bytes(s)
                .map_err(|e| format!("berth.toml: limits.{name}: {e}"))?;
            if v > default {
                return Err(format!(
                    "berth.toml: limits.{name} = \"{s}\" is more than this machine's default \
                     ({}); a repo may only lower a limit: pass --max-{name} to allow more",
                    show_bytes(default)
                ));
            }
            Ok(v)
        };
        let connections = match repo.connections {
            Some(n) if n > defaults.connections => {
                return Err(format!(
                    "berth.toml: limits.connections = {n} is more than the default ({}); a repo \
                     may only lower a limit: pass --max-connections to allow more",
                    defaults.connections
                ));
            }
            Some(n) => n,
            None => defaults.connections,
        };
        let limits = AttemptLimits {
            workspace: match flags.workspace {
                Some(v) => v,
                None => size("workspace", &repo.workspace, defaults.workspace)?,
            },
            disk: match flags.disk {
                Some(v) => v,
                None => size("disk", &repo.disk, defaults.disk)?,
            },
            output: match flags.output {
                Some(v) => v,
                None => size("output", &repo.output, defaults.output)?,
            },
            connections: flags.connections.unwrap_or(connections),
        };
        limits.check()?;
        Ok(limits)
    }

    /// Below these nothing useful runs; a typo like `--max-disk 5` is refused, not obeyed.
    pub fn check(&self) -> Result<(), String> {
        let floor = |name: &str, v: u64, min: u64| {
            if v < min {
                Err(format!(
                    "the {name} limit {} is too small: at least {}",
                    show_bytes(v),
                    show_bytes(min)
                ))
            } else {
                Ok(())
            }
        };
        floor("workspace", self.workspace, 16 * MIB)?;
        floor("disk", self.disk, 64 * MIB)?;
        floor("output", self.output, MIB)?;
        if !(4..=4096).contains(&self.connections) {
            return Err(format!(
                "the connections limit {} must be between 4 and 4096",
                self.connections
            ));
        }
        Ok(())
    }
}

/// Bytes as people read them (`64 MiB`, `1.5 GiB`).
pub fn show_bytes(b: u64) -> String {
    if b >= GIB {
        format!("{:.1} GiB", b as f64 / GIB as f64)
            .replace(".0 ", " ")
            .to_string()
    } else if b >= MIB {
        format!("{} MiB", b / MIB)
    } else {
        format!("{b} bytes")
    }
}

/// Bytes free to an unprivileged user on the file system holding `path`.
pub fn available_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data; all zeroes is a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `s` a properly sized, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}

/// The limits a new attempt in `store` gets.
pub(crate) fn for_new_attempt(
    store: &Store,
    repo: Option<&LimitsConfig>,
    flags: &LimitFlags,
) -> Result<AttemptLimits, String> {
    let free = available_bytes(store.data().root()).unwrap_or(8 * GIB);
    AttemptLimits::resolve(AttemptLimits::defaults(free), repo, flags)
}

fn limits_file(store: &Store, id: AttemptId) -> PathBuf {
    store.attempt_dir(id).join("limits.json")
}

/// Keeps the attempt's limits beside it (host side).
pub(crate) fn save(store: &Store, id: AttemptId, limits: &AttemptLimits) -> std::io::Result<()> {
    std::fs::write(limits_file(store, id), serde_json::to_vec(limits)?)
}

/// The attempt's limits; an attempt made before limits existed gets today's defaults.
pub fn attempt_limits(store: &Store, id: AttemptId) -> AttemptLimits {
    std::fs::read(limits_file(store, id))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| {
            AttemptLimits::defaults(available_bytes(store.data().root()).unwrap_or(8 * GIB))
        })
}

/// A limit an attempt reached.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitHit {
    /// `workspace`, `files`, `disk` or `host-disk`.
    pub what: &'static str,
    pub used: u64,
    pub limit: u64,
}

impl LimitHit {
    pub fn message(&self) -> String {
        match self.what {
            "workspace" => format!(
                "stopped: its workspace reached {} of its {} limit (--max-workspace or \
                 [limits] workspace); its work so far is kept",
                show_bytes(self.used),
                show_bytes(self.limit)
            ),
            "files" => format!(
                "stopped: its workspace holds more than {} files and folders; its work so far \
                 is kept",
                self.limit
            ),
            "disk" => format!(
                "stopped: its VM's disk overlays reached {} of its {} limit (--max-disk or \
                 [limits] disk); its workspace is kept",
                show_bytes(self.used),
                show_bytes(self.limit)
            ),
            _ => format!(
                "stopped: the host's disk has only {} free (Berth keeps {} free for everything \
                 else); free some space and `berth start` it",
                show_bytes(self.used),
                show_bytes(self.limit)
            ),
        }
    }
}

/// Measures a running attempt now and then. The overlays and the host's free space are
/// cheap (a stat); the workspace is walked, less often the longer a walk takes.
pub struct LimitWatch {
    limits: AttemptLimits,
    workspace: PathBuf,
    overlays: Vec<PathBuf>,
    data_root: PathBuf,
    next_walk: Instant,
}

impl LimitWatch {
    /// `run_dir`: the VM's run directory, where its overlays are.
    pub fn new(store: &Store, id: AttemptId, run_dir: Option<&Path>) -> LimitWatch {
        let overlays = run_dir
            .map(|d| vec![d.join("overlay.qcow2"), d.join("cache.qcow2")])
            .unwrap_or_default();
        LimitWatch {
            limits: attempt_limits(store, id),
            workspace: store.workspace(id),
            overlays,
            data_root: store.data().root().to_path_buf(),
            next_walk: Instant::now(),
        }
    }

    pub fn limits(&self) -> AttemptLimits {
        self.limits
    }

    /// The first limit reached, if any.
    pub fn check(&mut self) -> Option<LimitHit> {
        if let Some(free) = available_bytes(&self.data_root)
            && free < HOST_FLOOR
        {
            return Some(LimitHit {
                what: "host-disk",
                used: free,
                limit: HOST_FLOOR,
            });
        }
        let disk: u64 = self
            .overlays
            .iter()
            .filter_map(|p| std::fs::symlink_metadata(p).ok())
            .map(|m| m.blocks() * 512)
            .sum();
        if disk > self.limits.disk {
            return Some(LimitHit {
                what: "disk",
                used: disk,
                limit: self.limits.disk,
            });
        }
        if Instant::now() >= self.next_walk {
            let started = Instant::now();
            let usage = usage(&self.workspace, MAX_FILES);
            // A walk costs the host CPU: at most a twentieth of its time, at least every 2 s.
            self.next_walk =
                Instant::now() + (started.elapsed() * 20).max(Duration::from_millis(1000));
            if usage.entries > MAX_FILES {
                return Some(LimitHit {
                    what: "files",
                    used: usage.entries,
                    limit: MAX_FILES,
                });
            }
            if usage.bytes > self.limits.workspace {
                return Some(LimitHit {
                    what: "workspace",
                    used: usage.bytes,
                    limit: self.limits.workspace,
                });
            }
        }
        None
    }
}

/// Records that `id` was stopped at `hit`: its `limit` audit event, then its state.
pub(crate) fn record_stop(
    db: &mut berth_db::Db,
    clock: crate::Clock,
    id: AttemptId,
    hit: &LimitHit,
) -> Result<(), crate::task::TaskError> {
    crate::task::audit(
        db,
        clock,
        id,
        "limit",
        serde_json::json!({"limit": hit.what, "used": hit.used, "max": hit.limit}),
    )?;
    crate::task::set_state(
        db,
        clock,
        id,
        berth_db::AttemptState::Stopped,
        serde_json::json!({"error": hit.message()}),
    )?;
    Ok(())
}

/// A [`LimitWatch`] on its own thread, for a command that blocks while it runs (`berth
/// run`): on a hit it kills the VM's QEMU (its run directory's recorded pid, checked by start
/// time), which ends the command; [`BackgroundWatch::finish`] then says which limit.
pub struct BackgroundWatch {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Option<LimitHit>>>,
}

impl BackgroundWatch {
    pub fn start(mut watch: LimitWatch, run_dir: PathBuf) -> BackgroundWatch {
        use std::sync::atomic::Ordering;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::SeqCst) {
                if let Some(hit) = watch.check() {
                    let vm = berth_vm::rundir::RunDir::open(run_dir);
                    if let Some(pid) = vm.live_pid("qemu") {
                        // SAFETY: a signal to the live QEMU this attempt started (pid and
                        // start time checked by `live_pid`).
                        unsafe {
                            libc::kill(pid as i32, libc::SIGKILL);
                        }
                    }
                    return Some(hit);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            None
        });
        BackgroundWatch {
            done,
            thread: Some(thread),
        }
    }

    /// Stops watching; the limit that was reached, if one was.
    pub fn finish(mut self) -> Option<LimitHit> {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().and_then(|t| t.join().ok()).flatten()
    }
}

/// What a tree holds on disk.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Allocated bytes (a sparse file counts what it really takes).
    pub bytes: u64,
    pub entries: u64,
}

/// The disk a tree the guest writes takes, walked without following a symlink: every
/// folder is opened from its parent's descriptor with `O_NOFOLLOW`, so a folder swapped for
/// a link mid-walk is not entered. Stops counting past `max_entries`.
pub fn usage(root: &Path, max_entries: u64) -> Usage {
    let mut total = Usage::default();
    let Some(root_fd) = open_dir_at(None, root.as_os_str()) else {
        return total;
    };
    let mut stack = vec![root_fd];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) else {
            continue;
        };
        for e in entries.flatten() {
            total.entries += 1;
            if total.entries > max_entries {
                return total;
            }
            // `DirEntry::metadata` is an `fstatat` without following the last component.
            let Ok(m) = e.metadata() else { continue };
            total.bytes += m.blocks() * 512;
            if m.file_type().is_dir()
                && let Some(fd) = open_dir_at(Some(&dir), &e.file_name())
            {
                stack.push(fd);
            }
        }
    }
    total
}

fn open_dir_at(parent: Option<&OwnedFd>, name: &std::ffi::OsStr) -> Option<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(name.as_bytes()).ok()?;
    let at = parent.map(|p| p.as_raw_fd()).unwrap_or(libc::AT_FDCWD);
    // SAFETY: a plain openat on a valid C string; the result is owned below.
    let fd = unsafe {
        libc::openat(
            at,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repo_may_lower_a_limit_but_never_raise_one() {
        let d = AttemptLimits::defaults(100 * GIB);
        assert_eq!(d.workspace, 25 * GIB);
        let lower = LimitsConfig {
            workspace: Some("100MiB".into()),
            connections: Some(16),
            ..Default::default()
        };
        let l = AttemptLimits::resolve(d, Some(&lower), &LimitFlags::default()).unwrap();
        assert_eq!(
            (l.workspace, l.connections, l.disk),
            (100 * MIB, 16, d.disk)
        );
        let higher = LimitsConfig {
            disk: Some("1000GiB".into()),
            ..Default::default()
        };
        let e = AttemptLimits::resolve(d, Some(&higher), &LimitFlags::default()).unwrap_err();
        assert!(e.contains("limits.disk") && e.contains("--max-disk"), "{e}");
        let e = AttemptLimits::resolve(
            d,
            Some(&LimitsConfig {
                connections: Some(100_000),
                ..Default::default()
            }),
            &LimitFlags::default(),
        )
        .unwrap_err();
        assert!(e.contains("connections"), "{e}");
        // The user's flag wins over the repo, both ways.
        let flags = LimitFlags {
            disk: Some(200 * GIB),
            ..Default::default()
        };
        let l = AttemptLimits::resolve(d, Some(&higher), &flags).unwrap();
        assert_eq!(l.disk, 200 * GIB);
        // Nonsense is refused, not obeyed.
        let tiny = LimitFlags {
            workspace: Some(5),
            ..Default::default()
        };
        assert!(AttemptLimits::resolve(d, None, &tiny).is_err());
        let bad = LimitsConfig {
            output: Some("lots".into()),
            ..Default::default()
        };
        assert!(
            AttemptLimits::resolve(d, Some(&bad), &LimitFlags::default())
                .unwrap_err()
                .contains("limits.output")
        );
    }

    #[test]
    fn the_defaults_follow_the_disk_within_bounds() {
        assert_eq!(AttemptLimits::defaults(GIB).workspace, GIB);
        assert_eq!(AttemptLimits::defaults(GIB).disk, 2 * GIB);
        assert_eq!(AttemptLimits::defaults(1000 * GIB).workspace, 50 * GIB);
        assert_eq!(AttemptLimits::defaults(1000 * GIB).disk, 20 * GIB);
        assert_eq!(show_bytes(64 * MIB), "64 MiB");
        assert_eq!(show_bytes(3 * GIB / 2), "1.5 GiB");
        assert_eq!(show_bytes(2 * GIB), "2 GiB");
    }

    #[test]
    fn the_walk_counts_what_is_there_and_never_follows_a_link_out() {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("big"), vec![7u8; 4 << 20]).unwrap();
        std::fs::create_dir_all(ws.path().join("a/b")).unwrap();
        std::fs::write(ws.path().join("a/b/f"), vec![1u8; 1 << 20]).unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.path().join("link")).unwrap();
        // A sparse file counts what it takes, not what it says.
        let sparse = std::fs::File::create(ws.path().join("sparse")).unwrap();
        sparse.set_len(10 << 30).unwrap();
        let u = usage(ws.path(), MAX_FILES);
        assert_eq!(u.entries, 5, "{u:?}");
        assert!(u.bytes >= 1 << 20 && u.bytes < 2 << 20, "{u:?}");
        // The cap on entries ends the walk.
        assert_eq!(usage(ws.path(), 2).entries, 3);
    }
}
