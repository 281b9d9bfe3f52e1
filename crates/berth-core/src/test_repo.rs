//! Test helper: commits in a repository the way a user (or a guest, in a workspace) would.

use std::path::Path;

use git2::{Repository, Signature};

/// Writes `files` into `repo`'s working tree and commits everything on HEAD.
pub(crate) fn commit_files(repo: &Path, files: &[(&str, &str)], msg: &str) {
    let r = Repository::open(repo).unwrap();
    for (name, text) in files {
        std::fs::write(repo.join(name), text).unwrap();
    }
    let mut index = r.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = r.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("t", "t@example.invalid").unwrap();
    let parents: Vec<git2::Commit> = r
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let refs: Vec<&git2::Commit> = parents.iter().collect();
    r.commit(Some("HEAD"), &sig, &sig, msg, &tree, &refs)
        .unwrap();
}
