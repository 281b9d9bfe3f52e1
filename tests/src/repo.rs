//! User repositories for tests, made with the ordinary git CLI (never run on a workspace).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TestEnv;

/// Runs the git CLI in `repo` (system and global config ignored) and returns its stdout;
/// fails the test if git fails.
pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", repo.parent().unwrap_or(repo))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `<env home>/repo`: one commit with `a.txt`, on `main`.
pub fn simple_repo(env: &TestEnv) -> PathBuf {
    let repo = env.home.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("a.txt"), "a\n").unwrap();
    git(&repo, &["add", "."]);
    git(
        &repo,
        &[
            "-c",
            "user.name=u",
            "-c",
            "user.email=u@x",
            "commit",
            "-qm",
            "init",
        ],
    );
    repo
}
