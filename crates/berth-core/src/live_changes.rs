//! Which files an attempt is changing while it works, for the app's card and `berth ls
//! --json`: the supervisor watches the workspace (inotify, the kernel interface `notify` uses
//! on Linux, used directly so that every watch is placed safely) and keeps a count and the
//! latest names in `attempts/<id>/live-changes.json` (host side; the guest never sees it).
//!
//! The workspace is the guest's: every directory is opened from the workspace's root one
//! component at a time with `O_NOFOLLOW` and watched through `/proc/self/fd/N`, so a symlink
//! the guest plants (even one swapped in mid-walk) is never followed to a host directory;
//! `.git` is not watched; at most [`MAX_DIRS`] directories are watched, so a guest that
//! makes millions of them cannot use up the host's inotify watches. Names are display text
//! only (a front end shows them as text, never markup).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::Store;
use berth_db::AttemptId;

/// Directories watched per attempt, at most.
pub const MAX_DIRS: usize = 1024;
/// Distinct paths remembered, at most (the count stops there and says so).
pub const MAX_PATHS: usize = 10_000;
/// Names kept for display, latest first.
const RECENT: usize = 8;

/// What the attempt has changed since its command started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveChanges {
    /// Files created, written, moved or deleted (each path once).
    pub files: usize,
    /// At least `files`: the count stopped at [`MAX_PATHS`].
    pub capped: bool,
    /// The latest ones, newest first, as display text.
    pub recent: Vec<String>,
}

fn file(store: &Store, id: AttemptId) -> PathBuf {
    store.attempt_dir(id).join("live-changes.json")
}

/// The attempt's live changes, while its supervisor watches (none before the first change).
pub fn live_changes(store: &Store, id: AttemptId) -> Option<LiveChanges> {
    serde_json::from_slice(&std::fs::read(file(store, id)).ok()?).ok()
}

/// Forgets the last run's changes (a new run starts counting from nothing).
pub(crate) fn clear(store: &Store, id: AttemptId) {
    let _ = std::fs::remove_file(file(store, id));
}

/// Tally of changed paths.
#[derive(Default)]
struct Tally {
    seen: std::collections::HashSet<String>,
    recent: std::collections::VecDeque<String>,
    capped: bool,
    dirty: bool,
}

impl Tally {
    fn touch(&mut self, rel: &str) {
        let shown = crate::table_cell(rel, 120);
        self.recent.retain(|r| r != &shown);
        self.recent.push_front(shown);
        self.recent.truncate(RECENT);
        if !self.seen.contains(rel) {
            if self.seen.len() >= MAX_PATHS {
                self.capped = true;
            } else {
                self.seen.insert(rel.to_string());
            }
        }
        self.dirty = true;
    }

    fn view(&self) -> LiveChanges {
        LiveChanges {
            files: self.seen.len(),
            capped: self.capped,
            recent: self.recent.iter().cloned().collect(),
        }
    }
}

/// Watches attempt `id`'s workspace until `stop` is set, writing its live changes about once
/// a second while they change. Runs on its own thread; returns at once on hosts without
/// inotify.
pub(crate) fn watch(store: Store, id: AttemptId, stop: Arc<AtomicBool>) {
    clear(&store, id);
    #[cfg(target_os = "linux")]
    {
        let root = store.workspace(id);
        let out = file(&store, id);
        std::thread::spawn(move || {
            let _ = linux::run(&root, &out, &stop);
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (store, id, stop);
}

fn write_view(out: &Path, view: &LiveChanges) {
    let tmp = out.with_extension("json.new");
    if std::fs::write(&tmp, serde_json::to_vec(view).unwrap_or_default()).is_ok() {
        let _ = std::fs::rename(&tmp, out);
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::{HashMap, VecDeque};
    use std::ffi::{CString, OsStr};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

    use super::{MAX_DIRS, Tally, write_view};

    /// Opens `rel` (components joined by '/') under `root`, never following a symlink.
    fn open_dir(root: &OwnedFd, rel: &str) -> Option<OwnedFd> {
        let mut dir = root.try_clone().ok()?;
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            let name = CString::new(part).ok()?;
            // SAFETY: a valid directory fd and a NUL-terminated name; the result is checked.
            let fd = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return None;
            }
            // SAFETY: openat returned a new descriptor that nothing else owns.
            dir = unsafe { OwnedFd::from_raw_fd(fd) };
        }
        Some(dir)
    }

    struct Watcher {
        inotify: Inotify,
        root: OwnedFd,
        dirs: HashMap<WatchDescriptor, String>,
    }

    impl Watcher {
        /// Watches directory `rel` (and, breadth first, what is below it, within the cap).
        /// With `tally`, `rel` is new: the files already in it (made before its watch was in
        /// place) count as changes.
        fn add_tree(&mut self, rel: String, mut tally: Option<&mut Tally>) {
            let mut queue = VecDeque::from([rel]);
            while let Some(rel) = queue.pop_front() {
                if self.dirs.len() >= MAX_DIRS {
                    return;
                }
                let Some(fd) = open_dir(&self.root, &rel) else {
                    continue;
                };
                let mask = WatchMask::CREATE
                    | WatchMask::CLOSE_WRITE
                    | WatchMask::DELETE
                    | WatchMask::MOVED_FROM
                    | WatchMask::MOVED_TO
                    | WatchMask::ONLYDIR;
                let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
                let Ok(wd) = self.inotify.watches().add(&proc, mask) else {
                    continue;
                };
                self.dirs.insert(wd, rel.clone());
                // Its subdirectories, read through the same descriptor (no path lookup).
                let Ok(entries) = std::fs::read_dir(&proc) else {
                    continue;
                };
                for e in entries.flatten() {
                    let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                    let name = e.file_name();
                    if is_dir && !(rel.is_empty() && name == OsStr::new(".git")) {
                        queue.push_back(join(&rel, &name));
                    } else if !is_dir && let Some(t) = tally.as_deref_mut() {
                        t.touch(&join(&rel, &name));
                    }
                }
            }
        }
    }

    fn join(rel: &str, name: &OsStr) -> String {
        let name = String::from_utf8_lossy(name.as_bytes());
        if rel.is_empty() {
            name.into_owned()
        } else {
            format!("{rel}/{name}")
        }
    }

    #[cfg(test)]
    #[test]
    fn a_guest_with_thousands_of_directories_gets_at_most_the_cap_of_watches() {
        let tmp = tempfile::tempdir().unwrap();
        for i in 0..MAX_DIRS + 200 {
            std::fs::create_dir(tmp.path().join(format!("d{i}"))).unwrap();
        }
        let mut w = Watcher {
            inotify: Inotify::init().unwrap(),
            root: OwnedFd::from(std::fs::File::open(tmp.path()).unwrap()),
            dirs: HashMap::new(),
        };
        w.add_tree(String::new(), None);
        assert_eq!(w.dirs.len(), MAX_DIRS);
        // One more new directory later: still at the cap.
        w.add_tree("d0".into(), None);
        assert_eq!(w.dirs.len(), MAX_DIRS);
    }

    pub(super) fn run(root: &Path, out: &Path, stop: &AtomicBool) -> std::io::Result<()> {
        let root = OwnedFd::from(
            std::fs::File::open(root)?, // the workspace itself is Berth's own directory
        );
        let mut w = Watcher {
            inotify: Inotify::init()?,
            root,
            dirs: HashMap::new(),
        };
        w.add_tree(String::new(), None);
        let mut tally = Tally::default();
        let mut buffer = [0u8; 16 * 1024];
        let mut last_write = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let mut new_dirs = Vec::new();
            match w.inotify.read_events(&mut buffer) {
                Ok(events) => {
                    for e in events {
                        let (Some(dir), Some(name)) = (w.dirs.get(&e.wd), e.name) else {
                            continue;
                        };
                        let rel = join(dir, name);
                        if e.mask.contains(EventMask::ISDIR) {
                            if e.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO)
                                && !(dir.is_empty() && name == OsStr::new(".git"))
                            {
                                new_dirs.push(rel);
                            }
                        } else if !(dir.is_empty() && name == OsStr::new(".git")) {
                            tally.touch(&rel);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
            for rel in new_dirs {
                w.add_tree(rel, Some(&mut tally));
            }
            if tally.dirty && last_write.elapsed() >= Duration::from_millis(500) {
                write_view(out, &tally.view());
                tally.dirty = false;
                last_write = Instant::now();
            }
        }
        if tally.dirty {
            write_view(out, &tally.view());
        }
        Ok(())
    }
}

/// Stops the watcher when dropped.
pub(crate) struct WatchGuard(pub Arc<AtomicBool>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wait_for(out: &Path, ok: impl Fn(&LiveChanges) -> bool) -> LiveChanges {
        for _ in 0..100 {
            if let Some(v) = std::fs::read(out)
                .ok()
                .and_then(|b| serde_json::from_slice::<LiveChanges>(&b).ok())
                && ok(&v)
            {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("never: {:?}", std::fs::read_to_string(out));
    }

    #[test]
    fn counts_the_workspaces_changes_but_never_follows_a_planted_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let (ws, host, out) = (
            tmp.path().join("work"),
            tmp.path().join("host"),
            tmp.path().join("live.json"),
        );
        std::fs::create_dir_all(ws.join(".git")).unwrap();
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        // Planted before the watch and during it: both lead to a host directory.
        std::os::unix::fs::symlink(&host, ws.join("early")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let t = {
            let (ws, out, stop) = (ws.clone(), out.clone(), stop.clone());
            std::thread::spawn(move || linux::run(&ws, &out, &stop))
        };
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(ws.join("src/main.rs"), "fn main() {}").unwrap();
        // A new tree with a file in it at once, before any watch on it can be in place.
        std::fs::create_dir_all(ws.join("src/deep/er")).unwrap();
        std::fs::write(ws.join("src/deep/er/x.rs"), "").unwrap();
        std::os::unix::fs::symlink(&host, ws.join("late")).unwrap();
        std::fs::write(ws.join(".git/index"), "guest's git").unwrap();
        std::fs::write(host.join("host-secret-name"), "").unwrap();
        std::fs::write(ws.join("\x1b[31mred"), "").unwrap();
        let v = wait_for(&out, |v| v.recent.iter().any(|r| r.contains("red")));
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap().unwrap();
        let all = format!("{v:?}");
        assert!(
            all.contains("src/main.rs") && all.contains("src/deep/er/x.rs"),
            "{all}"
        );
        assert!(
            !all.contains("host-secret-name") && !all.contains(".git"),
            "{all}"
        );
        assert!(!all.contains('\x1b'), "control bytes are escaped: {all}");
        // main.rs, x.rs, the `late` symlink itself, the red file.
        assert_eq!(v.files, 4, "{all}");
    }

    #[test]
    fn the_count_and_the_names_are_bounded() {
        let mut t = Tally::default();
        for i in 0..MAX_PATHS + 50 {
            t.touch(&format!("f{i}"));
        }
        t.touch("f0");
        let v = t.view();
        assert_eq!(v.files, MAX_PATHS);
        assert!(v.capped);
        assert_eq!(v.recent.len(), RECENT);
        assert_eq!(v.recent[0], "f0");
    }
}
