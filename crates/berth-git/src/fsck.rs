//! Checks on objects an attempt brings back, in the spirit of `git fsck`'s path checks:
//! every tree entry must be a name git itself would check out safely, every blob must fit
//! the limits. Reading an object through libgit2 also verifies its hash.

use std::collections::HashSet;

use git2::{ObjectType, Oid, Repository};

use crate::{GitError, Limits};

/// Running totals of what was checked.
#[derive(Debug, Default)]
pub struct Budget {
    pub objects: u64,
    pub bytes: u64,
}

/// Adds every object id reachable from `tree` to `known` (the base's own objects). Walks
/// with a stack of its own, never the thread's, and no deeper than `max_depth`.
pub fn collect_tree_ids(
    repo: &Repository,
    tree: Oid,
    known: &mut HashSet<Oid>,
    max_depth: usize,
) -> Result<(), GitError> {
    let mut stack = vec![(tree, 0usize)];
    while let Some((tree, depth)) = stack.pop() {
        if !known.insert(tree) {
            continue;
        }
        if depth > max_depth {
            return Err(too_deep(max_depth, "the base"));
        }
        let t = repo.find_tree(tree)?;
        for e in t.iter() {
            match e.kind() {
                Some(ObjectType::Tree) => stack.push((e.id(), depth + 1)),
                _ => {
                    known.insert(e.id());
                }
            }
        }
    }
    Ok(())
}

fn too_deep(max_depth: usize, whose: &str) -> GitError {
    GitError::Hostile(format!(
        "{whose} nests directories more than {max_depth} deep (git's core.maxTreeDepth)"
    ))
}

/// Checks `commit` and every tree/blob it reaches that is not already `known`.
pub fn check_commit(
    repo: &Repository,
    commit: Oid,
    known: &mut HashSet<Oid>,
    budget: &mut Budget,
    limits: &Limits,
) -> Result<(), GitError> {
    let c = repo.find_commit(commit)?;
    count(budget, limits, c.message_bytes().len() as u64 + 256)?;
    check_tree(repo, c.tree_id(), known, budget, limits, "")
}

fn count(budget: &mut Budget, limits: &Limits, bytes: u64) -> Result<(), GitError> {
    budget.objects += 1;
    budget.bytes += bytes;
    if budget.objects > limits.max_objects {
        return Err(GitError::TooLarge(format!(
            "more than {} new objects",
            limits.max_objects
        )));
    }
    if budget.bytes > limits.max_total_bytes {
        return Err(GitError::TooLarge(format!(
            "more than {} bytes of new objects",
            limits.max_total_bytes
        )));
    }
    Ok(())
}

/// Checks `root` and everything under it that is not `known`, depth first with a stack of
/// its own: a guest can nest trees 50,000 deep, and recursion would overflow the host's
/// stack and abort whoever reads the result (supervisor, `berth pull`, the app).
fn check_tree(
    repo: &Repository,
    root: Oid,
    known: &mut HashSet<Oid>,
    budget: &mut Budget,
    limits: &Limits,
    root_path: &str,
) -> Result<(), GitError> {
    let odb = repo.odb()?;
    let mut stack = vec![(root, root_path.to_string(), 0usize)];
    while let Some((tree, path, depth)) = stack.pop() {
        if !known.insert(tree) {
            continue;
        }
        if depth > limits.max_tree_depth {
            return Err(too_deep(limits.max_tree_depth, "the attempt's result"));
        }
        let t = repo.find_tree(tree)?;
        count(budget, limits, 64 * t.len() as u64)?;
        for e in t.iter() {
            let name = std::str::from_utf8(e.name_bytes()).unwrap_or("");
            let full = if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}/{name}")
            };
            check_name(e.name_bytes(), &full)?;
            let mode = e.filemode();
            match mode {
                0o040000 => stack.push((e.id(), full, depth + 1)),
                0o100644 | 0o100755 | 0o120000 => {
                    check_blob(&odb, &e, mode, name, &full, known, budget, limits)?
                }
                0o160000 => {} // a submodule link: just an id, nothing to fetch
                other => {
                    return Err(GitError::Hostile(format!("{full} has file mode {other:o}")));
                }
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn check_blob(
    odb: &git2::Odb,
    e: &git2::TreeEntry,
    mode: i32,
    name: &str,
    full: &str,
    known: &mut HashSet<Oid>,
    budget: &mut Budget,
    limits: &Limits,
) -> Result<(), GitError> {
    let lower = name.to_ascii_lowercase();
    if mode == 0o120000
        && matches!(
            lower.as_str(),
            ".gitmodules" | ".gitattributes" | ".gitignore"
        )
    {
        return Err(GitError::Hostile(format!("{full} is a symlink")));
    }
    if !known.insert(e.id()) {
        return Ok(());
    }
    let (size, kind) = odb.read_header(e.id())?;
    if kind != ObjectType::Blob {
        return Err(GitError::Hostile(format!("{full} is not a blob")));
    }
    if size as u64 > limits.max_blob_bytes {
        return Err(GitError::TooLarge(format!(
            "{full} is {size} bytes (limit {} bytes)",
            limits.max_blob_bytes
        )));
    }
    if mode == 0o120000 && size > 4096 {
        return Err(GitError::Hostile(format!(
            "{full}: symlink target too long"
        )));
    }
    // Reading it verifies the content matches its id.
    odb.read(e.id())?;
    count(budget, limits, size as u64)
}

/// The names git refuses to check out (dot-git in any spelling, path tricks).
pub(crate) fn check_name(raw: &[u8], full: &str) -> Result<(), GitError> {
    let bad = |why: &str| Err(GitError::Hostile(format!("tree entry {full:?}: {why}")));
    if raw.is_empty() || raw == b"." || raw == b".." {
        return bad("not a file name");
    }
    if raw.contains(&b'/') || raw.contains(&0) || raw.contains(&b'\\') {
        return bad("contains a path separator or NUL");
    }
    let lower = String::from_utf8_lossy(raw).to_ascii_lowercase();
    let trimmed = lower.trim_end_matches(['.', ' ']);
    if trimmed == ".git" || trimmed == "git~1" {
        return bad("a .git directory inside the tree");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit whose tree nests `depth` directories, built bottom-up without recursion.
    fn nested_commit(repo: &Repository, depth: usize) -> Oid {
        let blob = repo.blob(b"deep\n").unwrap();
        let mut b = repo.treebuilder(None).unwrap();
        b.insert("f", blob, 0o100644).unwrap();
        let mut tree = b.write().unwrap();
        for _ in 0..depth {
            let mut b = repo.treebuilder(None).unwrap();
            b.insert("d", tree, 0o040000).unwrap();
            tree = b.write().unwrap();
        }
        let sig = git2::Signature::now("t", "t@example.invalid").unwrap();
        let tree = repo.find_tree(tree).unwrap();
        repo.commit(None, &sig, &sig, "deep", &tree, &[]).unwrap()
    }

    #[test]
    fn fifty_thousand_nested_trees_are_refused_without_overflowing_the_stack() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let deep = nested_commit(&repo, 50_000);
        let limits = Limits::default();
        let e = check_commit(
            &repo,
            deep,
            &mut HashSet::new(),
            &mut Budget::default(),
            &limits,
        );
        assert!(matches!(e, Err(GitError::Hostile(m)) if m.contains("maxTreeDepth")));
        let tree = repo.find_commit(deep).unwrap().tree_id();
        let e = collect_tree_ids(&repo, tree, &mut HashSet::new(), limits.max_tree_depth);
        assert!(e.is_err());
        // Within the cap, a deep tree is fine.
        let ok = nested_commit(&repo, 100);
        check_commit(
            &repo,
            ok,
            &mut HashSet::new(),
            &mut Budget::default(),
            &limits,
        )
        .unwrap();
    }

    #[test]
    fn dot_git_in_any_spelling_and_path_tricks_are_refused() {
        for bad in [
            ".git", ".GIT", ".Git.", ".git ", "git~1", "..", ".", "", "a/b", "a\\b",
        ] {
            assert!(check_name(bad.as_bytes(), bad).is_err(), "{bad:?}");
        }
        for good in [".github", ".gitignore", "git", "x.git", "src"] {
            assert!(check_name(good.as_bytes(), good).is_ok(), "{good:?}");
        }
    }
}
