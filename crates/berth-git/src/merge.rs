//! Merging a chosen attempt's branch into the branch it started from, in the user's
//! repository: a fast-forward when possible, else a merge commit; never over a checkout with
//! changes of the user's, never with conflicts (nothing is written then).

use std::path::Path;

use git2::{BranchType, Oid, Repository, Signature, StatusOptions, build::CheckoutBuilder};

use crate::GitError;

/// What merging did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// The branch already contained the result.
    UpToDate,
    /// The branch was moved forward to the result.
    FastForward { from: Oid, to: Oid },
    /// A merge commit joins the branch and the result.
    Commit { from: Oid, commit: Oid },
}

/// Merges `head` into local branch `into` of the repository at `repo`, with `message` for a
/// merge commit. When `into` is checked out, its working tree must have no changes (tracked
/// or untracked) and is updated to the result; otherwise only the branch moves.
pub fn merge_into(repo: &Path, into: &str, head: Oid, message: &str) -> Result<Merged, GitError> {
    let r = Repository::open(repo).map_err(|source| GitError::NotARepo {
        path: repo.to_path_buf(),
        cause: source.into(),
    })?;
    let mut branch = r
        .find_branch(into, BranchType::Local)
        .map_err(|_| GitError::Refused(format!("{into} is not a local branch of the repo")))?;
    let refname = branch.get().name()?.to_string();
    let tip = branch.get().peel_to_commit()?.id();
    let checked_out = !r.is_bare()
        && r.head()
            .ok()
            .is_some_and(|h| h.name().ok() == Some(refname.as_str()));
    if checked_out && has_changes(&r)? {
        return Err(GitError::Refused(format!(
            "{into} is checked out with changes of yours (commit or stash them first); nothing \
             was merged"
        )));
    }
    if tip == head || r.graph_descendant_of(tip, head)? {
        return Ok(Merged::UpToDate);
    }
    let (to, merged) = if r.graph_descendant_of(head, tip)? {
        (
            head,
            Merged::FastForward {
                from: tip,
                to: head,
            },
        )
    } else {
        let ours = r.find_commit(tip)?;
        let theirs = r.find_commit(head)?;
        let mut index = r.merge_commits(&ours, &theirs, None)?;
        if index.has_conflicts() {
            let files: Vec<String> = index
                .conflicts()?
                .flatten()
                .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                .collect();
            return Err(GitError::Refused(format!(
                "merging into {into} conflicts in {}; nothing was merged (merge it yourself, or \
                 keep it as a branch)",
                files.join(", ")
            )));
        }
        let tree = r.find_tree(index.write_tree_to(&r)?)?;
        let sig = r
            .signature()
            .or_else(|_| Signature::now(crate::AGENT_NAME, crate::AGENT_EMAIL))?;
        let commit = r.commit(None, &sig, &sig, message, &tree, &[&ours, &theirs])?;
        (commit, Merged::Commit { from: tip, commit })
    };
    if checked_out {
        // Safe checkout: it never overwrites a change (there are none; checked above).
        let target = r.find_commit(to)?;
        r.checkout_tree(target.as_object(), Some(CheckoutBuilder::new().safe()))?;
    }
    branch
        .get_mut()
        .set_target(to, &format!("berth: {message}"))?;
    Ok(merged)
}

/// The branch to merge a task's result into: `asked`, or (empty) the task's `base_ref` when
/// it names a local branch, or the branch checked out now when the task started from
/// something else (`HEAD`) and that branch still holds the task's `base` commit.
pub fn merge_target(
    repo: &Path,
    base_ref: &str,
    base: Oid,
    asked: &str,
) -> Result<String, GitError> {
    let r = Repository::open(repo).map_err(|source| GitError::NotARepo {
        path: repo.to_path_buf(),
        cause: source.into(),
    })?;
    let local = |name: &str| r.find_branch(name, BranchType::Local).is_ok();
    let pick = if !asked.is_empty() {
        asked.to_string()
    } else if local(base_ref) {
        base_ref.to_string()
    } else {
        let head = r.head().ok().filter(|h| h.is_branch());
        let name = head
            .as_ref()
            .and_then(|h| h.shorthand().ok().map(str::to_string));
        let holds_base = head
            .as_ref()
            .and_then(|h| h.target())
            .is_some_and(|tip| tip == base || r.graph_descendant_of(tip, base).unwrap_or(false));
        match name {
            Some(n) if holds_base => n,
            _ => {
                return Err(GitError::Refused(format!(
                    "the task started from {base_ref}, and the branch checked out now does not                      hold its base; say which branch to merge into with --into BRANCH"
                )));
            }
        }
    };
    if !local(&pick) {
        return Err(GitError::Refused(format!(
            "{pick} is not a local branch of {}",
            repo.display()
        )));
    }
    Ok(pick)
}

/// Changes in the working tree or index, untracked files included (ignored ones not).
fn has_changes(r: &Repository) -> Result<bool, GitError> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(true).exclude_submodules(true);
    Ok(!r.statuses(Some(&mut opts))?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(r: &Repository, file: &str, text: &str, parents: &[Oid], msg: &str) -> Oid {
        let dir = r.workdir().unwrap();
        std::fs::write(dir.join(file), text).unwrap();
        let mut index = r.index().unwrap();
        index.add_path(Path::new(file)).unwrap();
        let tree = r.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Signature::now("u", "u@u.invalid").unwrap();
        let parents: Vec<git2::Commit> =
            parents.iter().map(|p| r.find_commit(*p).unwrap()).collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        r.commit(None, &sig, &sig, msg, &tree, &refs).unwrap()
    }

    /// A repo on `main` with a base commit, and an attempt's commit on top of it.
    fn setup() -> (tempfile::TempDir, Repository, Oid, Oid) {
        let d = tempfile::tempdir().unwrap();
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let r = Repository::init_opts(d.path(), &opts).unwrap();
        let base = commit(&r, "a.txt", "a\n", &[], "base");
        r.reference("refs/heads/main", base, true, "t").unwrap();
        r.checkout_head(Some(CheckoutBuilder::new().force()))
            .unwrap();
        let work = commit(&r, "b.txt", "from the attempt\n", &[base], "attempt");
        // The index holds b.txt from making the attempt's commit: put it back to main's.
        r.reset(
            r.find_commit(base).unwrap().as_object(),
            git2::ResetType::Hard,
            None,
        )
        .unwrap();
        std::fs::remove_file(d.path().join("b.txt")).ok();
        (d, r, base, work)
    }

    #[test]
    fn a_clean_checked_out_branch_fast_forwards_with_its_files() {
        let (d, r, base, work) = setup();
        let m = merge_into(d.path(), "main", work, "Merge attempt 1.1").unwrap();
        assert_eq!(
            m,
            Merged::FastForward {
                from: base,
                to: work
            }
        );
        assert_eq!(r.refname_to_id("refs/heads/main").unwrap(), work);
        assert_eq!(
            std::fs::read_to_string(d.path().join("b.txt")).unwrap(),
            "from the attempt\n"
        );
        assert_eq!(
            merge_into(d.path(), "main", work, "again").unwrap(),
            Merged::UpToDate
        );
    }

    #[test]
    fn a_dirty_checkout_is_never_touched() {
        let (d, r, base, work) = setup();
        std::fs::write(d.path().join("a.txt"), "my edit\n").unwrap();
        let err = merge_into(d.path(), "main", work, "m").unwrap_err();
        assert!(err.to_string().contains("changes of yours"), "{err}");
        assert_eq!(r.refname_to_id("refs/heads/main").unwrap(), base);
        assert_eq!(
            std::fs::read_to_string(d.path().join("a.txt")).unwrap(),
            "my edit\n"
        );
        // An untracked file counts too: the checkout could clash with it.
        std::fs::write(d.path().join("a.txt"), "a\n").unwrap();
        std::fs::write(d.path().join("b.txt"), "mine\n").unwrap();
        assert!(merge_into(d.path(), "main", work, "m").is_err());
        assert_eq!(
            std::fs::read_to_string(d.path().join("b.txt")).unwrap(),
            "mine\n"
        );
    }

    #[test]
    fn diverged_branches_get_a_merge_commit_and_conflicts_write_nothing() {
        let (d, r, base, work) = setup();
        // The user moved on: main has a commit of its own.
        let own = commit(&r, "c.txt", "user\n", &[base], "user's work");
        r.reference("refs/heads/main", own, true, "t").unwrap();
        r.checkout_head(Some(CheckoutBuilder::new().force()))
            .unwrap();
        match merge_into(d.path(), "main", work, "Merge attempt 1.1").unwrap() {
            Merged::Commit { from, commit } => {
                assert_eq!(from, own);
                let c = r.find_commit(commit).unwrap();
                assert_eq!(c.parent_ids().collect::<Vec<_>>(), [own, work]);
                assert_eq!(r.refname_to_id("refs/heads/main").unwrap(), commit);
                assert!(d.path().join("b.txt").exists() && d.path().join("c.txt").exists());
            }
            other => panic!("{other:?}"),
        }
        // A conflicting result: refused, main unchanged.
        let before = r.refname_to_id("refs/heads/main").unwrap();
        let clash = commit(&r, "a.txt", "the attempt's a\n", &[base], "clash");
        let mine = commit(&r, "a.txt", "the user's a\n", &[before], "mine");
        r.reference("refs/heads/main", mine, true, "t").unwrap();
        r.reset(
            r.find_commit(mine).unwrap().as_object(),
            git2::ResetType::Hard,
            None,
        )
        .unwrap();
        let err = merge_into(d.path(), "main", clash, "m").unwrap_err();
        assert!(err.to_string().contains("conflicts in a.txt"), "{err}");
        assert_eq!(r.refname_to_id("refs/heads/main").unwrap(), mine);
    }

    #[test]
    fn a_branch_not_checked_out_just_moves() {
        let (d, r, base, work) = setup();
        r.reference("refs/heads/release", base, true, "t").unwrap();
        let m = merge_into(d.path(), "release", work, "m").unwrap();
        assert_eq!(
            m,
            Merged::FastForward {
                from: base,
                to: work
            }
        );
        assert_eq!(r.refname_to_id("refs/heads/release").unwrap(), work);
        assert_eq!(r.refname_to_id("refs/heads/main").unwrap(), base);
        assert!(!d.path().join("b.txt").exists());
        assert!(merge_into(d.path(), "nope", work, "m").is_err());
    }
}
