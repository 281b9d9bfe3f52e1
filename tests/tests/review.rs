//! Review without VMs: two attempts' workspaces are written to as their guests would, then
//! compared, opened in an editor and listed with their repo, through the real `berth` CLI.

use std::path::Path;
use std::process::Output;

use berth_core::{DataDir, NewTask, RepoConfig, Store, prepare_task};
use berth_tests::{TestEnv, git, repo_with, simple_repo};

fn now_ms() -> u64 {
    1_700_000_000_000
}

fn berth(env: &TestEnv, args: &[&str]) -> Output {
    env.berth().args(args).output().unwrap()
}

fn ok(env: &TestEnv, args: &[&str]) -> String {
    let out = berth(env, args);
    assert!(out.status.success(), "berth {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A task with two attempts whose "guests" left different versions of `a.txt`.
fn two_attempts(env: &TestEnv, repo: &Path) {
    let store = Store::new(DataDir::new(env.data_dir().to_path_buf()));
    let policy = RepoConfig::default().policy(None, &[], &[], None).unwrap();
    let prepared = prepare_task(
        &store,
        &NewTask {
            repo: &repo.canonicalize().unwrap(),
            base_ref: "main",
            attempts: 2,
            title: "review",
            command: &["true".to_string()],
            include_uncommitted: false,
            memory_mib: 256,
            policy,
            with_env: false,
            secrets: Vec::new(),
            agent: None,
            cpus: 1,
            history: 1,
            limits: Default::default(),
        },
        now_ms,
    )
    .unwrap();
    for (a, text) in prepared.attempts.iter().zip(["one\n", "two\n"]) {
        let work = store.workspace(a.id);
        std::fs::write(work.join("a.txt"), text).unwrap();
        std::fs::write(work.join(format!("only-{}.txt", a.id.n)), "x\n").unwrap();
    }
}

/// An "editor" at `<home>/<name>` that writes its arguments, one per line, to the path
/// returned second.
fn fake_editor(env: &TestEnv, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let seen = env.home.path().join("editor-args");
    let editor = env.home.path().join(name);
    let script = format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", seen.display());
    std::fs::write(&editor, script).unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (editor, seen)
}

#[test]
fn diff_against_another_attempt_shows_only_what_differs() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    two_attempts(&env, &repo);
    let out = ok(&env, &["diff", "1.2", "--against", "1.1"]);
    assert!(out.contains("-one") && out.contains("+two"), "{out}");
    assert!(
        out.contains("only-1.txt") && out.contains("only-2.txt"),
        "{out}"
    );
    assert!(
        !out.contains("-a\n"),
        "the base's line is not part of the comparison: {out}"
    );
    assert!(out.ends_with("3 file(s) changed, +2/-2\n"), "{out}");
    let same = berth(&env, &["diff", "1.1", "--against", "1.1"]);
    assert!(!same.status.success());
    assert!(String::from_utf8_lossy(&same.stderr).contains("two different attempts"));
}

#[test]
fn open_pulls_checks_the_branch_out_and_runs_the_configured_editor_on_it() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    two_attempts(&env, &repo);
    let (editor, seen) = fake_editor(&env, "fake editor.sh");
    // Quoted like a shell would, since the path has a space; split without a shell.
    let cmd = format!("'{}' --new-window", editor.display());
    assert_eq!(ok(&env, &["config", "editor", &cmd]).trim(), cmd);

    let out = ok(&env, &["open", "1.2"]);
    assert!(out.contains("branch berth/1/2"), "{out}");
    let mut args = String::new();
    assert!(berth_tests::wait_until(
        std::time::Duration::from_secs(10),
        || {
            args = std::fs::read_to_string(&seen).unwrap_or_default();
            args.lines().count() == 2
        }
    ));
    let mut lines = args.lines();
    assert_eq!(lines.next(), Some("--new-window"));
    let checkout = Path::new(lines.next().unwrap());
    assert_eq!(
        std::fs::read_to_string(checkout.join("a.txt")).unwrap(),
        "two\n"
    );
    // The user's own checkout is untouched; the checkout is the branch, as git sees it.
    assert_eq!(std::fs::read_to_string(repo.join("a.txt")).unwrap(), "a\n");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert_eq!(
        git(checkout, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "berth/1/2"
    );
    let audit = ok(&env, &["audit", "1.2"]);
    assert!(audit.contains("open"), "{audit}");

    // An editor that does not exist: a message that says what to do.
    ok(&env, &["config", "editor", "no-such-editor-xyz"]);
    let out = berth(&env, &["open", "1.1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the editor `no-such-editor-xyz` is not on PATH"),
        "{err}"
    );
    assert!(err.contains("berth config editor"), "{err}");
    // A command that cannot be split is refused and the old one kept.
    assert!(
        !berth(&env, &["config", "editor", "'unclosed"])
            .status
            .success()
    );
    assert_eq!(ok(&env, &["config", "editor"]).trim(), "no-such-editor-xyz");
}

#[test]
fn repos_are_listed_with_branches_added_by_tasks_and_by_hand() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    assert!(ok(&env, &["repo", "ls"]).contains("no repos yet"));
    two_attempts(&env, &repo);
    let other = repo_with(&env.home.path().join("other"), "trunk", "f", "f");
    ok(&env, &["repo", "add", other.to_str().unwrap()]);
    let plain = env.home.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let bad = berth(&env, &["repo", "add", plain.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a git repository"));

    let listed: serde_json::Value =
        serde_json::from_str(&ok(&env, &["repo", "ls", "--json"])).unwrap();
    let repos = listed.as_array().unwrap();
    assert_eq!(repos.len(), 2, "{listed}");
    assert_eq!(
        repos[0]["path"],
        repo.canonicalize().unwrap().to_str().unwrap()
    );
    assert!(
        repos[0]["branches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b == "main")
    );
    assert_eq!(repos[1]["branches"], serde_json::json!(["trunk"]));
    ok(&env, &["repo", "rm", other.to_str().unwrap()]);
    assert!(!ok(&env, &["repo", "ls"]).contains("other"));
}

#[test]
fn open_never_hands_the_editor_anything_the_guest_left_in_its_git_dir() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    two_attempts(&env, &repo);
    // The "guest" of 1.1 leaves hooks and config in its workspace's .git that would run a
    // command if any git there were used: on checkout, on status, as an fsmonitor.
    let marker = env.home.path().join("guest-code-ran");
    let work_git = env.data_dir().join("attempts/1.1/work/.git");
    let payload = format!("#!/bin/sh\ntouch '{}'\n", marker.display());
    for hook in [
        "post-checkout",
        "post-index-change",
        "reference-transaction",
    ] {
        let path = work_git.join("hooks").join(hook);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &payload).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let mut config = std::fs::read_to_string(work_git.join("config")).unwrap();
    config.push_str(&format!(
        "[core]\n\tfsmonitor = touch '{}'\n\thooksPath = {}\n",
        marker.display(),
        work_git.join("hooks").display()
    ));
    std::fs::write(work_git.join("config"), config).unwrap();

    let (editor, seen) = fake_editor(&env, "editor.sh");
    ok(&env, &["config", "editor", editor.to_str().unwrap()]);
    ok(&env, &["open", "1.1"]);
    assert!(berth_tests::wait_until(
        std::time::Duration::from_secs(10),
        || seen.exists()
    ));
    let checkout = std::path::PathBuf::from(std::fs::read_to_string(&seen).unwrap().trim());
    // The checkout is the user's repo's worktree, not the workspace: the editor's own git
    // (status, checkout) uses the user's hooks and config, so nothing of the guest's runs.
    assert!(!checkout.starts_with(env.data_dir().join("attempts")));
    git(&checkout, &["status", "--porcelain"]);
    git(&checkout, &["checkout", "-q", "-b", "review"]);
    assert!(!marker.exists(), "guest code ran on the host");
    let gitdir = git(&checkout, &["rev-parse", "--git-common-dir"]);
    assert_eq!(
        Path::new(gitdir.trim()).canonicalize().unwrap(),
        repo.join(".git").canonicalize().unwrap()
    );
    assert!(!git(&checkout, &["config", "--list"]).contains("fsmonitor"));
}

#[test]
fn diff_on_a_terminal_shows_a_guests_escape_sequences_instead_of_obeying_them() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    two_attempts(&env, &repo);
    // The guest's file clears the screen, forges a Berth line and writes the clipboard.
    let hostile = "\x1b[2J\rberth: all checks passed\x1b]52;c;cm0gLXJmIH4=\x07\n";
    std::fs::write(env.data_dir().join("attempts/1.1/work/a.txt"), hostile).unwrap();
    // `script` gives the command a real terminal, as a user's shell would.
    let cmd = format!(
        "{} --data-dir {} diff 1.1",
        berth_tests::berth_bin().display(),
        env.data_dir().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HOME", env.home.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("\\x1b[2J\\x0dberth: all checks passed"),
        "{shown}"
    );
    assert!(shown.contains("\\x1b]52;c;"), "{shown}");
    assert!(
        !shown.contains('\x1b') && !shown.contains('\x07'),
        "{shown:?}"
    );
    // Piped (to a file, to `git apply`), the patch stays byte for byte.
    let piped = ok(&env, &["diff", "1.1"]);
    assert!(piped.contains(hostile.trim_end()), "{piped:?}");
}
