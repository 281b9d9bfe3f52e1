//! A working tree of a pulled branch, for "Open in editor": a linked worktree of the user's
//! repository, so the editor sees an ordinary checkout of the branch (its git panel included)
//! and the user's own checkout and index are left alone.

use std::path::{Path, PathBuf};

use git2::{Repository, WorktreeAddOptions, WorktreePruneOptions};

use crate::GitError;

/// Where the branch can be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub path: PathBuf,
    /// False when an existing checkout was reused (its files, and any edits, are kept).
    pub created: bool,
}

/// A checkout of local `branch` of `repo`: the repository itself when the branch is what it
/// has checked out, an existing worktree at `dest`, or a new linked worktree named `name`
/// at `dest`.
pub fn check_out_branch(
    repo: &Path,
    branch: &str,
    dest: &Path,
    name: &str,
) -> Result<Checkout, GitError> {
    let r = Repository::open(repo).map_err(|source| GitError::NotARepo {
        path: repo.to_path_buf(),
        cause: source.into(),
    })?;
    let full = format!("refs/heads/{branch}");
    let reference = r.find_reference(&full)?;
    if let (Ok(head), Some(workdir)) = (r.head(), r.workdir())
        && head.name().ok() == Some(full.as_str())
    {
        return Ok(Checkout {
            path: workdir.to_path_buf(),
            created: false,
        });
    }
    if let Ok(existing) = r.find_worktree(name) {
        if existing.validate().is_ok() && existing.path() == dest {
            return Ok(Checkout {
                path: dest.to_path_buf(),
                created: false,
            });
        }
        // Its directory was deleted: forget it, then make it again.
        existing.prune(Some(&mut WorktreePruneOptions::new()))?;
    }
    if let Some(parent) = dest.parent() {
        // Checkouts hold the user's code: theirs alone (0700), like the rest of Berth's data.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(parent)
            .map_err(crate::error::io("cannot create", parent))?;
    }
    r.worktree(
        name,
        dest,
        Some(WorktreeAddOptions::new().reference(Some(&reference))),
    )?;
    Ok(Checkout {
        path: dest.to_path_buf(),
        created: true,
    })
}

/// Removes the linked worktree `name` of `repo` (an "Open in editor" checkout) when it holds
/// no uncommitted edits, so the user's repo does not keep it registered (which blocks `git
/// branch -D`). Returns why it was kept, if it was.
pub fn remove_checkout(repo: &Path, name: &str) -> Result<Option<String>, GitError> {
    let r = Repository::open(repo).map_err(|source| GitError::NotARepo {
        path: repo.to_path_buf(),
        cause: source.into(),
    })?;
    let Ok(wt) = r.find_worktree(name) else {
        return Ok(None);
    };
    let path = wt.path().to_path_buf();
    if wt.validate().is_ok() {
        let tree = Repository::open(&path)?;
        let mut opts = git2::StatusOptions::new();
        opts.include_untracked(true).include_ignored(false);
        if !tree.statuses(Some(&mut opts))?.is_empty() {
            return Ok(Some(format!(
                "the checkout {} has edits of yours; it is kept (remove it with `git worktree \
                 remove`)",
                path.display()
            )));
        }
        std::fs::remove_dir_all(&path).map_err(crate::error::io("cannot remove", &path))?;
    }
    wt.prune(Some(
        WorktreePruneOptions::new().working_tree(true).valid(true),
    ))?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with_branch(dir: &Path) {
        let head = crate::init_repo_with_files(dir, &[("a.txt", "main\n", false)], "init").unwrap();
        let r = Repository::open(dir).unwrap();
        let c = r.find_commit(head).unwrap();
        let blob = r.blob(b"attempt\n").unwrap();
        let mut tb = r.treebuilder(Some(&c.tree().unwrap())).unwrap();
        tb.insert("a.txt", blob, 0o100644).unwrap();
        let tree = r.find_tree(tb.write().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@x").unwrap();
        let next = r.commit(None, &sig, &sig, "attempt", &tree, &[&c]).unwrap();
        r.branch("berth/1/1", &r.find_commit(next).unwrap(), false)
            .unwrap();
    }

    #[test]
    fn a_worktree_shows_the_branch_and_leaves_the_users_checkout_alone() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        repo_with_branch(&repo);
        let dest = t.path().join("checkouts/berth-1-1");
        let c = check_out_branch(&repo, "berth/1/1", &dest, "berth-1-1").unwrap();
        assert_eq!(
            c,
            Checkout {
                path: dest.clone(),
                created: true
            }
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("a.txt")).unwrap(),
            "attempt\n"
        );
        assert_eq!(
            std::fs::read_to_string(repo.join("a.txt")).unwrap(),
            "main\n"
        );
        let wt = Repository::open(&dest).unwrap();
        assert_eq!(wt.head().unwrap().name().ok(), Some("refs/heads/berth/1/1"));

        // A second open reuses it, keeping the user's edits there.
        std::fs::write(dest.join("a.txt"), "edited\n").unwrap();
        let again = check_out_branch(&repo, "berth/1/1", &dest, "berth-1-1").unwrap();
        assert!(!again.created);
        assert_eq!(
            std::fs::read_to_string(dest.join("a.txt")).unwrap(),
            "edited\n"
        );

        // Deleted by the user: made again.
        std::fs::remove_dir_all(&dest).unwrap();
        let third = check_out_branch(&repo, "berth/1/1", &dest, "berth-1-1").unwrap();
        assert!(third.created);
        assert_eq!(
            std::fs::read_to_string(dest.join("a.txt")).unwrap(),
            "attempt\n"
        );
    }

    #[test]
    fn the_branch_checked_out_in_the_repo_opens_the_repo_itself() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        repo_with_branch(&repo);
        Repository::open(&repo)
            .unwrap()
            .set_head("refs/heads/berth/1/1")
            .unwrap();
        let c = check_out_branch(&repo, "berth/1/1", &t.path().join("x"), "berth-1-1").unwrap();
        assert_eq!(c.path.canonicalize().unwrap(), repo.canonicalize().unwrap());
        assert!(!t.path().join("x").exists());
    }

    #[test]
    fn a_missing_branch_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        repo_with_branch(&repo);
        assert!(check_out_branch(&repo, "nope", &t.path().join("x"), "x").is_err());
    }
}
