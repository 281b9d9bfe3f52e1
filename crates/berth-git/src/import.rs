//! Putting a collected result into the user's repository as a new branch.

use std::collections::HashMap;
use std::path::Path;

use git2::{ObjectType, Oid, Repository};

use crate::TRAILER;
use crate::collect::Collected;
use crate::error::GitError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub branch: String,
    /// The branch's commit in the user's repository.
    pub head: Oid,
    pub commits: usize,
    pub files_changed: usize,
    pub insertions: usize,
    pub deletions: usize,
    /// Set when `force` moved an existing branch.
    pub replaced: Option<Replaced>,
}

/// What a forced pull did to the branch it moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// Where the branch pointed before (still in the repo's reflog for the branch).
    pub old: Oid,
    /// Commits that were on the branch and are not on it any more, newest first.
    pub dropped: Vec<Oid>,
}

/// Re-creates `collected`'s commits in the repository at `repo` (same trees, authors and
/// messages, plus a `Berth-Attempt` trailer) and points `refs/heads/<branch>` at the last.
/// Returns `None` when the attempt changed nothing.
///
/// Only objects and one new ref are written: no hook runs (libgit2 has none), the working
/// tree, index, HEAD, config and other refs are untouched, and an existing branch is only
/// replaced with `force`, never while it is checked out in the repo or one of its worktrees
/// (that checkout's index and files would no longer match it); what a forced move takes off
/// the branch is reported in [`Imported::replaced`]. Objects are written before the ref, so a
/// failure leaves no branch.
/// Whether `branch` in `repo` is still exactly an earlier pull of this result: it points
/// at `pulled` (nobody moved it) and that commit's files are those of `head` in `host_git`
/// (the attempt did nothing since). A second pull is then "already up to date".
/// Whether local `branch` of the repository at `repo` points at `at`.
pub fn branch_is_at(repo: &Path, branch: &str, at: Oid) -> bool {
    Repository::open(repo).ok().and_then(|r| {
        r.find_reference(&format!("refs/heads/{branch}"))
            .ok()
            .and_then(|b| b.target())
    }) == Some(at)
}

pub fn already_imported(
    host_git: &Path,
    head: Oid,
    repo: &Path,
    branch: &str,
    pulled: Oid,
) -> Result<bool, GitError> {
    let user = Repository::open(repo).map_err(|source| GitError::NotARepo {
        path: repo.to_path_buf(),
        cause: source.into(),
    })?;
    let at = user
        .find_reference(&format!("refs/heads/{branch}"))
        .ok()
        .and_then(|r| r.target());
    if at != Some(pulled) {
        return Ok(false);
    }
    let host = Repository::open_bare(host_git)?;
    let ours = user.find_commit(pulled)?.tree_id();
    Ok(host.find_commit(head)?.tree_id() == ours)
}

pub fn import(
    host_git: &Path,
    collected: &Collected,
    repo: &Path,
    branch: &str,
    force: bool,
    attempt: &str,
) -> Result<Option<Imported>, GitError> {
    let full = format!("refs/heads/{branch}");
    if !git2::Reference::is_valid_name(&full) || branch.split('/').any(|c| c == "..") {
        return Err(GitError::BadBranch(branch.to_string()));
    }
    let user = Repository::open(repo).map_err(|source| GitError::NotARepo {
        path: repo.to_path_buf(),
        cause: source.into(),
    })?;
    if collected.commits.is_empty() {
        return Ok(None);
    }
    let existing = user.find_reference(&full).ok().and_then(|r| r.target());
    if existing.is_some() {
        if !force {
            return Err(GitError::BranchExists(branch.to_string()));
        }
        let at = crate::refs::checked_out_at(&user, branch)?;
        if !at.is_empty() {
            return Err(GitError::BranchCheckedOut {
                branch: branch.to_string(),
                at: at
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    user.find_commit(collected.base)
        .map_err(|_| GitError::NoSuchBase {
            repo: repo.to_path_buf(),
            base: collected.base.to_string(),
        })?;
    let host = Repository::open_bare(host_git)?;
    let (host_odb, user_odb) = (host.odb()?, user.odb()?);

    let mut mapped: HashMap<Oid, Oid> = HashMap::new();
    mapped.insert(collected.base, collected.base);
    let mut last = collected.base;
    for id in &collected.commits {
        let c = host.find_commit(*id)?;
        copy_tree(&host_odb, &user_odb, c.tree_id())?;
        let tree = user.find_tree(c.tree_id())?;
        let parents: Vec<git2::Commit> = c
            .parent_ids()
            .map(|p| mapped.get(&p).copied().unwrap_or(p))
            .map(|p| user.find_commit(p))
            .collect::<Result<_, _>>()?;
        let parent_refs: Vec<&git2::Commit> = parents.iter().collect();
        let message = with_trailer(&String::from_utf8_lossy(c.message_bytes()), attempt);
        let new = user.commit(
            None,
            &c.author(),
            &c.committer(),
            &message,
            &tree,
            &parent_refs,
        )?;
        mapped.insert(*id, new);
        last = new;
    }
    user.reference(
        &full,
        last,
        force,
        &format!("berth: import attempt {attempt}"),
    )?;

    let replaced = match existing {
        Some(old) if old != last => Some(Replaced {
            old,
            dropped: crate::refs::commits_dropped(&user, old, last)?,
        }),
        _ => None,
    };
    // The attempt's own work: from its start (the snapshot of the user's edits, if any).
    let from = mapped
        .get(&collected.start)
        .copied()
        .unwrap_or(collected.base);
    let old_tree = user.find_commit(from)?.tree()?;
    let new_tree = user.find_commit(last)?.tree()?;
    let stats = user
        .diff_tree_to_tree(Some(&old_tree), Some(&new_tree), None)?
        .stats()?;
    Ok(Some(Imported {
        branch: branch.to_string(),
        head: last,
        commits: collected.commits.len(),
        files_changed: stats.files_changed(),
        insertions: stats.insertions(),
        deletions: stats.deletions(),
        replaced,
    }))
}

/// Copies a tree and everything under it that the destination lacks.
fn copy_tree(from: &git2::Odb, to: &git2::Odb, tree: Oid) -> Result<(), GitError> {
    let mut stack = vec![tree];
    while let Some(id) = stack.pop() {
        if to.exists(id) {
            continue;
        }
        let obj = from.read(id)?;
        if obj.kind() == ObjectType::Tree {
            // Parse entries from the raw tree: "<mode> <name>\0<20-byte id>".
            let data = obj.data();
            let mut i = 0;
            while i < data.len() {
                let Some(nul) = data[i..].iter().position(|&b| b == 0) else {
                    break;
                };
                let header = &data[i..i + nul];
                let id_start = i + nul + 1;
                if id_start + 20 > data.len() {
                    break;
                }
                let child = Oid::from_bytes(&data[id_start..id_start + 20])?;
                if !header.starts_with(b"160000 ") {
                    stack.push(child); // submodule links point at nothing we hold
                }
                i = id_start + 20;
            }
        }
        to.write(obj.kind(), obj.data())?;
    }
    Ok(())
}

fn with_trailer(message: &str, attempt: &str) -> String {
    let line = format!("{TRAILER}: {attempt}");
    if message.lines().any(|l| l.trim() == line) {
        return message.to_string();
    }
    let body = message.trim_end();
    let last_para = body.rsplit("\n\n").next().unwrap_or("");
    let is_trailer_block = body.contains("\n\n")
        && last_para
            .lines()
            .all(|l| l.split_once(": ").is_some_and(|(k, _)| !k.contains(' ')));
    if is_trailer_block {
        format!("{body}\n{line}\n")
    } else {
        format!("{body}\n\n{line}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::with_trailer;

    #[test]
    fn the_trailer_is_added_once_and_joins_an_existing_trailer_block() {
        assert_eq!(
            with_trailer("Fix add\n", "3.1"),
            "Fix add\n\nBerth-Attempt: 3.1\n"
        );
        assert_eq!(
            with_trailer("Fix\n\nSigned-off-by: A <a@x>\n", "3.1"),
            "Fix\n\nSigned-off-by: A <a@x>\nBerth-Attempt: 3.1\n"
        );
        let once = with_trailer("x\n", "3.1");
        assert_eq!(with_trailer(&once, "3.1"), once);
    }
}
