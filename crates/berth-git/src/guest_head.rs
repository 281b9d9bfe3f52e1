//! Reading from a `.git` the guest controlled: no symlink is followed, nothing is read
//! larger than asked for, nothing but regular files and directories are opened.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use git2::Oid;

/// Reads a regular file of at most `max` bytes without following a symlink at any
/// component below `root`.
pub fn read_regular(root: &Path, rel: &Path, max: u64) -> Result<Vec<u8>, String> {
    let mut file = open_regular(root, rel)?;
    let len = file
        .metadata()
        .map_err(|e| format!("{}: {e}", rel.display()))?
        .len();
    if len > max {
        return Err(format!("{} is {len} bytes (limit {max})", rel.display()));
    }
    let mut buf = Vec::with_capacity(len as usize);
    file.by_ref()
        .take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{}: {e}", rel.display()))?;
    Ok(buf)
}

/// Opens `root/rel` if every component is a real directory and the last a regular file.
///
/// Each component is opened relative to the directory handle of the one before it, with
/// `O_NOFOLLOW`: a guest that swaps a directory for a symlink (`../../../../.ssh`) between
/// our look and our open gets `ELOOP`, not a host file. `root` itself must not be a symlink.
/// `O_NONBLOCK` keeps a FIFO swapped in from blocking us.
pub fn open_regular(root: &Path, rel: &Path) -> Result<File, String> {
    let comps: Vec<&std::ffi::OsStr> = rel
        .components()
        .map(|c| match c {
            std::path::Component::Normal(name) => Ok(name),
            _ => Err(format!("{} is not a plain relative path", rel.display())),
        })
        .collect::<Result<_, _>>()?;
    let Some((last, dirs)) = comps.split_last() else {
        return Err(format!("{} is not a plain relative path", rel.display()));
    };
    let fail = |what: &Path, e: std::io::Error| match e.raw_os_error() {
        Some(libc::ELOOP) => format!("{} is a symlink", what.display()),
        Some(libc::ENOTDIR) => format!("{} is not a directory (or is a symlink)", what.display()),
        _ => format!("{}: {e}", what.display()),
    };
    let mut dir = open_at(None, root.as_os_str(), DIR_FLAGS).map_err(|e| fail(root, e))?;
    let mut path = root.to_path_buf();
    for name in dirs {
        path.push(name);
        dir = open_at(Some(&dir), name, DIR_FLAGS).map_err(|e| fail(&path, e))?;
    }
    path.push(last);
    let file = open_at(Some(&dir), last, FILE_FLAGS).map_err(|e| fail(&path, e))?;
    let file = File::from(file);
    let meta = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    Ok(file)
}

const DIR_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
const FILE_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;

/// `openat(dir, name, flags)`, or `open(name, flags)` without a directory.
fn open_at(
    dir: Option<&OwnedFd>,
    name: &std::ffi::OsStr,
    flags: libc::c_int,
) -> std::io::Result<OwnedFd> {
    let c = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; `at` is either
    // AT_FDCWD or a descriptor owned by `dir`, open for the whole call.
    let fd = unsafe { libc::openat(at, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The commit the guest's `HEAD` names: a branch under `refs/heads/` (loose or packed) or a
/// detached commit id. `Err` says what was wrong; callers fall back to the workspace start.
pub fn read_guest_head(git_dir: &Path) -> Result<Oid, String> {
    let head = read_regular(git_dir, Path::new("HEAD"), 4096)?;
    let head = String::from_utf8(head).map_err(|_| "HEAD is not text".to_string())?;
    let head = head.trim_end_matches('\n');
    if let Some(name) = head.strip_prefix("ref: ") {
        let ok = name.starts_with("refs/heads/")
            && git2::Reference::is_valid_name(name)
            && !name
                .split('/')
                .any(|c| c == ".." || c == "." || c.is_empty())
            && name.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(format!("HEAD names a suspicious ref {name:?}"));
        }
        let loose_exists = std::fs::symlink_metadata(git_dir.join(name)).is_ok();
        match loose_exists {
            true => parse_oid(&String::from_utf8_lossy(&read_regular(
                git_dir,
                Path::new(name),
                4096,
            )?)),
            false => {
                let packed = read_regular(git_dir, Path::new("packed-refs"), 16 << 20)?;
                String::from_utf8_lossy(&packed)
                    .lines()
                    .find_map(|l| {
                        l.strip_suffix(name)
                            .and_then(|h| h.strip_suffix(' '))
                            .map(str::to_string)
                    })
                    .ok_or_else(|| format!("ref {name} not found"))
                    .and_then(|h| parse_oid(&h))
            }
        }
    } else {
        parse_oid(head)
    }
}

fn parse_oid(text: &str) -> Result<Oid, String> {
    let t = text.trim();
    if t.len() != 40 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{t:?} is not a commit id"));
    }
    Oid::from_str(t).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("refs/heads")).unwrap();
        d
    }

    const ID: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn reads_loose_packed_and_detached_heads() {
        let d = git_dir();
        std::fs::write(d.path().join("HEAD"), "ref: refs/heads/berth\n").unwrap();
        std::fs::write(d.path().join("refs/heads/berth"), format!("{ID}\n")).unwrap();
        assert_eq!(read_guest_head(d.path()).unwrap().to_string(), ID);
        std::fs::remove_file(d.path().join("refs/heads/berth")).unwrap();
        std::fs::write(
            d.path().join("packed-refs"),
            format!("# x\n{ID} refs/heads/berth\n"),
        )
        .unwrap();
        assert_eq!(read_guest_head(d.path()).unwrap().to_string(), ID);
        std::fs::write(d.path().join("HEAD"), format!("{ID}\n")).unwrap();
        assert_eq!(read_guest_head(d.path()).unwrap().to_string(), ID);
    }

    #[test]
    fn refuses_escaping_ref_names_and_symlinks() {
        let d = git_dir();
        for bad in [
            "ref: refs/heads/../../../../etc/passwd",
            "ref: /etc/passwd",
            "ref: refs/tags/x",
            "ref: refs/heads/a\u{7f}b",
        ] {
            std::fs::write(d.path().join("HEAD"), bad).unwrap();
            assert!(read_guest_head(d.path()).is_err(), "{bad}");
        }
        let secret = d.path().join("secret");
        std::fs::write(&secret, format!("{ID}\n")).unwrap();
        std::fs::write(d.path().join("HEAD"), "ref: refs/heads/x\n").unwrap();
        std::os::unix::fs::symlink(&secret, d.path().join("refs/heads/x")).unwrap();
        let err = read_guest_head(d.path()).unwrap_err();
        assert!(
            err.contains("not found") || err.contains("symlink"),
            "{err}"
        );
        std::fs::remove_file(d.path().join("HEAD")).unwrap();
        std::os::unix::fs::symlink(&secret, d.path().join("HEAD")).unwrap();
        assert!(read_guest_head(d.path()).unwrap_err().contains("symlink"));
    }

    #[test]
    fn a_symlink_at_any_component_or_the_root_is_refused() {
        let d = git_dir();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("heads")).unwrap();
        std::fs::write(outside.path().join("heads/x"), "host secret").unwrap();
        std::fs::remove_dir_all(d.path().join("refs")).unwrap();
        // The guest points refs/ at a host directory (the swap a race would make).
        std::os::unix::fs::symlink(outside.path(), d.path().join("refs")).unwrap();
        let err = read_regular(d.path(), Path::new("refs/heads/x"), 4096).unwrap_err();
        assert!(err.contains("symlink"), "{err}");
        let link = d.path().join("linked-root");
        std::os::unix::fs::symlink(outside.path(), &link).unwrap();
        assert!(read_regular(&link, Path::new("heads/x"), 4096).is_err());
        // A FIFO does not block the reader.
        let fifo = std::ffi::CString::new(d.path().join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(read_regular(d.path(), Path::new("fifo"), 4096).is_err());
    }

    #[test]
    fn refuses_oversized_files() {
        let d = git_dir();
        std::fs::write(d.path().join("HEAD"), vec![b'a'; 10_000]).unwrap();
        assert!(read_guest_head(d.path()).unwrap_err().contains("limit"));
    }
}
