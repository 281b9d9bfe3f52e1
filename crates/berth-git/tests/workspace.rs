//! Workspaces, host-side only: standalone, shallow, and blind to the user's repository.

use std::path::Path;

use berth_git::{create_workspace, init_repo_with_files};

fn repo(dir: &Path) {
    init_repo_with_files(
        dir,
        &[("a.txt", "a\n", false), ("bin/run.sh", "#!/bin/sh\n", true)],
        "first\n",
    )
    .unwrap();
}

fn all_text_under(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_symlink() {
                out.push_str(&std::fs::read_link(e.path()).unwrap().display().to_string());
            } else {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

#[test]
fn a_workspace_is_standalone_and_never_points_back_to_the_user_repo() {
    let d = tempfile::tempdir().unwrap();
    let user = d.path().join("user-repo-xyz");
    repo(&user);
    let ws = d.path().join("ws");
    let created = create_workspace(&user, "main", &ws, false, 1).unwrap();
    assert_eq!(created.base, created.start);
    assert!(!created.left_out_uncommitted);
    assert_eq!(std::fs::read_to_string(ws.join("a.txt")).unwrap(), "a\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(ws.join("bin/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "executable bit kept");
    // No alternates, no gitdir link, no path of the user's repo anywhere in the workspace.
    assert!(ws.join(".git").is_dir());
    assert!(!ws.join(".git/objects/info/alternates").exists());
    assert!(!all_text_under(&ws).contains("user-repo-xyz"));
    // No object file is shared with the user's repo (hard links would let the guest write it).
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![ws.join(".git/objects")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                assert_eq!(e.metadata().unwrap().nlink(), 1, "{}", e.path().display());
            }
        }
    }
    // The base is a root commit: nothing was left out, so nothing is marked shallow.
    assert!(!ws.join(".git/shallow").exists());
}

/// `git` run on a fresh workspace (never on one a guest has touched).
fn git_in(ws: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(ws)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_workspace_has_the_asked_history_marked_shallow_at_its_edge() {
    let d = tempfile::tempdir().unwrap();
    let user = d.path().join("r");
    repo(&user);
    let r = git2::Repository::open(&user).unwrap();
    let sig = git2::Signature::now("t", "t@t.invalid").unwrap();
    let mut ids = vec![r.head().unwrap().target().unwrap()];
    for n in 2..=5 {
        std::fs::write(user.join("a.txt"), format!("v{n}\n")).unwrap();
        let mut index = r.index().unwrap();
        index.add_path(Path::new("a.txt")).unwrap();
        index.write().unwrap();
        let tree = r.find_tree(index.write_tree().unwrap()).unwrap();
        let parent = r.find_commit(*ids.last().unwrap()).unwrap();
        let msg = format!("commit {n}\n");
        ids.push(
            r.commit(Some("HEAD"), &sig, &sig, &msg, &tree, &[&parent])
                .unwrap(),
        );
    }
    // Three generations: the base and two parents; the third is the edge.
    let ws = d.path().join("w3");
    create_workspace(&user, "main", &ws, false, 3).unwrap();
    let log = git_in(&ws, &["log", "--format=%s"]);
    assert_eq!(log, "commit 5\ncommit 4\ncommit 3\n");
    assert_eq!(
        std::fs::read_to_string(ws.join(".git/shallow")).unwrap(),
        format!("{}\n", ids[2])
    );
    // Blame reaches back to the edge; the earlier object is not in the workspace.
    assert_eq!(git_in(&ws, &["show", "HEAD~2:a.txt"]), "v3\n");
    assert!(
        git2::Repository::open(&ws)
            .unwrap()
            .find_commit(ids[1])
            .is_err()
    );
    // One generation: the base alone, as before.
    let ws1 = d.path().join("w1");
    create_workspace(&user, "main", &ws1, false, 1).unwrap();
    assert_eq!(git_in(&ws1, &["log", "--format=%s"]), "commit 5\n");
    // More than there is: the whole history, nothing shallow.
    let all = d.path().join("wall");
    create_workspace(&user, "main", &all, false, 100).unwrap();
    assert_eq!(git_in(&all, &["rev-list", "--count", "HEAD"]), "5\n");
    assert!(!all.join(".git/shallow").exists());
    assert!(!all_text_under(&all).contains(&user.display().to_string()));
}

#[test]
fn a_missing_base_and_a_non_repo_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let user = d.path().join("r");
    repo(&user);
    let err =
        create_workspace(&user, "no-such-branch", &d.path().join("w1"), false, 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("has no commit 'no-such-branch'; pass --base"),
        "{err}"
    );
    let err = create_workspace(d.path(), "main", &d.path().join("w2"), false, 1).unwrap_err();
    assert!(err.to_string().contains("is not a git repository"), "{err}");
}

#[test]
fn uncommitted_changes_are_snapshotted_only_when_asked_and_the_user_repo_is_untouched() {
    let d = tempfile::tempdir().unwrap();
    let user = d.path().join("r");
    repo(&user);
    std::fs::write(user.join("a.txt"), "edited\n").unwrap();
    std::fs::write(user.join("new.txt"), "untracked\n").unwrap();
    let index_before = std::fs::read(user.join(".git/index")).unwrap();

    let plain = create_workspace(&user, "main", &d.path().join("w1"), false, 1).unwrap();
    assert!(plain.left_out_uncommitted);
    assert_eq!(
        std::fs::read_to_string(d.path().join("w1/a.txt")).unwrap(),
        "a\n"
    );
    assert!(!d.path().join("w1/new.txt").exists());

    let with = create_workspace(&user, "main", &d.path().join("w2"), true, 1).unwrap();
    assert!(!with.left_out_uncommitted);
    assert_ne!(with.start, with.base);
    assert_eq!(
        std::fs::read_to_string(d.path().join("w2/a.txt")).unwrap(),
        "edited\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("w2/new.txt")).unwrap(),
        "untracked\n"
    );

    assert_eq!(
        std::fs::read(user.join(".git/index")).unwrap(),
        index_before
    );
    assert_eq!(
        std::fs::read_to_string(user.join("a.txt")).unwrap(),
        "edited\n"
    );
}

#[test]
fn the_checked_out_branch_is_offered_first() {
    let d = tempfile::tempdir().unwrap();
    let user = d.path().join("r");
    let head = init_repo_with_files(&user, &[("a.txt", "a\n", false)], "first\n").unwrap();
    let r = git2::Repository::open(&user).unwrap();
    let commit = r.find_commit(head).unwrap();
    for b in ["berth/1/1", "zz-feature"] {
        r.branch(b, &commit, false).unwrap();
    }
    let current = r.head().unwrap().shorthand().unwrap().to_string();
    let names = berth_git::branches(&user).unwrap();
    assert_eq!(names[0], current, "{names:?}");
    assert_eq!(names.len(), 3);
    r.set_head("refs/heads/zz-feature").unwrap();
    assert_eq!(berth_git::branches(&user).unwrap()[0], "zz-feature");
}

#[test]
fn large_rewritten_files_shorten_the_history_instead_of_slowing_the_start() {
    let d = tempfile::tempdir().unwrap();
    let user = d.path().join("r");
    repo(&user);
    let r = git2::Repository::open(&user).unwrap();
    let sig = git2::Signature::now("t", "t@t.invalid").unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    // Six commits each rewriting a 5 MiB file nobody can compress.
    for n in 0..6 {
        let mut data = vec![0u8; 5 << 20];
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        std::fs::write(user.join("blob.bin"), &data).unwrap();
        let mut index = r.index().unwrap();
        index.add_path(Path::new("blob.bin")).unwrap();
        index.write().unwrap();
        let tree = r.find_tree(index.write_tree().unwrap()).unwrap();
        let parent = r.head().unwrap().peel_to_commit().unwrap();
        let msg = format!("blob {n}\n");
        r.commit(Some("HEAD"), &sig, &sig, &msg, &tree, &[&parent])
            .unwrap();
    }
    let ws = d.path().join("w");
    create_workspace(&user, "main", &ws, false, 50).unwrap();
    // 16 MiB of older versions: the base and three generations (15 MiB), not the fourth.
    assert_eq!(
        git_in(&ws, &["log", "--format=%s"]),
        "blob 5\nblob 4\nblob 3\nblob 2\n"
    );
    assert_eq!(berth_git::HISTORY_BUDGET, 16 << 20);
}
