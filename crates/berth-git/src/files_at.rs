//! Reading the user's repository at a commit (trusted data: the user's own repo, not a
//! guest's workspace): which commit a ref names, and the files an environment depends on.

use std::path::Path;

use git2::{ObjectType, Oid, Repository};

use crate::error::GitError;

fn open(repo: &Path) -> Result<Repository, GitError> {
    Repository::open(repo).map_err(|source| GitError::NotARepo {
        path: repo.to_path_buf(),
        cause: source.into(),
    })
}

/// The commit `base` (a branch, tag, commit id, `HEAD`) names in `repo`.
pub fn resolve_commit(repo: &Path, base: &str) -> Result<Oid, GitError> {
    let r = open(repo)?;
    if r.is_empty().unwrap_or(false) {
        return Err(GitError::NoCommits {
            repo: repo.to_path_buf(),
        });
    }
    r.revparse_single(base)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .map_err(|_| GitError::NoSuchBase {
            repo: repo.to_path_buf(),
            base: base.to_string(),
        })
}

/// The content of each of `names` (paths from the root) that exists as a file at `commit`,
/// in the order given; at most `max` bytes each (a larger one is read as its id only).
pub fn files_at(
    repo: &Path,
    commit: Oid,
    names: &[&str],
    max: usize,
) -> Result<Vec<(String, Vec<u8>)>, GitError> {
    let r = open(repo)?;
    let tree = r.find_commit(commit)?.tree()?;
    let mut out = Vec::new();
    for name in names {
        let Ok(entry) = tree.get_path(Path::new(name)) else {
            continue;
        };
        if entry.kind() != Some(ObjectType::Blob) {
            continue;
        }
        let blob = r.find_blob(entry.id())?;
        let content = if blob.size() <= max {
            blob.content().to_vec()
        } else {
            entry.id().to_string().into_bytes()
        };
        out.push((name.to_string(), content));
    }
    Ok(out)
}
