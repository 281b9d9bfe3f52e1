//! `berth run` / `berth pull` with real VMs and real repos: results come back as branches,
//! and nothing a guest writes into its workspace executes or leaks on the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::{TestEnv, commit_file, git};

/// A user repo with two commits on main, made with the ordinary git CLI.
fn user_repo(env: &TestEnv) -> PathBuf {
    let repo = env.home.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "Test User"]);
    git(&repo, &["config", "user.email", "user@example.invalid"]);
    std::fs::write(repo.join("app.txt"), "version 1\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    std::fs::write(repo.join("app.txt"), "version 2\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "second"]);
    repo
}

fn run(env: &TestEnv, repo: &Path, extra: &[&str], script: &str) -> std::process::Output {
    env.berth()
        .args(["run", "--repo"])
        .arg(repo)
        .args(extra)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap()
}

#[test]
fn a_change_made_in_the_vm_lands_as_a_branch_with_the_trailer() {
    let env = TestEnv::new();
    let repo = user_repo(&env);
    let out = run(
        &env,
        &repo,
        &[],
        "echo feature > feature.txt && git add feature.txt && git commit -qm 'Add feature' \
         && echo 'version 3' > app.txt",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("berth/1/1"), "{stdout}");
    // The agent's commit and Berth's leftover commit, both with the trailer, on top of main.
    let log = git(
        &repo,
        &[
            "log",
            "--format=%s|%an|%(trailers:key=Berth-Attempt,valueonly)",
            "main..berth/1/1",
        ],
    );
    assert_eq!(
        log.trim(),
        "Uncommitted changes of attempt 1.1|Berth agent|1.1\n\nAdd feature|Berth agent|1.1"
    );
    assert_eq!(
        git(&repo, &["merge-base", "main", "berth/1/1"]),
        git(&repo, &["rev-parse", "main"])
    );
    assert_eq!(git(&repo, &["show", "berth/1/1:feature.txt"]), "feature\n");
    assert_eq!(git(&repo, &["show", "berth/1/1:app.txt"]), "version 3\n");
    // The full history is intact: the workspace was shallow, the branch is not.
    assert_eq!(
        git(&repo, &["rev-list", "--count", "berth/1/1"]).trim(),
        "4"
    );
    git(&repo, &["fsck", "--strict"]);

    // `berth diff` shows the same change; pulling the same result again changes nothing.
    let diff = env.berth().args(["diff", "1.1"]).output().unwrap();
    let diff = String::from_utf8_lossy(&diff.stdout);
    assert!(
        diff.contains("+feature") && diff.contains("+version 3"),
        "{diff}"
    );
    let again = env.berth().args(["pull", "1.1"]).output().unwrap();
    assert!(again.status.success(), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("already up to date"));
    // A branch of that name that is not this result is never overwritten without --force.
    let other = env
        .berth()
        .args(["pull", "1.1", "--branch", "main"])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&other.stderr).contains("already exists"));
    // --force never moves a checked-out branch (its index and files would be left behind),
    // and says which commits a move takes off a branch.
    git(&repo, &["checkout", "-q", "berth/1/1"]);
    commit_file(&repo, "mine.txt", "the user's own work\n", "user's commit");
    let users = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    for branch in ["berth/1/1", "main"] {
        if branch == "main" {
            git(&repo, &["checkout", "-q", "main"]);
            std::fs::write(repo.join("dirty.txt"), "not committed\n").unwrap();
        }
        let forced = env
            .berth()
            .args(["pull", "1.1", "--force", "--branch", branch])
            .output()
            .unwrap();
        assert_eq!(forced.status.code(), Some(125), "{forced:?}");
        let err = String::from_utf8_lossy(&forced.stderr);
        assert!(err.contains("is checked out at"), "{err}");
    }
    assert_eq!(git(&repo, &["rev-parse", "berth/1/1"]).trim(), users);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "?? dirty.txt\n");
    std::fs::remove_file(repo.join("dirty.txt")).unwrap();
    let moved = env
        .berth()
        .args(["pull", "1.1", "--force"])
        .output()
        .unwrap();
    assert!(moved.status.success(), "{moved:?}");
    let err = String::from_utf8_lossy(&moved.stderr);
    assert!(
        err.contains("took 1 commit(s) off berth/1/1") && err.contains(&users[..12]),
        "a forced pull must say what it dropped: {err}"
    );
    let other = env
        .berth()
        .args(["pull", "1.1", "--branch", "mine"])
        .output()
        .unwrap();
    assert!(other.status.success(), "{other:?}");
    let bad = env
        .berth()
        .args(["pull", "1.1", "--branch", "../../x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid branch name"));
}

#[test]
fn three_attempts_at_once_give_three_branches_with_their_own_changes() {
    let env = TestEnv::new();
    let repo = user_repo(&env);
    let out = run(
        &env,
        &repo,
        &["--attempts", "3"],
        "echo \"$BERTH_ATTEMPT\" > who.txt; echo \"I am $BERTH_ATTEMPT\"; echo oops >&2",
    );
    assert!(out.status.success(), "{out:?}");
    for n in 1..=3 {
        let who = git(&repo, &["show", &format!("berth/1/{n}:who.txt")]);
        assert_eq!(who, format!("1.{n}\n"));
        // Each attempt's own output is kept, as a terminal shows it (for `logs` and the app).
        let logs = env
            .berth()
            .args(["logs", &format!("1.{n}")])
            .output()
            .unwrap();
        // (stdout and stderr are separate pipes: either may come first)
        let text = String::from_utf8_lossy(&logs.stdout).into_owned();
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        lines.sort();
        assert_eq!(
            lines,
            [format!("I am 1.{n}\r\n").as_str(), "oops\r\n"],
            "{text:?}"
        );
    }
}

#[test]
fn a_failed_command_that_changed_files_still_yields_a_branch() {
    let env = TestEnv::new();
    let repo = user_repo(&env);
    let out = run(&env, &repo, &[], "echo partial > wip.txt; exit 3");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(git(&repo, &["show", "berth/1/1:wip.txt"]), "partial\n");
}

/// Everything about the user's repo that must not change, except refs we expect.
fn snapshot(repo: &Path) -> Vec<String> {
    let mut s = vec![
        git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"])
            .lines()
            .filter(|l| !l.starts_with("refs/heads/berth/"))
            .collect::<Vec<_>>()
            .join("\n"),
        std::fs::read_to_string(repo.join(".git/config")).unwrap(),
        std::fs::read_to_string(repo.join(".git/HEAD")).unwrap(),
        format!("{:?}", std::fs::read(repo.join(".git/index")).unwrap()),
    ];
    let mut hooks: Vec<String> = std::fs::read_dir(repo.join(".git/hooks"))
        .unwrap()
        .flatten()
        .map(|e| format!("{:?} {:?}", e.file_name(), std::fs::read(e.path()).unwrap()))
        .collect();
    hooks.sort();
    s.extend(hooks);
    let mut files: Vec<String> = std::fs::read_dir(repo)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != ".git")
        .map(|e| format!("{:?} {:?}", e.file_name(), std::fs::read(e.path()).ok()))
        .collect();
    files.sort();
    s.extend(files);
    s
}

#[test]
fn a_hostile_workspace_executes_and_leaks_nothing_on_the_host() {
    let env = TestEnv::new();
    let repo = user_repo(&env);
    let marker = env.home.path().join("pwned");
    let secret_file = env.home.path().join("secret.txt");
    std::fs::write(&secret_file, "TOP-SECRET-HOST-CONTENT\n").unwrap();
    // A host repo the guest's submodule points at.
    let other = env.home.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    git(&other, &["init", "-q"]);
    let before = snapshot(&repo);

    let m = marker.display();
    let hook = format!("#!/bin/sh\\ntouch {m} 2>/dev/null\\nexit 0\\n");
    let script = format!(
        r#"set -e
for h in post-checkout pre-commit reference-transaction post-merge post-rewrite pre-auto-gc; do
  printf '{hook}' > .git/hooks/$h; chmod +x .git/hooks/$h
done
git config core.fsmonitor 'touch {m} 2>/dev/null; false'
git config core.hooksPath /work/.git/hooks
git config core.sshCommand 'touch {m}'
git config filter.evil.clean 'touch {m} 2>/dev/null; cat'
git config filter.evil.smudge 'touch {m} 2>/dev/null; cat'
git config diff.evil.textconv 'touch {m} 2>/dev/null; cat'
printf '* filter=evil diff=evil\n' > .gitattributes
ln -s {secret} leak-committed
printf '[submodule "sub"]\n\tpath = sub\n\turl = {other}\n' > .gitmodules
git add .gitattributes leak-committed .gitmodules
git update-index --add --cacheinfo 160000,$(git rev-parse HEAD),sub
git commit -qm 'Innocent change'
ln -s {secret} leak-leftover
ln -s {secret} sub-gitignore-link && mkdir -p d && ln -s {secret} d/.gitignore
echo done"#,
        secret = secret_file.display(),
        other = other.display(),
    );
    let out = run(&env, &repo, &[], &script);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("removed d/.gitignore"), "{stderr}");
    assert!(
        !marker.exists(),
        "something the guest wrote ran on the host during the pull"
    );
    assert_eq!(
        snapshot(&repo),
        before,
        "the user's repo changed beyond the new branch"
    );

    // Symlinks came back as links (their target paths), never as the host file's content.
    let branch = "berth/1/1";
    assert_eq!(
        git(
            &repo,
            &["cat-file", "-p", &format!("{branch}:leak-committed")]
        ),
        secret_file.display().to_string()
    );
    assert_eq!(
        git(
            &repo,
            &["cat-file", "-p", &format!("{branch}:leak-leftover")]
        ),
        secret_file.display().to_string()
    );
    let grep = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["grep", "-c", "TOP-SECRET", branch])
        .output()
        .unwrap();
    assert_eq!(
        grep.status.code(),
        Some(1),
        "the host file's content was imported: {grep:?}"
    );

    // Now the user does ordinary things with the branch, with the ordinary git CLI.
    git(&repo, &["log", "--all", "-p"]);
    git(&repo, &["status"]);
    git(&repo, &["checkout", "-q", branch]);
    git(&repo, &["status"]);
    git(&repo, &["diff", "main", branch]);
    git(&repo, &["checkout", "-q", "main"]);
    git(&repo, &["merge", "-q", "--no-edit", branch]);
    git(&repo, &["status"]);
    assert!(
        !marker.exists(),
        "something the guest wrote ran on the host after the pull"
    );
    assert!(
        !repo.join(".git/modules").exists(),
        "the submodule was fetched"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join(".git/config")).unwrap(),
        before[1]
    );
}

#[test]
fn a_crafted_head_is_ignored_and_only_the_new_branch_appears() {
    let env = TestEnv::new();
    let repo = user_repo(&env);
    let before = git(&repo, &["for-each-ref"]);
    let out = run(
        &env,
        &repo,
        &[],
        "echo work > work.txt; printf 'ref: refs/heads/../../../../../etc/passwd\\n' > .git/HEAD",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("suspicious ref"));
    let after = git(&repo, &["for-each-ref"]);
    let added: Vec<&str> = after.lines().filter(|l| !before.contains(l)).collect();
    assert_eq!(added.len(), 1, "{after}");
    assert!(added[0].ends_with("refs/heads/berth/1/1"));
    assert_eq!(git(&repo, &["show", "berth/1/1:work.txt"]), "work\n");
}

#[test]
fn rewritten_history_is_refused_and_nothing_is_imported() {
    let env = TestEnv::new();
    let repo = user_repo(&env);
    let out = run(
        &env,
        &repo,
        &[],
        "git checkout -q --orphan fresh && git commit -qm 'Rewritten from scratch'",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not descend from the base commit"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(refused)"));
    assert_eq!(
        out.status.code(),
        Some(125),
        "a refused result fails the run"
    );
    assert!(!git(&repo, &["for-each-ref"]).contains("berth/"));

    let out = run(
        &env,
        &repo,
        &[],
        "git commit -q --amend -m 'Rewrote the base'",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not descend"));
    assert!(!git(&repo, &["for-each-ref"]).contains("berth/"));
}

#[test]
fn a_file_beyond_the_size_limit_is_refused_with_a_clear_error() {
    let env = TestEnv::new();
    let repo = user_repo(&env);
    let objects_before = git(&repo, &["count-objects"]);
    let out = run(
        &env,
        &repo,
        &["--max-file-size", "1000000"],
        "head -c 2000000 /dev/urandom > big.bin && git add big.bin && git commit -qm big",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("big.bin is 2000000 bytes (limit 1000000 bytes)"),
        "{stderr}"
    );
    assert!(!git(&repo, &["for-each-ref"]).contains("berth/"));
    assert_eq!(
        git(&repo, &["count-objects"]),
        objects_before,
        "objects were imported"
    );
}

#[test]
fn ctrl_c_stops_every_attempt_and_keeps_their_workspaces() {
    let env = TestEnv::new();
    let repo = user_repo(&env);
    let child = env
        .berth()
        .args(["run", "--attempts", "2", "--repo"])
        .arg(&repo)
        .args(["--", "sh", "-c", "echo started > started.txt; sleep 600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let attempts = env.data_dir().join("attempts");
    let started = berth_tests::wait_until(std::time::Duration::from_secs(180), || {
        (1..=2).all(|n| attempts.join(format!("1.{n}/work/started.txt")).exists())
    });
    assert!(started, "the attempts never started");
    // SAFETY: kill takes plain integers.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("berth pull 1.2"));
    assert!(
        !git(&repo, &["for-each-ref"]).contains("berth/"),
        "nothing is pulled on Ctrl-C"
    );
    let clean = berth_tests::wait_until(std::time::Duration::from_secs(20), || {
        berth_tests::Leftovers::of(env.data_dir(), None).is_clean()
    });
    assert!(
        clean,
        "{:?}",
        berth_tests::Leftovers::of(env.data_dir(), None)
    );
    // The work is kept and can still be pulled.
    let pulled = env.berth().args(["pull", "1.2"]).output().unwrap();
    assert!(pulled.status.success(), "{pulled:?}");
    assert_eq!(git(&repo, &["show", "berth/1/2:started.txt"]), "started\n");
}

#[test]
fn uncommitted_work_in_the_repo_is_left_out_with_a_note_or_included_on_request() {
    let env = TestEnv::new();
    let repo = user_repo(&env);
    std::fs::write(repo.join("app.txt"), "dirty\n").unwrap();
    let out = run(&env, &repo, &[], "cat app.txt > seen.txt");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--include-uncommitted"));
    assert_eq!(git(&repo, &["show", "berth/1/1:seen.txt"]), "version 2\n");
    let out = run(
        &env,
        &repo,
        &["--include-uncommitted"],
        "cat app.txt > seen.txt",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(git(&repo, &["show", "berth/2/1:seen.txt"]), "dirty\n");
    // The user's dirty file is still just as they left it.
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).unwrap(),
        "dirty\n"
    );
}
