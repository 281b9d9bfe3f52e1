//! The repos a user works with: added by hand (the app's Repos section, `berth repo add`) or
//! by making a task on them.

use std::path::{Path, PathBuf};

use crate::task::TaskError;
use crate::{Clock, Store};

/// A repo and its local branches (or why they cannot be read, e.g. the folder was moved).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepoView {
    pub path: PathBuf,
    pub branches: Vec<String>,
    pub error: Option<String>,
}

/// Adds the git repository at `path` (canonicalized); a folder that is not one is refused
/// and nothing is recorded. Returns the canonical path.
pub fn add_repo(store: &Store, path: &Path, clock: Clock) -> Result<PathBuf, TaskError> {
    let canonical = path
        .canonicalize()
        .map_err(|e| TaskError::Refused(format!("cannot open {}: {e}", path.display())))?;
    if !canonical.is_dir() {
        return Err(TaskError::Refused(format!(
            "{} is a file; pick the repository's folder",
            canonical.display()
        )));
    }
    let repo = berth_git::repo_root(&canonical)?;
    store.db()?.add_repo(&repo, clock() / 1000)?;
    Ok(repo)
}

/// The top folder of the repo that `path` is in (canonical).
pub fn repo_root(path: &Path) -> Result<PathBuf, TaskError> {
    let canonical = path
        .canonicalize()
        .map_err(|e| TaskError::Refused(format!("cannot open {}: {e}", path.display())))?;
    Ok(berth_git::repo_root(&canonical)?)
}

/// Forgets a repo (its tasks, attempts and branches stay). Errors if it was not added.
pub fn remove_repo(store: &Store, path: &Path) -> Result<(), TaskError> {
    let mut db = store.db()?;
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if db.remove_repo(&canonical)? || db.remove_repo(path)? {
        Ok(())
    } else {
        Err(TaskError::Refused(format!(
            "{} is not among the added repos; `berth repo ls` lists them",
            path.display()
        )))
    }
}

/// Every added repo with its branches.
pub fn list_repos(store: &Store) -> Result<Vec<RepoView>, TaskError> {
    Ok(store
        .db()?
        .repos()?
        .into_iter()
        .map(|r| match berth_git::branches(&r.path) {
            Ok(branches) => RepoView {
                path: r.path,
                branches,
                error: None,
            },
            Err(e) => RepoView {
                path: r.path,
                branches: Vec::new(),
                error: Some(e.to_string()),
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataDir;

    fn clock() -> u64 {
        1_000_000
    }

    #[test]
    fn a_repo_is_added_by_any_folder_inside_it_and_listed_with_branches() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(DataDir::new(t.path().join("data")));
        let repo = t.path().join("repo");
        berth_git::init_repo_with_files(&repo, &[("src/a.txt", "a", false)], "init").unwrap();
        let added = add_repo(&store, &repo.join("src"), clock).unwrap();
        assert_eq!(added, repo.canonicalize().unwrap());
        add_repo(&store, &repo, clock).unwrap();
        let all = list_repos(&store).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].branches, ["main"]);
        remove_repo(&store, &repo).unwrap();
        assert!(list_repos(&store).unwrap().is_empty());
        assert!(remove_repo(&store, &repo).is_err());
    }

    #[test]
    fn folders_that_are_not_repos_are_refused_and_nothing_is_recorded() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(DataDir::new(t.path().join("data")));
        let plain = t.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        std::fs::write(plain.join("file"), "x").unwrap();
        for bad in [plain.clone(), plain.join("file"), t.path().join("missing")] {
            let e = add_repo(&store, &bad, clock).unwrap_err().to_string();
            assert!(!e.is_empty());
        }
        assert!(list_repos(&store).unwrap().is_empty());
    }

    #[test]
    fn a_repo_moved_away_is_listed_with_the_reason() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(DataDir::new(t.path().join("data")));
        let repo = t.path().join("repo");
        berth_git::init_repo_with_files(&repo, &[("a", "a", false)], "init").unwrap();
        add_repo(&store, &repo, clock).unwrap();
        std::fs::rename(&repo, t.path().join("moved")).unwrap();
        let all = list_repos(&store).unwrap();
        assert!(
            all[0]
                .error
                .as_deref()
                .unwrap_or("")
                .contains("not a git repository")
        );
    }
}

/// Where the bundled demo keeps its scripted agent, in a repo.
pub const DEMO_AGENT: &str = ".berth/demo-agent.sh";

/// Whether the scripted demo agent applies to `repo` at `base`: its script is in that
/// commit (the demo repo and copies of it). Elsewhere the demo preset would die with exit 127.
pub fn demo_applies(repo: &Path, base: &str) -> bool {
    berth_git::resolve_commit(repo, base)
        .and_then(|c| berth_git::files_at(repo, c, &[DEMO_AGENT], 1 << 20))
        .is_ok_and(|found| !found.is_empty())
}

#[cfg(test)]
mod demo_tests {
    #[test]
    fn the_demo_applies_only_where_its_script_is_committed() {
        let d = tempfile::tempdir().unwrap();
        let demo = d.path().join("demo");
        berth_git::init_repo_with_files(
            &demo,
            &[
                (super::DEMO_AGENT, "echo hi\n", true),
                ("a.txt", "a\n", false),
            ],
            "demo\n",
        )
        .unwrap();
        assert!(super::demo_applies(&demo, "HEAD"));
        let other = d.path().join("other");
        berth_git::init_repo_with_files(&other, &[("a.txt", "a\n", false)], "x\n").unwrap();
        assert!(!super::demo_applies(&other, "HEAD"));
        // An uncommitted script does not count: attempts start from a commit.
        std::fs::create_dir_all(other.join(".berth")).unwrap();
        std::fs::write(other.join(super::DEMO_AGENT), "echo hi\n").unwrap();
        assert!(!super::demo_applies(&other, "HEAD"));
        assert!(!super::demo_applies(&d.path().join("nowhere"), "HEAD"));
    }
}
