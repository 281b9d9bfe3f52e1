//! Questions about the user's refs that decide whether work can be lost: is a branch checked
//! out somewhere (moving it would leave that index and working tree behind), and is a commit
//! still held by a ref (an object alone is not kept: `git gc` removes what no ref reaches).

use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use crate::error::GitError;

/// The working trees (the main one and every linked worktree) whose HEAD is `refs/heads/<branch>`.
pub fn checked_out_at(repo: &Repository, branch: &str) -> Result<Vec<PathBuf>, GitError> {
    let full = format!("refs/heads/{branch}");
    let mut at = Vec::new();
    let head_is = |r: &Repository| {
        r.find_reference("HEAD")
            .ok()
            .and_then(|h| h.symbolic_target().ok().flatten().map(|t| t == full))
            .unwrap_or(false)
    };
    if !repo.is_bare() && head_is(repo) {
        at.push(repo.workdir().unwrap_or(repo.path()).to_path_buf());
    }
    let names = repo.worktrees()?;
    for name in names.iter().flatten().flatten() {
        let Ok(wt) = repo.find_worktree(name) else {
            continue;
        };
        // A worktree whose directory is gone still holds its branch for git; so do we.
        let path = wt.path().to_path_buf();
        let head_file = repo.path().join("worktrees").join(name).join("HEAD");
        let holds = match Repository::open_from_worktree(&wt) {
            Ok(r) => head_is(&r),
            Err(_) => std::fs::read_to_string(&head_file)
                .map(|s| s.trim() == format!("ref: {full}"))
                .unwrap_or(false),
        };
        if holds {
            at.push(path);
        }
    }
    Ok(at)
}

/// Whether some ref of `repo` (a branch, tag, remote-tracking ref, the stash, …) reaches
/// `commit`, so that the commit survives `git gc`.
pub fn held_by_a_ref(repo: &Path, commit: Oid) -> Result<bool, GitError> {
    let repo = Repository::open(repo).map_err(|source| GitError::NotARepo {
        path: repo.to_path_buf(),
        cause: source.into(),
    })?;
    if repo.find_commit(commit).is_err() {
        return Ok(false);
    }
    for r in repo.references()? {
        let Ok(r) = r else { continue };
        let Ok(tip) = r.peel_to_commit() else {
            continue;
        };
        if tip.id() == commit || repo.graph_descendant_of(tip.id(), commit).unwrap_or(false) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The commits reachable from `old` but not from `new`: what moving a branch from `old` to
/// `new` takes off it.
pub fn commits_dropped(repo: &Repository, old: Oid, new: Oid) -> Result<Vec<Oid>, GitError> {
    let mut walk = repo.revwalk()?;
    walk.push(old)?;
    walk.hide(new)?;
    Ok(walk.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::Signature;

    fn commit(repo: &Repository, parent: Option<Oid>, msg: &str) -> Oid {
        let sig = Signature::now("t", "t@example.invalid").unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        let parents: Vec<git2::Commit> = parent
            .map(|p| repo.find_commit(p).unwrap())
            .into_iter()
            .collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(None, &sig, &sig, msg, &tree, &refs).unwrap()
    }

    #[test]
    fn a_commit_no_ref_reaches_is_not_held_even_though_its_object_exists() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let a = commit(&repo, None, "a");
        let b = commit(&repo, Some(a), "b");
        repo.reference("refs/heads/main", a, true, "").unwrap();
        repo.reference("refs/heads/berth/1/1", b, true, "").unwrap();
        assert!(held_by_a_ref(dir.path(), b).unwrap());
        // The user deletes the pulled branch: the object stays until gc, the work does not.
        repo.find_reference("refs/heads/berth/1/1")
            .unwrap()
            .delete()
            .unwrap();
        assert!(repo.find_commit(b).is_ok());
        assert!(!held_by_a_ref(dir.path(), b).unwrap());
        // Merged into main: held again.
        repo.reference("refs/heads/main", b, true, "").unwrap();
        assert!(held_by_a_ref(dir.path(), b).unwrap());
        assert!(held_by_a_ref(dir.path(), a).unwrap());
    }

    #[test]
    fn checked_out_branch_is_found_in_the_main_tree_only_when_head_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let a = commit(&repo, None, "a");
        repo.reference("refs/heads/main", a, true, "").unwrap();
        repo.reference("refs/heads/other", a, true, "").unwrap();
        repo.set_head("refs/heads/main").unwrap();
        assert_eq!(checked_out_at(&repo, "main").unwrap().len(), 1);
        assert!(checked_out_at(&repo, "other").unwrap().is_empty());
    }

    #[test]
    fn commits_dropped_lists_what_a_move_takes_off_the_branch() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let a = commit(&repo, None, "a");
        let mine = commit(&repo, Some(a), "user's own");
        let theirs = commit(&repo, Some(a), "attempt");
        assert_eq!(commits_dropped(&repo, mine, theirs).unwrap(), vec![mine]);
        assert!(commits_dropped(&repo, a, theirs).unwrap().is_empty());
    }
}
