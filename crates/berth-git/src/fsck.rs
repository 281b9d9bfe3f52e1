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

/// Adds every object id reachable from `tree` to `known` (the base's own objects).
pub fn collect_tree_ids(
    repo: &Repository,
    tree: Oid,
    known: &mut HashSet<Oid>,
) -> Result<(), GitError> {
    if !known.insert(tree) {
        return Ok(());
    }
    let t = repo.find_tree(tree)?;
    for e in t.iter() {
        match e.kind() {
            Some(ObjectType::Tree) => collect_tree_ids(repo, e.id(), known)?,
            _ => {
                known.insert(e.id());
            }
        }
    }
    Ok(())
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

fn check_tree(
    repo: &Repository,
    tree: Oid,
    known: &mut HashSet<Oid>,
    budget: &mut Budget,
    limits: &Limits,
    path: &str,
) -> Result<(), GitError> {
    if !known.insert(tree) {
        return Ok(());
    }
    let t = repo.find_tree(tree)?;
    count(budget, limits, 64 * t.len() as u64)?;
    let odb = repo.odb()?;
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
            0o040000 => check_tree(repo, e.id(), known, budget, limits, &full)?,
            0o100644 | 0o100755 | 0o120000 => {
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
                    continue;
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
                count(budget, limits, size as u64)?;
            }
            0o160000 => {} // a submodule link: just an id, nothing to fetch
            other => {
                return Err(GitError::Hostile(format!("{full} has file mode {other:o}")));
            }
        }
    }
    Ok(())
}

/// The names git refuses to check out (dot-git in any spelling, path tricks).
fn check_name(raw: &[u8], full: &str) -> Result<(), GitError> {
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
    use super::check_name;

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
