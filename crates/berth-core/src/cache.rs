//! The cache disk: a second virtio-blk disk per repo, mounted at `/cache` in the guest, where
//! the `[cache]` presets point cargo, npm, pip and go.
//!
//! It is a chain of immutable *generations* (qcow2 files over an empty ext4 image). An
//! attempt gets its own throwaway overlay on the current generation: it writes freely, and
//! nothing it writes reaches another attempt or a later generation. A new generation is only
//! ever made by a setup VM (an environment build, or `berth cache refresh`), which writes a
//! new qcow2 over the current one; it is published by renaming it into place and then
//! swapping the `current` pointer (one rename). Generations older than the one before the
//! current are collected while no attempt of the repo runs.
//!
//! ```text
//! <data>/caches/<repo12>/base.img         empty ext4 (sparse), owned by the guest's agent
//! <data>/caches/<repo12>/gen-<n>.qcow2     generations, read-only (0444)
//! <data>/caches/<repo12>/current          the current generation's file name
//! <data>/caches/<repo12>/repo             the repo's path (for listings)
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_vm::RootLayer;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Store;
use crate::task::TaskError;

/// One repo's cache disk, as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheView {
    pub repo: PathBuf,
    pub dir: PathBuf,
    /// The current generation's number (0: the empty disk).
    pub generation: u32,
    pub generations: Vec<u32>,
    /// Bytes on the host's disk, all generations.
    pub size_on_disk: u64,
}

fn caches_dir(store: &Store) -> PathBuf {
    store.data().root().join("caches")
}

/// The cache directory of `repo`.
pub fn cache_dir(store: &Store, repo: &Path) -> PathBuf {
    let h = Sha256::digest(repo.as_os_str().as_encoded_bytes());
    let key: String = h.iter().take(6).map(|b| format!("{b:02x}")).collect();
    caches_dir(store).join(key)
}

fn refused(what: &str, path: &Path, e: impl std::fmt::Display) -> TaskError {
    TaskError::Refused(format!("{what} {}: {e}", path.display()))
}

/// The current generation of `repo`'s cache, making the empty disk (`size` bytes) first if
/// the repo has none yet.
pub fn current_generation(store: &Store, repo: &Path, size: u64) -> Result<RootLayer, TaskError> {
    let dir = cache_dir(store, repo);
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)
        .map_err(|e| refused("cannot create", &dir, e))?;
    let _ = std::fs::write(dir.join("repo"), repo.as_os_str().as_encoded_bytes());
    if let Some(layer) = generation_in(&dir) {
        return Ok(layer);
    }
    let base = dir.join("base.img");
    if !base.is_file() {
        let partial = dir.join(format!("base.img.{}.partial", std::process::id()));
        // Sparse: the file takes only what is written. The guest's agent (uid 1000) owns it.
        let out = Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-L",
                "berth-cache",
                "-E",
                "root_owner=1000:1000",
            ])
            .arg(&partial)
            .arg(format!("{}k", size / 1024))
            .output()
            .map_err(|e| refused("cannot run mkfs.ext4 for", &partial, e))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&partial);
            return Err(refused(
                "mkfs.ext4 failed for",
                &partial,
                String::from_utf8_lossy(&out.stderr).trim(),
            ));
        }
        std::fs::rename(&partial, &base).map_err(|e| refused("cannot move", &partial, e))?;
    }
    Ok(RootLayer {
        path: base,
        format: "raw",
    })
}

/// The layer attempts of `repo` boot their cache overlay on now, without making anything:
/// `None` while the repo has no cache disk yet.
pub(crate) fn peek_generation(store: &Store, repo: &Path) -> Option<RootLayer> {
    generation_in(&cache_dir(store, repo))
}

/// The current layer of the cache directory `dir`: its current generation, else its empty
/// base disk.
fn generation_in(dir: &Path) -> Option<RootLayer> {
    if let Ok(name) = std::fs::read_to_string(dir.join("current")) {
        let path = dir.join(name.trim());
        if is_generation_name(name.trim()) && path.is_file() {
            return Some(RootLayer {
                path,
                format: "qcow2",
            });
        }
    }
    let base = dir.join("base.img");
    base.is_file().then_some(RootLayer {
        path: base,
        format: "raw",
    })
}

/// Whether `layer` is still the current layer of the cache directory it is in (a newer
/// generation published since: it is not).
pub(crate) fn is_current(layer: &Path) -> bool {
    layer
        .parent()
        .and_then(generation_in)
        .is_some_and(|l| l.path == layer)
}

fn is_generation_name(name: &str) -> bool {
    name.strip_prefix("gen-")
        .and_then(|n| n.strip_suffix(".qcow2"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn generations(dir: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            is_generation_name(&name)
                .then(|| name["gen-".len()..name.len() - ".qcow2".len()].parse().ok())
                .flatten()
        })
        .collect();
    out.sort();
    out
}

/// A new, writable generation over the current one, for a setup VM to fill. `publish_generation`
/// makes it current; dropping it unpublished (a failed setup) removes it.
pub struct NextGeneration {
    pub path: PathBuf,
    dir: PathBuf,
    number: u32,
    published: bool,
    /// One new generation at a time per repo (an environment build and a refresh after a
    /// pull may start together).
    _lock: crate::env_build::EnvLock,
}

impl Drop for NextGeneration {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub fn next_generation(
    store: &Store,
    repo: &Path,
    size: u64,
    qemu_img: &Path,
) -> Result<NextGeneration, TaskError> {
    let dir = cache_dir(store, repo);
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)
        .map_err(|e| refused("cannot create", &dir, e))?;
    let lock = crate::env_build::EnvLock::take(&dir, "generation-lock", "", &mut |_| {})?;
    let current = current_generation(store, repo, size)?;
    let number = generations(&dir).last().copied().unwrap_or(0) + 1;
    let path = dir.join(format!("gen-{number}.qcow2.{}.partial", std::process::id()));
    let backing = current
        .path
        .canonicalize()
        .map_err(|e| refused("cannot find", &current.path, e))?;
    let out = Command::new(qemu_img)
        .args(["create", "-q", "-f", "qcow2", "-F", current.format, "-b"])
        .arg(&backing)
        .arg(&path)
        .output()
        .map_err(|e| refused("cannot run qemu-img for", &path, e))?;
    if !out.status.success() {
        return Err(refused(
            "qemu-img failed for",
            &path,
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok(NextGeneration {
        path,
        dir,
        number,
        published: false,
        _lock: lock,
    })
}

/// Makes `next` (filled by a setup VM that powered off cleanly) the current generation:
/// flattened into a standalone qcow2 (so no generation depends on another), renamed into
/// place read-only, then the pointer swapped in one rename. Generations older than the one
/// before the current are collected unless `in_use` (an attempt of the repo is running; it
/// may sit on one of them).
pub fn publish_generation(
    next: NextGeneration,
    qemu_img: &Path,
    in_use: bool,
) -> Result<u32, TaskError> {
    use std::os::unix::fs::PermissionsExt;
    let name = format!("gen-{}.qcow2", next.number);
    let target = next.dir.join(&name);
    let flat = next.dir.join(format!("{name}.{}.flat", std::process::id()));
    let out = Command::new(qemu_img)
        .args(["convert", "-q", "-O", "qcow2"])
        .arg(&next.path)
        .arg(&flat)
        .output()
        .map_err(|e| refused("cannot run qemu-img for", &flat, e))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&flat);
        return Err(refused(
            "qemu-img convert failed for",
            &flat,
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    std::fs::rename(&flat, &target).map_err(|e| refused("cannot publish", &target, e))?;
    let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o444));
    let pointer = next.dir.join(format!("current.{}.tmp", std::process::id()));
    std::fs::write(&pointer, &name)
        .and_then(|_| std::fs::rename(&pointer, next.dir.join("current")))
        .map_err(|e| refused("cannot point at", &target, e))?;
    // The writable chain file is not needed any more: `next` is dropped unpublished at the
    // end of this function, which removes it.
    if !in_use {
        for old in generations(&next.dir) {
            if old + 1 < next.number {
                let _ = std::fs::remove_file(next.dir.join(format!("gen-{old}.qcow2")));
            }
        }
    }
    Ok(next.number)
}

/// Bytes `repo`'s cache disk takes on the host (every generation and the empty base).
pub fn cache_disk_usage(store: &Store, repo: &Path) -> u64 {
    crate::env_build::disk_usage(&cache_dir(store, repo))
}

/// Every repo's cache disk.
pub fn list_caches(store: &Store) -> Vec<CacheView> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(caches_dir(store))
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir = entry.path();
        let Ok(repo) = std::fs::read(dir.join("repo")) else {
            continue;
        };
        let repo = PathBuf::from(String::from_utf8_lossy(&repo).into_owned());
        let generation = std::fs::read_to_string(dir.join("current"))
            .ok()
            .and_then(|n| {
                n.trim()
                    .strip_prefix("gen-")?
                    .strip_suffix(".qcow2")?
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        let size_on_disk = crate::env_build::disk_usage(&dir);
        out.push(CacheView {
            repo,
            generations: generations(&dir),
            dir,
            generation,
            size_on_disk,
        });
    }
    out.sort_by(|a, b| a.repo.cmp(&b.repo));
    out
}

/// Removes `repo`'s cache disk; refused while one of its attempts runs (its overlay sits on
/// a generation).
pub fn remove_cache(store: &Store, repo: &Path) -> Result<(), TaskError> {
    let running = store
        .db()?
        .attempts()?
        .into_iter()
        .any(|a| a.repo == repo && a.state.is_live());
    if running {
        return Err(TaskError::Refused(format!(
            "an attempt on {} is running on its cache; stop it first",
            repo.display()
        )));
    }
    let dir = cache_dir(store, repo);
    if !dir.exists() {
        return Err(TaskError::Refused(format!(
            "{} has no cache disk; `berth cache ls` lists them",
            repo.display()
        )));
    }
    std::fs::remove_dir_all(&dir).map_err(|e| refused("cannot remove", &dir, e))
}
