//! Who owns a workspace a VM shares. When Berth runs as root, a workspace (Berth's own
//! directory, never a user's folder) is given to its VM's unprivileged uid, and virtiofsd
//! serves it as that uid: what the guest creates on the host belongs to that uid (a setuid bit
//! the guest sets is a setuid to nobody in particular), and a virtiofsd bug acts with that
//! uid's rights, not root's.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Gives `dir` and everything under it to `uid`:`gid`: symlinks themselves (never what they
/// point to), nothing on another filesystem (a mount under the tree is left as it is). Only
/// entries owned by someone else are changed. The walk goes by path: call it only while no
/// guest can change the tree (before virtiofsd serves it; a pooled handoff gives the workspace
/// before moving it into the slot's share), or a directory swapped for a symlink mid-walk
/// would have root give away what the symlink points to.
pub fn own_tree(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let top = std::fs::symlink_metadata(dir)?;
    own_entry(dir, &top, uid, gid)?;
    if top.is_dir() {
        walk(dir, top.dev(), uid, gid)?;
    }
    Ok(())
}

fn walk(dir: &Path, dev: u64, uid: u32, gid: u32) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.dev() != dev {
            continue;
        }
        own_entry(&path, &meta, uid, gid)?;
        if meta.is_dir() {
            walk(&path, dev, uid, gid)?;
        }
    }
    Ok(())
}

fn own_entry(path: &Path, meta: &std::fs::Metadata, uid: u32, gid: u32) -> std::io::Result<()> {
    if meta.uid() == uid && meta.gid() == gid {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_given_away_without_following_its_symlinks() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("only root can give files away: nothing to check");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside.txt");
        std::fs::write(&outside, "host").unwrap();
        let tree = d.path().join("work");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/f.txt"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        std::os::unix::fs::symlink(d.path(), tree.join("up")).unwrap();
        own_tree(&tree, 1_900_000_123, 1_900_000_123).unwrap();
        for p in ["", "a", "a/b", "a/b/f.txt", "a/link", "up"] {
            let m = std::fs::symlink_metadata(tree.join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (1_900_000_123, 1_900_000_123), "{p}");
        }
        // What the symlinks point to is not the tree's.
        let m = std::fs::metadata(&outside).unwrap();
        assert_eq!(m.uid(), 0);
        assert_eq!(std::fs::metadata(d.path()).unwrap().uid(), 0);
    }
}
