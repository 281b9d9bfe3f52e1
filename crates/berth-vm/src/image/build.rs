//! Running a recipe's stages with progress, caching each stage's output by content hash.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::recipe::{hash_parts, hex};
use super::{Image, ImageError, ImageStore, Manifest, Recipe, io_err};

/// Whether `build_image` did any work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildOutcome {
    Built,
    UpToDate,
}

/// Builds (or finds) the image for `recipe` with `agent` inside.
///
/// `progress` receives one line per stage and every line the stages print. `now_unix` is
/// the caller's clock. `host` is what of the host goes into the image besides the recipe
/// (its apt sources and release, which pick the kernel and packages): a change there builds
/// anew. An unchanged recipe, agent and host is a no-op. Builds take a lock, so two at once
/// queue instead of writing the same files.
pub fn build_image(
    store: &ImageStore,
    recipe: &Recipe,
    agent: &Path,
    host: &[u8],
    now_unix: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<(Image, BuildOutcome), ImageError> {
    let agent_bytes = std::fs::read(agent).map_err(|e| ImageError::Agent {
        path: agent.to_path_buf(),
        why: e.to_string(),
    })?;
    check_static_elf(agent, &agent_bytes)?;
    let agent_sha = hash_parts(&[&agent_bytes]);

    let kernel_key = hash_parts(&[recipe.kernel_sh.as_bytes(), host]);
    let rootfs_key = hash_parts(&[recipe.rootfs_sh.as_bytes(), host]);
    let hash = image_hash(recipe, &agent_sha, host);
    let final_dir = store.dir.join(format!("{}-{}", recipe.name, &hash[..12]));
    if final_dir.join("manifest.json").is_file() {
        return Ok((Image::open(&final_dir)?, BuildOutcome::UpToDate));
    }
    let cache = store.dir.join(".cache");
    std::fs::create_dir_all(&cache).map_err(io_err("cannot create", &cache))?;
    let _lock = BuildLock::take(&cache.join("build.lock"), progress)?;
    // Another build may have made it while we waited.
    if final_dir.join("manifest.json").is_file() {
        return Ok((Image::open(&final_dir)?, BuildOutcome::UpToDate));
    }

    let started = Instant::now();
    let scripts = tempdir_in(&cache, "recipe")?;
    for (name, text) in recipe.files() {
        let p = scripts.join(name);
        std::fs::write(&p, text).map_err(io_err("cannot write", &p))?;
    }

    let kernel_dir = cache.join(format!("kernel-{}", &kernel_key[..12]));
    if !kernel_dir.join("version").is_file() {
        progress("[1/3] kernel: fetching and unpacking the distribution kernel");
        let tmp = tempdir_in(&cache, "kernel")?;
        run_stage(
            "kernel",
            &scripts.join("kernel.sh"),
            &[tmp.as_os_str()],
            progress,
        )?;
        replace_dir(&tmp, &kernel_dir)?;
    } else {
        progress("[1/3] kernel: cached");
    }

    let rootfs = cache.join(format!("rootfs-{}.img", &rootfs_key[..12]));
    if !rootfs.is_file() {
        progress("[2/3] root filesystem: installing Debian packages (about a minute)");
        let tmp = cache.join(format!(
            "rootfs-{}.img.{}.partial",
            &rootfs_key[..12],
            std::process::id()
        ));
        run_stage(
            "rootfs",
            &scripts.join("rootfs.sh"),
            &[tmp.as_os_str()],
            progress,
        )?;
        std::fs::rename(&tmp, &rootfs).map_err(io_err("cannot move", &tmp))?;
    } else {
        progress("[2/3] root filesystem: cached");
    }

    progress("[3/3] initramfs: busybox, drivers and the guest agent");
    let staging = tempdir_in(&store.dir, ".staging")?;
    let initrd = staging.join("initrd.img");
    run_stage(
        "initramfs",
        &scripts.join("initramfs.sh"),
        &[
            initrd.as_os_str(),
            kernel_dir.as_os_str(),
            agent.as_os_str(),
            scripts.as_os_str(),
        ],
        progress,
    )?;
    link_or_copy(&kernel_dir.join("vmlinux"), &staging.join("vmlinux"))?;
    link_or_copy(&rootfs, &staging.join("rootfs.img"))?;
    let version_path = kernel_dir.join("version");
    let kernel_version = std::fs::read_to_string(&version_path)
        .map_err(io_err("cannot read", &version_path))?
        .trim()
        .to_string();
    let manifest = Manifest {
        name: recipe.name.into(),
        hash,
        kernel_version,
        agent_sha256: agent_sha,
        built_at: now_unix,
        build_seconds: started.elapsed().as_secs(),
    };
    let mpath = staging.join("manifest.json");
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    std::fs::write(&mpath, json).map_err(io_err("cannot write", &mpath))?;
    replace_dir(&staging, &final_dir)?;
    let _ = std::fs::remove_dir_all(&scripts);
    Ok((Image::open(&final_dir)?, BuildOutcome::Built))
}

/// A root filesystem with extra Debian packages (and maybe another Debian release): an
/// environment's package layer. Built by the recipe's own root stage with the packages
/// added, on the host, from the host's apt sources (the guest needs no network for it), and
/// cached under `<images>/envs/layers/` by everything that went in. Returns the raw image.
pub fn build_rootfs_layer(
    store: &ImageStore,
    recipe: &Recipe,
    host: &[u8],
    suite: Option<&str>,
    packages: &[String],
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, ImageError> {
    let joined = packages.join(",");
    let key = hash_parts(&[
        recipe.rootfs_sh.as_bytes(),
        host,
        suite.unwrap_or("").as_bytes(),
        joined.as_bytes(),
    ]);
    let layers = store.dir.join("envs").join("layers");
    std::fs::create_dir_all(&layers).map_err(io_err("cannot create", &layers))?;
    let out = layers.join(format!("rootfs-{}.img", &key[..12]));
    if out.is_file() {
        progress("      packages: cached");
        return Ok(out);
    }
    let _lock = BuildLock::take(&layers.join("build.lock"), progress)?;
    if out.is_file() {
        return Ok(out);
    }
    let scripts = tempdir_in(&layers, "recipe")?;
    let script = scripts.join("rootfs.sh");
    std::fs::write(&script, recipe.rootfs_sh).map_err(io_err("cannot write", &script))?;
    let tmp = layers.join(format!(
        "rootfs-{}.img.{}.partial",
        &key[..12],
        std::process::id()
    ));
    progress(&format!(
        "      packages: installing {} on the host (about a minute)",
        if joined.is_empty() {
            "the base"
        } else {
            &joined
        }
    ));
    let mut envs = vec![
        ("BERTH_EXTRA_PACKAGES", joined.as_str()),
        ("BERTH_ROOTFS_SIZE", "4G"),
    ];
    if let Some(s) = suite {
        envs.push(("BERTH_SUITE", s));
    }
    let built = run_stage_with("packages", &script, &[tmp.as_os_str()], &envs, progress);
    let _ = std::fs::remove_dir_all(&scripts);
    if let Err(e) = built {
        let _ = std::fs::remove_file(&tmp);
        return Err(name_missing_package(e));
    }
    std::fs::rename(&tmp, &out).map_err(io_err("cannot move", &tmp))?;
    Ok(out)
}

/// apt's "Unable to locate package X" becomes an error that names X first.
fn name_missing_package(e: ImageError) -> ImageError {
    let ImageError::Stage {
        stage,
        status,
        tail,
    } = &e
    else {
        return e;
    };
    let missing: Vec<&str> = tail
        .lines()
        .filter_map(|l| {
            l.split("Unable to locate package ").nth(1).or_else(|| {
                l.split("has no installation candidate")
                    .next()
                    .filter(|_| l.contains("has no installation candidate"))
                    .and_then(|h| h.split('\'').nth(1))
            })
        })
        .map(str::trim)
        .collect();
    if missing.is_empty() {
        return e;
    }
    ImageError::Stage {
        stage,
        status: format!("Debian has no package {} ({status})", missing.join(", ")),
        tail: tail.clone(),
    }
}

/// The identity of the image built from `recipe` with an agent whose SHA-256 is `agent_sha`
/// on a host whose image inputs are `host`.
pub fn image_hash(recipe: &Recipe, agent_sha: &str, host: &[u8]) -> String {
    let mut all: Vec<&[u8]> = vec![recipe.name.as_bytes(), agent_sha.as_bytes(), host];
    for (name, text) in recipe.files() {
        all.push(name.as_bytes());
        all.push(text.as_bytes());
    }
    hash_parts(&all)
}

/// An exclusive `flock` on the image cache, released when dropped (or when the process dies).
struct BuildLock {
    _held: std::fs::File,
}

impl BuildLock {
    fn take(path: &Path, progress: &mut dyn FnMut(&str)) -> Result<BuildLock, ImageError> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err("cannot open", path))?;
        // SAFETY: flock on a descriptor we own; LOCK_NB only asks whether it would block.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            progress("      waiting for another image build to finish");
            // SAFETY: as above, now waiting for the lock.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(io_err("cannot lock", path)(std::io::Error::last_os_error()));
            }
        }
        Ok(BuildLock { _held: file })
    }
}

/// The agent runs in any image, so it must not need the host's shared libraries.
fn check_static_elf(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let bad = |why: &str| ImageError::Agent {
        path: path.to_path_buf(),
        why: why.into(),
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return Err(bad("not a 64-bit ELF executable"));
    }
    // Program headers: e_phoff at 0x20, e_phentsize at 0x36, e_phnum at 0x38.
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap_or([0; 8]));
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36) as usize, u16_at(0x38));
    for i in 0..phnum as usize {
        let off = phoff + i * phentsize;
        if off + 4 > bytes.len() {
            return Err(bad("truncated program headers"));
        }
        let p_type = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap_or([0; 4]));
        if p_type == 3 {
            return Err(bad(
                "dynamically linked (has an interpreter); build it with \
                 RUSTFLAGS='-C target-feature=+crt-static' --target x86_64-unknown-linux-gnu",
            ));
        }
    }
    Ok(())
}

fn run_stage(
    stage: &'static str,
    script: &Path,
    args: &[&std::ffi::OsStr],
    progress: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    run_stage_with(stage, script, args, &[], progress)
}

fn run_stage_with(
    stage: &'static str,
    script: &Path,
    args: &[&std::ffi::OsStr],
    envs: &[(&str, &str)],
    progress: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    let (reader, writer) = std::io::pipe().map_err(io_err("cannot create a pipe for", script))?;
    let writer2 = writer
        .try_clone()
        .map_err(io_err("cannot create a pipe for", script))?;
    let mut child = Command::new("bash")
        .arg(script)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .spawn()
        .map_err(io_err("cannot run", script))?;
    let mut tail: Vec<String> = Vec::new();
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { break };
        progress(&format!("      {line}"));
        tail.push(line);
        if tail.len() > 12 {
            tail.remove(0);
        }
    }
    let status = child.wait().map_err(io_err("cannot wait for", script))?;
    if !status.success() {
        return Err(ImageError::Stage {
            stage,
            status: status.to_string(),
            tail: tail.join("\n"),
        });
    }
    Ok(())
}

fn tempdir_in(parent: &Path, prefix: &str) -> Result<PathBuf, ImageError> {
    std::fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
    let mut seed = [0u8; 8];
    let _ = getrandom(&mut seed);
    let dir = parent.join(format!("{prefix}-{}.tmp", hex(&seed)));
    std::fs::create_dir(&dir).map_err(io_err("cannot create", &dir))?;
    Ok(dir)
}

pub(crate) fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

fn replace_dir(from: &Path, to: &Path) -> Result<(), ImageError> {
    if to.exists() {
        std::fs::remove_dir_all(to).map_err(io_err("cannot remove", to))?;
    }
    std::fs::rename(from, to).map_err(io_err("cannot move into place", to))
}

fn link_or_copy(from: &Path, to: &Path) -> Result<(), ImageError> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(io_err("cannot copy", from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_or_non_elf_agent_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a");
        assert!(check_static_elf(&p, b"#!/bin/sh\necho hi\n").is_err());
        // /bin/sh on any Linux host is dynamically linked.
        let sh = std::fs::read("/bin/sh").unwrap();
        let err = check_static_elf(&p, &sh).unwrap_err().to_string();
        assert!(err.contains("dynamically linked"), "{err}");
    }
}
