//! Reading from a `.git` the guest controlled: no symlink is followed, nothing is read
//! larger than asked for, nothing but regular files and directories are opened.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
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
pub fn open_regular(root: &Path, rel: &Path) -> Result<File, String> {
    let mut path = root.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let std::path::Component::Normal(name) = c else {
            return Err(format!("{} is not a plain relative path", rel.display()));
        };
        path.push(name);
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let last = i + 1 == comps.len();
        if meta.file_type().is_symlink() {
            return Err(format!("{} is a symlink", path.display()));
        }
        if !last && !meta.is_dir() {
            return Err(format!("{} is not a directory", path.display()));
        }
        if last && !meta.is_file() {
            return Err(format!("{} is not a regular file", path.display()));
        }
    }
    // O_NOFOLLOW closes the gap between the check above and the open; O_NONBLOCK keeps a
    // FIFO swapped in meanwhile from blocking us.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    Ok(file)
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
    fn refuses_oversized_files() {
        let d = git_dir();
        std::fs::write(d.path().join("HEAD"), vec![b'a'; 10_000]).unwrap();
        assert!(read_guest_head(d.path()).unwrap_err().contains("limit"));
    }
}
