//! Diffs between commits, including commits of two different attempts (each attempt's
//! result lives in its own host-private repository).

use std::path::Path;

use git2::{Oid, Repository};

use crate::GitError;

/// The unified diff from commit `old` to commit `new` in `repo`, and (files, +, -).
pub(crate) fn patch(
    repo: &Repository,
    old: Oid,
    new: Oid,
) -> Result<(String, (usize, usize, usize)), GitError> {
    let old = repo.find_commit(old)?.tree()?;
    let new = repo.find_commit(new)?.tree()?;
    let diff = repo.diff_tree_to_tree(Some(&old), Some(&new), None)?;
    let stats = diff.stats()?;
    let mut out = String::new();
    diff.print(git2::DiffFormat::Patch, |_d, _h, line| {
        if matches!(line.origin(), '+' | '-' | ' ') {
            out.push(line.origin());
        }
        out.push_str(&String::from_utf8_lossy(line.content()));
        true
    })?;
    Ok((
        out,
        (stats.files_changed(), stats.insertions(), stats.deletions()),
    ))
}

/// The diff from `a_head` (in host repository `a_git`) to `b_head` (in `b_git`): what the
/// second attempt did differently from the first. `b_git`'s objects are added to `a_git`'s
/// object database in memory only; neither repository is written.
pub fn diff_between(
    a_git: &Path,
    a_head: Oid,
    b_git: &Path,
    b_head: Oid,
) -> Result<(String, (usize, usize, usize)), GitError> {
    let repo = Repository::open_bare(a_git)?;
    repo.odb()?
        .add_disk_alternate(&b_git.join("objects").to_string_lossy())?;
    patch(&repo, a_head, b_head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare_with(dir: &Path, files: &[(&str, &str)]) -> (std::path::PathBuf, Oid) {
        let repo = Repository::init_bare(dir).unwrap();
        let mut tb = repo.treebuilder(None).unwrap();
        for (name, body) in files {
            let blob = repo.blob(body.as_bytes()).unwrap();
            tb.insert(name, blob, 0o100644).unwrap();
        }
        let tree = repo.find_tree(tb.write().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@x").unwrap();
        let c = repo.commit(None, &sig, &sig, "m", &tree, &[]).unwrap();
        (dir.to_path_buf(), c)
    }

    #[test]
    fn diff_between_two_repositories_shows_what_differs_and_writes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let (a, a_head) = bare_with(
            &t.path().join("a.git"),
            &[("f.py", "x = 1\n"), ("same", "s\n")],
        );
        let (b, b_head) = bare_with(
            &t.path().join("b.git"),
            &[("f.py", "x = 2\n"), ("same", "s\n")],
        );
        let (patch, (files, ins, del)) = diff_between(&a, a_head, &b, b_head).unwrap();
        assert_eq!((files, ins, del), (1, 1, 1));
        assert!(
            patch.contains("-x = 1") && patch.contains("+x = 2"),
            "{patch}"
        );
        assert!(!patch.contains("same"));
        // The alternate was in memory only: a.git still cannot see b's commit.
        let again = Repository::open_bare(&a).unwrap();
        assert!(again.find_commit(b_head).is_err());
        assert!(!a.join("objects/info/alternates").exists());
    }
}
