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
    repo_with(&env.home.path().join("repo"), "main", "a.txt", "a\n")
}

/// A repo at `dir` with one commit on `branch` holding `file` with `text`.
pub fn repo_with(dir: &Path, branch: &str, file: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", branch]);
    commit_file(dir, file, text, "init");
    dir.to_path_buf()
}

/// The user writes `file` in their repo `dir` and commits it on the checked-out branch.
pub fn commit_file(dir: &Path, file: &str, text: &str, message: &str) {
    commit_files(dir, &[(file.to_string(), text.to_string())], message);
}

/// The user writes several files (paths may hold folders) and commits them in one commit.
pub fn commit_files(dir: &Path, files: &[(String, String)], message: &str) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        git(dir, &["add", path]);
    }
    git(
        dir,
        &[
            "-c",
            "user.name=u",
            "-c",
            "user.email=u@x",
            "commit",
            "-qm",
            message,
        ],
    );
}
